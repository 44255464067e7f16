//! The move in one step: the object holds the user's whole database in memory (up to the R2
//! path's ceiling), copies it in or out in one transaction, verifies it, and cuts over; the
//! steps and fences are those of [`crate::migration`]'s overview. Larger databases move in
//! chunks ([`super::chunked`]).

use admin_api::{PreflightReport, VerifyResult};

use crate::bucket::database::{R2Database, Saved};
use crate::bucket::layout::R2State;
use crate::bucket::R2Error;
use crate::identity::UserId;
use crate::r2_path;
use user_data_core::copy;
use user_data_core::db::rusqlite_db::RusqliteDb;
use user_data_core::db::{check_integrity, Db, DbVersion};
use user_data_core::digest::{self, TableDigest};
use user_data_core::preflight::{self, Problem};

use super::{chunked, now_ms, Action, MigrationError, Move, ObjectState, Outcome, Report, Step};

/// How often a migration starts again because a write landed on R2 meanwhile.
const MAX_MIGRATE_ATTEMPTS: u32 = 5;

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
    match r2_path::upgrade(user, key, source) {
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

impl Move {
    /// Refuses a database of `bytes` larger than a move in one step holds (the R2 path's
    /// ceiling): the migrator moves it in chunks.
    fn fits_one_step(&self, bytes: u64) -> Result<(), MigrationError> {
        let max_bytes = self.config.max_database_bytes;
        if bytes > max_bytes {
            return Err(MigrationError::TooLargeForOneStep { bytes, max_bytes });
        }
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
            let imported = digest::digests(&self.db)?;
            digest::same_data(&expected, &imported)
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

    /// Moves the user's data from R2 into the object (idempotent). On failure before the
    /// cut-over, R2 stays authoritative and the object inactive, so requests are handed to R2.
    pub async fn migrate(&self) -> Result<Report, MigrationError> {
        let started = self.log_start(Action::Migrate);
        self.resolve_interrupted_rollback().await?;
        let result = self.migrate_steps(started).await;
        self.conclude(Action::Migrate, started, result)
    }

    async fn migrate_steps(&self, started: u64) -> Result<Report, MigrationError> {
        let (state, _) = self.state()?;
        if state == ObjectState::Active {
            self.enter(Action::Migrate, Step::Flag)?;
            self.set_flag(true).await?;
            return self.report(
                Outcome::AlreadyMigrated,
                0,
                started,
                digest::digests(&self.db)?,
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
        self.fits_one_step(database.head().await?.size)?;
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
                    crate::log::info(serde_json::json!({
                        "event": "migrate_restarted",
                        "user": self.user.as_str(),
                        "reason": "a write landed on R2 meanwhile",
                    }));
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

    /// Moves the user's data from the object back to R2 (idempotent). On failure before the
    /// R2 put, the object is `active` again and serves.
    pub async fn rollback(&self) -> Result<Report, MigrationError> {
        let started = self.log_start(Action::Rollback);
        self.resolve_interrupted_rollback().await?;
        let result = self.rollback_steps(started).await;
        self.conclude(Action::Rollback, started, result)
    }

    async fn rollback_steps(&self, started: u64) -> Result<Report, MigrationError> {
        let (state, _) = self.state()?;
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
            None => self.report(Outcome::AlreadyOnR2, 0, started, digest::digests(&self.db)?),
        }
    }

    /// Exports the object to R2 and hands authority over; returns what it stored. Until the
    /// put lands, R2 holds the frozen copy marked `migrated` and the object is authoritative;
    /// an `Err` means it did not land.
    async fn hand_back(&self) -> Result<(u64, Vec<TableDigest>), MigrationError> {
        self.fits_one_step(self.db.database_size() as u64)?;
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

    /// The object's data as a SQLite file, with its version, verified against the object.
    pub fn export(&self) -> Result<Export, MigrationError> {
        self.export_at(None)
    }

    /// [`Self::export`], with the file's `data_version` set to `version` when given (the
    /// object itself is not written: a failed rollback leaves it as it was).
    fn export_at(&self, version: Option<DbVersion>) -> Result<Export, MigrationError> {
        self.fits_one_step(self.db.database_size() as u64)?;
        let mut export = RusqliteDb::empty()?;
        let ours = export.transaction(|| copy::copy_database(&self.db, &export))?;
        self.enter(Action::Rollback, Step::Verify)?;
        let checked = digest::same_data(&ours, &digest::digests(&export)?)
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
        let (state, _) = self.state()?;
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
        let (state, _) = self.state()?;
        let ours = digest::digests(&self.db)?;
        let integrity = check_integrity(&self.db).map_err(|e| e.to_string());
        let bucket = self.bucket()?;
        let copy = R2Database::of(&bucket, &self.user, &self.config)
            .download()
            .await?;
        let r2_digests = copy
            .bytes
            .as_ref()
            .and_then(|bytes| RusqliteDb::from_bytes(bytes).ok())
            .map(|db| digest::digests(&db))
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
                .map(|theirs| digest::same_data(theirs, &ours).is_ok()),
        })
    }
}
