//! [`MigrationError`]: why moving a user failed, and its one mapping to an API error (here,
//! beside the type, because `crate::error` sits below the moves and imports nothing above it).

use admin_api::{Action, Step};
use user_data_core::db::DbError;
use user_data_core::{mb, preflight};

use crate::bucket::R2Error;
use crate::error::ApiError;
use crate::flag;
use user_data_core::preflight::Problem;

/// Why moving a user failed.
#[derive(Debug)]
pub enum MigrationError {
    /// R2 failed, or its copy of the database cannot be read.
    R2(R2Error),
    /// A statement failed.
    Db(DbError),
    /// The KV flag could not be set or cleared.
    Flag(flag::FlagError),
    /// The copy does not hold the same data; it was discarded.
    Verification(String),
    /// Writes kept landing on R2 during the migration.
    Busy(String),
    /// The preflight found what the destination cannot hold; nothing was changed.
    NotMigratable(Action, Vec<Problem>),
    /// A fault a test armed at this step.
    Injected(Step),
    /// A crash a test armed at this step: the object is reset as by a real crash, with no
    /// clean-up.
    Crash(Step),
    /// The database is larger than a move in one step may hold (the R2 path's ceiling): the
    /// migrator moves it in chunks. Nothing was changed.
    TooLargeForOneStep { bytes: u64, max_bytes: u64 },
    /// A step of a chunked move that does not fit where the move stands (no move in progress,
    /// a batch that does not follow the cursor): nothing was changed.
    Refused(String),
    /// A chunked move's request that does not parse.
    Malformed(String),
}

impl std::fmt::Display for MigrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationError::R2(err) => write!(f, "{err}"),
            MigrationError::Db(err) => write!(f, "database error: {err}"),
            MigrationError::Flag(err) => write!(f, "{err}"),
            MigrationError::Verification(detail)
            | MigrationError::Busy(detail)
            | MigrationError::Refused(detail)
            | MigrationError::Malformed(detail) => f.write_str(detail),
            MigrationError::TooLargeForOneStep { bytes, max_bytes } => write!(
                f,
                "the database is {:.1} MB, more than the {:.1} MB a move in one step holds; \
                 the migrator moves it in chunks",
                mb(*bytes),
                mb(*max_bytes)
            ),
            MigrationError::NotMigratable(_, problems) => {
                f.write_str(&preflight::summary(problems))
            }
            MigrationError::Injected(step) => write!(f, "fault injected at {}", step.as_str()),
            MigrationError::Crash(step) => write!(f, "crash injected at {}", step.as_str()),
        }
    }
}

impl From<R2Error> for MigrationError {
    fn from(err: R2Error) -> Self {
        MigrationError::R2(err)
    }
}

impl From<flag::FlagError> for MigrationError {
    fn from(err: flag::FlagError) -> Self {
        MigrationError::Flag(err)
    }
}

// Mapped here rather than in `crate::error`, which the migration builds on (it imports nothing
// above itself).
impl From<MigrationError> for ApiError {
    fn from(err: MigrationError) -> Self {
        match err {
            MigrationError::R2(err) => err.into(),
            MigrationError::Flag(err) => err.into(),
            MigrationError::Db(err) => ApiError::Internal(format!("Migration failed: {err}")),
            MigrationError::Verification(detail) => {
                ApiError::Internal(format!("Migration verification failed: {detail}"))
            }
            MigrationError::Busy(detail) | MigrationError::Refused(detail) => {
                ApiError::Conflict(detail)
            }
            MigrationError::Malformed(detail) => ApiError::Unprocessable(detail),
            err @ MigrationError::TooLargeForOneStep { .. } => {
                ApiError::ChunkedMoveRequired(format!("{err}"))
            }
            MigrationError::NotMigratable(action, problems) => ApiError::NotMigratable {
                detail: format!(
                    "The user cannot {}: {}; nothing was changed",
                    match action {
                        Action::Migrate => "move to their Durable Object",
                        Action::Rollback => "move back to R2",
                    },
                    preflight::summary(&problems)
                ),
                problems,
            },
            err @ (MigrationError::Injected(_) | MigrationError::Crash(_)) => {
                ApiError::Unavailable(format!("The move failed: {err}"))
            }
        }
    }
}

impl From<DbError> for MigrationError {
    fn from(err: DbError) -> Self {
        MigrationError::Db(err)
    }
}
