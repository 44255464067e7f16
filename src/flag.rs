//! The KV flag `migrated:<user_id>`: the intent (an operator's, or `AUTO_MIGRATE_BYTES`') that
//! a user be served by their Durable Object. Its one home: the key, reading it, setting and
//! clearing it.
//!
//! The flag only routes. KV propagates a change to other locations within about a minute, so a
//! request may see a stale flag; the records in R2's metadata and in the object decide where the
//! data is authoritative (`crate::migration`), and each side hands over what it must not serve.

use std::fmt;

use worker::kv::KvStore;
use worker::Env;

use crate::config::FLAGS_KV;
use crate::identity::UserId;

/// The value of a flag set by an operator's move.
pub const BY_OPERATOR: &str = "1";
/// The value of a flag set because the user's R2 database grew past `AUTO_MIGRATE_BYTES`.
pub const BY_SIZE: &str = "auto";

/// A KV operation on a flag failed.
#[derive(Debug)]
pub struct FlagError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KV error on {}: {}", self.key, self.reason)
    }
}

impl std::error::Error for FlagError {}

impl FlagError {
    /// Turns a KV failure on `key` into a `FlagError`.
    fn on<E: fmt::Display>(key: &str) -> impl Fn(E) -> FlagError + '_ {
        move |err| FlagError {
            key: key.to_owned(),
            reason: err.to_string(),
        }
    }
}

/// What every flag's key starts with.
const PREFIX: &str = "migrated:";

fn key(user: &UserId) -> String {
    format!("{PREFIX}{user}")
}

/// One page of the flagged users ([`Flags::page`]).
pub struct FlagPage {
    /// The users whose flag is set (keys that are not valid ids are left out).
    pub users: Vec<String>,
    /// Where the next page starts; `None` on the last.
    pub cursor: Option<String>,
}

/// The users' flags, in the `FLAGS` KV namespace.
pub struct Flags {
    kv: KvStore,
}

impl Flags {
    pub fn new(env: &Env) -> Result<Self, FlagError> {
        let kv = env.kv(FLAGS_KV).map_err(FlagError::on(FLAGS_KV))?;
        Ok(Self { kv })
    }

    /// Whether `user` is flagged. With `cache_ttl_seconds`, KV may answer from its edge cache
    /// for that long (the router's read, on every request); without, it reads fresh.
    pub async fn is_set(
        &self,
        user: &UserId,
        cache_ttl_seconds: Option<u64>,
    ) -> Result<bool, FlagError> {
        let key = key(user);
        let mut get = self.kv.get(&key);
        if let Some(ttl) = cache_ttl_seconds {
            get = get.cache_ttl(ttl);
        }
        let value = get.text().await.map_err(FlagError::on(&key))?;
        Ok(value.is_some())
    }

    /// Up to `limit` flagged users from `cursor` on: one KV list, whatever the page holds.
    pub async fn page(&self, cursor: Option<String>, limit: u64) -> Result<FlagPage, FlagError> {
        let mut list = self.kv.list().prefix(PREFIX.to_owned()).limit(limit);
        if let Some(cursor) = cursor {
            list = list.cursor(cursor);
        }
        let page = list.execute().await.map_err(FlagError::on(PREFIX))?;
        Ok(FlagPage {
            users: page
                .keys
                .into_iter()
                .filter_map(|key| key.name.strip_prefix(PREFIX).map(str::to_owned))
                .filter(|user| UserId::parse(user).is_ok())
                .collect(),
            cursor: page.cursor.filter(|_| !page.list_complete),
        })
    }

    /// Flags `user`, saying why (`BY_OPERATOR` or `BY_SIZE`).
    pub async fn set(&self, user: &UserId, why: &str) -> Result<(), FlagError> {
        let key = key(user);
        let failed = FlagError::on(&key);
        self.kv
            .put(&key, why)
            .map_err(&failed)?
            .execute()
            .await
            .map_err(&failed)
    }

    pub async fn clear(&self, user: &UserId) -> Result<(), FlagError> {
        let key = key(user);
        self.kv.delete(&key).await.map_err(FlagError::on(&key))
    }
}
