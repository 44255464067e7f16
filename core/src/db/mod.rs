//! The database abstraction the handlers are written against.
//!
//! [`Db`] is synchronous on purpose: both backends are (rusqlite, and the Durable Object's
//! `SqlStorage::exec`), and a handler that cannot `.await` cannot let another request interleave
//! with its writes. Only two modules implement it, one per data path: [`rusqlite_db`] here (the
//! R2 path's file, SQLite compiled to wasm; the migrator's scratch copies natively) and the
//! Worker's `object::sql_db` (the Durable Object's storage).

pub mod app_upgrade;
pub mod rusqlite_db;
mod schema;
mod value;
mod version;

pub use schema::{
    apply_migrations, check_shape, upgrade, Difference, ShapeError, Upgrade, UpgradeError,
    MIGRATIONS_TABLE,
};
pub use value::{
    from_js_number, integer_as_js_number, FromSqlValue, Row, SqlValue, MAX_SAFE_INTEGER,
};
pub use version::DbVersion;

use std::fmt;

/// A failed statement.
#[derive(Debug, Clone, PartialEq)]
pub enum DbError {
    /// The statement would give two rows the same value of a UNIQUE or PRIMARY KEY constraint
    /// on `columns` (as SQLite names them: `table.column, table.column`).
    UniqueViolation { columns: String },
    /// Anything else, with the backend's message (or a value that does not decode).
    Failed(String),
}

impl DbError {
    pub fn failed(message: impl Into<String>) -> Self {
        DbError::Failed(message.into())
    }

    /// An error as a backend words it. Both backends' SQLite say `UNIQUE constraint failed:
    /// t.a, t.b` (the object adds `: SQLITE_CONSTRAINT` after it), so a violation is told apart
    /// here, once, for both.
    pub fn from_backend(message: String) -> Self {
        const UNIQUE: &str = "UNIQUE constraint failed: ";
        match message.find(UNIQUE) {
            Some(at) => DbError::UniqueViolation {
                columns: message[at + UNIQUE.len()..]
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            },
            None => DbError::Failed(message),
        }
    }

    /// The same error, its message prefixed with what was being done.
    pub fn context(self, doing: &str) -> Self {
        match self {
            DbError::Failed(message) => DbError::Failed(format!("{doing}: {message}")),
            unique => unique,
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::UniqueViolation { columns } => {
                write!(f, "UNIQUE constraint failed: {columns}")
            }
            DbError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DbError {}

/// SQLite's `quick_check` (every page readable, every index consistent with its table): `Ok`
/// when it says "ok". Files that come from outside (downloads, imports, exports) pass it
/// before anything reads or replaces them.
pub fn check_integrity(db: &impl Db) -> Result<(), DbError> {
    let verdict: Vec<String> = db
        .query("PRAGMA quick_check", &[])?
        .iter()
        .map(|row| row.get(0))
        .collect::<Result<_, _>>()?;
    if verdict == ["ok"] {
        Ok(())
    } else {
        Err(DbError::failed(format!(
            "quick_check: {}",
            verdict.join("; ")
        )))
    }
}

/// One user's SQLite database.
pub trait Db {
    /// Runs one statement with positional `?` parameters; returns the number of rows it changed.
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, DbError>;

    /// Runs one statement with positional `?` parameters and returns all of its rows.
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError>;

    /// The first row of a query, if there is one.
    fn query_row(&self, sql: &str, params: &[SqlValue]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first column of the first row of a query, if there is a row.
    fn query_value<T: FromSqlValue>(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Option<T>, DbError> {
        self.query_row(sql, params)?
            .map(|row| row.get(0))
            .transpose()
    }

    /// How many rows all statements on this connection have inserted, updated or deleted:
    /// SQLite's own count, so an UPDATE that matched no row is no change, on either backend.
    fn total_changes(&self) -> Result<u64, DbError> {
        Ok(self
            .query_value::<i64>("SELECT total_changes()", &[])?
            .unwrap_or(0) as u64)
    }

    /// Runs several `;`-separated statements that take no parameters (schema migrations).
    fn execute_script(&self, sql: &str) -> Result<(), DbError>;

    /// Runs `work` as one atomic unit: all of its writes are kept when it returns `Ok`, and none
    /// when it returns `Err` (whatever it wrote first). Not reentrant: `work` must not call
    /// `transaction` again.
    fn transaction<T, E: From<DbError>>(&self, work: impl FnOnce() -> Result<T, E>)
        -> Result<T, E>;
}

#[cfg(test)]
mod tests {
    use super::rusqlite_db::RusqliteDb;
    use super::*;

    #[test]
    fn a_unique_violation_is_told_apart_in_either_backends_wording() {
        let expected = DbError::UniqueViolation {
            columns: "t.a, t.b".into(),
        };
        for message in [
            "UNIQUE constraint failed: t.a, t.b",
            "UNIQUE constraint failed: t.a, t.b: SQLITE_CONSTRAINT",
        ] {
            assert_eq!(DbError::from_backend(message.into()), expected);
        }
        let other = DbError::from_backend("no such table: t".into());
        assert_eq!(other, DbError::Failed("no such table: t".into()));
        assert_eq!(expected.clone().context("inserting"), expected);
    }

    #[test]
    fn rusqlite_reports_a_duplicate_key_as_a_unique_violation() {
        let db = RusqliteDb::empty().unwrap();
        db.execute_script("CREATE TABLE t (a PRIMARY KEY, b UNIQUE)")
            .unwrap();
        db.execute("INSERT INTO t VALUES (1, 2)", &[]).unwrap();
        assert_eq!(
            db.execute("INSERT INTO t VALUES (3, 2)", &[]),
            Err(DbError::UniqueViolation {
                columns: "t.b".into()
            })
        );
    }
}
