//! `UserDataStore`: one Durable Object per user (`id_from_name(user_id)`), holding that user's
//! database in its embedded SQLite storage and serving the API through the shared request
//! lifecycle ([`crate::lifecycle`]).
//!
//! The schema is migrated in the constructor, before the first request is delivered. Every
//! request is one `transactionSync`: all of its writes or none. Only an `active` object serves:
//! [`crate::placement`] decides, per request, whether to serve, to finish or start a move first,
//! or to hand the request to the R2 path. Migrate and rollback ([`crate::migration`]) run inside
//! `block_concurrency_while`, so requests that arrive meanwhile wait; none is dropped.
//!
//! Paths under `/internal/` are the Worker's own calls ([`ObjectCall`]: migrate, rollback,
//! status, export, the steps of a chunked move); the router forwards only `/api/*` here, so
//! clients cannot reach them.

pub mod records;
pub mod sql_db;

use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::bucket;
use crate::bucket::database::R2Database;
use crate::config::{Config, USER_DATA_DO};
use crate::error::ApiError;
use crate::headers;
use crate::http::{self, DataPath, RawRequest};
use crate::identity::UserId;
use crate::lifecycle::{self, Backend, Served};
use crate::migration::{chunked, now_ms, MigrationError, Move, Report};
use crate::object::sql_db::SqlDb;
use crate::placement::{self, ObjectFacts, ObjectState, Placement, Side};
use crate::processing::JobQueue;
use crate::r2_path;
use admin_api::in_chunks::{Aborted, Begin, CutOver};
use admin_api::object_call::{CallError, Fault, MoveStep, ObjectCall};
use std::collections::HashMap;
use user_data_core::catalog::Catalog;
use user_data_core::db::{apply_migrations, Db, DbError, DbVersion};
use user_data_core::row_batch::Batch;

/// How often one request decides where it is served and moves the user (a failed migrate whose
/// cut-over happened is finished in the next round, then served in the one after).
const MAX_DECISION_ROUNDS: usize = 3;

/// Sends `request` to `user`'s object (the router's API requests, the admin API's calls). Not
/// reaching it is a dependency's failure: 503.
pub async fn call(
    env: &Env,
    user: &UserId,
    request: Request,
) -> std::result::Result<Response, ApiError> {
    let unreachable = |err: worker::Error| {
        ApiError::Unavailable(format!("The Durable Object of {user} failed: {err}"))
    };
    let namespace = env.durable_object(USER_DATA_DO).map_err(unreachable)?;
    let stub = namespace
        .id_from_name(user.as_str())
        .and_then(|id| id.get_stub())
        .map_err(unreachable)?;
    stub.fetch_with_request(request).await.map_err(unreachable)
}

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
        // While a chunked migrate copies rows in, the user tables are the file's, incomplete:
        // the migrations must not run on them (the file was brought up to date before it moved).
        let migration_error = db
            .disable_foreign_keys()
            .and_then(|()| records::prepare(&db))
            .and_then(|()| match records::importing(&db)? {
                true => Ok(()),
                false => apply_migrations(&db).map(|_| ()),
            })
            .err()
            .map(|err| {
                crate::log::error(json!({
                    "event": "object_schema_not_migrated",
                    "reason": err.to_string(),
                }));
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
        // For the log line of a failure; `dispatch` refuses a request without a valid one.
        let user = req
            .headers()
            .get(headers::USER_ID)
            .ok()
            .flatten()
            .and_then(|id| UserId::parse(&id).ok());
        // Responses are labelled where they are made: one handed to the R2 path says `r2`.
        Ok(match self.dispatch(&mut req).await {
            Ok(response) => response,
            Err(err) => http::labelled(http::error(&err, user.as_ref()), DataPath::DurableObject),
        })
    }
}

/// The object's storage as a [`Backend`]: one attempt is enough, since a committed transaction
/// is durable by itself.
struct ObjectStorage<'a> {
    state: &'a State,
    /// The data version the answer reflects: as opened, then as committed.
    version: Option<DbVersion>,
}

