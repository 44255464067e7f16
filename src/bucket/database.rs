//! Moving a user's database between R2 and the Worker: download only what changed, upload only
//! over the version that was loaded.
//!
//! `load` asks R2 with one conditional GET (`etag_does_not_match` the cached etag): an unchanged
//! object answers without a body and the isolate's opened copy is used. `put` with a condition from
//! [`Snapshot::unchanged`] (`etag_matches` the loaded etag, or `etag_does_not_match: "*"` when
//! there was no object) writes nothing if another request stored a version meanwhile, and says so.

use std::rc::Rc;

use worker::{Bucket, Conditional, Object, ObjectBody, Range, ResponseBody};

use admin_api::R2Summary;

use crate::bucket::cache;
use crate::bucket::layout::{self, backup_key, database_key};
use crate::bucket::layout::{object_metadata, version_from_metadata, R2State};
use crate::bucket::listing::summary_of;
use crate::bucket::R2Error;
use crate::config::Config;
use crate::identity::UserId;
use user_data_core::db::rusqlite_db::RusqliteDb;
use user_data_core::db::DbVersion;

/// The database as loaded (or looked at) in R2.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `None` when the user has no object.
    pub etag: Option<String>,
    pub version: DbVersion,
    pub state: R2State,
    /// Bytes of the object (0 when the user has none).
    pub size: u64,
    /// `None` when the user has no object, or when only the metadata was read.
    pub bytes: Option<Rc<Vec<u8>>>,
}

impl Snapshot {
    fn absent() -> Self {
        Snapshot {
            etag: None,
            version: DbVersion(0),
            state: R2State::Active,
            size: 0,
            bytes: None,
        }
    }

    /// The put condition "R2 still holds this snapshot's object" (or still none).
    pub fn unchanged(&self) -> Conditional {
        match &self.etag {
            Some(etag) => Conditional {
                etag_matches: Some(etag.clone()),
                ..Default::default()
            },
            None => Conditional {
                etag_does_not_match: Some("*".into()),
                ..Default::default()
            },
        }
    }
}

/// What a conditional upload found.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// Stored; the object's new etag.
    Stored { etag: String },
    /// Another request stored a version after ours was loaded; nothing was written.
    Conflict,
}

/// A user's database object in the bucket.
pub struct R2Database<'a> {
    pub bucket: &'a Bucket,
    pub key: String,
    /// The isolate cache's bound in bytes.
    pub cache_bytes: u64,
    /// The largest database to download and open (see `Config::max_database_bytes`).
    pub max_bytes: u64,
}

impl<'a> R2Database<'a> {
    /// `user`'s database object, with the limits from `config`.
    pub fn of(bucket: &'a Bucket, user: &UserId, config: &Config) -> Self {
        R2Database {
            bucket,
            key: database_key(user),
            cache_bytes: config.cache_bytes,
            max_bytes: config.max_database_bytes,
        }
    }

    /// Opens a downloaded snapshot of this object, or an empty database when there was none.
    pub fn open(&self, loaded: &Snapshot) -> Result<RusqliteDb, R2Error> {
        match &loaded.bytes {
            Some(bytes) => open(&self.key, bytes),
            None => Ok(RusqliteDb::empty()?),
        }
    }

    /// The object's version and state now, and the database opened: from the isolate's cache
    /// when R2 still holds the same object, else downloaded and parsed. No database when the user
    /// has no object, or when R2 marks the user migrated (the fence: not ours to read).
    /// The `bool` says whether the database came from the cache.
    pub async fn load(&self) -> Result<(Snapshot, Option<RusqliteDb>, bool), R2Error> {
        let cached_etag = cache::etag(&self.key);
        let mut request = self.bucket.get(&self.key);
        if let Some(etag) = &cached_etag {
            request = request.only_if(Conditional {
                etag_does_not_match: Some(etag.clone()),
                ..Default::default()
            });
        }
        let Some(object) = request.execute().await.map_err(R2Error::on(&self.key))? else {
            cache::remove(&self.key);
            return Ok((Snapshot::absent(), None, false));
        };
        let snapshot = snapshot_of(&object, &self.key)?;
        if snapshot.state != R2State::Active {
            cache::remove(&self.key);
            return Ok((snapshot, None, false));
        }
        if object.size() > self.max_bytes {
            return Err(R2Error::TooLarge {
                bytes: object.size(),
                max_bytes: self.max_bytes,
            });
        }
        let (db, cached) = match object.body() {
            Some(body) => {
                let bytes = body.bytes().await.map_err(R2Error::on(&self.key))?;
                (open_checked(&self.key, &bytes)?, false)
            }
            // Not modified: the precondition failed, so R2 sent no body. Another request of this
            // isolate may have taken the cached database meanwhile: then download it.
            None => match cache::take(&self.key, &object.etag()) {
                Some(db) => (db, true),
                None => {
                    let bytes = self.download().await?.bytes.unwrap_or_default();
                    (open_checked(&self.key, &bytes)?, false)
                }
            },
        };
        Ok((snapshot, Some(db), cached))
    }

