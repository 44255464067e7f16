//! `ApiError` and the one mapping from errors to HTTP responses.
//!
//! Every module returns its own error type; this is the only place that picks a status code.
//! Bodies are `{"detail": "..."}` (shared/api.md §2.1). Internal errors are logged in full and
//! answered with a short detail that names what failed, never a stack trace.

use std::fmt;

use crate::db::DbError;

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400: the request breaks a business rule or names an invalid user.
    BadRequest(String),
    /// 401: the request does not say which user it is for.
    Unauthorized(String),
    /// 404: the route or a row it names does not exist.
    NotFound(String),
    /// 405: the path exists but not with this method.
    MethodNotAllowed(String),
    /// 422: a field is missing or has the wrong type.
    Unprocessable(String),
    /// 500: a bug or an unexpected failure inside the Worker.
    Internal(String),
    /// 503: a storage dependency (R2, KV, the Durable Object) failed or holds bad data.
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Unprocessable(_) => 422,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable(_) => 503,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            ApiError::BadRequest(detail)
            | ApiError::Unauthorized(detail)
            | ApiError::NotFound(detail)
            | ApiError::MethodNotAllowed(detail)
            | ApiError::Unprocessable(detail)
            | ApiError::Internal(detail)
            | ApiError::Unavailable(detail) => detail,
        }
    }

    /// The JSON body of the error response.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "detail": self.detail() })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.detail())
    }
}

impl std::error::Error for ApiError {}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        ApiError::Internal(format!("Database error: {err}"))
    }
}

impl From<worker::Error> for ApiError {
    fn from(err: worker::Error) -> Self {
        ApiError::Unavailable(format!("Storage error: {err}"))
    }
}
