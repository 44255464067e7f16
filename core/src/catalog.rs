//! What a user's database holds, as a move sees it: its tables (with their columns and the key
//! that orders their rows), the rest of its schema (indexes, views, triggers), and every value
//! as a typed [`Cell`], read a page at a time in key order.
//!
//! Values are read with their storage class (`typeof`), because neither side can be trusted to
//! say it: the Durable Object hands every number to JavaScript, where integer 5 and real 5.0 are
//! the same number. Texts are read as their bytes (`CAST(x AS BLOB)`), so nothing on the way
//! (JavaScript strings, lossy UTF-8 decoding) can change them. Copy, digest and preflight all
//! read through [`for_each_page`], so what is checked is exactly what is copied.
//!
//! Tables that belong to the runtime or to the object itself are never part of the user's data:
//! see [`Owner`].

use admin_api::in_chunks::{MAX_BATCH_BYTES, MAX_BATCH_ROWS};

use crate::db::{Db, DbError, Row, SqlValue};

/// The names of the object's own tables (their columns and use: the Worker's
/// `object::records`). They live beside the user's tables in the object's storage, so a move
/// must know them to leave them out.
pub mod object_tables {
    /// Its migration state (one row).
    pub const STATE: &str = "store_state";
    /// Its last failed move (one row).
    pub const FAILURE: &str = "store_failure";
    /// The faults a test armed.
    pub const FAULT: &str = "store_fault";
    /// A chunked move in progress (one row).
    pub const MOVE: &str = "store_move";
    /// A chunked move's cursor and digest per table.
    pub const MOVE_TABLES: &str = "store_move_tables";

    pub const ALL: [&str; 5] = [STATE, FAILURE, FAULT, MOVE, MOVE_TABLES];
}

/// Whose a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The user's data: copied and compared.
    User,
    /// SQLite's (`sqlite_*`), the platform's (`_cf_*`, `__miniflare_*` and any `__*`), or the
    /// object's own bookkeeping ([`object_tables`]): never copied, never compared. A user's file
    /// that has such a table cannot move (preflight says so) rather than lose it silently.
    Runtime,
}

pub fn owner(name: &str) -> Owner {
    let lower = name.to_ascii_lowercase();
    let runtime = lower.starts_with("sqlite_")
        || lower.starts_with("_cf_")
        || lower.starts_with("__")
        || object_tables::ALL.contains(&lower.as_str());
    if runtime {
        Owner::Runtime
    } else {
        Owner::User
    }
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One value with its storage class, exactly: integers as 64 bits, reals by their bits, texts
/// and blobs as bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Cell {
    /// Bytes the value occupies, as the object's per-value and per-row limits count them.
    pub fn size(&self) -> usize {
        match self {
            Cell::Null => 0,
            Cell::Integer(_) | Cell::Real(_) => 8,
            Cell::Text(bytes) | Cell::Blob(bytes) => bytes.len(),
        }
    }

    /// The SQL expression that recreates this value with its storage class, and the parameter
    /// it binds, if any. Null and empty values are literals (an empty buffer may bind as NULL
    /// on the way through JavaScript); numbers are cast because the object binds every number
    /// as a JavaScript number, which an untyped column would keep as REAL; texts travel as bytes.
    pub fn as_sql(&self) -> (&'static str, Option<SqlValue>) {
        match self {
            Cell::Null => ("NULL", None),
            Cell::Integer(i) => ("CAST(? AS INTEGER)", Some(SqlValue::Integer(*i))),
            Cell::Real(f) => ("CAST(? AS REAL)", Some(SqlValue::Real(*f))),
            Cell::Text(bytes) if bytes.is_empty() => ("''", None),
            Cell::Text(bytes) => ("CAST(? AS TEXT)", Some(SqlValue::Blob(bytes.clone()))),
            Cell::Blob(bytes) if bytes.is_empty() => ("x''", None),
            Cell::Blob(bytes) => ("?", Some(SqlValue::Blob(bytes.clone()))),
        }
    }

    /// Rebuilds a value from its `typeof` and what the backend returned for it.
    /// A value read back with the first letter of its `typeof`.
    fn from_typed(class: u8, value: SqlValue) -> Result<Cell, DbError> {
        Ok(match (class, value) {
            (b'n', _) => Cell::Null,
            (b'i', SqlValue::Integer(i)) => Cell::Integer(i),
            // JavaScript has one number type: a whole real arrives as an integer.
            (b'r', SqlValue::Integer(i)) => Cell::Real(i as f64),
            (b'r', SqlValue::Real(f)) => Cell::Real(f),
            (b't', SqlValue::Blob(bytes)) => Cell::Text(bytes),
            (b't', SqlValue::Text(text)) => Cell::Text(text.into_bytes()),
            (b'b', SqlValue::Blob(bytes)) => Cell::Blob(bytes),
            (class, value) => {
                return Err(DbError::failed(format!(
                    "a value of class {} was read back as {value:?}",
                    char::from(class)
                )))
            }
        })
    }
}

