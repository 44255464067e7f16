//! `ApiError` and the one mapping from errors to HTTP responses.
//!
//! Every module returns its own error type; this is the only place that picks a status code.
//! Bodies are `{"detail": "..."}` (docs/api.md §2.1). Internal errors are logged in full and
//! answered with a short detail that names what failed, never a stack trace.

use std::fmt;

use admin_api::{ErrorBody, ErrorCode, Problem};

use user_data_core::db::DbError;

/// A move holds a user for a few seconds at most (a 25 MB database takes about 5 s locally).
const MOVE_RETRY_AFTER_SECONDS: u32 = 2;

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400: the request breaks a business rule or names an invalid user.
    BadRequest(String),
    /// 401: the request does not say which user it is for.
    Unauthorized(String),
    /// 401: the request's sign-in token is malformed, expired, or not signed by a trusted key.
    InvalidToken(String),
    /// 403: the operation is not allowed for this user.
    Forbidden(String),
    /// 404: the route or a row it names does not exist.
    NotFound(String),
    /// 409: the write conflicts with data that exists (a unique key), or with a concurrent write.
    Conflict(String),
    /// 413: the request, or a part of it, is over one of the API's input caps.
    ContentTooLarge(String),
    /// 415: a route that reads JSON was sent a body of another type (a page of another origin
    /// can post `text/plain` without asking first; it cannot post `application/json`).
    UnsupportedMediaType(String),
    /// 422: a field is missing, has the wrong type, or is out of range.
    Unprocessable(String),
    /// 500: a bug or an unexpected failure inside the Worker.
    Internal(String),
    /// 501: the route belongs to a service this Worker does not run.
    NotImplemented(String),
    /// 503: a storage dependency (R2, KV, the Durable Object) failed.
    Unavailable(String),
    /// 503: the video-processing service, to which this Worker passes requests on, cannot be
    /// reached. The detail is written for the client (the cause is logged where it happened).
    ServiceUnavailable(String),
    /// 503 with `Retry-After`: the user's data is between the two paths for a moment (a move
    /// in progress); the same request succeeds shortly.
    Moving(String),
    /// 503 with `"code": "corrupt_database"`: the user's database in R2 is not readable SQLite,
    /// or fails SQLite's integrity check. It is left as it is for an operator to look at.
    CorruptDatabase(String),
    /// 503 with `"code": "incompatible_schema"`: the user's database in R2 is sound SQLite, but
    /// its app tables do not have the shape the handlers need. Left as it is, too.
    IncompatibleSchema(String),
    /// 507: the user's database is too large for the R2 path's memory.
    TooLarge(String),
    /// 409 with `"code": "not_migratable"`: a move was refused by its preflight; nothing
    /// changed. `problems` lists each kind of value or table the destination cannot hold.
    NotMigratable {
        detail: String,
        problems: Vec<Problem>,
    },
    /// 409 with `"code": "chunked_move_required"`: a move in one step would hold more than an
    /// invocation may; the migrator moves the user in chunks. Nothing changed.
    ChunkedMoveRequired(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) | ApiError::InvalidToken(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_)
            | ApiError::NotMigratable { .. }
            | ApiError::ChunkedMoveRequired(_) => 409,
            ApiError::ContentTooLarge(_) => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Unprocessable(_) => 422,
            ApiError::Internal(_) => 500,
            ApiError::NotImplemented(_) => 501,
            ApiError::Unavailable(_)
            | ApiError::ServiceUnavailable(_)
            | ApiError::Moving(_)
            | ApiError::CorruptDatabase(_)
            | ApiError::IncompatibleSchema(_) => 503,
            ApiError::TooLarge(_) => 507,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            ApiError::BadRequest(detail)
            | ApiError::Unauthorized(detail)
            | ApiError::InvalidToken(detail)
            | ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Conflict(detail)
            | ApiError::ContentTooLarge(detail)
            | ApiError::UnsupportedMediaType(detail)
            | ApiError::Unprocessable(detail)
            | ApiError::Internal(detail)
            | ApiError::NotImplemented(detail)
            | ApiError::Unavailable(detail)
            | ApiError::ServiceUnavailable(detail)
            | ApiError::Moving(detail)
            | ApiError::CorruptDatabase(detail)
            | ApiError::IncompatibleSchema(detail)
            | ApiError::TooLarge(detail)
            | ApiError::ChunkedMoveRequired(detail)
            | ApiError::NotMigratable { detail, .. } => detail,
        }
    }

    /// The `code` of an error an operator must look into, for clients to tell it apart.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::CorruptDatabase(_) => Some(ErrorCode::CorruptDatabase),
            ApiError::IncompatibleSchema(_) => Some(ErrorCode::IncompatibleSchema),
            ApiError::NotMigratable { .. } => Some(ErrorCode::NotMigratable),
            ApiError::ChunkedMoveRequired(_) => Some(ErrorCode::ChunkedMoveRequired),
            _ => None,
        }
    }

    /// Seconds after which a client should try again, for errors that pass by themselves.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Moving(_) => Some(MOVE_RETRY_AFTER_SECONDS),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750): every credential this Worker
    /// takes, a user's token or the admin token, is a bearer token.
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            ApiError::Unauthorized(_) => Some(r#"Bearer realm="user-data""#),
            ApiError::InvalidToken(_) => Some(r#"Bearer realm="user-data", error="invalid_token""#),
            _ => None,
        }
    }

    /// What a client is told instead of the detail, for failures whose detail is ours alone
    /// (SQL, storage messages): it goes to the log, with the request id the client gets.
    pub fn public_detail(&self) -> Option<&'static str> {
        match self {
            ApiError::Internal(_) => Some("Internal error"),
            ApiError::Unavailable(_) => Some("A storage service failed; try again"),
            _ => None,
        }
    }

    /// The body of the error response (without the request id [`Self::public_detail`] asks
    /// for, which the edge adds).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            detail: self.public_detail().unwrap_or(self.detail()).to_owned(),
            code: self.code(),
            problems: match self {
                ApiError::NotMigratable { problems, .. } => Some(problems.clone()),
                _ => None,
            },
            request_id: None,
        }
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
        match err {
            // A unique key the request would break is the caller's conflict, not our bug.
            DbError::UniqueViolation { columns } => {
                ApiError::Conflict(format!("Another row already has the same {columns}"))
            }
            DbError::Failed(message) => ApiError::Internal(format!("Database error: {message}")),
        }
    }
}