    /// Keeps `db`, which is exactly R2's object at `etag`, for the next request in this isolate.
    pub fn keep(&self, etag: &str, db: RusqliteDb) {
        cache::put(&self.key, etag.to_owned(), db, self.cache_bytes);
    }

    /// The object with its bytes whatever its state, past the cache and the size ceiling:
    /// what a migration moves.
    pub async fn download(&self) -> Result<Snapshot, R2Error> {
        Ok(self
            .download_if(|_| true)
            .await?
            .unwrap_or_else(Snapshot::absent))
    }

    /// The object from one GET, its bytes read only when `wanted` says so of what R2 says of it
    /// (its state, its size): a body not wanted is never read, so a file that is not to be
    /// opened is never downloaded. `None` when the user has no object.
    pub async fn download_if(
        &self,
        wanted: impl FnOnce(&Snapshot) -> bool,
    ) -> Result<Option<Snapshot>, R2Error> {
        let Some((mut snapshot, object)) = self.get().await? else {
            return Ok(None);
        };
        if wanted(&snapshot) {
            let bytes = self.body_of(&object)?.bytes().await;
            snapshot.bytes = Some(Rc::new(bytes.map_err(R2Error::on(&self.key))?));
        }
        Ok(Some(snapshot))
    }

    /// The object as R2 holds it, its body left as R2's stream so that a file of any size passes
    /// through the Worker without entering its memory (exports and moves); `None` when the user
    /// has no object.
    pub async fn stream(&self) -> Result<Option<(Snapshot, ResponseBody)>, R2Error> {
        let Some((snapshot, object)) = self.get().await? else {
            return Ok(None);
        };
        let body = self.body_of(&object)?.response_body();
        Ok(Some((snapshot, body.map_err(R2Error::on(&self.key))?)))
    }

    /// `length` bytes of the object from `offset`, as R2's stream, only while R2 holds the
    /// object `etag`: `None` when it does not (or the user has none).
    pub async fn range(
        &self,
        offset: u64,
        length: u64,
        etag: &str,
    ) -> Result<Option<(Snapshot, ResponseBody)>, R2Error> {
        let object = self
            .bucket
            .get(&self.key)
            .range(Range::OffsetWithLength { offset, length })
            .only_if(Conditional {
                etag_matches: Some(etag.to_owned()),
                ..Default::default()
            })
            .execute()
            .await
            .map_err(R2Error::on(&self.key))?;
        // A failed precondition answers the object without its body.
        let Some(object) = object.filter(|object| object.body().is_some()) else {
            return Ok(None);
        };
        let snapshot = snapshot_of(&object, &self.key)?;
        let body = self.body_of(&object)?.response_body();
        Ok(Some((snapshot, body.map_err(R2Error::on(&self.key))?)))
    }

    /// The object and what its metadata says (its body not read yet); `None` when the user has
    /// no object.
    async fn get(&self) -> Result<Option<(Snapshot, Object)>, R2Error> {
        let object = self
            .bucket
            .get(&self.key)
            .execute()
            .await
            .map_err(R2Error::on(&self.key))?;
        let Some(object) = object else {
            return Ok(None);
        };
        let snapshot = snapshot_of(&object, &self.key)?;
        Ok(Some((snapshot, object)))
    }

