//! `impl Db` over a Durable Object's SQLite storage (`ctx.storage.sql`).
//!
//! Values cross into JavaScript and back here, and nowhere else; this module does the
//! conversion itself rather than through workers-rs's `SqlStorageValue`, which turns a JS `-0`
//! into integer 0: every number keeps its exact bits. JavaScript has one number type, so a
//! REAL that holds a whole number comes back as an integer; callers that need the storage
//! class ask SQLite for it (`typeof`).
//!
//! Platform limits that shape callers: at most 100 bound parameters and 100 KB per statement;
//! integers travel as JS numbers, so values beyond 2^53 are refused rather than rounded.

use wasm_bindgen::prelude::*;
use worker::js_sys::{self, Array, Uint8Array};
use worker::worker_sys::SqlStorage as JsSqlStorage;
use worker::Storage;

use user_data_core::db::{from_js_number, integer_as_js_number, Db, DbError, Row, SqlValue};

/// JavaScript's largest exact integer.

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
    sql: JsSqlStorage,
}

impl SqlDb {
    pub fn new(storage: Storage) -> Self {
        let sql = storage.sql();
        let sql: &JsValue = sql.as_ref();
        Self {
            sql: sql.clone().unchecked_into(),
            storage,
        }
    }

    /// The app's foreign keys are declared but never enforced (docs/schema.md §0): dangling ids
    /// and the `project_id = 0` sentinel are normal, and the object's SQLite enforces by default.
    pub fn disable_foreign_keys(&self) -> Result<(), DbError> {
        self.execute_script("PRAGMA foreign_keys = OFF")
    }

    /// Size of the object's database in bytes.
    pub fn database_size(&self) -> usize {
        self.sql.database_size() as usize
    }

    /// Runs `sql` and calls `row` with each result row's values.
    fn run(
        &self,
        sql: &str,
        params: &[SqlValue],
        mut row: impl FnMut(Vec<SqlValue>),
    ) -> Result<(), DbError> {
        let bindings = params
            .iter()
            .map(to_js)
            .collect::<Result<Array, DbError>>()?;
        let cursor = self.sql.exec(sql, bindings).map_err(js_error)?;
        for values in cursor.raw() {
            let values: Array = values.map_err(js_error)?.unchecked_into();
            row(values.iter().map(from_js).collect::<Result<_, _>>()?);
        }
        Ok(())
    }
}

impl Db for SqlDb {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, DbError> {
        let before = self.total_changes()?;
        self.run(sql, params, |_| {})?;
        // Not `rows_written`, which counts index entries too: the rows the statement changed,
        // as SQLite (and so the R2 path) counts them.
        Ok((self.total_changes()? - before) as usize)
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        let mut rows = Vec::new();
        self.run(sql, params, |values| rows.push(Row(values)))?;
        Ok(rows)
    }

    fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        // exec runs every statement of a parameterless script.
        self.run(sql, &[], |_| {})
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
            (Some(Ok(_)), Err(err)) => {
                Err(DbError::failed(format!("commit failed: {err:?}")).into())
            }
            (None, result) => {
                Err(DbError::failed(format!("transactionSync did not run: {result:?}")).into())
            }
        }
    }
}

fn js_error(err: JsValue) -> DbError {
    let message = err
        .dyn_ref::<js_sys::Error>()
        .map(|err| String::from(err.message()))
        .or_else(|| err.as_string())
        .unwrap_or_else(|| format!("{err:?}"));
    DbError::from_backend(message)
}

fn to_js(value: &SqlValue) -> Result<JsValue, DbError> {
    Ok(match value {
        SqlValue::Null => JsValue::NULL,
        SqlValue::Integer(i) => JsValue::from_f64(integer_as_js_number(*i)?),
        SqlValue::Real(f) => JsValue::from_f64(*f),
        SqlValue::Text(s) => JsValue::from_str(s),
        SqlValue::Blob(bytes) => Uint8Array::from(bytes.as_slice()).into(),
    })
}

fn from_js(value: JsValue) -> Result<SqlValue, DbError> {
    if value.is_null() || value.is_undefined() {
        return Ok(SqlValue::Null);
    }
    if let Some(number) = value.as_f64() {
        return Ok(from_js_number(number));
    }
    if let Some(text) = value.as_string() {
        return Ok(SqlValue::Text(text));
    }
    if let Some(flag) = value.as_bool() {
        return Ok(SqlValue::Integer(i64::from(flag)));
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(SqlValue::Blob(Uint8Array::new(buffer).to_vec()));
    }
    if let Some(view) = value.dyn_ref::<Uint8Array>() {
        return Ok(SqlValue::Blob(view.to_vec()));
    }
    Err(DbError::failed(format!(
        "an unexpected value from SQL storage: {value:?}"
    )))
}
