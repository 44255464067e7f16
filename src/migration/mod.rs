//! Moving one user from the R2-SQLite path to their Durable Object and back, without losing a
//! write to KV's slow propagation, to a crash half way, or to a request in flight.
//!
//! The KV flag `migrated:<user_id>` is the intent; where the data is authoritative is decided by
//! two records that change only in a safe order:
//! - the R2 object's metadata: `db-state = active` (the R2 path serves it) or `migrated` (the
//!   R2 path never reads or writes it and hands requests to the object: the fence);
//! - the object's own state ([`ObjectState`], in [`crate::object::records`]): only an `active`
//!   object
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
//! Two ways to move, siblings over the steps of [`Move`] in this module:
//! - [`one_step`]: the object holds the whole file in memory, for databases up to the R2 path's
//!   ceiling (`R2_MAX_DATABASE_BYTES`); the admin API's migrate and rollback, and the moves a
//!   request starts itself;
//! - [`chunked`]: a database of any size, in steps of bounded size that the migrator drives
//!   (docs/chunked-moves.md).
//!
//! Why a move failed is a [`MigrationError`] ([`error`]).

pub mod chunked;
mod error;
pub mod one_step;

use worker::{Bucket, Env};

use crate::bucket;
use crate::bucket::database::{R2Database, Snapshot};
use crate::bucket::layout::R2State;
use crate::config::Config;
use crate::flag::{self, Flags};
use crate::identity::UserId;
use crate::object::records;
use crate::object::sql_db::SqlDb;
pub use admin_api::{Action, Failure, MoveReport as Report, ObjectState, Outcome, Step};
pub use error::MigrationError;
use user_data_core::copy;
use user_data_core::db::{apply_migrations, Db, DbError, DbVersion};
use user_data_core::digest::TableDigest;

/// Milliseconds since the epoch, the unit of every time the object records.
pub(crate) fn now_ms() -> u64 {
    worker::Date::now().as_millis()
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
    fn state(&self) -> Result<(ObjectState, u64), DbError> {
        records::state(&self.db, now_ms())
    }

    fn set_state(&self, state: ObjectState) -> Result<(), DbError> {
        records::set_state(&self.db, state, now_ms())
    }

    /// Records a failed move and logs it with the user's id. Recording is best effort: the
    /// failure itself is what the caller reports.
    fn record_failure(&self, action: Action, step: Step, started: u64, err: &MigrationError) {
        let reason = err.to_string();
        crate::log::error(serde_json::json!({
            "event": "move_failed",
            "user": self.user.as_str(),
            "action": action,
            "step": step.as_str(),
            "reason": reason,
            "ms": now_ms().saturating_sub(started),
        }));
        let recorded = records::record_failure(
            &self.db,
            &Failure {
                action,
                step,
                reason,
                at_ms: now_ms(),
            },
        );
        if let Err(err) = recorded {
            crate::log::info(serde_json::json!({
                "event": "move_failure_not_recorded",
                "user": self.user.as_str(),
                "reason": err.to_string(),
            }));
        }
    }

    /// Enters `step`; fails there if a test armed a fault for it.
    fn enter(&self, action: Action, step: Step) -> Result<(), MigrationError> {
        self.step.set(step);
        match records::take_fault(&self.db, action, step)? {
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

    /// Logs that a move of `action` starts (one JSON line, as its end is); its start time.
    fn log_start(&self, action: Action) -> u64 {
        crate::log::info(
            serde_json::json!({"event": "move_started", "user": self.user.as_str(), "action": action}),
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
                crate::log::info(serde_json::json!({
                    "event": "move_finished",
                    "user": self.user.as_str(),
                    "action": action,
                    "outcome": report.outcome,
                    "bytes": report.bytes,
                    "version": report.version,
                    "ms": report.milliseconds,
                }));
                if let Err(err) = records::clear_failure(&self.db) {
                    crate::log::error(serde_json::json!({
                        "event": "move_failure_not_cleared",
                        "user": self.user.as_str(),
                        "detail": err.to_string(),
                    }));
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
        let (state, since_ms) = self.state()?;
        let stalled = state == ObjectState::Exporting
            && chunked::export_stalled(&self.db, since_ms, self.config.move_lease_ms)?;
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

    /// Keeps the R2 copy a rollback is about to overwrite.
    async fn back_up(&self, bucket: &Bucket, current: &Snapshot) -> Result<(), MigrationError> {
        if current.etag.is_some() {
            R2Database::of(bucket, &self.user, &self.config)
                .back_up(&self.user)
                .await?;
        }
        Ok(())
    }

    /// Forgets the chunked move, if there is one.
    fn end_chunked_move(&self) -> Result<(), DbError> {
        records::end_move(&self.db)
    }
}
