//! The database abstraction the handlers are written against.
//!
//! [`Db`] is synchronous on purpose: both backends are (rusqlite, and the Durable Object's
//! `SqlStorage::exec`), and a handler that cannot `.await` cannot let another request interleave
//! with its writes. Only two modules implement it: `r2::rusqlite_db` and `durable::sql_db`.

mod schema;
mod value;

pub use schema::{apply_migrations, check_shape, Difference, ShapeError, MIGRATIONS_TABLE};
pub use value::{FromSqlValue, Row, SqlValue};

use std::fmt;

/// A failed statement, with the backend's message.
#[derive(Debug, Clone, PartialEq)]
pub struct DbError(pub String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
        Err(DbError(format!("quick_check: {}", verdict.join("; "))))
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

    /// Runs several `;`-separated statements that take no parameters (schema migrations).
    fn execute_script(&self, sql: &str) -> Result<(), DbError>;

    /// Runs `work` as one atomic unit: all of its writes are kept when it returns `Ok`, and none
    /// when it returns `Err` (whatever it wrote first). Not reentrant: `work` must not call
    /// `transaction` again.
    fn transaction<T, E: From<DbError>>(&self, work: impl FnOnce() -> Result<T, E>)
        -> Result<T, E>;
}
