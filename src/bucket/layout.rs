//! Where a user's things live in R2, and what an object's custom metadata says: every key and
//! metadata key in one place.
//!
//! - `{user_id}/database.sqlite`: the user's database on the R2 path (and, once migrated, the
//!   frozen copy that fences the R2 path off);
//! - `{user_id}/backups/database.v<N>.sqlite`: the R2 copy a rollback replaced;
//! - `{user_id}/<folder>/<file>`: media (games, clips, exports), named by the handlers.
//!
//! A database object's metadata holds its version (`db-version`, a decimal integer; an object
//! without it is a legacy version 0), its [`R2State`] (`db-state`, with `db-migrated-at`) and,
//! after a prune, `db-tombstone`.

use std::collections::HashMap;

use crate::identity::UserId;
use user_data_core::db::DbVersion;

const VERSION_KEY: &str = "db-version";
const STATE_KEY: &str = "db-state";
const MIGRATED_AT_KEY: &str = "db-migrated-at";
const TOMBSTONE_KEY: &str = "db-tombstone";

const DATABASE_FILE: &str = "database.sqlite";
const BACKUPS_FOLDER: &str = "backups/";

/// Everything of a user's starts with this.
pub fn user_prefix(user: &UserId) -> String {
    format!("{user}/")
}

/// The R2 key of a user's database.
pub fn database_key(user: &UserId) -> String {
    format!("{user}/{DATABASE_FILE}")
}

/// The R2 key under which a rollback keeps the database object of `version` it replaced.
pub fn backup_key(user: &UserId, version: DbVersion) -> String {
    format!("{user}/{BACKUPS_FOLDER}database.v{version}.sqlite")
}

/// The R2 key of a media file (`key` is the handlers' `<folder>/<file>`).
pub fn media_key(user: &UserId, key: &str) -> String {
    format!("{user}/{key}")
}

/// Whether `key`, under [`user_prefix`], is media (not the database or one of its backups).
pub fn is_media(user: &UserId, key: &str) -> bool {
    let prefix = user_prefix(user);
    let Some(rest) = key.strip_prefix(&prefix) else {
        return false;
    };
    !(rest.starts_with(DATABASE_FILE) || rest.starts_with(BACKUPS_FOLDER))
}

/// The user whose database `key` is (`{user_id}/database.sqlite`); `None` for any other key,
/// and for a folder whose name is not a valid id.
pub fn database_owner(key: &str) -> Option<UserId> {
    let (user, file) = key.split_once('/')?;
    (file == DATABASE_FILE).then(|| UserId::parse(user).ok())?
}

/// Whether `key` is some user's database, and whether a backup.
pub fn is_database(key: &str) -> bool {
    key.ends_with(&format!("/{DATABASE_FILE}"))
}

pub fn is_backup(key: &str) -> bool {
    key.contains(&format!("/{BACKUPS_FOLDER}"))
}

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

/// The version in an object's custom metadata; missing or unreadable is the legacy 0.
pub fn version_from_metadata(metadata: &HashMap<String, String>) -> DbVersion {
    DbVersion(
        metadata
            .get(VERSION_KEY)
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0),
    )
}

/// The custom metadata of an object holding `version` in `state`.
pub fn object_metadata(version: DbVersion, state: R2State) -> HashMap<String, String> {
    let mut metadata = HashMap::from([(VERSION_KEY.to_owned(), version.to_string())]);
    match state {
        R2State::Active => metadata.insert(STATE_KEY.to_owned(), "active".to_owned()),
        R2State::Migrated { at_ms } => {
            metadata.insert(MIGRATED_AT_KEY.to_owned(), at_ms.to_string());
            metadata.insert(STATE_KEY.to_owned(), "migrated".to_owned())
        }
    };
    metadata
}

/// The metadata of a pruned database: still `migrated` (the fence holds), marked a tombstone.
/// What replaces the R2 copy of a user whose data lives in their object, once it is no longer
/// kept (pruned, or moved in chunks with its bytes kept as a backup): small, and still
/// `migrated`, because the fence must outlive the copy (a missing object would read as an
/// empty user).
pub const TOMBSTONE: &[u8] =
    b"This user's data lives in their Durable Object; the R2 copy was pruned.\n";

pub fn tombstone_metadata(version: DbVersion, at_ms: u64) -> HashMap<String, String> {
    let mut metadata = object_metadata(version, R2State::Migrated { at_ms });
    metadata.insert(TOMBSTONE_KEY.to_owned(), "1".to_owned());
    metadata
}

pub fn is_tombstone(metadata: &HashMap<String, String>) -> bool {
    metadata.contains_key(TOMBSTONE_KEY)
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
        assert_eq!(version_from_metadata(&metadata), DbVersion(3));
        assert!(!is_tombstone(&metadata));
        let tombstone = tombstone_metadata(DbVersion(3), 42);
        assert_eq!(R2State::from_metadata(&tombstone), migrated);
        assert!(is_tombstone(&tombstone));
    }

    #[test]
    fn missing_or_garbage_metadata_is_the_legacy_version_zero() {
        assert_eq!(version_from_metadata(&HashMap::new()), DbVersion(0));
        let garbage = HashMap::from([(VERSION_KEY.to_owned(), "v2".to_owned())]);
        assert_eq!(version_from_metadata(&garbage), DbVersion(0));
        let seven = HashMap::from([(VERSION_KEY.to_owned(), "7".to_owned())]);
        assert_eq!(version_from_metadata(&seven).next(), DbVersion(8));
    }

    #[test]
    fn media_is_everything_of_the_user_but_the_database_and_its_backups() {
        let user = UserId::parse("ann").unwrap();
        assert!(is_media(&user, &media_key(&user, "games/a.mp4")));
        assert!(!is_media(&user, &database_key(&user)));
        assert!(!is_media(&user, &backup_key(&user, DbVersion(4))));
        assert!(!is_media(&user, "annie/games/a.mp4"));
        assert!(is_database(&database_key(&user)) && !is_backup(&database_key(&user)));
        assert!(is_backup(&backup_key(&user, DbVersion(4))));
    }
}
