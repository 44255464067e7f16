//! The version of a user's data: it only goes up, by one per stored change. It is recorded in
//! the database itself (the `data_version` table), so that the bytes of two versions always
//! differ, and, on the R2 path, in the object's metadata too ([`crate::bucket::layout`]).

use std::fmt;

use crate::db::{Db, DbError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct DbVersion(pub u64);

impl DbVersion {
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
