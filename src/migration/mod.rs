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
//! Hand edits of the flag are honoured by the first request that arrives ([`decide`]); a flag
//! that changed less than `FLAG_PROPAGATION_SECONDS` ago may still be stale at some locations,
//! so within that window the records, not the flag, decide.

mod copy;
mod verify;

use serde::Serialize;
use worker::{Bucket, Env};

use crate::config::{Config, FLAGS_KV, USER_DATA_BUCKET};
use crate::db::{apply_migrations, Db, DbError};
use crate::durable::SqlDb;
use crate::error::ApiError;
use crate::identity::UserId;
use crate::r2::rusqlite_db::RusqliteDb;
use crate::r2::sync::{Saved, Snapshot};
use crate::r2::{self, DbVersion, R2State};
use crate::router::migrated_flag_key;
pub use verify::TableDigest;

/// The object's record of its migration state (never copied with the user's data).
pub const STATE_TABLE: &str = "store_state";

/// How often a migration starts again because a write landed on R2 meanwhile.
const MAX_MIGRATE_ATTEMPTS: u32 = 5;

/// Where the object stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectState {
    /// Never migrated: R2 is authoritative.
    New,
    /// Holds the user's data and serves it.
    Active,
    /// Exporting to R2; serves nothing until that is done.
    RollingBack,
    /// R2 is authoritative again; what the object holds is stale.
    RolledBack,
}

/// Why moving a user failed.
#[derive(Debug)]
pub enum MigrationError {
    /// R2, KV or the request around it failed (with its own status).
    Api(ApiError),
    /// A statement failed.
    Db(DbError),
    /// The copy does not hold the same data; it was wiped.
    Verification(String),
    /// Writes kept landing on R2 during the migration.
    Busy(String),
}

impl From<ApiError> for MigrationError {
    fn from(err: ApiError) -> Self {
        MigrationError::Api(err)
    }
}

impl From<DbError> for MigrationError {
    fn from(err: DbError) -> Self {
        MigrationError::Db(err)
    }
}

impl From<worker::Error> for MigrationError {
    fn from(err: worker::Error) -> Self {
        MigrationError::Api(err.into())
    }
}

/// What a migrate or rollback did, for operators.
#[derive(Debug, Serialize)]
pub struct Report {
    pub user_id: String,
    /// `migrated`, `already_migrated`, `rolled_back` or `already_on_r2`.
    pub outcome: &'static str,
    pub version: u64,
    pub bytes: u64,
    pub tables: Vec<TableDigest>,
    pub milliseconds: u64,
}

/// What an object does with an API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Serve,
    MigrateThenServe,
    RollBackThenHandOver,
    HandOver,
}

/// Decides what an object in `state` (entered `since_ms` ago) does with an API request that
/// came with (`flag_seen`) or without the KV flag. `r2_migrated` says whether R2 marks the user
/// migrated; an `active` object's decision does not depend on it.
pub fn decide(
    state: ObjectState,
    since_ms: u64,
    flag_seen: bool,
    r2_migrated: bool,
    grace_ms: u64,
) -> Decision {
    let settled = since_ms >= grace_ms;
    match state {
        ObjectState::Active if !flag_seen && settled => Decision::RollBackThenHandOver,
        ObjectState::Active => Decision::Serve,
        ObjectState::RollingBack => Decision::RollBackThenHandOver,
        // A cut-over happened and the activation did not (a crash): finish it.
        _ if r2_migrated => Decision::MigrateThenServe,
        ObjectState::RolledBack if flag_seen && settled => Decision::MigrateThenServe,
        ObjectState::New if flag_seen => Decision::MigrateThenServe,
        _ => Decision::HandOver,
    }
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Creates the object's state record if it has none.
pub fn prepare_object(db: &impl Db) -> Result<(), DbError> {
    db.execute_script(&format!(
        "CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            state TEXT NOT NULL,
            changed_at INTEGER NOT NULL
        )"
    ))
}

/// SQLite's `quick_check` on a database, for files that come from outside.
pub fn check_integrity(db: &impl Db) -> Result<(), DbError> {
    verify::quick_check(db)
}

/// One user's object and everything around it a move needs, owned: the steps run inside
/// `block_concurrency_while`, which takes only `'static` futures.
pub struct Move {
    pub db: SqlDb,
    pub env: Env,
    pub config: Config,
    pub user: UserId,
}