/// How a table's rows are addressed and ordered.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKey {
    /// A rowid table whose rowid is not a column: the copy keeps it through this alias (`rowid`,
    /// `_rowid_` or `oid`, whichever no column shadows).
    Hidden(&'static str),
    /// A rowid table whose INTEGER PRIMARY KEY column (at this index) is the rowid.
    Column(usize),
    /// A WITHOUT ROWID table: its primary key columns, in key order.
    PrimaryKey(Vec<usize>),
    /// A rowid table whose every rowid alias is shadowed by a column: its rows cannot be
    /// addressed (preflight refuses it).
    Unreachable,
}

/// A user table as a move sees it.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// Its `CREATE TABLE` statement, as stored.
    pub sql: String,
    /// The columns a row stores (generated columns are not: they are computed again).
    pub columns: Vec<String>,
    pub key: RowKey,
}

impl Table {
    pub fn quoted(&self) -> String {
        quote_ident(&self.name)
    }

    pub fn is_virtual(&self) -> bool {
        self.sql
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("CREATE VIRTUAL")
    }

    /// The values that order `row` among the table's rows: its rowid, or its primary key.
    pub fn key_of(&self, row: &PageRow) -> Vec<Cell> {
        match &self.key {
            RowKey::Hidden(_) => vec![Cell::Integer(row.rowid.unwrap_or(0))],
            RowKey::Column(index) => vec![row.cells[*index].clone()],
            RowKey::PrimaryKey(columns) => columns.iter().map(|&i| row.cells[i].clone()).collect(),
            RowKey::Unreachable => Vec::new(),
        }
    }

    /// A row's address for messages: `rowid 17` or `key ('a', 2)`.
    pub fn describe_row(&self, row: &PageRow) -> String {
        match &self.key {
            RowKey::Hidden(_) | RowKey::Column(_) => format!("rowid {}", row.rowid.unwrap_or(0)),
            RowKey::PrimaryKey(columns) => {
                let values: Vec<String> = columns
                    .iter()
                    .map(|&i| describe_cell(&row.cells[i]))
                    .collect();
                format!("key ({})", values.join(", "))
            }
            RowKey::Unreachable => "an unaddressable row".into(),
        }
    }
}

