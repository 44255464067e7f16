//! Moving one user from the R2-SQLite path to their Durable Object and back, without losing a
//! write to KV's slow propagation, to a crash half way, or to a request in flight.
//!
//! The KV flag `migrated:<user_id>` is the intent; where the data is authoritative is decided by
//! two records that change only in a safe order:
//! - the R2 object's metadata: `db-state = active` (the R2 path serves it) or `migrated` (the
//!   R2 path never reads or writes it and hands requests to the object: the fence);
//! - the object's own state ([`ObjectState`], in [`STATE_TABLE`]): only an `active` object
//!   serves requests; any other hands them to the R2 path.
//!
//! Migrate (the object runs it, blocking its other requests):
//! 1. download the R2 file (etag E, version V); bring its schema up to date; record V+1 in it;
//! 2. import every table into the object in one transaction, and verify: row counts and checksums
//!    computed the same way on both copies, and `quick_check`; a mismatch wipes the object;
//! 3. cut over: put the file back as version V+1 marked `migrated`, only if R2 still holds E.
//!    The bytes differ from E (the version inside), so an R2-path writer that loaded E before
//!    the cut-over fails its own conditional put, retries, and meets the fence. If the put
//!    fails, a write landed meanwhile: start again;
//! 4. mark the object `active`; 5. set the KV flag. A crash after 3 is completed by the next
//!    request: R2 says `migrated`, so its file (all the data, frozen since) is imported again.
//!
//! Rollback: 1. mark the object `rolling_back` (it stops serving; requests wait, and after a crash
//! the next one resumes); 2. export every table to a fresh file, at version max(R2, object) + 1,
//! and verify it; 3. keep the R2 copy under `{user}/backups/database.v<N>.sqlite`; 4. put the
//! export as `active`, conditional on the object just backed up; 5. mark the object
//! `rolled_back`; 6. delete the KV flag.
//!
//! Hand edits of the flag are honoured by the first request that arrives
//! ([`crate::placement`]); a flag that changed less than `FLAG_PROPAGATION_SECONDS` ago may still
//! be stale at some locations, so within that window the records, not the flag, decide.
//!
//! The whole file is held in the object's memory during a move, which bounds what can move;
//! docs/chunked-moves.md designs the bounded-memory, chunked move that is to replace it (issue 13).
//!
//! Before anyone moves, [`scan`] checks a user's R2 file as the R2 path and a migrate would meet
//! it, from the Worker alone: the fleet check, which wakes no object.

pub mod batch;
pub mod catalog;
mod chunked;
pub mod copy;
pub mod preflight;
pub mod scan;
pub mod verify;

use worker::{Bucket, Env};

use crate::bucket;
use crate::bucket::database::{R2Database, Saved, Snapshot};
use crate::bucket::layout::R2State;
use crate::bucket::R2Error;
use crate::config::Config;
use crate::db::rusqlite_db::RusqliteDb;
use crate::db::sql_db::SqlDb;
use crate::db::{apply_migrations, check_integrity, Db, DbError, DbVersion};
use crate::error::ApiError;
use crate::flag::{self, Flags};
use crate::http;
use crate::identity::UserId;
use crate::r2;
pub use admin_api::{
    Action, Failure, MoveReport as Report, ObjectState, Outcome, PreflightReport, Step,
    VerifyResult,
};
use catalog::OBJECT_TABLES;
pub use preflight::Problem;
pub use verify::TableDigest;

/// The object's record of its migration state (never copied with the user's data).
pub const STATE_TABLE: &str = OBJECT_TABLES[0];
/// The object's record of its last failed move.
const FAILURE_TABLE: &str = OBJECT_TABLES[1];
/// A fault armed by a test, consumed when it fires (only with `FAULT_INJECTION` set).
const FAULT_TABLE: &str = OBJECT_TABLES[2];

/// How often a migration starts again because a write landed on R2 meanwhile.
const MAX_MIGRATE_ATTEMPTS: u32 = 5;

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
                bucket::mb(*bytes),
                bucket::mb(*max_bytes)
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

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Creates the object's own tables if it has none.
pub fn prepare_object(db: &impl Db) -> Result<(), DbError> {
    db.execute_script(&format!(
        "CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            state TEXT NOT NULL,
            changed_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {FAILURE_TABLE} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            action TEXT NOT NULL,
            step TEXT NOT NULL,
            reason TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {FAULT_TABLE} (
            action TEXT NOT NULL,
            step TEXT NOT NULL,
            crash INTEGER NOT NULL
        );
        {}",
        chunked::SCHEMA
    ))
}

