//! The object's own records: the tables beside the user's in its storage
//! ([`object_tables`]), what each holds, and every read and write of them. The object, the
//! decision where a request is served and the moves read them through here; nothing else names
//! these tables.
//!
//! - [`object_tables::STATE`]: the object's [`ObjectState`] and when it was entered;
//! - [`object_tables::FAILURE`]: the last failed move ([`Failure`]);
//! - [`object_tables::FAULT`]: faults a test armed, consumed when they fire;
//! - [`object_tables::MOVE`] and [`object_tables::MOVE_TABLES`]: a chunked move in progress
//!   ([`MoveRecord`]) and its cursor and digest state per table ([`TableProgress`]).
//!
//! They are never copied with the user's data ([`user_data_core::catalog::owner`] leaves them
//! out). Times are passed in (milliseconds since the epoch), so the records are plain SQL.

use admin_api::in_chunks::{ChunkedAction, Cursor};
use admin_api::{Action, Failure, ObjectState, Step};
use user_data_core::catalog::object_tables::{FAILURE, FAULT, MOVE, MOVE_TABLES, STATE};
use user_data_core::db::{Db, DbError, DbVersion};
use user_data_core::digest::TableHasher;
use user_data_core::row_batch::hex;

/// Creates the object's own tables if it has none.
pub fn prepare(db: &impl Db) -> Result<(), DbError> {
    db.execute_script(&format!(
        "CREATE TABLE IF NOT EXISTS {STATE} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            state TEXT NOT NULL,
            changed_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {FAILURE} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            action TEXT NOT NULL,
            step TEXT NOT NULL,
            reason TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {FAULT} (
            action TEXT NOT NULL,
            step TEXT NOT NULL,
            crash INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {MOVE} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            action TEXT NOT NULL,
            source_etag TEXT,
            source_size INTEGER NOT NULL,
            source_version INTEGER NOT NULL,
            version INTEGER NOT NULL,
            verified INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {MOVE_TABLES} (
            name TEXT PRIMARY KEY,
            after BLOB NOT NULL,
            done INTEGER NOT NULL,
            hasher BLOB NOT NULL
        )"
    ))
}

// --- state -----------------------------------------------------------------------------------

/// The object's state and how many milliseconds before `now_ms` it was entered (`New`, and
/// `u64::MAX`, for an object that never recorded one).
pub fn state(db: &impl Db, now_ms: u64) -> Result<(ObjectState, u64), DbError> {
    let row = db.query_row(
        &format!("SELECT state, changed_at FROM {STATE} WHERE id = 1"),
        &[],
    )?;
    let Some(row) = row else {
        return Ok((ObjectState::New, u64::MAX));
    };
    let state = ObjectState::parse(&row.get::<String>(0)?).unwrap_or(ObjectState::New);
    let changed_at = row.get::<i64>(1)? as u64;
    Ok((state, now_ms.saturating_sub(changed_at)))
}

pub fn set_state(db: &impl Db, state: ObjectState, now_ms: u64) -> Result<(), DbError> {
    db.execute(
        &format!(
            "INSERT INTO {STATE} (id, state, changed_at) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, changed_at = excluded.changed_at"
        ),
        &[state.as_str().into(), (now_ms as i64).into()],
    )?;
    Ok(())
}

/// Whether a chunked migrate is copying rows into the object: its user tables are then
/// incomplete, and nothing (not even the schema migrations) may touch them until it ends.
pub fn importing(db: &impl Db) -> Result<bool, DbError> {
    Ok(state(db, 0)?.0 == ObjectState::Importing)
}

// --- the last failed move --------------------------------------------------------------------

/// The last failed move, if any.
pub fn last_failure(db: &impl Db) -> Result<Option<Failure>, DbError> {
    let row = db.query_row(
        &format!("SELECT action, step, reason, at_ms FROM {FAILURE} WHERE id = 1"),
        &[],
    )?;
    row.map(|row| {
        Ok(Failure {
            action: if row.get::<String>(0)? == Action::Rollback.as_str() {
                Action::Rollback
            } else {
                Action::Migrate
            },
            // Only `record_failure` writes the step, so it parses; were it ever not to, the
            // requests that read this record must still be served.
            step: Step::parse(&row.get::<String>(1)?).unwrap_or(Step::Interrupted),
            reason: row.get(2)?,
            at_ms: row.get::<i64>(3)? as u64,
        })
    })
    .transpose()
}

/// The move that failed less than `retry_ms` before `now_ms`, if one did.
pub fn recently_failed(
    db: &impl Db,
    now_ms: u64,
    retry_ms: u64,
) -> Result<Option<Action>, DbError> {
    Ok(last_failure(db)?
        .filter(|failure| now_ms.saturating_sub(failure.at_ms) < retry_ms)
        .map(|failure| failure.action))
}

pub fn record_failure(db: &impl Db, failure: &Failure) -> Result<(), DbError> {
    db.execute(
        &format!(
            "INSERT INTO {FAILURE} (id, action, step, reason, at_ms) VALUES (1, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET action = excluded.action, step = excluded.step, \
             reason = excluded.reason, at_ms = excluded.at_ms"
        ),
        &[
            failure.action.as_str().into(),
            failure.step.as_str().into(),
            failure.reason.clone().into(),
            (failure.at_ms as i64).into(),
        ],
    )?;
    Ok(())
}

pub fn clear_failure(db: &impl Db) -> Result<(), DbError> {
    db.execute(&format!("DELETE FROM {FAILURE}"), &[])?;
    Ok(())
}

// --- faults a test armed ---------------------------------------------------------------------

/// Arms a fault: the next move of `action` that reaches `step` fails there (or crashes).
pub fn arm_fault(db: &impl Db, action: Action, step: Step, crash: bool) -> Result<(), DbError> {
    db.execute(
        &format!("INSERT INTO {FAULT} (action, step, crash) VALUES (?, ?, ?)"),
        &[action.as_str().into(), step.as_str().into(), crash.into()],
    )?;
    Ok(())
}

/// Consumes the fault armed for `action` at `step`, if there is one: whether it is a crash.
pub fn take_fault(db: &impl Db, action: Action, step: Step) -> Result<Option<bool>, DbError> {
    db.query_value(
        &format!("DELETE FROM {FAULT} WHERE action = ? AND step = ? RETURNING crash"),
        &[action.as_str().into(), step.as_str().into()],
    )
}

// --- a chunked move in progress --------------------------------------------------------------

/// The record of a chunked move.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRecord {
    pub action: ChunkedAction,
    /// Migrate: the R2 file being moved; rollback: the R2 copy being replaced.
    pub source_etag: Option<String>,
    pub source_size: u64,
    pub source_version: DbVersion,
    /// The version the destination gets.
    pub version: DbVersion,
    /// The object's digests equalled the migrator's.
    pub verified: bool,
}

