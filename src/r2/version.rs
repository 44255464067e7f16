//! `DbVersion`: the version of a user's database on the R2 path.
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
    fn missing_or_garbage_metadata_is_the_legacy_version_zero() {
        assert_eq!(DbVersion::from_metadata(&HashMap::new()), DbVersion(0));
        let garbage = HashMap::from([(METADATA_KEY.to_owned(), "v2".to_owned())]);
        assert_eq!(DbVersion::from_metadata(&garbage), DbVersion(0));
        let seven = HashMap::from([(METADATA_KEY.to_owned(), "7".to_owned())]);
        assert_eq!(DbVersion::from_metadata(&seven).next(), DbVersion(8));
    }
}