/// Whether a chunked migrate is copying rows into the object: its user tables are then
/// incomplete, and nothing (not even the schema migrations) may touch them until it ends.
pub fn importing(db: &impl Db) -> Result<bool, DbError> {
    let state: Option<String> = db.query_value(
        &format!("SELECT state FROM {STATE_TABLE} WHERE id = 1"),
        &[],
    )?;
    Ok(state.as_deref() == Some(ObjectState::Importing.as_str()))
}

/// What keeps a file downloaded from R2 from moving into the object: what the object cannot
/// hold ([`preflight::into_object`]), or app tables of a shape the handlers cannot serve (then
/// the R2 path answers 503 `incompatible_schema` too, and the object must not take the file
/// over). Pending migrations are applied to the copy in memory, as the R2 path would.
fn upgrade_and_preflight(
    user: &UserId,
    key: &str,
    source: &RusqliteDb,
) -> Result<Vec<Problem>, MigrationError> {
    let problems = preflight::into_object(source)?;
    if !problems.is_empty() {
        return Ok(problems);
    }
    match r2::upgrade(user, key, source) {
        Ok(_) => Ok(Vec::new()),
        Err(R2Error::Incompatible { reason, .. }) => Ok(vec![Problem::about_file(format!(
            "the database does not have the tables the app needs ({reason})"
        ))]),
        Err(err) => Err(err.into()),
    }
}

/// The object's data as a verified SQLite file.
pub struct Export {
    pub file: Vec<u8>,
    /// The data version recorded in the file.
    pub version: DbVersion,
    /// The digests of the data, the same in the file as in the object.
    pub tables: Vec<TableDigest>,
}

/// One user's object and everything around it a move needs, owned: the steps run inside
/// `block_concurrency_while`, which takes only `'static` futures.
pub struct Move {
    pub db: SqlDb,
    pub env: Env,
    pub config: Config,
    pub user: UserId,
    /// The step the move is in, for the failure record.
    step: std::cell::Cell<Step>,
}

impl Move {
    pub fn new(db: SqlDb, env: Env, config: Config, user: UserId) -> Self {
        Self {
            db,
            env,
            config,
            user,
            step: std::cell::Cell::new(Step::Preflight),
        }
    }

    /// The object's state and how many milliseconds ago it was entered.
    pub fn object_state(&self) -> Result<(ObjectState, u64), DbError> {
        let row = self.db.query_row(
            &format!("SELECT state, changed_at FROM {STATE_TABLE} WHERE id = 1"),
            &[],
        )?;
        let Some(row) = row else {
            return Ok((ObjectState::New, u64::MAX));
        };
        let state = ObjectState::parse(&row.get::<String>(0)?).unwrap_or(ObjectState::New);
        let changed_at = row.get::<i64>(1)? as u64;
        Ok((state, now_ms().saturating_sub(changed_at)))
    }

    fn set_state(&self, state: ObjectState) -> Result<(), DbError> {
        self.db.execute(
            &format!(
                "INSERT INTO {STATE_TABLE} (id, state, changed_at) VALUES (1, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, changed_at = excluded.changed_at"
            ),
            &[state.as_str().into(), (now_ms() as i64).into()],
        )?;
        Ok(())
    }

    /// The last failed move, if any.
    pub fn last_failure(&self) -> Result<Option<Failure>, DbError> {
        let row = self.db.query_row(
            &format!("SELECT action, step, reason, at_ms FROM {FAILURE_TABLE} WHERE id = 1"),
            &[],
        )?;
        row.map(|row| {
            Ok(Failure {
                action: if row.get::<String>(0)? == Action::Rollback.as_str() {
                    Action::Rollback
                } else {
                    Action::Migrate
                },
                // Only `record_failure` writes the step, so it parses; were it ever not to, the
                // requests that read this record must still be served.
                step: Step::parse(&row.get::<String>(1)?).unwrap_or(Step::Interrupted),
                reason: row.get(2)?,
                at_ms: row.get::<i64>(3)? as u64,
            })
        })
        .transpose()
    }

    /// The move that failed within the retry delay, if one did.
    pub fn recently_failed(&self) -> Result<Option<Action>, DbError> {
        let retry_ms = self.config.move_retry_ms;
        Ok(self
            .last_failure()?
            .filter(|failure| now_ms().saturating_sub(failure.at_ms) < retry_ms)
            .map(|failure| failure.action))
    }

