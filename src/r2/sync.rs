//! Moving a user's database between R2 and the Worker: download only what changed, upload only
//! over the version that was loaded.
//!
//! `load` asks R2 with one conditional GET (`etag_does_not_match` the cached etag): an unchanged
//! object answers without a body and the cached bytes are used. `save` is a conditional put
//! (`etag_matches` the loaded etag, or `etag_does_not_match: "*"` when there was no object): if
//! another request stored a version meanwhile, the put does nothing and `save` says so.

use std::collections::HashMap;
use std::rc::Rc;

use worker::{Bucket, Conditional, Object};

use crate::error::ApiError;
use crate::r2::cache::{self, CachedDatabase};
use crate::r2::version::{DbVersion, METADATA_KEY};

/// The database as loaded at the start of a request.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `None` when the user has no object yet.
    pub etag: Option<String>,
    pub version: DbVersion,
    /// `None` when the user has no object yet.
    pub bytes: Option<Rc<Vec<u8>>>,
}

/// What a conditional upload found.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    Stored,
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

fn storage_error(key: &str, err: worker::Error) -> ApiError {
    ApiError::Unavailable(format!("R2 error on {key}: {err}"))
}

impl R2Database<'_> {
    /// The object's size, version and bytes now, downloading them only if they changed.
    pub async fn load(&self) -> Result<Snapshot, ApiError> {
        let cached = cache::get(&self.key);
        let mut request = self.bucket.get(&self.key);
        if let Some(cached) = &cached {
            request = request.only_if(Conditional {
                etag_does_not_match: Some(cached.etag.clone()),
                ..Default::default()
            });
        }
        let Some(object) = request
            .execute()
            .await
            .map_err(|e| storage_error(&self.key, e))?
        else {
            cache::remove(&self.key);
            return Ok(Snapshot {
                etag: None,
                version: DbVersion(0),
                bytes: None,
            });
        };
        if object.size() > self.max_bytes {
            return Err(ApiError::TooLarge(format!(
                "The database is {:.1} MB, more than the {:.1} MB the R2 path can open; \
                 migrate this user to their Durable Object",
                mb(object.size()),
                mb(self.max_bytes)
            )));
        }
        let etag = object.etag();
        let version = version_of(&object, &self.key)?;
        let bytes = match (object.body(), cached) {
            (Some(body), _) => Rc::new(
                body.bytes()
                    .await
                    .map_err(|e| storage_error(&self.key, e))?,
            ),
            // Not modified: the precondition failed, so R2 sent no body.
            (None, Some(cached)) if cached.etag == etag => cached.bytes,
            (None, _) => {
                return Err(ApiError::Unavailable(format!(
                    "R2 returned {} without its body",
                    self.key
                )))
            }
        };
        Ok(Snapshot {
            etag: Some(etag),
            version,
            bytes: Some(bytes),
        })
    }

    /// Remembers a snapshot's bytes for the next request in this isolate (the cache drops what
    /// does not fit).
    pub fn remember(&self, snapshot: &Snapshot) {
        if let (Some(etag), Some(bytes)) = (&snapshot.etag, &snapshot.bytes) {
            cache::put(
                &self.key,
                CachedDatabase {
                    etag: etag.clone(),
                    bytes: bytes.clone(),
                },
                self.cache_bytes,
            );
        }
    }

    /// Uploads `bytes` as `version`, only over the object `loaded` came from.
    pub async fn save(
        &self,
        loaded: &Snapshot,
        version: DbVersion,
        bytes: Vec<u8>,
    ) -> Result<Saved, ApiError> {
        let condition = match &loaded.etag {
            Some(etag) => Conditional {
                etag_matches: Some(etag.clone()),
                ..Default::default()
            },
            None => Conditional {
                etag_does_not_match: Some("*".into()),
                ..Default::default()
            },
        };
        self.put(version, bytes, Some(condition)).await
    }

    /// Uploads `bytes` as `version` whatever R2 holds (last-write-wins).
    pub async fn overwrite(&self, version: DbVersion, bytes: Vec<u8>) -> Result<(), ApiError> {
        self.put(version, bytes, None).await.map(|_| ())
    }

    async fn put(
        &self,
        version: DbVersion,
        bytes: Vec<u8>,
        condition: Option<Conditional>,
    ) -> Result<Saved, ApiError> {
        // Keep a copy for the cache only when it will fit: for large databases every copy
        // counts against the isolate's 128 MB.
        let cached = (bytes.len() as u64 <= self.cache_bytes).then(|| Rc::new(bytes.clone()));
        let metadata = HashMap::from([(METADATA_KEY.to_owned(), version.to_string())]);
        let mut put = self.bucket.put(&self.key, bytes).custom_metadata(metadata);
        if let Some(condition) = condition {
            put = put.only_if(condition);
        }
        match put
            .execute()
            .await
            .map_err(|e| storage_error(&self.key, e))?
        {
            Some(object) => {
                match cached {
                    Some(bytes) => self.remember(&Snapshot {
                        etag: Some(object.etag()),
                        version,
                        bytes: Some(bytes),
                    }),
                    None => cache::remove(&self.key),
                }
                Ok(Saved::Stored)
            }
            None => Ok(Saved::Conflict),
        }
    }

    /// The version R2 holds now (for conflict logs and last-write-wins).
    pub async fn current_version(&self) -> Result<DbVersion, ApiError> {
        match self
            .bucket
            .head(&self.key)
            .await
            .map_err(|e| storage_error(&self.key, e))?
        {
            Some(object) => version_of(&object, &self.key),
            None => Ok(DbVersion(0)),
        }
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn version_of(object: &Object, key: &str) -> Result<DbVersion, ApiError> {
    let metadata = object
        .custom_metadata()
        .map_err(|e| storage_error(key, e))?;
    Ok(DbVersion::from_metadata(&metadata))
}
