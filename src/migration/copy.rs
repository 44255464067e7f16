//! Copies a user's database into another: every user table (rowid and WITHOUT ROWID, with their
//! rowids), then indexes, views and triggers (after the rows, so no trigger fires during the
//! copy), then the AUTOINCREMENT counters. The same code imports an R2 file into a Durable
//! Object and exports the object back to a file.
//!
//! Every value keeps its storage class and its exact bits ([`Cell::as_sql`]). Statements stay
//! within the Durable Object's limits: at most [`MAX_PARAMETERS`] bound values each.

use crate::db::{Db, DbError, SqlValue};
use crate::migration::catalog::{
    for_each_page, quote_ident, sequences, table_exists, Catalog, Cell, PageRow, RowKey, Table,
};
use crate::migration::verify::{self, TableDigest, TableHasher};

/// The Durable Object refuses statements with more bound parameters.
pub const MAX_PARAMETERS: usize = 100;

/// Replaces every user table, index, view and trigger of `to` with a copy of `from`'s; returns
/// the digests of what it read from `from` (the same as [`verify::digests`] of `from`, without
/// reading it a second time). Run it inside one transaction of `to`: a failure half way must
/// leave nothing behind.
pub fn copy_database(from: &impl Db, to: &impl Db) -> Result<Vec<TableDigest>, DbError> {
    clear(to)?;
    let catalog = Catalog::read(from)?;
    for table in &catalog.tables {
        to.execute_script(&table.sql)?;
    }
    let mut digests = Vec::new();
    for table in catalog.row_tables() {
        digests.push(copy_rows(from, to, table)?);
    }
    for object in &catalog.others {
        to.execute_script(&object.sql)?;
    }
    copy_sequences(from, to)?;
    verify::with_schema(from, &catalog, digests)
}

/// Drops the user's tables and views from `db` (their indexes and triggers go with them).
pub fn clear(db: &impl Db) -> Result<(), DbError> {
    let catalog = Catalog::read(db)?;
    for view in catalog.others.iter().filter(|object| object.kind == "view") {
        db.execute_script(&format!("DROP VIEW IF EXISTS {}", quote_ident(&view.name)))?;
    }
    for table in &catalog.tables {
        db.execute_script(&format!("DROP TABLE IF EXISTS {}", table.quoted()))?;
    }
    Ok(())
}

/// Copies one table's rows; returns the digest of the rows read.
fn copy_rows(from: &impl Db, to: &impl Db, table: &Table) -> Result<TableDigest, DbError> {
    let mut hasher = TableHasher::default();
    for_each_page(from, table, |page| {
        hasher.page(page);
        insert_rows(to, table, page)
    })?;
    Ok(hasher.finish(&table.name))
}

/// Inserts `rows` (as [`for_each_page`] reads them) into `table` of `to`, with their rowids,
/// in as few statements as the object's limit on bound values allows.
pub fn insert_rows(to: &impl Db, table: &Table, rows: &[PageRow]) -> Result<(), DbError> {
    let mut columns: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
    if let RowKey::Hidden(alias) = table.key {
        // Rowids survive the copy even where no column holds them: row identity is data.
        columns.insert(0, alias.to_owned());
    }
    let insert = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.quoted(),
        columns.join(", ")
    );
    let mut values: Vec<String> = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    for row in rows {
        if row.cells.len() != table.columns.len() {
            return Err(DbError::failed(format!(
                "a row of {} has {} values; the table has {} columns",
                table.name,
                row.cells.len(),
                table.columns.len()
            )));
        }
        let rowid = match table.key {
            RowKey::Hidden(_) => Some(Cell::Integer(row.rowid.unwrap_or(0))),
            _ => None,
        };
        let (row_values, row_params) = row_sql(rowid.iter().chain(&row.cells));
        if row_params.len() > MAX_PARAMETERS {
            return Err(DbError::failed(format!(
                "a row of {} needs {} bound values; at most {MAX_PARAMETERS} fit in a statement",
                table.name,
                row_params.len()
            )));
        }
        if params.len() + row_params.len() > MAX_PARAMETERS {
            to.execute(&format!("{insert}{}", values.join(", ")), &params)?;
            values.clear();
            params.clear();
        }
        values.push(row_values);
        params.extend(row_params);
    }
    if !values.is_empty() {
        to.execute(&format!("{insert}{}", values.join(", ")), &params)?;
    }
    Ok(())
}

/// `(expr, expr, ...)` for one row and the values it binds.
fn row_sql<'a>(cells: impl Iterator<Item = &'a Cell>) -> (String, Vec<SqlValue>) {
    let mut params = Vec::new();
    let expressions: Vec<&str> = cells
        .map(|cell| {
            let (expression, param) = cell.as_sql();
            params.extend(param);
            expression
        })
        .collect();
    (format!("({})", expressions.join(", ")), params)
}

/// AUTOINCREMENT counters: ids already handed out are never handed out again.
fn copy_sequences(from: &impl Db, to: &impl Db) -> Result<(), DbError> {
    set_sequences(to, &sequences(from)?)
}

/// Sets the AUTOINCREMENT counters of `to` to `sequences` (name, seq).
pub fn set_sequences(to: &impl Db, sequences: &[(String, i64)]) -> Result<(), DbError> {
    if !table_exists(to, "sqlite_sequence")? {
        return Ok(());
    }
    to.execute("DELETE FROM sqlite_sequence", &[])?;
    for (name, seq) in sequences {
        to.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
            &[name.as_str().into(), (*seq).into()],
        )?;
    }
    Ok(())
}