    /// Records a failed move and logs it with the user's id. Recording is best effort: the
    /// failure itself is what the caller reports.
    fn record_failure(&self, action: Action, step: Step, started: u64, err: &MigrationError) {
        let reason = err.to_string();
        worker::console_error!(
            "{}",
            serde_json::json!({
                "event": "move_failed",
                "user": self.user.as_str(),
                "action": action,
                "step": step.as_str(),
                "reason": reason,
                "ms": now_ms().saturating_sub(started),
            })
        );
        let action = action.as_str();
        let recorded = self.db.execute(
            &format!(
                "INSERT INTO {FAILURE_TABLE} (id, action, step, reason, at_ms) VALUES (1, ?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET action = excluded.action, step = excluded.step, \
                 reason = excluded.reason, at_ms = excluded.at_ms"
            ),
            &[
                action.into(),
                step.as_str().into(),
                reason.into(),
                (now_ms() as i64).into(),
            ],
        );
        if let Err(err) = recorded {
            worker::console_error!("Could not record the failed move of {}: {err}", self.user);
        }
    }

    fn clear_failure(&self) -> Result<(), DbError> {
        self.db
            .execute(&format!("DELETE FROM {FAILURE_TABLE}"), &[])?;
        Ok(())
    }

    /// Arms a fault: the next move of `action` that reaches `step` fails there (or crashes).
    pub fn arm_fault(&self, action: Action, step: Step, crash: bool) -> Result<(), DbError> {
        let action = action.as_str();
        self.db.execute(
            &format!("INSERT INTO {FAULT_TABLE} (action, step, crash) VALUES (?, ?, ?)"),
            &[action.into(), step.as_str().into(), crash.into()],
        )?;
        Ok(())
    }

    /// Enters `step`; fails there if a test armed a fault for it.
    fn enter(&self, action: Action, step: Step) -> Result<(), MigrationError> {
        self.step.set(step);
        let action = action.as_str();
        let armed: Option<bool> = self.db.query_value(
            &format!("DELETE FROM {FAULT_TABLE} WHERE action = ? AND step = ? RETURNING crash"),
            &[action.into(), step.as_str().into()],
        )?;
        match armed {
            None => Ok(()),
            Some(true) => Err(MigrationError::Crash(step)),
            Some(false) => Err(MigrationError::Injected(step)),
        }
    }

    /// The object's data version.
    pub fn version(&self) -> Result<DbVersion, DbError> {
        DbVersion::read_from(&self.db)
    }

    fn bucket(&self) -> Result<Bucket, MigrationError> {
        Ok(bucket::user_data(&self.env)?)
    }

    /// The report of a move that ended with the object holding data whose digests are `tables`.
    fn report(
        &self,
        outcome: Outcome,
        bytes: u64,
        started: u64,
        tables: Vec<TableDigest>,
    ) -> Result<Report, MigrationError> {
        Ok(Report {
            user_id: self.user.to_string(),
            outcome,
            version: self.version()?.0,
            bytes,
            tables,
            milliseconds: now_ms().saturating_sub(started),
        })
    }

    async fn set_flag(&self, migrated: bool) -> Result<(), MigrationError> {
        let flags = Flags::new(&self.env)?;
        if migrated {
            flags.set(&self.user, flag::BY_OPERATOR).await?;
        } else {
            flags.clear(&self.user).await?;
        }
        Ok(())
    }

    /// Drops the object's copy of the data and recreates the empty schema.
    fn wipe(&self) -> Result<(), MigrationError> {
        self.db.transaction(|| copy::clear(&self.db))?;
        apply_migrations(&self.db)?;
        Ok(())
    }

    /// Replaces the object's data with `source`'s and checks that it holds the same; returns
    /// the digests of what it holds. A copy that differs is wiped.
    fn import(&self, source: &RusqliteDb) -> Result<Vec<TableDigest>, MigrationError> {
        self.enter(Action::Migrate, Step::Copy)?;
        let copied = self
            .db
            .transaction(|| copy::copy_database(source, &self.db));
        let expected = match copied {
            Ok(digests) => digests,
            Err(err) => {
                self.wipe()?;
                return Err(err.into());
            }
        };
        let checked = self.enter(Action::Migrate, Step::Verify).and_then(|()| {
            let imported = verify::digests(&self.db)?;
            verify::same_data(&expected, &imported)
                .and_then(|()| check_integrity(&self.db).map_err(|e| e.to_string()))
                .map_err(|difference| {
                    MigrationError::Verification(format!(
                        "the imported copy differs from R2's, so it was wiped: {difference}"
                    ))
                })
        });
        if let Err(err) = checked {
            if !matches!(err, MigrationError::Crash(_)) {
                self.wipe()?;
            }
            return Err(err);
        }
        Ok(expected)
    }

