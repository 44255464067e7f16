//! `impl Db` over a Durable Object's SQLite storage (`SqlStorage`).
//!
//! Platform limits that shape callers: at most 100 bound parameters and 100 KB per statement;
//! integers travel as JS numbers, so values beyond 2^53 are refused rather than rounded.

use wasm_bindgen::prelude::*;
use worker::{SqlStorage, SqlStorageValue, Storage};

use crate::db::{Db, DbError, Row, SqlValue};

#[wasm_bindgen]
extern "C" {
    /// The part of `DurableObjectStorage` that worker 0.8 does not bind.
    type SyncTransactions;

    /// Runs the callback in a transaction: committed when it returns, rolled back when it throws.
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(
        this: &SyncTransactions,
        callback: &mut dyn FnMut() -> Result<JsValue, JsValue>,
    ) -> Result<JsValue, JsValue>;
}

pub struct SqlDb {
    storage: Storage,
    sql: SqlStorage,
}

impl SqlDb {
    pub fn new(storage: Storage) -> Self {
        let sql = storage.sql();
        Self { storage, sql }
    }

    /// The app's foreign keys are declared but never enforced (schema.md §0): dangling ids and
    /// the `project_id = 0` sentinel are normal, and the object's SQLite enforces by default.
    pub fn disable_foreign_keys(&self) -> Result<(), DbError> {
        self.execute_script("PRAGMA foreign_keys = OFF")
    }

    /// How many rows all statements so far have inserted, updated or deleted.
    pub fn total_changes(&self) -> Result<u64, DbError> {
        Ok(self
            .query_value::<i64>("SELECT total_changes()", &[])?
            .unwrap_or(0) as u64)
    }

    /// Size of the object's database in bytes.
    pub fn database_size(&self) -> usize {
        self.sql.database_size()
    }

    fn bind(params: &[SqlValue]) -> Result<Vec<SqlStorageValue>, DbError> {
        params
            .iter()
            .map(|value| match value {
                SqlValue::Null => Ok(SqlStorageValue::Null),
                SqlValue::Integer(i) => SqlStorageValue::try_from_i64(*i).map_err(to_db_error),
                SqlValue::Real(f) => Ok(SqlStorageValue::Float(*f)),
                SqlValue::Text(s) => Ok(SqlStorageValue::String(s.clone())),
                SqlValue::Blob(b) => Ok(SqlStorageValue::Blob(b.clone())),
            })
            .collect()
    }
}

impl Db for SqlDb {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, DbError> {
        let before = self.total_changes()?;
        let cursor = self
            .sql
            .exec(sql, Self::bind(params)?)
            .map_err(to_db_error)?;
        for row in cursor.raw() {
            row.map_err(to_db_error)?;
        }
        // Not `rows_written`, which counts index entries too: the rows the statement changed,
        // as SQLite (and so the R2 path) counts them.
        Ok((self.total_changes()? - before) as usize)
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        let cursor = self
            .sql
            .exec(sql, Self::bind(params)?)
            .map_err(to_db_error)?;
        cursor
            .raw()
            .map(|row| row.map(|values| Row(values.into_iter().map(from_storage).collect())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(to_db_error)
    }

    fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        // exec runs every statement of a parameterless script.
        let cursor = self.sql.exec(sql, None).map_err(to_db_error)?;
        for row in cursor.raw() {
            row.map_err(to_db_error)?;
        }
        Ok(())
    }

    fn transaction<T, E: From<DbError>>(
        &self,
        work: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut work = Some(work);
        let mut outcome: Option<Result<T, E>> = None;
        let committed = {
            let mut callback = || {
                let result = work.take().map(|work| work());
                let failed = !matches!(result, Some(Ok(_)));
                outcome = result;
                // Throwing is how transactionSync is told to roll back.
                if failed {
                    Err(JsValue::from_str(
                        "the request failed: rolling back its writes",
                    ))
                } else {
                    Ok(JsValue::UNDEFINED)
                }
            };
            self.storage
                .as_raw()
                .unchecked_ref::<SyncTransactions>()
                .transaction_sync(&mut callback)
        };
        match (outcome, committed) {
            (Some(Err(err)), _) => Err(err),
            (Some(Ok(value)), Ok(_)) => Ok(value),
            (Some(Ok(_)), Err(err)) => Err(DbError(format!("commit failed: {err:?}")).into()),
            (None, result) => {
                Err(DbError(format!("transactionSync did not run: {result:?}")).into())
            }
        }
    }
}

fn to_db_error(err: worker::Error) -> DbError {
    DbError(err.to_string())
}

fn from_storage(value: SqlStorageValue) -> SqlValue {
    match value {
        SqlStorageValue::Null => SqlValue::Null,
        SqlStorageValue::Boolean(b) => SqlValue::Integer(i64::from(b)),
        SqlStorageValue::Integer(i) => SqlValue::Integer(i),
        SqlStorageValue::Float(f) => SqlValue::Real(f),
        SqlStorageValue::String(s) => SqlValue::Text(s),
        SqlStorageValue::Blob(b) => SqlValue::Blob(b),
    }
}