    /// The body of an object fetched unconditionally, which R2 always sends.
    fn body_of<'o>(&self, object: &'o Object) -> Result<ObjectBody<'o>, R2Error> {
        object
            .body()
            .ok_or_else(|| R2Error::on(&self.key)("R2 returned the object without its body"))
    }

    /// What R2 holds now, without the bytes.
    pub async fn head(&self) -> Result<Snapshot, R2Error> {
        let object = self
            .bucket
            .head(&self.key)
            .await
            .map_err(R2Error::on(&self.key))?;
        let Some(object) = object else {
            return Ok(Snapshot::absent());
        };
        snapshot_of(&object, &self.key)
    }

    /// Keeps a copy of the object R2 holds now under `{user}/backups/database.v<N>.sqlite` (its
    /// version, its metadata), before something replaces it; returns the backup's key, `None`
    /// when the user has no object.
    pub async fn back_up(&self, user: &UserId) -> Result<Option<String>, R2Error> {
        let old = self.download().await?;
        let Some(bytes) = old.bytes else {
            return Ok(None);
        };
        let key = backup_key(user, old.version);
        self.bucket
            .put(key.clone(), bytes.as_ref().clone())
            .custom_metadata(object_metadata(old.version, old.state))
            .execute()
            .await
            .map_err(R2Error::on(&key))?;
        Ok(Some(key))
    }

    /// What R2 says of the object, for operators (one HEAD).
    pub async fn summary(&self) -> Result<R2Summary, R2Error> {
        let object = self
            .bucket
            .head(&self.key)
            .await
            .map_err(R2Error::on(&self.key))?;
        match object {
            Some(object) => summary_of(&object),
            None => Ok(R2Summary::missing()),
        }
    }

    /// The size of the backup of `version` kept under `backups/`, if there is one.
    pub async fn backup_size(
        &self,
        user: &UserId,
        version: DbVersion,
    ) -> Result<Option<u64>, R2Error> {
        let key = backup_key(user, version);
        let object = self.bucket.head(&key).await.map_err(R2Error::on(&key))?;
        Ok(object.map(|object| object.size()))
    }

    /// Fences the R2 path with a tombstone at `version` (see [`put_tombstone`]).
    pub async fn put_tombstone(
        &self,
        version: DbVersion,
        at_ms: u64,
        only_over: Option<String>,
    ) -> Result<bool, R2Error> {
        put_tombstone(self.bucket, &self.key, version, at_ms, only_over).await
    }

    /// Uploads `bytes` as `version` in `state`; with a `condition`, only if it still holds.
    pub async fn put(
        &self,
        version: DbVersion,
        state: R2State,
        bytes: Vec<u8>,
        condition: Option<Conditional>,
    ) -> Result<Saved, R2Error> {
        // The object changes (or someone else's did): whatever the cache holds is stale.
        cache::remove(&self.key);
        let mut put = self
            .bucket
            .put(&self.key, bytes)
            .custom_metadata(object_metadata(version, state));
        if let Some(condition) = condition {
            put = put.only_if(condition);
        }
        let stored = put.execute().await.map_err(R2Error::on(&self.key))?;
        Ok(match stored {
            Some(object) => Saved::Stored {
                etag: object.etag(),
            },
            None => Saved::Conflict,
        })
    }
}

/// Replaces the object `key` with a tombstone marked migrated at `version` since `at_ms`
/// ([`layout::TOMBSTONE`]); with `only_over`, only while R2 still holds that etag. `false`: it
/// no longer did, and nothing was written.
pub async fn put_tombstone(
    bucket: &Bucket,
    key: &str,
    version: DbVersion,
    at_ms: u64,
    only_over: Option<String>,
) -> Result<bool, R2Error> {
    cache::remove(key);
    let mut put = bucket
        .put(key, layout::TOMBSTONE.to_vec())
        .custom_metadata(layout::tombstone_metadata(version, at_ms));
    if let Some(etag) = only_over {
        put = put.only_if(Conditional {
            etag_matches: Some(etag),
            ..Default::default()
        });
    }
    let stored = put.execute().await.map_err(R2Error::on(key))?;
    Ok(stored.is_some())
}

/// Tells an operator of a database object that cannot be served (it is left as it is).
fn log_corrupt(key: &str, err: &R2Error) {
    crate::log::error(serde_json::json!({
        "event": "corrupt_database",
        "user": layout::database_owner(key).map(|user| user.as_str().to_owned()),
        "key": key,
        "reason": err.to_string(),
    }));
}

/// Opens the bytes of a user's database; ones that are not SQLite are a corrupt database,
/// reported and left as they are.
pub fn open(key: &str, bytes: &[u8]) -> Result<RusqliteDb, R2Error> {
    RusqliteDb::from_bytes(bytes).map_err(|err| {
        let err = R2Error::NotSqlite {
            key: key.to_owned(),
            reason: err.to_string(),
        };
        log_corrupt(key, &err);
        err
    })
}

/// Opens a downloaded database to serve it: readable SQLite whose pages pass SQLite's
/// `quick_check`. A damaged one is reported and left as it is: never served, never overwritten
/// (a request that fails here reaches no handler and uploads nothing). The isolate cache only
/// ever holds databases that passed, so a cache hit is not checked again.
fn open_checked(key: &str, bytes: &[u8]) -> Result<RusqliteDb, R2Error> {
    let db = open(key, bytes)?;
    user_data_core::db::check_integrity(&db).map_err(|err| {
        let err = R2Error::Damaged {
            key: key.to_owned(),
            reason: err.to_string(),
        };
        log_corrupt(key, &err);
        err
    })?;
    Ok(db)
}

/// What an object (from a GET or a HEAD) says of the database, without its bytes.
fn snapshot_of(object: &Object, key: &str) -> Result<Snapshot, R2Error> {
    let metadata = object.custom_metadata().map_err(R2Error::on(key))?;
    Ok(Snapshot {
        etag: Some(object.etag()),
        version: version_from_metadata(&metadata),
        state: R2State::from_metadata(&metadata),
        size: object.size(),
        bytes: None,
    })
}