    /// Logs that a move of `action` starts (one JSON line, as its end is); its start time.
    fn log_start(&self, action: Action) -> u64 {
        http::log_event(
            &serde_json::json!({"event": "move_started", "user": self.user.as_str(), "action": action}),
        );
        now_ms()
    }

    /// Runs a move; a failure is recorded, logged, and leaves the user served by the side that
    /// is still authoritative (`restore` puts that right), except after an injected crash,
    /// which must leave things exactly as a crash would.
    fn conclude(
        &self,
        action: Action,
        started: u64,
        result: Result<Report, MigrationError>,
    ) -> Result<Report, MigrationError> {
        match result {
            Ok(report) => {
                http::log_event(&serde_json::json!({
                    "event": "move_finished",
                    "user": self.user.as_str(),
                    "action": action,
                    "outcome": report.outcome,
                    "bytes": report.bytes,
                    "version": report.version,
                    "ms": report.milliseconds,
                }));
                if let Err(err) = self.clear_failure() {
                    worker::console_error!(
                        "Could not clear the failure record of {}: {err}",
                        self.user
                    );
                }
                Ok(report)
            }
            Err(err @ MigrationError::Crash(_)) => Err(err),
            Err(err) => {
                self.record_failure(action, self.step.get(), started, &err);
                Err(err)
            }
        }
    }

    /// Moves the user's data from R2 into the object (idempotent). On failure before the
    /// cut-over, R2 stays authoritative and the object inactive, so requests are handed to R2.
    pub async fn migrate(&self) -> Result<Report, MigrationError> {
        let started = self.log_start(Action::Migrate);
        self.resolve_interrupted_rollback().await?;
        let result = self.migrate_steps(started).await;
        self.conclude(Action::Migrate, started, result)
    }

    async fn migrate_steps(&self, started: u64) -> Result<Report, MigrationError> {
        let (state, _) = self.object_state()?;
        if state == ObjectState::Active {
            self.enter(Action::Migrate, Step::Flag)?;
            self.set_flag(true).await?;
            return self.report(
                Outcome::AlreadyMigrated,
                0,
                started,
                verify::digests(&self.db)?,
            );
        }
        if state == ObjectState::Exporting {
            return Err(chunked::export_in_progress(&self.user));
        }
        if state == ObjectState::Importing {
            if let Some(report) = self.finish_interrupted_cut_over(started).await? {
                return Ok(report);
            }
        }
        let bucket = self.bucket()?;
        let database = R2Database::of(&bucket, &self.user, &self.config);
        let size = database.head().await?.size;
        if size > self.config.max_database_bytes {
            return Err(MigrationError::TooLargeForOneStep {
                bytes: size,
                max_bytes: self.config.max_database_bytes,
            });
        }
        // A chunked migrate that did not finish is replaced by this one.
        self.end_chunked_move()?;
        for _ in 0..MAX_MIGRATE_ATTEMPTS {
            self.enter(Action::Migrate, Step::Preflight)?;
            let loaded = database.download().await?;
            let bytes = loaded.bytes.as_ref().map_or(0, |b| b.len() as u64);
            let mut source = database.open(&loaded)?;
            let problems = upgrade_and_preflight(&self.user, &database.key, &source)?;
            if !problems.is_empty() {
                return Err(MigrationError::NotMigratable(Action::Migrate, problems));
            }
            if let R2State::Migrated { .. } = loaded.state {
                // The cut-over happened but the activation did not: R2's file is all the data.
                let tables = self.import(&source)?;
                self.activate().await?;
                return self.report(Outcome::Migrated, bytes, started, tables);
            }
            let version = loaded.version.next();
            version.record_in(&source)?;
            let tables = self.import(&source)?;

            self.enter(Action::Migrate, Step::CutOver)?;
            let cut_over = R2State::Migrated { at_ms: now_ms() };
            let put = database
                .put(
                    version,
                    cut_over,
                    source.to_bytes()?,
                    Some(loaded.unchanged()),
                )
                .await;
            match put {
                Ok(Saved::Stored { .. }) => {
                    self.activate().await?;
                    return self.report(Outcome::Migrated, bytes, started, tables);
                }
                Ok(Saved::Conflict) => {
                    worker::console_log!(
                        "Migration of {}: a write landed on R2 meanwhile; starting again",
                        self.user
                    );
                    self.wipe()?;
                }
                Err(err) => {
                    // The put may have landed although its answer was lost: R2 then says
                    // migrated at our version, and the object must take over.
                    let now = database.head().await?;
                    if now.version == version && now.state != R2State::Active {
                        self.activate().await?;
                        return self.report(Outcome::Migrated, bytes, started, tables);
                    }
                    self.wipe()?;
                    return Err(err.into());
                }
            }
        }
        Err(MigrationError::Busy(format!(
            "writes kept landing on R2 during {MAX_MIGRATE_ATTEMPTS} attempts; try again"
        )))
    }

