//! The R2-SQLite path: users not yet moved to a Durable Object.
//!
//! A user's database is the object `{user_id}/database.sqlite` in the `USER_DATA` bucket. Each
//! request downloads it, opens it with rusqlite (SQLite compiled to wasm) and runs the shared
//! handlers on it. A user without an object reads as an empty database.

pub mod rusqlite_db;

use worker::Env;

use crate::config::USER_DATA_BUCKET;
use crate::db::apply_migrations;
use crate::error::ApiError;
use crate::handlers::{self, ApiRequest, ApiResponse};
use crate::identity::UserId;
use rusqlite_db::RusqliteDb;

/// The R2 key of a user's database.
pub fn database_key(user: &UserId) -> String {
    format!("{user}/database.sqlite")
}

/// Serves one API request for `user` from their database in R2.
pub async fn serve(
    env: &Env,
    user: &UserId,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let bucket = env.bucket(USER_DATA_BUCKET)?;
    let key = database_key(user);
    let db = match bucket.get(&key).execute().await? {
        Some(object) => {
            let body = object
                .body()
                .ok_or_else(|| ApiError::Unavailable(format!("R2 object {key} has no body")))?;
            let bytes = body.bytes().await?;
            RusqliteDb::from_bytes(&bytes).map_err(|err| {
                worker::console_error!("R2 object {key} is not a valid SQLite database: {err}");
                ApiError::Unavailable(format!(
                    "The user's database in R2 is not a valid SQLite database: {err}"
                ))
            })?
        }
        None => RusqliteDb::empty()?,
    };
    apply_migrations(&db)?;
    handlers::handle(&db, user, request)
}