impl Backend for ObjectStorage<'_> {
    type Db = SqlDb;
    const PATH: DataPath = DataPath::DurableObject;

    async fn open(&mut self) -> std::result::Result<Option<SqlDb>, ApiError> {
        let db = SqlDb::new(self.state.storage());
        self.version = Some(DbVersion::read_from(&db)?);
        Ok(Some(db))
    }

    /// One more version per request that changed a row, in the same transaction.
    fn record_change(&self, db: &SqlDb) -> std::result::Result<DbVersion, DbError> {
        db.execute("UPDATE data_version SET version = version + 1", &[])?;
        DbVersion::read_from(db)
    }

    async fn save(
        &mut self,
        _db: SqlDb,
        changed: Option<DbVersion>,
    ) -> std::result::Result<bool, ApiError> {
        self.version = changed.or(self.version);
        Ok(true)
    }

    fn version(&self) -> Option<DbVersion> {
        self.version
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
        let user = UserId::parse(raw.header(headers::USER_ID).unwrap_or_default())?;
        let query: HashMap<String, String> = raw.url.query_pairs().into_owned().collect();
        let call = ObjectCall::parse(raw.method.as_ref(), raw.url.path(), |name| {
            query.get(name).map(String::as_str)
        });
        let call = match call {
            Ok(Some(call)) => call,
            Ok(None) => return self.api(&user, &raw).await,
            Err(CallError::NotFound) => return Err(ApiError::NotFound("Not Found".into())),
            Err(CallError::Invalid(detail)) => return Err(ApiError::Unprocessable(detail)),
        };
        match call {
            ObjectCall::Migrate => report_response(
                self.exclusive(user, |m| async move { m.migrate().await })
                    .await?,
            ),
            ObjectCall::Rollback => report_response(
                self.exclusive(user, |m| async move { m.rollback().await })
                    .await?,
            ),
            ObjectCall::Status => self.status(),
            ObjectCall::Verify => {
                let verdict = self.moving(user).verify().await?;
                Ok(http::json(200, &verdict))
            }
            ObjectCall::Export => self.export(user),
            ObjectCall::Preflight => {
                let report = self.moving(user).preflight().await?;
                Ok(http::json(200, &json!(report)))
            }
            ObjectCall::ArmFault(fault) => self.arm_fault(fault),
            ObjectCall::Move(step) => self.chunked_move(user, step, &raw).await,
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

    /// `POST /internal/move/{step}`: one step of a chunked move (`migration::chunked`). Begin
    /// and cut-over wait for R2, so they hold the object's other events back meanwhile; the
    /// batches are one transaction each and need not.
    async fn chunked_move(
        &self,
        user: UserId,
        step: MoveStep,
        raw: &RawRequest,
    ) -> std::result::Result<Response, ApiError> {
        fn parsed<T: serde::de::DeserializeOwned>(
            raw: &RawRequest,
        ) -> std::result::Result<T, ApiError> {
            serde_json::from_slice(&raw.bytes())
                .map_err(|err| ApiError::Unprocessable(format!("The body does not parse: {err}")))
        }
        let batch = |raw: &RawRequest| {
            Batch::decode(&raw.bytes()).map_err(|err| ApiError::Unprocessable(err.to_string()))
        };
        match step {
            MoveStep::Begin => {
                let begin: Begin = parsed(raw)?;
                let begun = self
                    .exclusive(user, |m| async move { m.begin_chunked(begin).await })
                    .await??;
                Ok(http::json(200, &begun))
            }
            MoveStep::Rows => Ok(http::json(
                200,
                &self.moving(user).apply_batch(batch(raw)?)?,
            )),
            MoveStep::Read { limit } => {
                let rows = self.moving(user).read_batch(batch(raw)?, limit)?;
                Ok(http::octets(rows.encode()))
            }
            MoveStep::Finish => {
                let finished = self.moving(user).finish_chunked(parsed(raw)?)?;
                Ok(http::json(200, &finished))
            }
            MoveStep::CutOver => {
                let cut: CutOver = parsed(raw)?;
                let report = self
                    .exclusive(user, |m| async move { m.cut_over_chunked(cut).await })
                    .await??;
                Ok(http::json(200, &report))
            }
            MoveStep::Abort => {
                let aborted = self
                    .exclusive(user, |m| async move { m.abort_chunked().await })
                    .await??;
                Ok(http::json(200, &Aborted { aborted }))
            }
        }
    }

    /// `POST /internal/fault?action=&step=&crash=`: arms a fault for the tests of failed moves.
    /// Exists only when the var `FAULT_INJECTION` is set (never in production).
    fn arm_fault(&self, fault: Fault) -> std::result::Result<Response, ApiError> {
        if !Config::from_env(&self.env).fault_injection {
            return Err(ApiError::NotFound("Not Found".into()));
        }
        records::arm_fault(&self.db, fault.action, fault.step, fault.crash)?;
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
        let flag_seen = raw.header(headers::FLAG_SEEN) != Some("absent");
        let config = Config::from_env(&self.env);
        let bucket = bucket::user_data(&self.env)?;
        // Decide, move if that is the decision, and decide again on the new state: whether the
        // move succeeded or failed (recorded and logged by the move), the request then goes to
        // the side that is authoritative. A failed move is not retried by the next round
        // (`recently_failed`), except to finish a cut-over, so this ends within a few rounds.
        for _round in 0..MAX_DECISION_ROUNDS {
            let mut known = records::state(&self.db, now_ms())?;
            let stalled_export = known.0 == ObjectState::Exporting
                && chunked::export_stalled(&self.db, known.1, config.move_lease_ms)?;
            if known.0 == ObjectState::RollingBack || stalled_export {
                // A crash cut a rollback short, or a chunked one stopped making progress: settle
                // who is authoritative first.
                self.exclusive(user.clone(), |m| async move {
                    m.resolve_interrupted_rollback().await
                })
                .await??;
                known = records::state(&self.db, now_ms())?;
            }
            let (state, since_ms) = known;
            let side = Side::Object(ObjectFacts {
                flag_seen,
                state,
                since_ms,
                recently_failed: records::recently_failed(
                    &self.db,
                    now_ms(),
                    config.move_retry_ms,
                )?,
                flag_propagation_ms: config.flag_propagation_ms,
            });
            let placement = match placement::decide_without_r2(side) {
                Some(placement) => placement,
                // An object that is not active asks R2 (one HEAD, on a rare path).
                None => {
                    let r2 = R2Database::of(&bucket, user, &config).head().await?;
                    placement::decide(side, r2.state)
                }
            };
            match placement {
                Placement::Serve => return self.serve(&bucket, user, raw).await,
                Placement::HandOver => return self.hand_over(&config, user, raw).await,
                Placement::MigrateFirst => {
                    let _ = self
                        .exclusive(user.clone(), |m| async move { m.migrate().await })
                        .await?;
                }
                Placement::RollBackFirst => {
                    let _ = self
                        .exclusive(user.clone(), |m| async move { m.rollback().await })
                        .await?;
                }
                Placement::Wait => {
                    return Err(ApiError::Moving(
                        "The user's data is being moved; try again".into(),
                    ))
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
        match r2_path::serve(&self.env, config, user, raw).await {
            Served::Response(response) => Ok(response),
            // R2 and this object disagree for a moment (a move in progress elsewhere).
            Served::Elsewhere => Err(ApiError::Moving(
                "The user's data is being moved; try again".into(),
            )),
        }
    }

    async fn serve(
        &self,
        bucket: &worker::Bucket,
        user: &UserId,
        raw: &RawRequest,
    ) -> std::result::Result<Response, ApiError> {
        let mut storage = ObjectStorage {
            state: &self.state,
            version: None,
        };
        let jobs = JobQueue::of(&self.env);
        match lifecycle::serve(&mut storage, bucket, &jobs, user, raw).await {
            Served::Response(response) => Ok(response),
            // Not from this backend: the object's storage always opens.
            Served::Elsewhere => Err(ApiError::Internal(
                "The object's storage did not open".into(),
            )),
        }
    }

    /// `GET /internal/status`: the object's state, version, size and rows per table.
    fn status(&self) -> std::result::Result<Response, ApiError> {
        let (state, _) = records::state(&self.db, now_ms())?;
        let mut tables = Vec::new();
        for table in Catalog::read(&self.db)?.row_tables() {
            let rows: Option<i64> = self
                .db
                .query_value(&format!("SELECT COUNT(*) FROM {}", table.quoted()), &[])?;
            tables.push((table.name.clone(), rows.unwrap_or(0) as u64));
        }
        Ok(http::json(
            200,
            &admin_api::ObjectStatus {
                state,
                version: DbVersion::read_from(&self.db)?.0,
                size: self.db.database_size() as u64,
                tables: admin_api::TableRows(tables),
                last_failure: records::last_failure(&self.db)?,
            },
        ))
    }

    /// `GET /internal/export`: the object's data as a SQLite file.
    fn export(&self, user: UserId) -> std::result::Result<Response, ApiError> {
        let export = self.moving(user).export()?;
        Ok(http::sqlite_file(export.version, export.file))
    }
}

fn report_response(
    report: std::result::Result<Report, MigrationError>,
) -> std::result::Result<Response, ApiError> {
    let report = report?;
    Ok(http::json(200, &json!(report)))
}