    /// After the cut-over: the object serves, then the flag is set (a failure there is
    /// reported; the user is served by the object either way, and `migrate` again sets it).
    async fn activate(&self) -> Result<(), MigrationError> {
        self.enter(Action::Migrate, Step::Activate)?;
        self.set_state(ObjectState::Active)?;
        self.enter(Action::Migrate, Step::Flag)?;
        self.set_flag(true).await
    }

    /// A `rolling_back` object at the start of a request or call was cut short by a crash.
    /// Whether its put reached R2 decides who is authoritative: if R2 is `active` again it
    /// did, and the object is done; otherwise the object is, and serves again.
    ///
    /// A chunked rollback or export (`exporting`) that made no step for `MOVE_LEASE_SECONDS`
    /// is settled the same way: its migrator is gone, and the user must be served again.
    pub async fn resolve_interrupted_rollback(&self) -> Result<(), MigrationError> {
        let (state, since_ms) = self.object_state()?;
        let stalled = state == ObjectState::Exporting && self.export_stalled(since_ms)?;
        if state != ObjectState::RollingBack && !stalled {
            return Ok(());
        }
        let bucket = self.bucket()?;
        let current = R2Database::of(&bucket, &self.user, &self.config)
            .head()
            .await?;
        let landed = current.state == R2State::Active && current.etag.is_some();
        self.set_state(if landed {
            ObjectState::RolledBack
        } else {
            ObjectState::Active
        })?;
        self.end_chunked_move()?;
        let err = MigrationError::Verification(format!(
            "{}; {}",
            if stalled {
                "a chunked rollback or export stopped making progress"
            } else {
                "a rollback was cut short"
            },
            if landed {
                "its export had reached R2, so R2 serves"
            } else {
                "R2 was not written, so the object serves again"
            }
        ));
        self.record_failure(Action::Rollback, Step::Interrupted, now_ms(), &err);
        Ok(())
    }

    /// Moves the user's data from the object back to R2 (idempotent). On failure before the
    /// R2 put, the object is `active` again and serves.
    pub async fn rollback(&self) -> Result<Report, MigrationError> {
        let started = self.log_start(Action::Rollback);
        self.resolve_interrupted_rollback().await?;
        let result = self.rollback_steps(started).await;
        self.conclude(Action::Rollback, started, result)
    }

    async fn rollback_steps(&self, started: u64) -> Result<Report, MigrationError> {
        let (state, _) = self.object_state()?;
        if state == ObjectState::Exporting {
            return Err(chunked::export_in_progress(&self.user));
        }
        let mut handed_back = None;
        if state == ObjectState::Active {
            handed_back = match self.hand_back().await {
                Ok(stored) => Some(stored),
                Err(err) => {
                    // R2 was not written: the object is still authoritative, and serves again.
                    if !matches!(err, MigrationError::Crash(_)) {
                        self.set_state(ObjectState::Active)?;
                    }
                    return Err(err);
                }
            };
            // Past the point of no return: R2 is authoritative from here on. Should anything
            // fail now, the object stays `rolling_back`, and the next request finds R2 active.
            self.enter(Action::Rollback, Step::Activate)?;
            self.set_state(ObjectState::RolledBack)?;
        }
        self.enter(Action::Rollback, Step::Flag)?;
        self.set_flag(false).await?;
        match handed_back {
            Some((bytes, tables)) => self.report(Outcome::RolledBack, bytes, started, tables),
            None => self.report(Outcome::AlreadyOnR2, 0, started, verify::digests(&self.db)?),
        }
    }

