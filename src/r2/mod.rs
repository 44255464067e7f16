//! The R2-SQLite path: users not yet moved to a Durable Object.
//!
//! A user's database is the object `{user_id}/database.sqlite` in the `USER_DATA` bucket. A
//! request downloads it, opens it with rusqlite (SQLite compiled to wasm), runs the handler as
//! one transaction, stores the files it uploaded, and writes the database back only when the
//! handler wrote. A user without an object reads as an empty database; the object is created by
//! the first write.

pub mod rusqlite_db;

use worker::{Bucket, Env, Response};

use crate::config::USER_DATA_BUCKET;
use crate::db::{apply_migrations, Db};
use crate::error::ApiError;
use crate::files;
use crate::handlers::{self, ApiRequest};
use crate::http::{self, DataPath};
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
    range: Option<&str>,
) -> Response {
    let response = match run(env, user, request, range).await {
        Ok(response) => response,
        Err(err) => http::error(&err),
    };
    http::labelled(response, DataPath::R2)
}

async fn run(
    env: &Env,
    user: &UserId,
    request: &ApiRequest,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let bucket = env.bucket(USER_DATA_BUCKET)?;
    let key = database_key(user);
    let (mut db, existed) = match download(&bucket, &key).await? {
        Some(bytes) => (open(&key, &bytes)?, true),
        None => (RusqliteDb::empty()?, false),
    };
    // Bringing an existing file up to date is a change to keep; creating the schema for a
    // user with no file is not (the object appears with their first write).
    let migrated = apply_migrations(&db)? > 0 && existed;
    let writes_before = db.writes();
    let reply = db.transaction(|| handlers::handle(&db, user, request))?;

    files::store(&bucket, user, &reply.uploads).await?;
    if migrated || db.writes() > writes_before {
        let bytes = db.to_bytes()?;
        bucket
            .put(key.clone(), bytes)
            .execute()
            .await
            .map_err(|err| ApiError::Unavailable(format!("Could not store {key}: {err}")))?;
    }
    files::delete(&bucket, user, &reply.deletions).await;
    files::respond(&bucket, user, reply.response, range).await
}

async fn download(bucket: &Bucket, key: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(object) = bucket.get(key).execute().await? else {
        return Ok(None);
    };
    let body = object
        .body()
        .ok_or_else(|| ApiError::Unavailable(format!("R2 object {key} has no body")))?;
    Ok(Some(body.bytes().await?))
}

fn open(key: &str, bytes: &[u8]) -> Result<RusqliteDb, ApiError> {
    RusqliteDb::from_bytes(bytes).map_err(|err| {
        worker::console_error!("R2 object {key} is not a valid SQLite database: {err}");
        ApiError::Unavailable(format!(
            "The user's database in R2 is not a valid SQLite database: {err}"
        ))
    })
}
