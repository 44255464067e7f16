//! The `USER_DATA` bucket, and every call to R2: where a user's things live ([`layout`]), their
//! database object ([`database`], with the isolate's cache of opened copies, backups and
//! tombstones), their media files ([`media`]), the fleet's listing ([`listing`]), the multipart
//! uploads of moves in chunks ([`multipart`]) and pruning ([`prune`]); and [`R2Error`], what can
//! go wrong there. Nothing here speaks HTTP.

mod cache;
pub mod database;
pub mod layout;
pub mod listing;
pub mod media;
pub mod multipart;
pub mod prune;

use std::fmt;

use worker::{Bucket, Env};

use user_data_core::db::DbError;
use user_data_core::{file_check, mb};

use crate::config::USER_DATA_BUCKET;
use crate::error::ApiError;

/// The `USER_DATA` bucket binding.
pub fn user_data(env: &Env) -> Result<Bucket, R2Error> {
    env.bucket(USER_DATA_BUCKET)
        .map_err(R2Error::on("the USER_DATA binding"))
}

/// What went wrong with the bucket or with a user's database object in it.
#[derive(Debug)]
pub enum R2Error {
    /// R2 failed, or answered without what it must send.
    Unavailable { key: String, reason: String },
    /// The database object is not SQLite. Left as it is, for an operator to look at.
    NotSqlite { key: String, reason: String },
    /// The database object fails SQLite's `quick_check`. Left as it is.
    Damaged { key: String, reason: String },
    /// The database is sound SQLite, but its app tables do not have the shape the handlers
    /// need, or the app's migrations fail on it. Left as it is.
    Incompatible { key: String, reason: String },
    /// The database is larger than the R2 path may open.
    TooLarge { bytes: u64, max_bytes: u64 },
    /// A write would make the database larger than the R2 path may open; it was not stored.
    WriteTooLarge { bytes: u64, max_bytes: u64 },
    /// A statement on a copy of the database failed.
    Db(DbError),
}

impl R2Error {
    /// A failed call to R2 on `key`.
    pub fn on<E: fmt::Display>(key: &str) -> impl Fn(E) -> R2Error + '_ {
        move |err| R2Error::Unavailable {
            key: key.to_owned(),
            reason: err.to_string(),
        }
    }
}

impl fmt::Display for R2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            R2Error::Unavailable { key, reason } => write!(f, "R2 error on {key}: {reason}"),
            R2Error::NotSqlite { key, reason } => write!(f, "{key} is not SQLite: {reason}"),
            R2Error::Damaged { key, reason } => write!(f, "{key} is damaged: {reason}"),
            R2Error::Incompatible { key, reason } => {
                write!(f, "{key} does not have the app's schema: {reason}")
            }
            R2Error::TooLarge { bytes, max_bytes } => {
                f.write_str(&file_check::too_large_to_open(*bytes, *max_bytes))
            }
            R2Error::WriteTooLarge { bytes, max_bytes } => write!(
                f,
                "the write would make the database {:.1} MB, more than the {:.1} MB the R2 path \
                 can open; it was not stored",
                mb(*bytes),
                mb(*max_bytes)
            ),
            R2Error::Db(err) => write!(f, "database error: {err}"),
        }
    }
}

impl std::error::Error for R2Error {}

impl From<DbError> for R2Error {
    fn from(err: DbError) -> Self {
        R2Error::Db(err)
    }
}

// Beside the type rather than in `crate::error`, which the bucket builds on. What a client is
// told: the storage failure's detail goes to the log only (`ApiError::public_detail`); a file an
// operator must look at is named by its `code`, with what is wrong in words the user can pass on.
impl From<R2Error> for ApiError {
    fn from(err: R2Error) -> Self {
        match err {
            R2Error::Unavailable { .. } => ApiError::Unavailable(err.to_string()),
            R2Error::NotSqlite { reason, .. } => ApiError::CorruptDatabase(format!(
                "The user's database in R2 is not a valid SQLite database ({reason}); it was left \
                 unchanged"
            )),
            R2Error::Damaged { .. } => ApiError::CorruptDatabase(
                "The user's database in R2 is damaged (SQLite's integrity check failed); it was \
                 left unchanged"
                    .into(),
            ),
            R2Error::Incompatible { reason, .. } => ApiError::IncompatibleSchema(format!(
                "The database does not have the tables the app needs ({reason}); it was left \
                 unchanged, and an operator has been told: they repair it without losing a row"
            )),
            R2Error::TooLarge { bytes, max_bytes } => ApiError::TooLarge(format!(
                "The database is {:.1} MB, more than the {:.1} MB the R2 path can open; an \
                 operator moves this user to their Durable Object with `migrator migrate \
                 <user id>`, which moves databases of any size in chunks",
                mb(bytes),
                mb(max_bytes)
            )),
            R2Error::WriteTooLarge { bytes, max_bytes } => ApiError::TooLarge(format!(
                "This write would make the database {:.1} MB, more than the {:.1} MB the R2 path \
                 can open; nothing was saved. An operator moves this user to their Durable \
                 Object, which holds it, with `migrator migrate <user id>`; then write again",
                mb(bytes),
                mb(max_bytes)
            )),
            R2Error::Db(err) => err.into(),
        }
    }
}
