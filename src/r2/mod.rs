//! The R2-SQLite path: users not yet moved to a Durable Object.
//!
//! A user's database is the object `{user_id}/database.sqlite` in the `USER_DATA` bucket. One
//! request: load it (unchanged bytes come from the isolate's cache), open it with rusqlite
//! (SQLite compiled to wasm), run the handler as one transaction, store the files it uploads,
//! and, only if it wrote, upload the database once as the next version, conditionally on R2
//! still holding the version that was loaded. When another request got there first, the default
//! is to run this request again on the newer database, so that concurrent writers are
//! serialised and no acknowledged write is lost.
//!
//! The fence: the R2 path serves and writes a database only while its metadata says `active`.
//! One marked `migrated` belongs to the user's Durable Object, whatever a (possibly stale) KV
//! flag said; the request is handed over instead ([`Served::MovedToObject`]).
//!
//! A user without an object reads as an empty database; the object appears with the first
//! write. A downloaded object that is not SQLite, fails `quick_check`, or whose app tables have
//! another shape is answered 503 and never overwritten.

mod cache;
pub mod sync;

use worker::{Bucket, Env, Response};

use crate::config::{Config, ConflictStrategy, USER_DATA_BUCKET};
use crate::db::rusqlite_db::RusqliteDb;
use crate::db::DbVersion;
use crate::db::{apply_migrations, check_shape, Db, Difference, ShapeError};
use crate::error::ApiError;
use crate::files;
use crate::flag::{self, Flags};
use crate::handlers::{self, Reply};
use crate::http::{self, DataPath, RawRequest};
use crate::identity::UserId;
use crate::layout::{self, R2State};
use sync::{R2Database, Saved, Snapshot};

/// How often a request runs again on a newer database before it answers 409.
const MAX_ATTEMPTS: u32 = 10;

/// The user's database object, with the limits from `config`.
pub fn database<'a>(bucket: &'a Bucket, user: &UserId, config: &Config) -> R2Database<'a> {
    R2Database {
        bucket,
        key: layout::database_key(user),
        cache_bytes: config.cache_bytes,
        max_bytes: config.max_database_bytes,
    }
}

/// What became of a request on the R2 path.
pub enum Served {
    Response(Response),
    /// The R2 object says the user's Durable Object holds the data: nothing was read or written.
    MovedToObject,
}

/// What the response tells about the sync: `X-DB-Version` and `X-Sync-Status`.
#[derive(Debug, Default)]
struct SyncReport {
    /// The version the response reflects.
    version: Option<DbVersion>,
    /// `conflict` when another writer got in between, `failed` when storing failed.
    status: Option<&'static str>,
    /// `X-DB-Cache`: whether the (last) attempt found the opened database in the isolate.
    cache_hit: Option<bool>,
}

/// Serves one API request for `user` from their database in R2.
pub async fn serve(env: &Env, config: &Config, user: &UserId, raw: &RawRequest) -> Served {
    let mut report = SyncReport::default();
    let mut response = match run(env, config, user, raw, &mut report).await {
        Ok(Some(response)) => response,
        Ok(None) => return Served::MovedToObject,
        Err(err) => http::error(&err),
    };
    let headers = response.headers_mut();
    if let Some(version) = report.version {
        let _ = headers.set("X-DB-Version", &version.to_string());
    }
    if let Some(status) = report.status {
        let _ = headers.set("X-Sync-Status", status);
    }
    if let Some(hit) = report.cache_hit {
        let _ = headers.set("X-DB-Cache", if hit { "hit" } else { "miss" });
    }
    if config.report_wasm_memory {
        let _ = headers.set("X-Wasm-Memory-Bytes", &wasm_memory_bytes().to_string());
    }
    Served::Response(http::labelled(response, DataPath::R2))
}

/// The size of the wasm linear memory: it never shrinks, so it is the isolate's high-water mark.
#[cfg(target_arch = "wasm32")]
fn wasm_memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65536
}

