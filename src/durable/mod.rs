//! `UserDataStore`: one Durable Object per user (`id_from_name(user_id)`), holding that user's
//! database in its embedded SQLite storage and serving the API from the shared handlers.
//!
//! The schema is migrated in the constructor, before the first request is delivered. Every
//! request is one `transactionSync`: all of its writes or none. Only an `active` object serves:
//! the migration state machine (`migration`) decides, per request, whether to serve, to finish
//! or start a migration first, or to hand the request to the R2 path. Migrate and rollback run
//! inside `block_concurrency_while`, so requests that arrive meanwhile wait; none is dropped.
//!
//! Paths under `/internal/` are the Worker's own calls (migrate, rollback, status, export); the
//! router forwards only `/api/*` here, so clients cannot reach them.

use serde_json::json;
use worker::{
    durable_object, Bucket, DurableObject, Env, Headers, Request, Response, ResponseBuilder,
    Result, State,
};

use crate::config::{Config, USER_DATA_BUCKET};
use crate::db::sql_db::SqlDb;
use crate::db::DbVersion;
use crate::db::{apply_migrations, Db, DbError};
use crate::error::ApiError;
use crate::files;
use crate::handlers::{self, ApiRequest, Reply, Upload};
use crate::http::{self, DataPath, RawRequest};
use crate::identity::{UserId, USER_ID_HEADER};
use crate::layout::R2State;
use crate::migration::{self, Action, Decision, MigrationError, Move, Report};
use crate::r2;

/// The header the router (or the R2 path's fence) sets on forwarded API requests: whether the
/// KV flag was seen. Clients cannot set it: the router removes it from what they send.
pub const FLAG_SEEN_HEADER: &str = "X-Migrated-Flag";

/// How often a request may find new files to store before its commit (each time, another
/// request changed the data it depends on while the files were being stored).
const MAX_UPLOAD_ROUNDS: usize = 3;

/// How often one request decides where it is served and moves the user (a failed migrate whose
/// cut-over happened is finished in the next round, then served in the one after).
const MAX_DECISION_ROUNDS: usize = 3;