/// One table's progress: the key of the last row, whether the table is read to its end
/// (exports), and the digest so far.
pub struct TableProgress {
    pub after: Vec<u8>,
    pub done: bool,
    pub hasher: TableHasher,
}

pub fn move_record(db: &impl Db) -> Result<Option<MoveRecord>, DbError> {
    let row = db.query_row(
        &format!(
            "SELECT action, source_etag, source_size, source_version, version, verified \
             FROM {MOVE} WHERE id = 1"
        ),
        &[],
    )?;
    row.map(|row| {
        Ok(MoveRecord {
            action: ChunkedAction::parse(&row.get::<String>(0)?)
                .ok_or_else(|| DbError::failed("an unknown chunked move action"))?,
            source_etag: row.get(1)?,
            source_size: row.get::<i64>(2)? as u64,
            source_version: DbVersion(row.get::<i64>(3)? as u64),
            version: DbVersion(row.get::<i64>(4)? as u64),
            verified: row.get::<bool>(5)?,
        })
    })
    .transpose()
}

/// Starts the record of a move, with no table moved yet (it replaces any other).
pub fn start_move(db: &impl Db, record: &MoveRecord) -> Result<(), DbError> {
    end_move(db)?;
    db.execute(
        &format!(
            "INSERT INTO {MOVE} (id, action, source_etag, source_size, source_version, \
             version, verified) VALUES (1, ?, ?, ?, ?, ?, ?)"
        ),
        &[
            record.action.as_str().into(),
            record.source_etag.clone().into(),
            (record.source_size as i64).into(),
            (record.source_version.0 as i64).into(),
            (record.version.0 as i64).into(),
            record.verified.into(),
        ],
    )?;
    Ok(())
}

/// Forgets the chunked move, if there is one.
pub fn end_move(db: &impl Db) -> Result<(), DbError> {
    db.execute(&format!("DELETE FROM {MOVE}"), &[])?;
    db.execute(&format!("DELETE FROM {MOVE_TABLES}"), &[])?;
    Ok(())
}

pub fn mark_verified(db: &impl Db) -> Result<(), DbError> {
    db.execute(&format!("UPDATE {MOVE} SET verified = 1"), &[])?;
    Ok(())
}