impl Move {
    /// The object's state and how many milliseconds ago it was entered.
    pub fn object_state(&self) -> Result<(ObjectState, u64), DbError> {
        let row = self.db.query_row(
            &format!("SELECT state, changed_at FROM {STATE_TABLE} WHERE id = 1"),
            &[],
        )?;
        let Some(row) = row else {
            return Ok((ObjectState::New, u64::MAX));
        };
        let state = match row.get::<String>(0)?.as_str() {
            "active" => ObjectState::Active,
            "rolling_back" => ObjectState::RollingBack,
            "rolled_back" => ObjectState::RolledBack,
            _ => ObjectState::New,
        };
        let changed_at = row.get::<i64>(1)? as u64;
        Ok((state, now_ms().saturating_sub(changed_at)))
    }

    fn set_state(&self, state: ObjectState) -> Result<(), DbError> {
        let name = match state {
            ObjectState::New => "new",
            ObjectState::Active => "active",
            ObjectState::RollingBack => "rolling_back",
            ObjectState::RolledBack => "rolled_back",
        };
        self.db.execute(
            &format!(
                "INSERT INTO {STATE_TABLE} (id, state, changed_at) VALUES (1, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, changed_at = excluded.changed_at"
            ),
            &[name.into(), (now_ms() as i64).into()],
        )?;
        Ok(())
    }

    /// The object's data version.
    pub fn version(&self) -> Result<DbVersion, DbError> {
        DbVersion::read_from(&self.db)
    }

    fn bucket(&self) -> Result<Bucket, MigrationError> {
        Ok(self.env.bucket(USER_DATA_BUCKET)?)
    }

    fn report(
        &self,
        outcome: &'static str,
        bytes: u64,
        started: u64,
    ) -> Result<Report, MigrationError> {
        Ok(Report {
            user_id: self.user.to_string(),
            outcome,
            version: self.version()?.0,
            bytes,
            tables: verify::digests(&self.db)?,
            milliseconds: now_ms().saturating_sub(started),
        })
    }

    async fn set_flag(&self, migrated: bool) -> Result<(), MigrationError> {
        let flags = self.env.kv(FLAGS_KV)?;
        let key = migrated_flag_key(&self.user);
        let result = if migrated {
            match flags.put(&key, "1") {
                Ok(put) => put.execute().await,
                Err(err) => Err(err),
            }
        } else {
            flags.delete(&key).await
        };
        result.map_err(|err| ApiError::Unavailable(format!("KV error on {key}: {err}")).into())
    }

    /// Drops the object's copy of the data and recreates the empty schema.
    fn wipe(&self) -> Result<(), MigrationError> {
        self.db.transaction(|| {
            for table in copy::data_tables(&self.db)? {
                self.db
                    .execute_script(&format!("DROP TABLE IF EXISTS {}", table.quoted()))?;
            }
            Ok::<_, DbError>(())
        })?;
        apply_migrations(&self.db)?;
        Ok(())
    }

    /// Replaces the object's data with `source`'s and checks that it holds the same.
    fn import(&self, source: &RusqliteDb) -> Result<(), MigrationError> {
        let expected = verify::digests(source)?;
        self.db
            .transaction(|| copy::copy_database(source, &self.db))?;
        let imported = verify::digests(&self.db)?;
        let checked = verify::same_data(&expected, &imported)
            .and_then(|()| verify::quick_check(&self.db).map_err(|e| e.to_string()));
        if let Err(difference) = checked {
            self.wipe()?;
            return Err(MigrationError::Verification(format!(
                "the imported copy differs from R2's, so it was wiped: {difference}"
            )));
        }
        Ok(())
    }

