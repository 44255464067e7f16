//! The R2-SQLite path: users not yet moved to a Durable Object.
//!
//! A user's database is the object `{user_id}/database.sqlite` in the `USER_DATA` bucket. Each
//! attempt of a request ([`crate::lifecycle`]) loads it (unchanged bytes come from the isolate's
//! cache) and opens it with rusqlite (SQLite compiled to wasm); a request that changed a row
//! uploads the database once as the next version, conditionally on R2 still holding the version
//! that was loaded. When another request got there first, the default is to run this request
//! again on the newer database, so that concurrent writers are serialised and no acknowledged
//! write is lost.
//!
//! The fence: the R2 path serves and writes a database only while its metadata says `active`
//! ([`crate::placement`]). One marked `migrated` belongs to the user's Durable Object, whatever
//! a (possibly stale) KV flag said; the request is handed over instead ([`Served::Elsewhere`]).
//!
//! A user without an object reads as an empty database; the object appears with the first
//! write. A downloaded object that is not SQLite, fails `quick_check`, or whose app tables have
//! another shape is answered 503 and never overwritten.

use worker::{Env, Response};

use crate::bucket::database::{R2Database, Saved, Snapshot};
use crate::bucket::layout::R2State;
use crate::bucket::R2Error;
use crate::config::{Config, ConflictStrategy};
use crate::error::ApiError;
use crate::flag::{self, Flags};
use crate::headers;
use crate::http::{self, DataPath, RawRequest};
use crate::identity::UserId;
use crate::lifecycle::{self, Backend, Served};
use crate::placement::{self, Placement, Side};
use crate::processing::JobQueue;
use user_data_core::db::rusqlite_db::RusqliteDb;
use user_data_core::db::{apply_migrations, DbError, DbVersion, Upgrade, UpgradeError};
use user_data_core::mb;

/// Serves one API request for `user` from their database in R2, if R2 says it is theirs to
/// serve ([`Served::Elsewhere`] otherwise).
pub async fn serve(env: &Env, config: &Config, user: &UserId, raw: &RawRequest) -> Served {
    let bucket = match crate::bucket::user_data(env) {
        Ok(bucket) => bucket,
        Err(err) => {
            let response = crate::http::error(&err.into(), Some(user));
            return Served::Response(crate::http::labelled(response, DataPath::R2));
        }
    };
    let mut path = R2Path {
        env,
        config,
        user,
        database: R2Database::of(&bucket, user, config),
        attempt: None,
        report: SyncReport::default(),
    };
    lifecycle::serve(&mut path, &bucket, &JobQueue::of(env), user, raw).await
}

/// What the response tells about the sync: `X-Sync-Status` and `X-DB-Cache` (and the version).
#[derive(Debug, Default)]
struct SyncReport {
    /// The version the response reflects.
    version: Option<DbVersion>,
    /// `conflict` when another writer got in between, `failed` when storing failed.
    status: Option<&'static str>,
    /// Whether the (last) attempt found the opened database in the isolate.
    cache_hit: Option<bool>,
}

/// One attempt's starting point: what was loaded, and whether the database already differs
/// from it (pending schema migrations applied in memory).
struct Attempt {
    loaded: Snapshot,
    migrated: bool,
    number: u32,
}

/// The R2 path as a [`Backend`]: an attempt loads the database (unchanged bytes come from the
/// isolate's cache) and a change is kept by uploading it as the next version.
struct R2Path<'a> {
    env: &'a Env,
    config: &'a Config,
    user: &'a UserId,
    database: R2Database<'a>,
    attempt: Option<Attempt>,
    report: SyncReport,
}