    /// Exports the object to R2 and hands authority over; returns what it stored. Until the
    /// put lands, R2 holds the frozen copy marked `migrated` and the object is authoritative;
    /// an `Err` means it did not land.
    async fn hand_back(&self) -> Result<(u64, Vec<TableDigest>), MigrationError> {
        let size = self.db.database_size() as u64;
        if size > self.config.max_database_bytes {
            return Err(MigrationError::TooLargeForOneStep {
                bytes: size,
                max_bytes: self.config.max_database_bytes,
            });
        }
        // From here on the object serves nothing; a crash leaves it here and the next request
        // resolves it.
        self.set_state(ObjectState::RollingBack)?;
        let bucket = self.bucket()?;
        let database = R2Database::of(&bucket, &self.user, &self.config);
        self.enter(Action::Rollback, Step::Preflight)?;
        let current = database.head().await?;
        let version = current.version.max(self.version()?).next();
        self.enter(Action::Rollback, Step::Copy)?;
        let mut export = self.export_at(Some(version))?;
        let size = export.file.len() as u64;
        let problems = preflight::into_r2_file(size, self.config.max_database_bytes);
        if !problems.is_empty() {
            return Err(MigrationError::NotMigratable(Action::Rollback, problems));
        }
        self.enter(Action::Rollback, Step::Backup)?;
        self.back_up(&bucket, &current).await?;
        self.enter(Action::Rollback, Step::CutOver)?;
        match database
            .put(
                version,
                R2State::Active,
                std::mem::take(&mut export.file),
                Some(current.unchanged()),
            )
            .await
        {
            Ok(Saved::Stored { .. }) => {}
            Ok(Saved::Conflict) => {
                return Err(MigrationError::Busy(
                    "R2 changed during the rollback; try again".into(),
                ))
            }
            Err(err) => {
                // The put may have landed although its answer was lost.
                let now = database.head().await?;
                if !(now.version == version && now.state == R2State::Active) {
                    return Err(err.into());
                }
            }
        }
        Ok((size, export.tables))
    }

    /// Keeps the R2 copy a rollback is about to overwrite.
    async fn back_up(&self, bucket: &Bucket, current: &Snapshot) -> Result<(), MigrationError> {
        if current.etag.is_some() {
            R2Database::of(bucket, &self.user, &self.config)
                .back_up(&self.user)
                .await?;
        }
        Ok(())
    }

    /// The object's data as a SQLite file, with its version, verified against the object.
    pub fn export(&self) -> Result<Export, MigrationError> {
        self.export_at(None)
    }

    /// [`Self::export`], with the file's `data_version` set to `version` when given (the
    /// object itself is not written: a failed rollback leaves it as it was).
    fn export_at(&self, version: Option<DbVersion>) -> Result<Export, MigrationError> {
        let size = self.db.database_size() as u64;
        if size > self.config.max_database_bytes {
            return Err(MigrationError::TooLargeForOneStep {
                bytes: size,
                max_bytes: self.config.max_database_bytes,
            });
        }
        let mut export = RusqliteDb::empty()?;
        let ours = export.transaction(|| copy::copy_database(&self.db, &export))?;
        self.enter(Action::Rollback, Step::Verify)?;
        let checked = verify::same_data(&ours, &verify::digests(&export)?)
            .and_then(|()| check_integrity(&export).map_err(|e| e.to_string()));
        if let Err(difference) = checked {
            return Err(MigrationError::Verification(format!(
                "the export differs from the object's data: {difference}"
            )));
        }
        let version = match version {
            Some(version) => {
                version.record_in(&export)?;
                version
            }
            None => self.version()?,
        };
        Ok(Export {
            file: export.to_bytes()?,
            version,
            tables: ours,
        })
    }