fn describe_cell(cell: &Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Integer(i) => i.to_string(),
        Cell::Real(f) => format!("{f:?}"),
        Cell::Text(bytes) => format!("'{}'", String::from_utf8_lossy(bytes)),
        Cell::Blob(bytes) => format!("x'{}'", hex(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A schema entry that is not a table: created after the rows, in its original order.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaObject {
    /// `index`, `view` or `trigger`.
    pub kind: String,
    pub name: String,
    pub table: String,
    pub sql: String,
}

/// Every schema entry of `db`, user's and runtime's, in creation order: (type, name, table, sql).
fn schema_entries(db: &impl Db) -> Result<Vec<SchemaObject>, DbError> {
    db.query(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid",
        &[],
    )?
    .iter()
    .map(|row| {
        Ok(SchemaObject {
            kind: row.get(0)?,
            name: row.get(1)?,
            table: row.get(2)?,
            sql: row.get(3)?,
        })
    })
    .collect()
}

/// What a database holds: its user tables and its other user schema objects, and the tables
/// whose names belong to the runtime (listed so that a preflight can refuse them in a file).
#[derive(Debug, Clone)]
pub struct Catalog {
    pub tables: Vec<Table>,
    pub others: Vec<SchemaObject>,
    pub runtime_tables: Vec<String>,
}

impl Catalog {
    pub fn read(db: &impl Db) -> Result<Self, DbError> {
        let mut catalog = Catalog {
            tables: Vec::new(),
            others: Vec::new(),
            runtime_tables: Vec::new(),
        };
        for entry in schema_entries(db)? {
            match (entry.kind.as_str(), owner(&entry.table)) {
                ("table", Owner::User) => catalog.tables.push(read_table(db, entry)?),
                ("table", Owner::Runtime) => catalog.runtime_tables.push(entry.name),
                (_, Owner::User) => catalog.others.push(entry),
                (_, Owner::Runtime) => {}
            }
        }
        Ok(catalog)
    }

    /// The user tables that hold rows (a virtual table's rows live in its shadow tables).
    pub fn row_tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.iter().filter(|table| !table.is_virtual())
    }
}

fn read_table(db: &impl Db, entry: SchemaObject) -> Result<Table, DbError> {
    let name = entry.name;
    let is_virtual = entry
        .sql
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("CREATE VIRTUAL");
    if is_virtual {
        // Its columns are the module's business; preflight refuses it before anything reads it.
        return Ok(Table {
            name,
            sql: entry.sql,
            columns: Vec::new(),
            key: RowKey::Unreachable,
        });
    }
    let info = db.query(&format!("PRAGMA table_info({})", quote_ident(&name)), &[])?;
    let mut columns = Vec::new();
    let mut primary_key: Vec<(i64, usize, String)> = Vec::new();
    for (index, row) in info.iter().enumerate() {
        let column: String = row.get(1)?;
        let declared: String = row.get::<Option<String>>(2)?.unwrap_or_default();
        let key_position: i64 = row.get(5)?;
        if key_position > 0 {
            primary_key.push((key_position, index, declared));
        }
        columns.push(column);
    }
    primary_key.sort();
    let key = if has_rowid(&entry.sql) {
        match primary_key.as_slice() {
            // Only the exact declared type INTEGER makes a column the rowid (not INT, not
            // BIGINT), and not always then: `INTEGER PRIMARY KEY DESC` written on the column
            // is an ordinary key beside a hidden rowid, which SQLite tells by giving it an index.
            [(_, index, declared)]
                if declared.eq_ignore_ascii_case("INTEGER") && !has_key_index(db, &name)? =>
            {
                RowKey::Column(*index)
            }
            _ => ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|alias| !columns.iter().any(|c| c.eq_ignore_ascii_case(alias)))
                .map_or(RowKey::Unreachable, RowKey::Hidden),
        }
    } else {
        RowKey::PrimaryKey(primary_key.iter().map(|(_, index, _)| *index).collect())
    };
    Ok(Table {
        name,
        sql: entry.sql,
        columns,
        key,
    })
}

/// Whether SQLite made an index for the primary key of `table`: it does for every key but a
/// rowid alias.
fn has_key_index(db: &impl Db, table: &str) -> Result<bool, DbError> {
    let indexes = db.query(&format!("PRAGMA index_list({})", quote_ident(table)), &[])?;
    for index in &indexes {
        // Columns: seq, name, unique, origin ('c', 'u' or 'pk'), partial.
        let origin: String = index.get(3)?;
        if origin == "pk" {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a `CREATE TABLE` statement makes a rowid table. `WITHOUT ROWID` can only stand after
/// the closing parenthesis of the column list, so only that tail is looked at (a column's
/// default or check could contain the words).
fn has_rowid(sql: &str) -> bool {
    let tail = sql.rsplit_once(')').map_or("", |(_, tail)| tail);
    let words: Vec<String> = tail
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    !words.windows(2).any(|pair| pair == ["WITHOUT", "ROWID"])
}

/// The AUTOINCREMENT counters of the user's tables, by name.
pub fn sequences(db: &impl Db) -> Result<Vec<(String, i64)>, DbError> {
    if !table_exists(db, "sqlite_sequence")? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for row in db.query("SELECT name, seq FROM sqlite_sequence ORDER BY name", &[])? {
        let name: String = row.get(0)?;
        if owner(&name) == Owner::User {
            out.push((name, row.get(1)?));
        }
    }
    Ok(out)
}

pub fn table_exists(db: &impl Db, name: &str) -> Result<bool, DbError> {
    Ok(db
        .query_value::<i64>(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            &[name.into()],
        )?
        .unwrap_or(0)
        > 0)
}

/// One row read by [`for_each_page`]: its rowid (rowid tables) and its stored columns' values.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRow {
    pub rowid: Option<i64>,
    pub cells: Vec<Cell>,
}

impl PageRow {
    pub fn size(&self) -> usize {
        self.cells.iter().map(Cell::size).sum()
    }
}

/// Rows read per page at first; fewer when rows are large, so a page stays near
/// [`PAGE_BYTES`] and memory is bounded by the page, not the table.
const PAGE_ROWS: usize = 256;
const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Reads every row of `table` in key order (rowid, or primary key), a page at a time: each page
/// starts after the last key of the one before (never OFFSET, which rereads what it skips).
pub fn for_each_page(
    db: &impl Db,
    table: &Table,
    mut visit: impl FnMut(&[PageRow]) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let mut limit = PAGE_ROWS;
    let mut after: Option<Vec<Cell>> = None;
    loop {
        let page = read_page(db, table, after.as_deref(), limit)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        visit(&page)?;
        let bytes: usize = page.iter().map(PageRow::size).sum();
        limit = next_page_rows(limit, bytes, PAGE_BYTES, PAGE_ROWS);
        after = Some(table.key_of(last));
    }
}

/// How many rows to ask for next, after a page of `limit` rows took `bytes`: fewer when rows
/// are large, so that a page stays near `target` bytes, more (up to `max_rows`) when small.
pub fn next_page_rows(limit: usize, bytes: usize, target: usize, max_rows: usize) -> usize {
    if bytes > target {
        (limit / 2).max(1)
    } else if bytes < target / 4 {
        (limit * 2).min(max_rows)
    } else {
        limit
    }
}

/// Up to `limit` rows of `table` in key order, after the row whose key is `after` (from the
/// first row when `None`).
pub fn read_page(
    db: &impl Db,
    table: &Table,
    after: Option<&[Cell]>,
    limit: usize,
) -> Result<Vec<PageRow>, DbError> {
    let (key_select, order): (Option<String>, Vec<String>) = match &table.key {
        RowKey::Hidden(alias) => (Some((*alias).to_owned()), vec![(*alias).to_owned()]),
        RowKey::Column(index) => (None, vec![quote_ident(&table.columns[*index])]),
        RowKey::PrimaryKey(columns) => (
            None,
            columns
                .iter()
                .map(|&i| quote_ident(&table.columns[i]))
                .collect(),
        ),
        RowKey::Unreachable => {
            return Err(DbError::failed(format!(
            "table {} shadows rowid, _rowid_ and oid with columns: its rows cannot be addressed",
            table.name
        )))
        }
    };
    // The row's storage classes come as one short text, a letter per column (`n`ull,
    // `i`nteger, `r`eal, `t`ext, `b`lob): one value to convert per row, not one per column,
    // which matters where each value crosses into wasm from the object's JavaScript.
    let mut select: Vec<String> = key_select.into_iter().collect();
    let classes: Vec<String> = table
        .columns
        .iter()
        .map(|column| format!("substr(typeof({}), 1, 1)", quote_ident(column)))
        .collect();
    select.push(classes.join(" || "));
    for column in &table.columns {
        let quoted = quote_ident(column);
        select.push(format!(
            "CASE typeof({quoted}) WHEN 'text' THEN CAST({quoted} AS BLOB) ELSE {quoted} END"
        ));
    }
    let (condition, mut params) = match after {
        None => (String::new(), Vec::new()),
        Some(key) => after_key(&order, key),
    };
    params.push(SqlValue::Integer(limit as i64));
    let rows = db.query(
        &format!(
            "SELECT {} FROM {}{condition} ORDER BY {} LIMIT ?",
            select.join(", "),
            table.quoted(),
            order.join(", ")
        ),
        &params,
    )?;
    let hidden = matches!(table.key, RowKey::Hidden(_));
    rows.into_iter()
        .map(|row| page_row(table, hidden, row))
        .collect()
}

/// Up to `limit` rows (at most [`MAX_BATCH_ROWS`]) after `after`, read a few at a time and
/// stopped before they pass [`MAX_BATCH_BYTES`] (always at least one row): one batch of a
/// chunked move, however large the rows, on either end.
pub fn read_batch_rows(
    db: &impl Db,
    table: &Table,
    after: Option<&[Cell]>,
    limit: usize,
) -> Result<Vec<PageRow>, DbError> {
    const STEP_ROWS: usize = 256;
    let limit = limit.clamp(1, MAX_BATCH_ROWS);
    let mut rows: Vec<PageRow> = Vec::new();
    let mut bytes = 0;
    let mut next = after.map(<[_]>::to_vec);
    while rows.len() < limit && bytes < MAX_BATCH_BYTES {
        let step = STEP_ROWS.min(limit - rows.len());
        let page = read_page(db, table, next.as_deref(), step)?;
        let Some(last) = page.last() else { break };
        next = Some(table.key_of(last));
        let full = page.len() == step;
        for row in page {
            if !rows.is_empty() && bytes + row.size() > MAX_BATCH_BYTES {
                return Ok(rows);
            }
            bytes += row.size();
            rows.push(row);
        }
        if !full {
            break;
        }
    }
    Ok(rows)
}

/// ` WHERE (key...) > (values of the key)` and its parameters.
fn after_key(order: &[String], key: &[Cell]) -> (String, Vec<SqlValue>) {
    let mut params = Vec::new();
    let values: Vec<&str> = key
        .iter()
        .map(|cell| {
            let (expression, param) = cell.as_sql();
            params.extend(param);
            expression
        })
        .collect();
    (
        format!(" WHERE ({}) > ({})", order.join(", "), values.join(", ")),
        params,
    )
}

fn page_row(table: &Table, hidden: bool, row: Row) -> Result<PageRow, DbError> {
    let mut values = row.0.into_iter();
    let rowid = if hidden {
        Some(
            crate::db::FromSqlValue::from_sql_value(&values.next().unwrap_or(SqlValue::Null))
                .map_err(|err| err.context(&format!("rowid of {}", table.name)))?,
        )
    } else {
        None
    };
    let classes = match values.next() {
        Some(SqlValue::Text(classes)) if classes.len() == table.columns.len() => classes,
        other => {
            return Err(DbError::failed(format!(
                "the classes of a row read as {other:?}"
            )))
        }
    };
    let cells = classes
        .bytes()
        .zip(values)
        .map(|(class, value)| Cell::from_typed(class, value))
        .collect::<Result<Vec<_>, _>>()?;
    let rowid = match (&table.key, rowid) {
        (RowKey::Column(index), _) => match cells.get(*index) {
            Some(Cell::Integer(id)) => Some(*id),
            _ => None,
        },
        (_, rowid) => rowid,
    };
    Ok(PageRow { rowid, cells })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_rowid_is_read_from_the_tail_of_the_statement_only() {
        assert!(has_rowid("CREATE TABLE t (a TEXT DEFAULT 'WITHOUT ROWID')"));
        assert!(!has_rowid("CREATE TABLE t (a PRIMARY KEY) WITHOUT ROWID"));
        assert!(!has_rowid(
            "CREATE TABLE t (a PRIMARY KEY)\n  without\trowid, STRICT"
        ));
        assert!(has_rowid("CREATE TABLE t (a) STRICT"));
    }

    #[test]
    fn runtime_and_object_tables_are_not_the_users() {
        for name in [
            "_cf_KV",
            "_CF_METADATA",
            "__miniflare_do_name",
            "sqlite_sequence",
            "store_state",
            "store_failure",
        ] {
            assert_eq!(owner(name), Owner::Runtime, "{name}");
        }
        for name in ["games", "cf_notes", "_private", "store", "data_version"] {
            assert_eq!(owner(name), Owner::User, "{name}");
        }
    }
}
