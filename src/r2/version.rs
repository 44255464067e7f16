//! What the R2 object's custom metadata says: the database's `DbVersion`, and its `R2State`
//! (whether the R2 copy or the user's Durable Object is authoritative).
//!
//! It lives in the R2 object's custom metadata (`db-version`, a decimal integer; an object
//! without it is a legacy version 0) and, copied at every upload, in the database's own
//! `data_version` table. Versions only go up: each upload stores the loaded version + 1, and
//! only if the object is still the one that was loaded.

use std::collections::HashMap;
use std::fmt;

use crate::db::{Db, DbError};

/// The metadata key of the version.
pub const METADATA_KEY: &str = "db-version";
const STATE_KEY: &str = "db-state";
const MIGRATED_AT_KEY: &str = "db-migrated-at";

/// Which copy is authoritative, as the R2 object says. A missing state is `Active` (the
/// existing app's objects), so the R2 path keeps serving them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum R2State {
    /// The R2 copy is the user's data; the R2 path serves and writes it.
    Active,
    /// The user's Durable Object holds the data since `at_ms` (epoch milliseconds); the R2
    /// copy is a frozen snapshot (or a tombstone) and is never written by the R2 path.
    Migrated { at_ms: u64 },
}

impl R2State {
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Self {
        match metadata.get(STATE_KEY).map(String::as_str) {
            Some("migrated") => R2State::Migrated {
                at_ms: metadata
                    .get(MIGRATED_AT_KEY)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            },
            _ => R2State::Active,
        }
    }
}

/// The custom metadata of an object holding `version` in `state`.
pub fn object_metadata(version: DbVersion, state: R2State) -> HashMap<String, String> {
    let mut metadata = HashMap::from([(METADATA_KEY.to_owned(), version.to_string())]);
    match state {
        R2State::Active => metadata.insert(STATE_KEY.to_owned(), "active".to_owned()),
        R2State::Migrated { at_ms } => {
            metadata.insert(MIGRATED_AT_KEY.to_owned(), at_ms.to_string());
            metadata.insert(STATE_KEY.to_owned(), "migrated".to_owned())
        }
    };
    metadata
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct DbVersion(pub u64);

impl DbVersion {
    /// The version in an object's custom metadata; missing or unreadable is the legacy 0.
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Self {
        DbVersion(
            metadata
                .get(METADATA_KEY)
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0),
        )
    }

    pub fn next(self) -> Self {
        DbVersion(self.0 + 1)
    }

    /// The version recorded in the database itself (0 before any).
    pub fn read_from(db: &impl Db) -> Result<Self, DbError> {
        let version: Option<i64> = db.query_value("SELECT version FROM data_version", &[])?;
        Ok(DbVersion(version.unwrap_or(0) as u64))
    }

    /// Writes this version into the database itself, so its bytes differ from every other
    /// version's.
    pub fn record_in(self, db: &impl Db) -> Result<(), DbError> {
        db.execute(
            "INSERT INTO data_version (id, version) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            &[(self.0 as i64).into()],
        )?;
        Ok(())
    }
}

impl fmt::Display for DbVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_metadata_and_defaults_to_active() {
        assert_eq!(R2State::from_metadata(&HashMap::new()), R2State::Active);
        let migrated = R2State::Migrated { at_ms: 42 };
        let metadata = object_metadata(DbVersion(3), migrated);
        assert_eq!(R2State::from_metadata(&metadata), migrated);
        assert_eq!(DbVersion::from_metadata(&metadata), DbVersion(3));
    }

    #[test]
    fn missing_or_garbage_metadata_is_the_legacy_version_zero() {
        assert_eq!(DbVersion::from_metadata(&HashMap::new()), DbVersion(0));
        let garbage = HashMap::from([(METADATA_KEY.to_owned(), "v2".to_owned())]);
        assert_eq!(DbVersion::from_metadata(&garbage), DbVersion(0));
        let seven = HashMap::from([(METADATA_KEY.to_owned(), "7".to_owned())]);
        assert_eq!(DbVersion::from_metadata(&seven).next(), DbVersion(8));
    }
}
