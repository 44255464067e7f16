//! Typed SQL values and row decoding, shared by both backends.
//!
//! Decoding is by the type the handler asks for, not the type the backend happened to return:
//! the Durable Object hands back a REAL that holds a whole number (`10.0`) as an integer, so an
//! `f64` accepts both, and the two paths serialise the same value the same way.

use crate::db::DbError;

/// One SQLite value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for SqlValue {
    fn from(value: i64) -> Self {
        SqlValue::Integer(value)
    }
}

impl From<f64> for SqlValue {
    fn from(value: f64) -> Self {
        SqlValue::Real(value)
    }
}

impl From<bool> for SqlValue {
    fn from(value: bool) -> Self {
        SqlValue::Integer(i64::from(value))
    }
}

impl From<&str> for SqlValue {
    fn from(value: &str) -> Self {
        SqlValue::Text(value.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(value: String) -> Self {
        SqlValue::Text(value)
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(value: Vec<u8>) -> Self {
        SqlValue::Blob(value)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(value: Option<T>) -> Self {
        value.map_or(SqlValue::Null, Into::into)
    }
}

/// JavaScript's largest exact integer, 2^53 − 1 (`Number.MAX_SAFE_INTEGER`). The Durable
/// Object's SQLite hands every number to and from the Worker as a JavaScript number, so beyond
/// ±this an integer would be rounded.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// An integer as the object binds it: a JavaScript number, refused beyond ±[`MAX_SAFE_INTEGER`]
/// rather than rounded.
pub fn integer_as_js_number(integer: i64) -> Result<f64, DbError> {
    if integer.unsigned_abs() > MAX_SAFE_INTEGER as u64 {
        return Err(DbError::failed(format!(
            "the integer {integer} is outside ±(2^53 - 1), which the object cannot bind exactly"
        )));
    }
    Ok(integer as f64)
}

/// A JavaScript number the object returns, as the value SQLite holds: whole numbers in the exact
/// range are integers, except -0, which only a REAL holds.
pub fn from_js_number(number: f64) -> SqlValue {
    let whole = number.fract() == 0.0 && number.abs() <= MAX_SAFE_INTEGER as f64;
    if whole && !(number == 0.0 && number.is_sign_negative()) {
        SqlValue::Integer(number as i64)
    } else {
        SqlValue::Real(number)
    }
}

/// A Rust type a column can be decoded into.
pub trait FromSqlValue: Sized {
    fn from_sql_value(value: &SqlValue) -> Result<Self, DbError>;
}

fn mismatch(expected: &str, value: &SqlValue) -> DbError {
    DbError::failed(format!("expected {expected}, found {value:?}"))
}

impl FromSqlValue for i64 {
    fn from_sql_value(value: &SqlValue) -> Result<Self, DbError> {
        match value {
            SqlValue::Integer(i) => Ok(*i),
            // The Durable Object returns integers beyond 2^53 as floats; whole ones are exact.
            SqlValue::Real(f) if f.fract() == 0.0 => Ok(*f as i64),
            other => Err(mismatch("an integer", other)),
        }
    }
}

impl FromSqlValue for f64 {
    fn from_sql_value(value: &SqlValue) -> Result<Self, DbError> {
        match value {
            SqlValue::Real(f) => Ok(*f),
            SqlValue::Integer(i) => Ok(*i as f64),
            other => Err(mismatch("a number", other)),
        }
    }
}

impl FromSqlValue for bool {
    fn from_sql_value(value: &SqlValue) -> Result<Self, DbError> {
        i64::from_sql_value(value).map(|i| i != 0)
    }
}

impl FromSqlValue for String {
    fn from_sql_value(value: &SqlValue) -> Result<Self, DbError> {
        match value {
            SqlValue::Text(s) => Ok(s.clone()),
            other => Err(mismatch("text", other)),
        }
    }
}

impl FromSqlValue for Vec<u8> {
    fn from_sql_value(value: &SqlValue) -> Result<Self, DbError> {
        match value {
            SqlValue::Blob(b) => Ok(b.clone()),
            other => Err(mismatch("a blob", other)),
        }
    }
}

impl<T: FromSqlValue> FromSqlValue for Option<T> {
    fn from_sql_value(value: &SqlValue) -> Result<Self, DbError> {
        match value {
            SqlValue::Null => Ok(None),
            other => T::from_sql_value(other).map(Some),
        }
    }
}

/// One result row: its values in the order of the statement's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<SqlValue>);

impl Row {
    /// The value of column `index`, decoded as `T`.
    pub fn get<T: FromSqlValue>(&self, index: usize) -> Result<T, DbError> {
        let value = self.0.get(index).ok_or_else(|| {
            DbError::failed(format!("no column {index} in a row of {}", self.0.len()))
        })?;
        T::from_sql_value(value).map_err(|err| err.context(&format!("column {index}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_column_decodes_from_an_integer_value() {
        let row = Row(vec![SqlValue::Integer(10), SqlValue::Real(2.5)]);
        assert_eq!(row.get::<f64>(0).unwrap(), 10.0);
        assert_eq!(row.get::<f64>(1).unwrap(), 2.5);
    }

    #[test]
    fn null_decodes_only_into_option() {
        let row = Row(vec![SqlValue::Null]);
        assert_eq!(row.get::<Option<String>>(0).unwrap(), None);
        assert!(row.get::<String>(0).is_err());
    }

    #[test]
    fn missing_column_and_wrong_type_are_errors_not_panics() {
        let row = Row(vec![SqlValue::Text("x".into())]);
        assert!(row.get::<i64>(0).is_err());
        assert!(row.get::<String>(1).is_err());
    }
}