    /// What stands in the way of the object's next move, without moving.
    pub async fn preflight(&self) -> Result<PreflightReport, MigrationError> {
        self.resolve_interrupted_rollback().await?;
        let (state, _) = self.object_state()?;
        let max_bytes = self.config.max_database_bytes;
        let size = match state {
            ObjectState::Active => self.db.database_size() as u64,
            _ => {
                R2Database::of(&self.bucket()?, &self.user, &self.config)
                    .head()
                    .await?
                    .size
            }
        };
        if size > max_bytes {
            // Too large to read here: the migrator checks the values natively when it moves.
            let (action, problems) = match state {
                ObjectState::Active => (Action::Rollback, preflight::into_r2_file(size, max_bytes)),
                _ => (Action::Migrate, Vec::new()),
            };
            return Ok(PreflightReport {
                action,
                movable: problems.is_empty(),
                problems,
                in_chunks: true,
            });
        }
        let (action, problems) = if state == ObjectState::Active {
            let export = self.export()?;
            let problems =
                preflight::into_r2_file(export.file.len() as u64, self.config.max_database_bytes);
            (Action::Rollback, problems)
        } else {
            let bucket = self.bucket()?;
            let database = R2Database::of(&bucket, &self.user, &self.config);
            let loaded = database.download().await?;
            let source = database.open(&loaded)?;
            (
                Action::Migrate,
                upgrade_and_preflight(&self.user, &database.key, &source)?,
            )
        };
        Ok(PreflightReport {
            action,
            movable: problems.is_empty(),
            problems,
            in_chunks: false,
        })
    }

    /// Whether the object agrees with its R2 copy (meaningful while nothing was written since
    /// the migration) and passes its integrity check.
    pub async fn verify(&self) -> Result<VerifyResult, MigrationError> {
        let (state, _) = self.object_state()?;
        let ours = verify::digests(&self.db)?;
        let integrity = check_integrity(&self.db).map_err(|e| e.to_string());
        let bucket = self.bucket()?;
        let copy = R2Database::of(&bucket, &self.user, &self.config)
            .download()
            .await?;
        let r2_digests = copy
            .bytes
            .as_ref()
            .and_then(|bytes| RusqliteDb::from_bytes(bytes).ok())
            .map(|db| verify::digests(&db))
            .transpose()?;
        let version = self.version()?;
        Ok(VerifyResult {
            state,
            version: version.0,
            r2_version: copy.version.0,
            written_since_migration: version != copy.version,
            quick_check: integrity
                .err()
                .unwrap_or_else(|| admin_api::QUICK_CHECK_OK.to_owned()),
            agrees_with_r2: r2_digests
                .as_deref()
                .map(|theirs| verify::same_data(theirs, &ours).is_ok()),
        })
    }