impl From<crate::identity::IdentityError> for ApiError {
    fn from(err: crate::identity::IdentityError) -> Self {
        use crate::identity::IdentityError;
        match err {
            IdentityError::Invalid => ApiError::BadRequest(err.to_string()),
            IdentityError::Missing => ApiError::Unauthorized(err.to_string()),
        }
    }
}

impl From<crate::flag::FlagError> for ApiError {
    fn from(err: crate::flag::FlagError) -> Self {
        ApiError::Unavailable(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_storage_failures_tell_the_client_nothing_of_their_detail() {
        for (err, secret) in [
            (
                ApiError::Internal("Database error: no such column: x".into()),
                "no such column",
            ),
            (
                ApiError::Unavailable("KV error on migrated:ann: 500".into()),
                "migrated:ann",
            ),
        ] {
            let body = serde_json::to_string(&err.body()).unwrap();
            assert!(!body.contains(secret), "{body}");
        }
        // Details that are the client's to know stay.
        let conflict = ApiError::Conflict("Another row already has the same games.name".into());
        assert!(conflict.body().detail.contains("games.name"));
    }

    #[test]
    fn only_a_move_in_progress_asks_the_client_to_retry() {
        let moving = ApiError::Moving("being moved".into());
        assert_eq!(
            (moving.status(), moving.retry_after()),
            (503, Some(MOVE_RETRY_AFTER_SECONDS))
        );
        // A broken dependency or a damaged file does not pass by itself: no promise of when.
        for other in [
            ApiError::Unavailable("R2".into()),
            ApiError::CorruptDatabase("damaged".into()),
            ApiError::Conflict("changed".into()),
        ] {
            assert_eq!(other.retry_after(), None, "{other}");
        }
    }
}