impl R2Path<'_> {
    fn attempt(&self) -> Result<&Attempt, DbError> {
        self.attempt
            .as_ref()
            .ok_or_else(|| DbError::failed("the R2 path saved before it loaded"))
    }

    /// Another writer stored a version after ours was loaded: either this request is stored
    /// over it anyway (last write wins, when configured) or it runs again after a pause.
    async fn after_conflict(&mut self, mut db: RusqliteDb) -> Result<bool, ApiError> {
        let Attempt { loaded, number, .. } = self.attempt()?;
        let (loaded_version, number) = (loaded.version, *number);
        self.report.status = Some("conflict");
        let current = self.database.head().await?;
        crate::log::warn(serde_json::json!({
            "event": "r2_write_conflict",
            "user": self.user.as_str(),
            "loaded_version": loaded_version.0,
            "r2_version": current.version.0,
            "attempt": number,
            "strategy": format!("{:?}", self.config.conflict_strategy),
        }));
        // A migration's cut-over is a conflict too: the next attempt meets the fence.
        if self.config.conflict_strategy == ConflictStrategy::LastWriteWins
            && current.state == R2State::Active
        {
            let version = current.version.max(loaded_version).next();
            version.record_in(&db)?;
            let stored = self
                .database
                .put(
                    version,
                    R2State::Active,
                    db.to_bytes()?,
                    Some(current.unchanged()),
                )
                .await
                .inspect_err(|_| self.report.status = Some("failed"))?;
            // Another writer again: run once more rather than answer for a write not kept.
            if let Saved::Stored { etag } = stored {
                self.database.keep(&etag, db);
                self.report.version = Some(version);
                return Ok(true);
            }
        }
        worker::Delay::from(std::time::Duration::from_millis(jitter_ms(number))).await;
        Ok(false)
    }
}

impl Backend for R2Path<'_> {
    type Db = RusqliteDb;
    const PATH: DataPath = DataPath::R2;

    async fn open(&mut self) -> Result<Option<RusqliteDb>, ApiError> {
        let (loaded, db, cache_hit) = self.database.load().await?;
        if placement::decide(Side::R2Path, loaded.state) != Placement::Serve {
            return Ok(None);
        }
        self.report.cache_hit = Some(cache_hit);
        self.report.version = Some(loaded.version);
        let downloaded = db.is_some() && !cache_hit;
        let db = match db {
            Some(db) => db,
            None => RusqliteDb::empty()?,
        };
        // A downloaded file that needed an upgrade is stored upgraded by this request, even a
        // read (see `save`); a user with no object gets one only with their first write.
        let migrated = migrate(self.user, &self.database.key, &db, downloaded)?;
        let number = self
            .attempt
            .as_ref()
            .map_or(1, |attempt| attempt.number + 1);
        self.attempt = Some(Attempt {
            loaded,
            migrated,
            number,
        });
        Ok(Some(db))
    }

    fn record_change(&self, db: &RusqliteDb) -> Result<DbVersion, DbError> {
        let version = self.attempt()?.loaded.version.next();
        version.record_in(db)?;
        Ok(version)
    }

    async fn save(
        &mut self,
        mut db: RusqliteDb,
        changed: Option<DbVersion>,
    ) -> Result<bool, ApiError> {
        let Attempt {
            loaded, migrated, ..
        } = self.attempt()?;
        // An existing file upgraded on its first use: the upgrade is a write of its own, stored
        // once like any other (new version, conditional put, the same conflicts), so that it
        // never runs again. Only an upgrade: a read that cannot store it still answers.
        let upgrade_only = changed.is_none();
        let version = match (changed, &loaded.etag, *migrated) {
            (Some(version), ..) => version,
            (None, Some(_), true) => {
                let version = loaded.version.next();
                version.record_in(&db)?;
                version
            }
            // Still exactly R2's object (or, for a user with no object, nothing to keep).
            (None, Some(etag), false) => {
                self.database.keep(etag, db);
                return Ok(true);
            }
            (None, None, _) => return Ok(true),
        };
        let condition = loaded.unchanged();
        let bytes = db.to_bytes()?;
        let size = bytes.len() as u64;
        // A write is never acknowledged only to lock its user out: a file the R2 path could not
        // open again is not stored, and R2 keeps the copy before the write.
        if size > self.config.max_database_bytes {
            let err = R2Error::WriteTooLarge {
                bytes: size,
                max_bytes: self.config.max_database_bytes,
            };
            let event = if upgrade_only {
                "upgrade_not_stored"
            } else {
                "write_refused"
            };
            crate::log::warn(
                serde_json::json!({"event": event, "user": self.user.as_str(), "detail": err.to_string()}),
            );
            if upgrade_only {
                return Ok(true);
            }
            self.report.status = Some("failed");
            return Err(err.into());
        }
        let saved = match self
            .database
            .put(version, R2State::Active, bytes, Some(condition))
            .await
        {
            Ok(saved) => saved,
            Err(err) if upgrade_only => {
                crate::log::warn(
                    serde_json::json!({"event": "upgrade_not_stored", "user": self.user.as_str(), "detail": err.to_string()}),
                );
                return Ok(true);
            }
            Err(err) => {
                self.report.status = Some("failed");
                return Err(err.into());
            }
        };
        let Saved::Stored { etag } = saved else {
            return self.after_conflict(db).await;
        };
        self.database.keep(&etag, db);
        self.report.version = Some(version);
        log_size(self.config, self.user, size);
        if self
            .config
            .auto_migrate_bytes
            .is_some_and(|limit| size > limit)
        {
            request_migration(self.env, self.user, size).await;
        }
        Ok(true)
    }

    fn version(&self) -> Option<DbVersion> {
        self.report.version
    }

    fn annotate(&self, response: &mut Response) {
        // Our own responses have mutable headers; setting one cannot fail.
        let headers = response.headers_mut();
        if let Some(status) = self.report.status {
            let _ = headers.set(headers::SYNC_STATUS, status);
        }
        if let Some(hit) = self.report.cache_hit {
            let _ = headers.set(headers::DB_CACHE, if hit { "hit" } else { "miss" });
        }
        if self.config.report_wasm_memory {
            let _ = headers.set(
                headers::WASM_MEMORY_BYTES,
                &http::wasm_memory_bytes().to_string(),
            );
        }
    }
}