#[cfg(not(target_arch = "wasm32"))]
fn wasm_memory_bytes() -> usize {
    0
}

/// `Ok(None)`: the fence found the object migrated.
async fn run(
    env: &Env,
    config: &Config,
    user: &UserId,
    raw: &RawRequest,
    report: &mut SyncReport,
) -> Result<Option<Response>, ApiError> {
    let bucket = env.bucket(USER_DATA_BUCKET)?;
    let database = database(&bucket, user, config);
    let request = raw.to_api_request().await?;
    let range = raw.header("Range");
    // Files already stored by an earlier attempt (names repeat: they come from the request).
    let mut stored: Vec<String> = Vec::new();

    for attempt in 1..=MAX_ATTEMPTS {
        let (loaded, db, cache_hit) = database.load().await?;
        if loaded.state != R2State::Active {
            return Ok(None);
        }
        report.cache_hit = Some(cache_hit);
        let downloaded = db.is_some() && !cache_hit;
        let mut db = match db {
            Some(db) => db,
            None => RusqliteDb::empty()?,
        };
        report.version = Some(loaded.version);

        // Pending migrations are applied in memory and stored with the request's write, if it
        // writes: a read never uploads, so readers never race writers (and a user with no
        // object gets one only with their first write).
        let migrated = migrate(&database.key, &db, downloaded)?;
        // Whether the request changed a row, by SQLite's count: an UPDATE that matched nothing
        // (`/api/exports/active` with no stale job) uploads nothing.
        let changes_before = db.total_changes();
        let reply = db.transaction(|| handlers::handle(&db, user, &request))?;
        if db.total_changes() == changes_before {
            // Still exactly R2's object, unless this request migrated it in memory.
            if let (Some(etag), false) = (&loaded.etag, migrated) {
                database.keep(etag, db);
            }
            return finish(&bucket, user, reply, range).await.map(Some);
        }

        let new_uploads: Vec<_> = reply
            .uploads
            .iter()
            .filter(|upload| !stored.contains(&upload.key))
            .cloned()
            .collect();
        files::store(&bucket, user, &new_uploads).await?;
        stored.extend(new_uploads.into_iter().map(|upload| upload.key));

        let version = loaded.version.next();
        version.record_in(&db)?;
        let bytes = db.to_bytes()?;
        let size = bytes.len() as u64;
        let saved = database
            .put(version, R2State::Active, bytes, Some(loaded.unchanged()))
            .await
            .inspect_err(|_| report.status = Some("failed"))?;
        if let Saved::Stored { etag } = saved {
            database.keep(&etag, db);
            report.version = Some(version);
            log_size(config, user, size);
            if config.auto_migrate_bytes.is_some_and(|limit| size > limit) {
                request_migration(env, user, size).await;
            }
            return finish(&bucket, user, reply, range).await.map(Some);
        }

        report.status = Some("conflict");
        let current = database.head().await?;
        worker::console_warn!(
            "R2 write conflict for user {user}: loaded version {}, R2 now has version {} \
             (attempt {attempt}, strategy {:?})",
            loaded.version,
            current.version,
            config.conflict_strategy
        );
        // A migration's cut-over is a conflict too: the next attempt meets the fence.
        if config.conflict_strategy == ConflictStrategy::LastWriteWins
            && current.state == R2State::Active
        {
            let version = current.version.max(loaded.version).next();
            version.record_in(&db)?;
            let stored = database
                .put(
                    version,
                    R2State::Active,
                    db.to_bytes()?,
                    Some(current.unchanged()),
                )
                .await
                .inspect_err(|_| report.status = Some("failed"))?;
            if let Saved::Stored { etag } = stored {
                database.keep(&etag, db);
            }
            report.version = Some(version);
            return finish(&bucket, user, reply, range).await.map(Some);
        }
        worker::Delay::from(std::time::Duration::from_millis(jitter_ms(attempt))).await;
    }
    Err(ApiError::Conflict(format!(
        "The data changed under {MAX_ATTEMPTS} attempts in a row; nothing was saved, try again"
    )))
}

