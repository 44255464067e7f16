//! The fleet check of one file (`GET /admin/users/{id}/scan`, `migrator scan`): what a user's
//! R2 database meets when the R2 path first serves it (served as is, upgraded, refused, or 507
//! because only a move in chunks helps), and what would stop its move into the user's object.
//!
//! A user R2 marks migrated, or one above the ceiling, is judged from what R2 says of the file
//! ([`without_reading`]); any other file is opened and checked in memory ([`check_file`]), then
//! dropped: nothing is stored and nothing is logged as an incident (no user was refused
//! anything).

use admin_api::ScanOutcome;

use crate::db::rusqlite_db::RusqliteDb;
use crate::db::{check_integrity, upgrade, DbError, UpgradeError};
use crate::preflight::{self, Problem};

/// What the R2 path does with a user's database, and what would stop its move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: ScanOutcome,
    /// See [`admin_api::ScanReport::detail`].
    pub detail: Option<String>,
    /// See [`admin_api::ScanReport::problems`].
    pub problems: Vec<Problem>,
}

impl Verdict {
    fn of(outcome: ScanOutcome, detail: Option<String>) -> Self {
        Verdict {
            outcome,
            detail,
            problems: Vec::new(),
        }
    }
}

/// Why the R2 path does not open a file of `bytes`: it is above its ceiling.
pub fn too_large_to_open(bytes: u64, max_bytes: u64) -> String {
    format!(
        "the database is {:.1} MB, more than the {:.1} MB the R2 path can open",
        crate::mb(bytes),
        crate::mb(max_bytes)
    )
}

/// The verdict on a file that what R2 says of it decides, with no need to read it: `moved`
/// when R2 marks the user migrated, `chunks_only` above the R2 path's ceiling, which it never
/// opens; `None` for a file to read. The Worker asks it of R2's metadata, the migrator of the
/// listing, which holds the same.
pub fn without_reading(migrated: bool, size: u64, max_bytes: u64) -> Option<Verdict> {
    if migrated {
        Some(Verdict::of(ScanOutcome::Moved, None))
    } else if size > max_bytes {
        let detail = format!(
            "{}: only a move in chunks helps",
            too_large_to_open(size, max_bytes)
        );
        Some(Verdict::of(ScanOutcome::ChunksOnly, Some(detail)))
    } else {
        None
    }
}

/// What the R2 path does with a downloaded file on its first use, checked as it checks one (it
/// opens, passes `quick_check`, and [`upgrade`] brings it to the app's shape), and for a file it
/// serves, what would stop its move into the object ([`preflight::into_object`], on the
/// upgraded copy, as a migrate finds it). Only a statement failing for another reason than the
/// file is an error.
pub fn check_file(bytes: &[u8]) -> Result<Verdict, DbError> {
    let refused = |reason: String| Ok(Verdict::of(ScanOutcome::Refused, Some(reason)));
    let db = match RusqliteDb::from_bytes(bytes) {
        Ok(db) => db,
        Err(err) => return refused(format!("not SQLite: {err}")),
    };
    if let Err(damage) = check_integrity(&db) {
        return refused(format!("damaged: {damage}"));
    }
    let upgrade = match upgrade(&db) {
        Ok(upgrade) => upgrade,
        Err(UpgradeError::Incompatible(reason)) => {
            return refused(format!("incompatible schema: {reason}"))
        }
        Err(UpgradeError::Db(err)) => return Err(err),
    };
    let mut verdict = if upgrade.changed() {
        Verdict::of(ScanOutcome::Upgraded, Some(upgrade.to_string()))
    } else {
        Verdict::of(ScanOutcome::AsIs, None)
    };
    verdict.problems = preflight::into_object(&db)?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use test_support::legacy::{realistic, LegacyState};

    use super::*;

    /// Our schema brought up to date, as an import stores it.
    fn current(sql: &str) -> Vec<u8> {
        let mut db = RusqliteDb::from_bytes(&test_support::sqlite_file_with(sql)).unwrap();
        upgrade(&db).unwrap();
        db.to_bytes().unwrap()
    }

    #[test]
    fn a_current_file_is_served_as_is_and_moves() {
        let verdict = check_file(&current("INSERT INTO games (name) VALUES ('g');")).unwrap();
        assert_eq!(verdict, Verdict::of(ScanOutcome::AsIs, None));
    }

    #[test]
    fn a_legacy_file_is_upgraded_and_says_with_what() {
        let verdict = check_file(&realistic(LegacyState::december(), 20, 1)).unwrap();
        assert_eq!(verdict.outcome, ScanOutcome::Upgraded);
        let detail = verdict.detail.unwrap();
        assert!(detail.contains("working_clips.exported_at"), "{detail}");
        assert!(detail.contains("0001_init"), "{detail}");
        assert_eq!(verdict.problems, []);

        let verdict = check_file(&realistic(LegacyState::ERA_FRESH, 20, 1)).unwrap();
        assert_eq!(verdict.outcome, ScanOutcome::Upgraded);
        assert!(!verdict.detail.unwrap().contains("adds the columns"));
    }

    #[test]
    fn refusals_name_their_reason() {
        for (name, file) in test_support::refused_databases() {
            let verdict = check_file(&file).unwrap();
            assert_eq!(verdict.outcome, ScanOutcome::Refused, "{name}");
            let reason = verdict.detail.unwrap();
            let (starts, names) = match name {
                "text_duration" => ("incompatible schema: ", "'video_duration'"),
                "extra_not_null" => ("incompatible schema: ", "'owner'"),
                "not_sqlite" => ("not SQLite: ", ""),
                _ => ("damaged: ", ""),
            };
            assert!(
                reason.starts_with(starts) && reason.contains(names),
                "{name}: {reason}"
            );
        }
    }

    #[test]
    fn a_served_file_lists_what_would_stop_its_move() {
        let file = current(
            "INSERT INTO games (id, name) VALUES (1, 'g');
             INSERT INTO raw_clips (id, filename, rating, end_time, game_id)
                 VALUES (8, '', 9223372036854775807, 2.5, 1);",
        );
        let verdict = check_file(&file).unwrap();
        assert_eq!(verdict.outcome, ScanOutcome::AsIs);
        let problem = &verdict.problems[0];
        assert_eq!(
            (problem.table.as_deref(), problem.column.as_deref()),
            (Some("raw_clips"), Some("rating"))
        );
    }
}