    /// Moves the user's data from R2 into the object (idempotent).
    pub async fn migrate(&self) -> Result<Report, MigrationError> {
        let started = now_ms();
        let (state, _) = self.object_state()?;
        if state == ObjectState::RollingBack {
            self.rollback().await?;
        }
        let bucket = self.bucket()?;
        let database = r2::database(&bucket, &self.user, &self.config);
        if state == ObjectState::Active {
            self.set_flag(true).await?;
            return self.report("already_migrated", 0, started);
        }
        for _ in 0..MAX_MIGRATE_ATTEMPTS {
            let loaded = database.download().await?;
            let bytes = loaded.bytes.as_ref().map_or(0, |b| b.len() as u64);
            let mut source = r2::open(&database.key, &loaded)?;
            if let R2State::Migrated { .. } = loaded.state {
                // The cut-over happened but the activation did not: R2's file is all the data.
                self.import(&source)?;
                self.set_state(ObjectState::Active)?;
                self.set_flag(true).await?;
                return self.report("migrated", bytes, started);
            }
            apply_migrations(&source)?;
            let version = loaded.version.next();
            version.record_in(&source)?;
            self.import(&source)?;

            let cut_over = R2State::Migrated { at_ms: now_ms() };
            let condition = Some(loaded.unchanged());
            match database
                .put(version, cut_over, source.to_bytes()?, condition)
                .await?
            {
                Saved::Stored { .. } => {
                    self.set_state(ObjectState::Active)?;
                    self.set_flag(true).await?;
                    return self.report("migrated", bytes, started);
                }
                Saved::Conflict => {
                    worker::console_log!(
                        "Migration of {}: a write landed on R2 meanwhile; starting again",
                        self.user
                    );
                    self.wipe()?;
                }
            }
        }
        Err(MigrationError::Busy(format!(
            "writes kept landing on R2 during {MAX_MIGRATE_ATTEMPTS} attempts; try again"
        )))
    }

    /// Moves the user's data from the object back to R2 (idempotent).
    pub async fn rollback(&self) -> Result<Report, MigrationError> {
        let started = now_ms();
        let (state, _) = self.object_state()?;
        if matches!(state, ObjectState::New | ObjectState::RolledBack) {
            self.set_flag(false).await?;
            return self.report("already_on_r2", 0, started);
        }
        // From here on the object serves nothing; a crash leaves it here and the next request
        // or call resumes.
        self.set_state(ObjectState::RollingBack)?;
        let bucket = self.bucket()?;
        let database = r2::database(&bucket, &self.user, &self.config);
        let current = database.head().await?;

        let mut bytes = 0;
        // After a crash that followed the put, R2 already holds the export: nothing to write.
        let already_exported = current.state == R2State::Active && current.etag.is_some();
        if !already_exported {
            let version = current.version.max(self.version()?).next();
            version.record_in(&self.db)?;
            let (export, _) = self.export()?;
            bytes = export.len() as u64;
            self.back_up(&bucket, &current).await?;
            let stored = database
                .put(version, R2State::Active, export, Some(current.unchanged()))
                .await?;
            if stored == Saved::Conflict {
                return Err(MigrationError::Busy(
                    "R2 changed during the rollback; try again".into(),
                ));
            }
        }
        self.set_state(ObjectState::RolledBack)?;
        self.set_flag(false).await?;
        self.report("rolled_back", bytes, started)
    }

    /// Keeps the R2 copy a rollback is about to overwrite.
    async fn back_up(&self, bucket: &Bucket, current: &Snapshot) -> Result<(), MigrationError> {
        if current.etag.is_none() {
            return Ok(());
        }
        let database = r2::database(bucket, &self.user, &self.config);
        let old = database.download().await?;
        if let Some(bytes) = old.bytes {
            let key = format!("{}/backups/database.v{}.sqlite", self.user, old.version);
            bucket
                .put(key.clone(), bytes.as_ref().clone())
                .custom_metadata(r2::version::object_metadata(old.version, old.state))
                .execute()
                .await
                .map_err(|err| ApiError::Unavailable(format!("Could not store {key}: {err}")))?;
        }
        Ok(())
    }

    /// The object's data as a SQLite file, with its version, verified against the object.
    pub fn export(&self) -> Result<(Vec<u8>, DbVersion), MigrationError> {
        let mut export = RusqliteDb::empty()?;
        export.transaction(|| copy::copy_database(&self.db, &export))?;
        let checked = verify::same_data(&verify::digests(&self.db)?, &verify::digests(&export)?)
            .and_then(|()| verify::quick_check(&export).map_err(|e| e.to_string()));
        if let Err(difference) = checked {
            return Err(MigrationError::Verification(format!(
                "the export differs from the object's data: {difference}"
            )));
        }
        Ok((export.to_bytes()?, self.version()?))
    }