#[durable_object(fetch)]
pub struct UserDataStore {
    state: State,
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
            .and_then(|()| migration::prepare_object(&db))
            .and_then(|()| apply_migrations(&db).map(|_| ()))
            .err()
            .map(|err| {
                worker::console_error!("UserDataStore schema migration failed: {err}");
                err.to_string()
            });
        Self {
            state,
            db,
            env,
            migration_error,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // Responses are labelled where they are made: one handed to the R2 path says `r2`.
        Ok(match self.dispatch(&mut req).await {
            Ok(response) => response,
            Err(err) => http::labelled(http::error(&err), DataPath::DurableObject),
        })
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
    async fn dispatch(&self, req: &mut Request) -> std::result::Result<Response, ApiError> {
        if let Some(err) = &self.migration_error {
            return Err(ApiError::Unavailable(format!(
                "The user's database could not be migrated: {err}"
            )));
        }
        let raw = RawRequest::read(req).await?;
        let user = UserId::parse(raw.header(USER_ID_HEADER).unwrap_or_default())?;
        match (raw.method.clone(), raw.url.path()) {
            (worker::Method::Post, "/internal/migrate") => report_response(
                self.exclusive(user, |m| async move { m.migrate().await })
                    .await?,
            ),
            (worker::Method::Post, "/internal/rollback") => report_response(
                self.exclusive(user, |m| async move { m.rollback().await })
                    .await?,
            ),
            (worker::Method::Get, "/internal/status") => self.status(user),
            (worker::Method::Get, "/internal/verify") => {
                let verdict = self.moving(user).verify().await?;
                Ok(http::json(200, &verdict))
            }
            (worker::Method::Get, "/internal/export") => self.export(user),
            (worker::Method::Get, "/internal/preflight") => {
                let report = self.moving(user).preflight().await?;
                Ok(http::json(200, &json!(report)))
            }
            (worker::Method::Post, "/internal/fault") => self.arm_fault(user, &raw),
            (_, path) if path.starts_with("/internal/") => {
                Err(ApiError::NotFound("Not Found".into()))
            }
            _ => self.api(&user, &raw).await,
        }
    }

    fn moving(&self, user: UserId) -> Move {
        Move::new(
            SqlDb::new(self.state.storage()),
            self.env.clone(),
            Config::from_env(&self.env),
            user,
        )
    }

    /// `POST /internal/fault?action=&step=&crash=`: arms a fault for the tests of failed moves.
    /// Exists only when the var `FAULT_INJECTION` is set (never in production).
    fn arm_fault(&self, user: UserId, raw: &RawRequest) -> std::result::Result<Response, ApiError> {
        if !Config::from_env(&self.env).fault_injection {
            return Err(ApiError::NotFound("Not Found".into()));
        }
        let query: std::collections::HashMap<String, String> =
            raw.url.query_pairs().into_owned().collect();
        let action = match query.get("action").map(String::as_str) {
            Some("migrate") => Action::Migrate,
            Some("rollback") => Action::Rollback,
            _ => {
                return Err(ApiError::Unprocessable(
                    "query field 'action': migrate or rollback".into(),
                ))
            }
        };
        let step = query.get("step").map(String::as_str).unwrap_or_default();
        let crash = query.get("crash").is_some_and(|v| v == "true");
        self.moving(user).arm_fault(action, step, crash)?;
        Ok(http::json(200, &admin_api::FaultArmed { armed: true }))
    }

    /// Runs a migrate or rollback with every other event of this object held back.
    /// The outer `Err` is the runtime's (or an injected crash); the inner one the move's own.
    async fn exclusive<T, F, Fut>(
        &self,
        user: UserId,
        step: F,
    ) -> std::result::Result<std::result::Result<T, MigrationError>, ApiError>
    where
        T: 'static,
        F: FnOnce(Move) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, MigrationError>> + 'static,
    {
        let future = step(self.moving(user));
        let storage = self.state.storage();
        // Errors travel as values: an `Err` out of block_concurrency_while resets the object,
        // which only an injected crash wants. The writes before it are flushed first, as they
        // would be before a crash between two steps (and the fault stays consumed).
        let outcome = self
            .state
            .block_concurrency_while(async move {
                match future.await {
                    Err(MigrationError::Crash(step)) => {
                        storage.sync().await?;
                        Err(worker::Error::RustError(format!(
                            "crash injected at {step:?}"
                        )))
                    }
                    outcome => Ok(outcome),
                }
            })
            .await
            .map_err(|err| ApiError::Internal(format!("The move crashed: {err}")))?;
        Ok(outcome)
    }

    /// An API request: serve it, or move the user first, or hand it to the R2 path.
    async fn api(
        &self,
        user: &UserId,
        raw: &RawRequest,
    ) -> std::result::Result<Response, ApiError> {
        let config = Config::from_env(&self.env);
        let flag_seen = raw.header(FLAG_SEEN_HEADER) != Some("absent");
        let moving = self.moving(user.clone());
        let bucket = self.env.bucket(USER_DATA_BUCKET)?;
        // Decide, move if that is the decision, and decide again on the new state: whether the
        // move succeeded or failed (recorded and logged by the move), the request then goes to
        // the side that is authoritative. A failed move is not retried by the next round
        // (`recently_failed`), except to finish a cut-over, so this ends within a few rounds.
        for _round in 0..MAX_DECISION_ROUNDS {
            if moving.object_state()?.0 == migration::ObjectState::RollingBack {
                // A crash cut a rollback short: settle who is authoritative first.
                self.exclusive(user.clone(), |m| async move {
                    m.resolve_interrupted_rollback().await
                })
                .await??;
            }
            let (state, since_ms) = moving.object_state()?;
            // Asked only of an object that is not active (an extra R2 HEAD on a rare path).
            let r2_migrated = if state == migration::ObjectState::Active {
                false
            } else {
                r2::database(&bucket, user, &config).head().await?.state != R2State::Active
            };
            let decision = migration::decide(
                state,
                since_ms,
                flag_seen,
                r2_migrated,
                config.flag_propagation_ms,
                moving.recently_failed()?,
            );
            match decision {
                Decision::Serve => return self.serve(&bucket, user, raw).await,
                Decision::HandOver => return self.hand_over(&config, user, raw).await,
                Decision::MigrateThenServe => {
                    let _ = self
                        .exclusive(user.clone(), |m| async move { m.migrate().await })
                        .await?;
                }
                Decision::RollBackThenHandOver => {
                    let _ = self
                        .exclusive(user.clone(), |m| async move { m.rollback().await })
                        .await?;
                }
            }
        }
        Err(ApiError::Moving(
            "The user's data is being moved; try again".into(),
        ))
    }

    /// Lets the R2 path serve a request this object must not.
    async fn hand_over(
        &self,
        config: &Config,
        user: &UserId,
        raw: &RawRequest,
    ) -> std::result::Result<Response, ApiError> {
        match r2::serve(&self.env, config, user, raw).await {
            r2::Served::Response(response) => Ok(response),
            // R2 and this object disagree for a moment (a move in progress elsewhere).
            r2::Served::MovedToObject => Err(ApiError::Moving(
                "The user's data is being moved; try again".into(),
            )),
        }
    }

    async fn serve(
        &self,
        bucket: &Bucket,
        user: &UserId,
        raw: &RawRequest,
    ) -> std::result::Result<Response, ApiError> {
        let request = raw.to_api_request().await?;
        let (reply, version) = self.commit(bucket, user, &request).await?;
        files::delete(bucket, user, &reply.deletions).await;
        let mut response =
            files::respond(bucket, user, reply.response, raw.header("Range")).await?;
        let _ = response
            .headers_mut()
            .set("X-DB-Version", &version.to_string());
        Ok(http::labelled(response, DataPath::DurableObject))
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
    ) -> std::result::Result<(Reply, DbVersion), ApiError> {
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
                Ok((reply, DbVersion::read_from(&self.db)?))
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

    /// `GET /internal/status`: the object's state, version, size and rows per table.
    fn status(&self, user: UserId) -> std::result::Result<Response, ApiError> {
        let moving = self.moving(user);
        let (state, _) = moving.object_state()?;
        Ok(http::json(
            200,
            &admin_api::ObjectStatus {
                state,
                version: moving.version()?.0,
                size: self.db.database_size() as u64,
                tables: admin_api::TableRows(moving.row_counts()?),
                last_failure: moving.last_failure()?,
            },
        ))
    }

    /// `GET /internal/export`: the object's data as a SQLite file.
    fn export(&self, user: UserId) -> std::result::Result<Response, ApiError> {
        let export = self.moving(user).export()?;
        let headers = Headers::new();
        headers.set("Content-Type", "application/vnd.sqlite3")?;
        headers.set("X-DB-Version", &export.version.to_string())?;
        Ok(ResponseBuilder::new()
            .with_headers(headers)
            .fixed(export.file))
    }
}

fn report_response(
    report: std::result::Result<Report, MigrationError>,
) -> std::result::Result<Response, ApiError> {
    let report = report?;
    Ok(http::json(200, &json!(report)))
}