/// Applies pending migrations; returns whether there were any (the database then differs from
/// R2's object). A database just downloaded must then have the app's shape: see [`upgrade`].
fn migrate(key: &str, db: &RusqliteDb, downloaded: bool) -> Result<bool, ApiError> {
    if downloaded {
        upgrade(key, db)
    } else {
        Ok(apply_migrations(db)? > 0)
    }
}

/// Applies pending migrations to a database downloaded from R2 (held in memory, R2's object
/// untouched) and checks that it then has the app's shape ([`check_shape`]); returns whether
/// migrations were applied. One that does not have the shape is answered 503
/// `incompatible_schema`, for an operator to look at.
pub fn upgrade(key: &str, db: &RusqliteDb) -> Result<bool, ApiError> {
    let applied = apply_migrations(db);
    let fresh = RusqliteDb::empty()?;
    apply_migrations(&fresh)?;
    let differences: Vec<Difference> = match check_shape(db, &fresh) {
        Ok(()) => Vec::new(),
        Err(ShapeError::Db(err)) => return Err(err.into()),
        // Migrations that failed were rolled back: the tables they would add are not the fault.
        Err(ShapeError::Differs(found)) => found
            .into_iter()
            .filter(|difference| applied.is_ok() || difference.column.is_some())
            .collect(),
    };
    match applied {
        _ if !differences.is_empty() => {
            let words: Vec<String> = differences.iter().map(ToString::to_string).collect();
            Err(incompatible(key, &words.join("; ")))
        }
        Ok(applied) => Ok(applied > 0),
        // They apply to any database of the app's shape (a fresh one above): the file is why.
        Err(err) => Err(incompatible(
            key,
            &format!("the app's migrations fail on it: {err}"),
        )),
    }
}

fn incompatible(key: &str, why: &str) -> ApiError {
    worker::console_error!("R2 object {key} does not have the app's schema: {why}");
    ApiError::IncompatibleSchema(format!(
        "The database does not have the tables the app needs ({why}); it was left \
         unchanged"
    ))
}

/// After the commit: delete what the request removed, then answer.
async fn finish(
    bucket: &Bucket,
    user: &UserId,
    reply: Reply,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    files::delete(bucket, user, &reply.deletions).await;
    files::respond(bucket, user, reply.response, range).await
}

/// Exponential backoff with jitter after each lost race (10 ms, 20 ms, ... up to 640 ms, each
/// somewhere between half and all of that), so that racing writers spread out.
fn jitter_ms(attempt: u32) -> u64 {
    let cap = 10u64 << attempt.min(6);
    cap / 2 + (worker::js_sys::Math::random() * (cap / 2) as f64) as u64
}

/// Bytes as megabytes (1 MB = 1,048,576 bytes, as the size notices count).
fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The existing app's size notices, after each upload.
fn log_size(config: &Config, user: &UserId, size: u64) {
    if size > config.size_warning_bytes {
        worker::console_warn!(
            "DATABASE MIGRATION RECOMMENDED: Database size ({:.1}MB) exceeds 1MB. \
             Consider migrating to Durable Objects. (user {user})",
            mb(size)
        );
    } else if size > config.size_notice_bytes {
        worker::console_log!(
            "Database size notice: {}KB - approaching 1MB migration threshold (user {user})",
            size / 1024
        );
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
        Ok(()) => worker::console_log!("User {user} ({size} bytes) flagged for migration"),
        Err(err) => worker::console_warn!("Could not flag user {user} for migration: {err}"),
    }
}

/// Opens a downloaded snapshot, or an empty database for a user without an object.
pub fn open(key: &str, loaded: &Snapshot) -> Result<RusqliteDb, ApiError> {
    match &loaded.bytes {
        Some(bytes) => sync::open(key, bytes),
        None => Ok(RusqliteDb::empty()?),
    }
}