/// Applies pending migrations; returns whether there were any (the database then differs from
/// R2's object). A database just downloaded is brought up to date as the existing app would and
/// must then have the app's shape: see [`upgrade`].
fn migrate(user: &UserId, key: &str, db: &RusqliteDb, downloaded: bool) -> Result<bool, R2Error> {
    if downloaded {
        Ok(upgrade(user, key, db)?.changed())
    } else {
        Ok(apply_migrations(db)? > 0)
    }
}

/// Brings a database from outside up to date in memory (R2's object untouched; see
/// [`user_data_core::db::upgrade`]) and checks that it then has the app's shape. One that does not is
/// [`R2Error::Incompatible`] (answered 503 `incompatible_schema`): logged as a JSON line with
/// `user` and the reason, for an operator to act on; `what` names the file.
pub fn upgrade(user: &UserId, what: &str, db: &RusqliteDb) -> Result<Upgrade, R2Error> {
    user_data_core::db::upgrade(db).map_err(|err| match err {
        UpgradeError::Db(err) => err.into(),
        UpgradeError::Incompatible(reason) => {
            crate::log::error(serde_json::json!({
                "event": "incompatible_schema",
                "user": user.as_str(),
                "file": what,
                "reason": reason,
            }));
            R2Error::Incompatible {
                key: what.to_owned(),
                reason,
            }
        }
    })
}

/// Exponential backoff with jitter after each lost race (20 ms, 40 ms, ... up to 640 ms, each
/// somewhere between half and all of that), so that racing writers spread out.
fn jitter_ms(attempt: u32) -> u64 {
    let cap = 10u64 << attempt.min(6);
    cap / 2 + (worker::js_sys::Math::random() * (cap / 2) as f64) as u64
}

/// The existing app's size notices, after each upload.
fn log_size(config: &Config, user: &UserId, size: u64) {
    if size > config.size_warning_bytes {
        crate::log::warn(serde_json::json!({
            "event": "database_size_warning",
            "user": user.as_str(),
            "bytes": size,
            "message": format!(
                "DATABASE MIGRATION RECOMMENDED: Database size ({:.1}MB) exceeds {:.1}MB. \
                 Consider migrating to Durable Objects.",
                mb(size),
                mb(config.size_warning_bytes)
            ),
        }));
    } else if size > config.size_notice_bytes {
        crate::log::info(serde_json::json!({
            "event": "database_size_notice",
            "user": user.as_str(),
            "bytes": size,
            "message": format!(
                "Database size notice: {}KB - approaching {:.1}MB migration threshold",
                size / 1024,
                mb(config.size_warning_bytes)
            ),
        }));
    }
}

/// The existing design's "migrate when the database exceeds 1 MB": sets the flag; the user's
/// next request reaches their object, which moves the data. A failure only delays that.
async fn request_migration(env: &Env, user: &UserId, size: u64) {
    let result = match Flags::new(env) {
        Ok(flags) => flags.set(user, flag::BY_SIZE).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => crate::log::info(serde_json::json!({
            "event": "flagged_for_migration",
            "user": user.as_str(),
            "bytes": size,
        })),
        Err(err) => crate::log::warn(serde_json::json!({
            "event": "flag_for_migration_failed",
            "user": user.as_str(),
            "bytes": size,
            "detail": err.to_string(),
        })),
    }
}
