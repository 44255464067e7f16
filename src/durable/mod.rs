//! `UserDataStore`: one Durable Object per user (`id_from_name(user_id)`), holding that user's
//! database in its embedded SQLite storage and serving the API from the shared handlers.
//!
//! The schema is migrated in the constructor, before the first request is delivered. Every
//! request is one `transactionSync`: all of its writes or none. The object trusts the router to
//! have validated the user, but parses the id again: a request that names no valid user never
//! reaches the handlers.

mod sql_db;

pub use sql_db::SqlDb;

use worker::{durable_object, Bucket, DurableObject, Env, Request, Response, Result, State};

use crate::config::USER_DATA_BUCKET;
use crate::db::{apply_migrations, Db, DbError};
use crate::error::ApiError;
use crate::files;
use crate::handlers::{self, ApiRequest, Reply, Upload};
use crate::http::{self, DataPath};
use crate::identity::{UserId, USER_ID_HEADER};

/// How often a request may find new files to store before its commit (each time, another
/// request changed the data it depends on while the files were being stored).
const MAX_UPLOAD_ROUNDS: usize = 3;

#[durable_object(fetch)]
pub struct UserDataStore {
    db: SqlDb,
    env: Env,
    /// Why the schema could not be brought up to date, if it could not: every request is then
    /// answered 503 rather than served from a half-migrated database.
    migration_error: Option<String>,
}

impl DurableObject for UserDataStore {
    fn new(state: State, env: Env) -> Self {
        let db = SqlDb::new(state.storage());
        let migration_error = db
            .disable_foreign_keys()
            .and_then(|()| apply_migrations(&db).map(|_| ()))
            .err()
            .map(|err| {
                worker::console_error!("UserDataStore schema migration failed: {err}");
                err.to_string()
            });
        Self {
            db,
            env,
            migration_error,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let response = match self.serve(&mut req).await {
            Ok(response) => response,
            Err(err) => http::error(&err),
        };
        Ok(http::labelled(response, DataPath::DurableObject))
    }
}

/// Why a run of the handler was rolled back.
enum Rollback {
    Failed(ApiError),
    /// The handler wants files stored that are not yet: store them, then run it again.
    StoreFirst(Vec<Upload>),
}

impl From<DbError> for Rollback {
    fn from(err: DbError) -> Self {
        Rollback::Failed(err.into())
    }
}

impl UserDataStore {
    async fn serve(&self, req: &mut Request) -> std::result::Result<Response, ApiError> {
        if let Some(err) = &self.migration_error {
            return Err(ApiError::Unavailable(format!(
                "The user's database could not be migrated: {err}"
            )));
        }
        let header = req.headers().get(USER_ID_HEADER)?;
        let user = UserId::parse(header.as_deref().unwrap_or_default())?;
        let range = req.headers().get("Range")?;
        let request = http::read_api_request(req).await?;
        let bucket = self.env.bucket(USER_DATA_BUCKET)?;

        let (reply, version) = self.commit(&bucket, &user, &request).await?;
        files::delete(&bucket, &user, &reply.deletions).await;
        let mut response = files::respond(&bucket, &user, reply.response, range.as_deref()).await?;
        let _ = response
            .headers_mut()
            .set("X-DB-Version", &version.to_string());
        Ok(response)
    }

    /// Runs the handler in a transaction and commits it once every file it names is stored;
    /// returns the reply and the data version it reflects.
    /// A run that needs new files is rolled back, the files are stored (an await: other
    /// requests may run meanwhile), and the handler runs again on the current data; names come
    /// from the request's entropy, so an unchanged run needs nothing more.
    async fn commit(
        &self,
        bucket: &Bucket,
        user: &UserId,
        request: &ApiRequest,
    ) -> std::result::Result<(Reply, i64), ApiError> {
        let mut stored: Vec<String> = Vec::new();
        for _ in 0..MAX_UPLOAD_ROUNDS {
            let run = self.db.transaction(|| {
                let changes_before = self.db.total_changes()?;
                let reply = handlers::handle(&self.db, user, request).map_err(Rollback::Failed)?;
                let missing: Vec<Upload> = reply
                    .uploads
                    .iter()
                    .filter(|upload| !stored.contains(&upload.key))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Err(Rollback::StoreFirst(missing));
                }
                // One more version per request that changed a row, in the same transaction.
                if self.db.total_changes()? > changes_before {
                    self.db
                        .execute("UPDATE data_version SET version = version + 1", &[])?;
                }
                let version: i64 = self
                    .db
                    .query_value("SELECT version FROM data_version", &[])?
                    .unwrap_or(0);
                Ok((reply, version))
            });
            match run {
                Ok(committed) => return Ok(committed),
                Err(Rollback::Failed(err)) => return Err(err),
                Err(Rollback::StoreFirst(uploads)) => {
                    files::store(bucket, user, &uploads).await?;
                    stored.extend(uploads.into_iter().map(|upload| upload.key));
                }
            }
        }
        Err(ApiError::Conflict(
            "The data changed while the request's files were being stored; try again".into(),
        ))
    }
}
