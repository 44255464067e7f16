//! Copies every table of one database into another: schema, rows (with their rowids), indexes,
//! and `sqlite_sequence`, so AUTOINCREMENT ids are never reused. The same code imports an R2 file
//! into a Durable Object and exports the object back to a file.
//!
//! Statements stay within the Durable Object's limits: at most 100 bound parameters each.

use crate::db::{Db, DbError, Row, SqlValue};

/// Tables that belong to the storage, not to the user's data: SQLite's own, the Durable Object
/// platform's (`_cf_`), and the object's record of its migration state.
pub fn is_data_table(name: &str) -> bool {
    !name.starts_with("sqlite_") && !name.starts_with("_cf_") && name != super::STATE_TABLE
}

/// A table of the user's data: its name, its `CREATE` statement, and whether rows have rowids.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub sql: String,
}

impl Table {
    pub fn has_rowid(&self) -> bool {
        !self.sql.to_ascii_uppercase().contains("WITHOUT ROWID")
    }

    /// `"name"`, quoted for SQL.
    pub fn quoted(&self) -> String {
        quote_ident(&self.name)
    }
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The data tables of `db`, by name.
pub fn data_tables(db: &impl Db) -> Result<Vec<Table>, DbError> {
    let rows = db.query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL ORDER BY name",
        &[],
    )?;
    let mut tables = Vec::new();
    for row in rows {
        let name: String = row.get(0)?;
        if is_data_table(&name) {
            tables.push(Table {
                name,
                sql: row.get(1)?,
            });
        }
    }
    Ok(tables)
}

/// The column names of a table, and whether one of them is the rowid (an INTEGER PRIMARY KEY).
pub fn columns(db: &impl Db, table: &Table) -> Result<(Vec<String>, bool), DbError> {
    let info = db.query(&format!("PRAGMA table_info({})", table.quoted()), &[])?;
    let mut names = Vec::new();
    let mut integer_keys = 0;
    let mut keys = 0;
    for row in &info {
        names.push(row.get::<String>(1)?);
        let declared: String = row.get::<Option<String>>(2)?.unwrap_or_default();
        if row.get::<i64>(5)? > 0 {
            keys += 1;
            if declared.eq_ignore_ascii_case("INTEGER") {
                integer_keys += 1;
            }
        }
    }
    Ok((names, keys == 1 && integer_keys == 1))
}

/// Rows read and written per page: bounded memory for large tables.
const PAGE_ROWS: i64 = 500;
/// The Durable Object refuses statements with more bound parameters.
const MAX_PARAMETERS: usize = 100;

/// Replaces every data table of `to` with a copy of `from`'s. `to` should run this inside one
/// transaction: a failure half way must leave nothing behind.
pub fn copy_database(from: &impl Db, to: &impl Db) -> Result<u64, DbError> {
    for table in data_tables(to)? {
        to.execute_script(&format!("DROP TABLE IF EXISTS {}", table.quoted()))?;
    }
    let tables = data_tables(from)?;
    let mut copied = 0;
    for table in &tables {
        to.execute_script(&table.sql)?;
        copied += copy_rows(from, to, table)?;
    }
    let indexes = from.query(
        "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
        &[],
    )?;
    for index in indexes {
        if is_data_table(&index.get::<String>(0)?) {
            to.execute_script(&index.get::<String>(1)?)?;
        }
    }
    copy_sequences(from, to)?;
    Ok(copied)
}

fn copy_rows(from: &impl Db, to: &impl Db, table: &Table) -> Result<u64, DbError> {
    let (names, rowid_is_a_column) = columns(from, table)?;
    // Keep rowids even where no column holds them: row order and identity survive the copy.
    let keep_rowid = table.has_rowid() && !rowid_is_a_column;
    let mut insert_columns: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
    if keep_rowid {
        insert_columns.insert(0, "rowid".into());
    }
    let width = insert_columns.len();
    if width > MAX_PARAMETERS {
        return Err(DbError(format!(
            "table {} has {width} columns; at most {MAX_PARAMETERS} can be copied",
            table.name
        )));
    }
    let rows_per_insert = (MAX_PARAMETERS / width).max(1);
    let select_columns = insert_columns.join(", ");
    let mut copied = 0u64;
    for_each_page(from, table, &select_columns, |page| {
        for chunk in page.chunks(rows_per_insert) {
            let placeholders = vec![format!("({})", vec!["?"; width].join(", ")); chunk.len()];
            let params: Vec<SqlValue> =
                chunk.iter().flat_map(|row| row.0.iter().cloned()).collect();
            to.execute(
                &format!(
                    "INSERT INTO {} ({select_columns}) VALUES {}",
                    table.quoted(),
                    placeholders.join(", ")
                ),
                &params,
            )?;
        }
        copied += page.len() as u64;
        Ok(())
    })?;
    Ok(copied)
}

/// Reads `select` (a column list or expressions) from every row of `table`, a page at a time,
/// in a stable order (rowid, else every column), so memory stays bounded for large tables.
pub fn for_each_page(
    db: &impl Db,
    table: &Table,
    select: &str,
    mut visit: impl FnMut(&[Row]) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let order = if table.has_rowid() {
        "rowid".to_owned()
    } else {
        let (names, _) = columns(db, table)?;
        (1..=names.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut offset = 0i64;
    loop {
        // OFFSET over a stable order: the source does not change while it is read.
        let page = db.query(
            &format!(
                "SELECT {select} FROM {} ORDER BY {order} LIMIT ? OFFSET ?",
                table.quoted()
            ),
            &[PAGE_ROWS.into(), offset.into()],
        )?;
        if page.is_empty() {
            return Ok(());
        }
        visit(&page)?;
        offset += PAGE_ROWS;
    }
}

/// AUTOINCREMENT counters: ids already handed out are never handed out again.
fn copy_sequences(from: &impl Db, to: &impl Db) -> Result<(), DbError> {
    if !table_exists(from, "sqlite_sequence")? || !table_exists(to, "sqlite_sequence")? {
        return Ok(());
    }
    to.execute("DELETE FROM sqlite_sequence", &[])?;
    for row in from.query("SELECT name, seq FROM sqlite_sequence", &[])? {
        let name: String = row.get(0)?;
        if is_data_table(&name) {
            to.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                &[name.into(), row.0[1].clone()],
            )?;
        }
    }
    Ok(())
}

fn table_exists(db: &impl Db, name: &str) -> Result<bool, DbError> {
    Ok(db
        .query_value::<i64>(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            &[name.into()],
        )?
        .unwrap_or(0)
        > 0)
}