    /// Whether the object agrees with its R2 copy (meaningful while nothing was written since
    /// the migration) and passes its integrity check.
    pub async fn verify(&self) -> Result<serde_json::Value, MigrationError> {
        let (state, _) = self.object_state()?;
        let ours = verify::digests(&self.db)?;
        let integrity = verify::quick_check(&self.db).map_err(|e| e.to_string());
        let bucket = self.bucket()?;
        let copy = r2::database(&bucket, &self.user, &self.config)
            .download()
            .await?;
        let r2_digests = copy
            .bytes
            .as_ref()
            .and_then(|bytes| RusqliteDb::from_bytes(bytes).ok())
            .map(|db| verify::digests(&db))
            .transpose()?;
        let version = self.version()?;
        Ok(serde_json::json!({
            "state": state,
            "version": version.0,
            "r2_version": copy.version.0,
            "written_since_migration": version != copy.version,
            "quick_check": integrity.as_ref().map(|()| "ok").unwrap_or_else(|e| e.as_str()),
            "agrees_with_r2": r2_digests.as_deref().map(|theirs| verify::same_data(theirs, &ours).is_ok()),
        }))
    }

    /// Rows per data table, for status pages.
    pub fn row_counts(&self) -> Result<Vec<(String, u64)>, MigrationError> {
        Ok(verify::digests(&self.db)?
            .into_iter()
            .map(|digest| (digest.name, digest.rows))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: u64 = 120_000;

    #[test]
    fn an_active_object_serves_and_rolls_back_only_on_a_settled_absent_flag() {
        for r2_migrated in [true, false] {
            let decide_active =
                |since, flag| decide(ObjectState::Active, since, flag, r2_migrated, GRACE);
            assert_eq!(decide_active(5, true), Decision::Serve);
            assert_eq!(decide_active(5, false), Decision::Serve, "KV may be stale");
            assert_eq!(decide_active(GRACE, false), Decision::RollBackThenHandOver);
        }
    }

    #[test]
    fn an_inactive_object_migrates_on_the_flag_or_to_finish_a_cut_over() {
        let on_r2 = false;
        assert_eq!(
            decide(ObjectState::New, u64::MAX, true, on_r2, GRACE),
            Decision::MigrateThenServe
        );
        assert_eq!(
            decide(ObjectState::New, u64::MAX, false, on_r2, GRACE),
            Decision::HandOver
        );
        let stale = decide(ObjectState::RolledBack, 5, true, on_r2, GRACE);
        assert_eq!(stale, Decision::HandOver, "KV may be stale");
        let settled = decide(ObjectState::RolledBack, GRACE, true, on_r2, GRACE);
        assert_eq!(settled, Decision::MigrateThenServe);
        let cut_over = decide(ObjectState::New, u64::MAX, false, true, GRACE);
        assert_eq!(cut_over, Decision::MigrateThenServe);
        let resume = decide(ObjectState::RollingBack, 0, true, on_r2, GRACE);
        assert_eq!(resume, Decision::RollBackThenHandOver);
    }

    #[test]
    fn a_copy_keeps_every_table_row_and_sequence_and_verifies_equal() {
        let source = RusqliteDb::empty().unwrap();
        apply_migrations(&source).unwrap();
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
        let target = RusqliteDb::empty().unwrap();
        apply_migrations(&target).unwrap();
        target
            .execute("INSERT INTO games (name) VALUES ('stale')", &[])
            .unwrap();
        target
            .transaction(|| copy::copy_database(&source, &target))
            .unwrap();

        assert_eq!(
            verify::digests(&source).unwrap(),
            verify::digests(&target).unwrap()
        );
        assert!(verify::digests(&target)
            .unwrap()
            .iter()
            .any(|d| d.name == "custom_notes" && d.rows == 1));
        let next: i64 = target
            .query_value("INSERT INTO games (name) VALUES ('new') RETURNING id", &[])
            .unwrap()
            .unwrap();
        assert_eq!(next, 4, "the deleted id 3 is not handed out again");
        verify::quick_check(&target).unwrap();
    }

    #[test]
    fn digests_tell_different_data_apart() {
        let a = RusqliteDb::empty().unwrap();
        apply_migrations(&a).unwrap();
        let b = RusqliteDb::empty().unwrap();
        apply_migrations(&b).unwrap();
        a.execute("INSERT INTO games (name) VALUES ('x')", &[])
            .unwrap();
        b.execute("INSERT INTO games (name) VALUES ('y')", &[])
            .unwrap();
        let difference =
            verify::same_data(&verify::digests(&a).unwrap(), &verify::digests(&b).unwrap());
        assert!(difference.unwrap_err().contains("games"));
    }
}