    /// Rows per user table, for status pages.
    pub fn row_counts(&self) -> Result<Vec<(String, u64)>, MigrationError> {
        let catalog = catalog::Catalog::read(&self.db)?;
        let mut counts = Vec::new();
        for table in catalog.row_tables() {
            let rows: Option<i64> = self
                .db
                .query_value(&format!("SELECT COUNT(*) FROM {}", table.quoted()), &[])?;
            counts.push((table.name.clone(), rows.unwrap_or(0) as u64));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_database() -> RusqliteDb {
        let db = RusqliteDb::empty().unwrap();
        apply_migrations(&db).unwrap();
        db
    }

    fn copied(source: &RusqliteDb) -> RusqliteDb {
        let target = app_database();
        target
            .execute("INSERT INTO games (name) VALUES ('stale')", &[])
            .unwrap();
        target
            .transaction(|| copy::copy_database(source, &target))
            .unwrap();
        target
    }

    #[test]
    fn a_copy_keeps_every_table_row_and_sequence_and_verifies_equal() {
        let source = app_database();
        source
            .execute_script(
                "INSERT INTO games (name, video_size) VALUES ('héllo ⚽', 3), ('b', NULL), ('c', 1);
                 DELETE FROM games WHERE name = 'c';
                 INSERT INTO export_jobs (id, project_id, type, input_data) VALUES ('export_1', 1, 'x', '{}');
                 INSERT INTO raw_clips (filename, rating, start_time, end_time) VALUES ('', 3, 1.0, 2.5);
                 CREATE TABLE custom_notes (body TEXT, weight REAL, data BLOB);
                 INSERT INTO custom_notes VALUES ('n', 4.0, x'00ff');",
            )
            .unwrap();
        let target = copied(&source);
        assert_eq!(
            verify::digests(&source).unwrap(),
            verify::digests(&target).unwrap()
        );
        let next: i64 = target
            .query_value("INSERT INTO games (name) VALUES ('new') RETURNING id", &[])
            .unwrap()
            .unwrap();
        assert_eq!(next, 4, "the deleted id 3 is not handed out again");
        check_integrity(&target).unwrap();
    }

    #[test]
    fn odd_tables_copy_with_their_values_classes_and_schema() {
        let source = RusqliteDb::empty().unwrap();
        source
            .execute_script(
                r#"CREATE TABLE "order" ("select" PRIMARY KEY, "quote""d" NOT NULL, n) WITHOUT ROWID;
                   INSERT INTO "order" VALUES (5, 1, 5.0), ('5', x'', -0.0), (x'05', '', 0.1 + 0.2);
                   CREATE TABLE pair (a TEXT COLLATE NOCASE, b INTEGER, c, PRIMARY KEY (a, b DESC)) WITHOUT ROWID;
                   INSERT INTO pair VALUES ('x', 2, 1e308), ('Y', 1, 5e-324), ('y', 2, NULL);
                   CREATE TABLE shadow (rowid TEXT, _rowid_ TEXT, v);
                   INSERT INTO shadow (oid, rowid, _rowid_, v) VALUES (40, 'r', 'u', 9e15);
                   CREATE TABLE audit (what);
                   CREATE TRIGGER logged AFTER INSERT ON "order" BEGIN INSERT INTO audit VALUES (new."select"); END;
                   CREATE VIEW v AS SELECT "select" FROM "order";
                   CREATE INDEX partial ON "order" (n) WHERE n IS NOT NULL;
                   CREATE INDEX expression ON pair (lower(a));"#,
            )
            .unwrap();
        let target = copied(&source);
        assert_eq!(
            verify::digests(&source).unwrap(),
            verify::digests(&target).unwrap()
        );
        let audit: i64 = target
            .query_value("SELECT COUNT(*) FROM audit", &[])
            .unwrap()
            .unwrap();
        assert_eq!(audit, 0, "no trigger fired during the copy");
        let classes: Vec<String> = target
            .query("SELECT typeof(n) FROM \"order\" ORDER BY \"select\"", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0).unwrap())
            .collect();
        assert_eq!(classes, ["real", "real", "real"]);
        let shadowed: i64 = target
            .query_value("SELECT oid FROM shadow", &[])
            .unwrap()
            .unwrap();
        assert_eq!(shadowed, 40, "a hidden rowid survives");
        let negative_zero: f64 = target
            .query_value("SELECT n FROM \"order\" WHERE \"select\" = '5'", &[])
            .unwrap()
            .unwrap();
        assert!(negative_zero == 0.0 && negative_zero.is_sign_negative());
    }

    #[test]
    fn digests_tell_apart_values_that_render_alike() {
        let digest_of = |value: &str| {
            let db = RusqliteDb::empty().unwrap();
            db.execute_script(&format!(
                "CREATE TABLE t (v); INSERT INTO t VALUES ({value})"
            ))
            .unwrap();
            verify::digests(&db).unwrap()
        };
        let values = [
            "5",
            "5.0",
            "'5'",
            "x'35'",
            "0.0",
            "-0.0",
            "0.30000000000000004",
            "0.3",
            "NULL",
            "''",
            "x''",
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert_ne!(digest_of(a), digest_of(b), "{a} vs {b}");
            }
        }
        assert_eq!(digest_of("0.1 + 0.2"), digest_of("0.30000000000000004"));
    }

    #[test]
    fn preflight_names_what_the_object_cannot_hold_and_where() {
        let db = RusqliteDb::empty().unwrap();
        db.execute_script(
            "CREATE TABLE t (a, b);
             INSERT INTO t (rowid, a, b) VALUES (1, 1, 2), (7, 9007199254740992, 2), (8, -9223372036854775808, 2);
             INSERT INTO t (rowid, a, b) VALUES (9, CAST(x'ff00' AS TEXT), zeroblob(2000001));
             CREATE TABLE _cf_mine (x);",
        )
        .unwrap();
        let problems = preflight::into_object(&db).unwrap();
        let integers = problems
            .iter()
            .find(|p| p.reason.contains("integer"))
            .expect("the big integers");
        assert_eq!(
            (integers.column.as_deref(), integers.rowid, integers.count),
            (Some("a"), Some(7), 2)
        );
        assert!(problems
            .iter()
            .any(|p| p.reason.contains("UTF-8") && p.rowid == Some(9)));
        assert!(problems
            .iter()
            .any(|p| p.reason.contains("value over") && p.column.as_deref() == Some("b")));
        assert!(problems.iter().any(|p| p.reason.contains("_cf_mine")));

        let fine = app_database();
        fine.execute(
            "INSERT INTO games (name) VALUES (?)",
            &[(0.1 + 0.2).to_string().into()],
        )
        .unwrap();
        assert_eq!(preflight::into_object(&fine).unwrap(), Vec::new());
    }
}