pub fn progress(db: &impl Db, table: &str) -> Result<Option<TableProgress>, DbError> {
    let row = db.query_row(
        &format!("SELECT after, done, hasher FROM {MOVE_TABLES} WHERE name = ?"),
        &[table.into()],
    )?;
    row.map(|row| {
        Ok(TableProgress {
            after: row.get(0)?,
            done: row.get(1)?,
            hasher: TableHasher::restore(&row.get::<Vec<u8>>(2)?)?,
        })
    })
    .transpose()
}

pub fn save_progress(db: &impl Db, table: &str, progress: &TableProgress) -> Result<(), DbError> {
    db.execute(
        &format!(
            "INSERT INTO {MOVE_TABLES} (name, after, done, hasher) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET after = excluded.after, done = excluded.done, \
             hasher = excluded.hasher"
        ),
        &[
            table.into(),
            progress.after.clone().into(),
            progress.done.into(),
            progress.hasher.save().into(),
        ],
    )?;
    Ok(())
}

/// Where each table's import stands.
pub fn cursors(db: &impl Db) -> Result<Vec<Cursor>, DbError> {
    db.query(&format!("SELECT name, after FROM {MOVE_TABLES}"), &[])?
        .iter()
        .map(|row| {
            Ok(Cursor {
                table: row.get(0)?,
                after: hex(&row.get::<Vec<u8>>(1)?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use user_data_core::db::rusqlite_db::RusqliteDb;

    use super::*;

    fn prepared() -> RusqliteDb {
        let db = RusqliteDb::empty().unwrap();
        prepare(&db).unwrap();
        prepare(&db).unwrap();
        db
    }

    #[test]
    fn an_object_without_a_state_is_new_since_forever_and_keeps_the_state_it_is_given() {
        let db = prepared();
        assert_eq!(state(&db, 5).unwrap(), (ObjectState::New, u64::MAX));
        set_state(&db, ObjectState::Importing, 1_000).unwrap();
        assert_eq!(state(&db, 1_250).unwrap(), (ObjectState::Importing, 250));
        assert!(importing(&db).unwrap());
        set_state(&db, ObjectState::Active, 2_000).unwrap();
        assert_eq!(state(&db, 2_000).unwrap(), (ObjectState::Active, 0));
        assert!(!importing(&db).unwrap());
    }

    #[test]
    fn a_failure_is_recent_only_within_the_retry_delay_and_clears() {
        let db = prepared();
        let failure = Failure {
            action: Action::Rollback,
            step: Step::CutOver,
            reason: "R2 failed".into(),
            at_ms: 10_000,
        };
        record_failure(&db, &failure).unwrap();
        assert_eq!(last_failure(&db).unwrap(), Some(failure));
        assert_eq!(
            recently_failed(&db, 10_999, 1_000).unwrap(),
            Some(Action::Rollback)
        );
        assert_eq!(recently_failed(&db, 11_000, 1_000).unwrap(), None);
        clear_failure(&db).unwrap();
        assert_eq!(last_failure(&db).unwrap(), None);
    }

    #[test]
    fn an_armed_fault_fires_once_at_its_own_action_and_step() {
        let db = prepared();
        arm_fault(&db, Action::Migrate, Step::Copy, true).unwrap();
        assert_eq!(take_fault(&db, Action::Rollback, Step::Copy).unwrap(), None);
        assert_eq!(
            take_fault(&db, Action::Migrate, Step::Verify).unwrap(),
            None
        );
        assert_eq!(
            take_fault(&db, Action::Migrate, Step::Copy).unwrap(),
            Some(true)
        );
        assert_eq!(take_fault(&db, Action::Migrate, Step::Copy).unwrap(), None);
    }

    #[test]
    fn a_move_record_and_its_cursors_round_trip_and_end_together() {
        let db = prepared();
        let record = MoveRecord {
            action: ChunkedAction::Rollback,
            source_etag: Some("\"e1\"".into()),
            source_size: 7 << 30,
            source_version: DbVersion(41),
            version: DbVersion(42),
            verified: false,
        };
        start_move(&db, &record).unwrap();
        assert_eq!(move_record(&db).unwrap(), Some(record.clone()));
        let mut hasher = TableHasher::default();
        hasher.page(&[]);
        save_progress(
            &db,
            "games",
            &TableProgress {
                after: vec![1, 2, 255],
                done: true,
                hasher,
            },
        )
        .unwrap();
        let saved = progress(&db, "games").unwrap().unwrap();
        assert_eq!((saved.after, saved.done), (vec![1, 2, 255], true));
        assert_eq!(cursors(&db).unwrap()[0].after, "0102ff");
        mark_verified(&db).unwrap();
        assert!(move_record(&db).unwrap().unwrap().verified);
        end_move(&db).unwrap();
        assert_eq!(move_record(&db).unwrap(), None);
        assert!(progress(&db, "games").unwrap().is_none());
    }
}
