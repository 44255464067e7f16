//! The existing app's own upgrade of a user's file, done here once, on the file's first use.
//!
//! The existing app upgrades a file at the start of every request: `CREATE TABLE IF NOT EXISTS`
//! for each table, then every `ALTER TABLE ... ADD COLUMN` of its list (ignoring "duplicate
//! column"), its data steps, its indexes (`schema/legacy/README.md`). A user who stopped using it
//! early has a file without the columns added since; this module adds them exactly as the app's
//! statements would: the app's declared type and default (`last_opened_at TIMESTAMP` has no
//! DEFAULT clause), in the app's order, then the app's data steps. The tables and indexes the
//! file lacks are then created by our own `0001_init.sql` (`IF NOT EXISTS` throughout), which
//! [`super::schema::upgrade`] runs next.
//!
//! Nothing here drops, renames or rewrites a column, and only the data steps write rows (as the
//! app's did). Columns the app no longer uses (`working_clips.progress`, `transform_data`,
//! `games.annotations_filename`) stay with their values.

use crate::db::{Db, DbError, Row};

/// One `ALTER TABLE {table} ADD COLUMN {column} {declaration}` of the existing app's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// The declared type and default clause, as the app's statement spells them.
    pub declaration: &'static str,
}

const fn column(table: &'static str, column: &'static str, declaration: &'static str) -> AppColumn {
    AppColumn {
        table,
        column,
        declaration,
    }
}

/// Every column the existing app has ever added with `ALTER TABLE`, in the order its versions
/// added them (`schema/legacy/oldest-upgraded.sql`; a test holds the two together).
pub const APP_COLUMNS: &[AppColumn] = &[
    column("games", "video_duration", "REAL"),
    column("games", "video_width", "INTEGER"),
    column("games", "video_height", "INTEGER"),
    column("games", "video_size", "INTEGER"),
    column("final_videos", "duration", "REAL"),
    column("working_videos", "effect_type", "TEXT DEFAULT 'original'"),
    column("projects", "last_opened_at", "TIMESTAMP"),
    column("projects", "current_mode", "TEXT DEFAULT 'framing'"),
    column("working_clips", "exported_at", "TEXT DEFAULT NULL"),
    column("games", "clip_count", "INTEGER DEFAULT 0"),
    column("games", "brilliant_count", "INTEGER DEFAULT 0"),
    column("games", "good_count", "INTEGER DEFAULT 0"),
    column("games", "interesting_count", "INTEGER DEFAULT 0"),
    column("games", "mistake_count", "INTEGER DEFAULT 0"),
    column("games", "blunder_count", "INTEGER DEFAULT 0"),
    column("games", "aggregate_score", "INTEGER DEFAULT 0"),
    column("raw_clips", "default_highlight_regions", "TEXT"),
    column("raw_clips", "game_id", "INTEGER"),
    column("raw_clips", "auto_project_id", "INTEGER"),
    column("final_videos", "source_type", "TEXT"),
    column("final_videos", "game_id", "INTEGER"),
    column("final_videos", "name", "TEXT"),
    column("final_videos", "rating_counts", "TEXT"),
    column("games", "opponent_name", "TEXT"),
    column("games", "game_date", "TEXT"),
    column("games", "game_type", "TEXT"),
    column("games", "tournament_name", "TEXT"),
];

/// One of the app's data steps: `sql` runs when the file has every column of `needs`.
struct DataStep {
    table: &'static str,
    needs: &'static [&'static str],
    sql: &'static str,
}

/// The app's data steps. Before `exported_at`, a clip's export was the `progress` flag; the app
/// stamps the clips it marked (`WHERE exported_at IS NULL`: a step run twice changes nothing).
const DATA_STEPS: &[DataStep] = &[DataStep {
    table: "working_clips",
    needs: &["exported_at", "progress"],
    sql: "UPDATE working_clips SET exported_at = datetime('now') \
          WHERE exported_at IS NULL AND progress >= 1",
}];

/// Adds every column of [`APP_COLUMNS`] that a table of `db` lacks, in the app's order, and
/// then, if it added any, runs the app's data steps: what the app's next start would have done
/// to the file. A table the file does not have is left to the migrations, which create it whole.
/// Returns the columns added, as `table.column`. Idempotent: a file the app (or this) brought up
/// to date gets nothing.
pub fn add_missing_columns(db: &impl Db) -> Result<Vec<String>, DbError> {
    let mut added = Vec::new();
    for app in APP_COLUMNS {
        let Some(present) = column_names(db, app.table)? else {
            continue;
        };
        if present
            .iter()
            .any(|name| name.eq_ignore_ascii_case(app.column))
        {
            continue;
        }
        db.execute_script(&format!(
            "ALTER TABLE \"{}\" ADD COLUMN \"{}\" {}",
            app.table, app.column, app.declaration
        ))
        .map_err(|err| err.context(&format!("adding {}.{}", app.table, app.column)))?;
        added.push(format!("{}.{}", app.table, app.column));
    }
    if !added.is_empty() {
        for step in DATA_STEPS {
            let present = column_names(db, step.table)?.unwrap_or_default();
            let has = |needed: &&str| present.iter().any(|name| name.eq_ignore_ascii_case(needed));
            if step.needs.iter().all(has) {
                db.execute(step.sql, &[])?;
            }
        }
    }
    Ok(added)
}

/// The column names of `table`, or `None` when the file has no such table. Names come from
/// [`APP_COLUMNS`] and [`DATA_STEPS`], never from input.
fn column_names(db: &impl Db, table: &str) -> Result<Option<Vec<String>>, DbError> {
    let columns: Vec<String> = db
        .query(&format!("PRAGMA table_info(\"{table}\")"), &[])?
        .iter()
        .map(|row: &Row| row.get(1))
        .collect::<Result<_, _>>()?;
    Ok((!columns.is_empty()).then_some(columns))
}

#[cfg(test)]
mod tests {
    use test_support::legacy::{Contents, LegacyState, Lineage, ERA_FRESH_SQL, OLDEST_SQL};

    use super::*;
    use crate::db::rusqlite_db::RusqliteDb;

    /// `ALTER TABLE t ADD COLUMN c decl;` statements of a script, in order.
    fn alters(script: &str) -> Vec<(String, String, String)> {
        script
            .lines()
            .filter_map(|line| line.strip_prefix("ALTER TABLE "))
            .map(|rest| {
                let (table, rest) = rest.split_once(" ADD COLUMN ").unwrap();
                let (column, declaration) = rest.trim_end_matches(';').split_once(' ').unwrap();
                (table.into(), column.into(), declaration.into())
            })
            .collect()
    }

    fn listed() -> Vec<(String, String, String)> {
        APP_COLUMNS
            .iter()
            .map(|c| (c.table.into(), c.column.into(), c.declaration.into()))
            .collect()
    }

    #[test]
    fn the_list_is_the_apps_own_alter_statements_in_their_order() {
        assert_eq!(listed(), alters(OLDEST_SQL));
        // The January app runs the same list; on a file it created only some add a column.
        let fresh = alters(ERA_FRESH_SQL);
        let mut in_order = listed().into_iter();
        assert!(fresh
            .iter()
            .all(|alter| in_order.any(|listed| &listed == alter)));
    }

    fn file_of(state: LegacyState, contents: &Contents) -> RusqliteDb {
        RusqliteDb::from_bytes(&state.file(contents)).unwrap()
    }

    /// `PRAGMA table_info` of each table, as SQLite reports it.
    fn shape(db: &RusqliteDb) -> Vec<(String, Vec<String>)> {
        let tables: Vec<String> = db
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0).unwrap())
            .collect();
        tables
            .into_iter()
            .map(|table| {
                let columns = db
                    .query(&format!("PRAGMA table_info(\"{table}\")"), &[])
                    .unwrap()
                    .iter()
                    .map(|row| format!("{row:?}"))
                    .collect();
                (table, columns)
            })
            .collect()
    }

    #[test]
    fn every_dormant_file_gets_the_columns_of_one_the_app_upgraded_to_the_end() {
        let empty = Contents::default();
        let upgraded_to_the_end = shape(&file_of(LegacyState::oldest_upgraded(), &empty));
        let dormant = LegacyState::all()
            .into_iter()
            .filter(|state| state.lineage == Lineage::Oldest);
        for state in dormant {
            let db = file_of(state, &empty);
            add_missing_columns(&db).unwrap();
            // Each table the file has now has the app's columns, in the app's order; tables it
            // lacked entirely are the migrations' to create.
            for (table, columns) in shape(&db) {
                let app = upgraded_to_the_end.iter().find(|(name, _)| *name == table);
                assert_eq!(
                    Some(&columns),
                    app.map(|(_, columns)| columns),
                    "table {table} of {}",
                    state.name()
                );
            }
        }
        let end = file_of(LegacyState::oldest_upgraded(), &empty);
        assert_eq!(add_missing_columns(&end).unwrap(), Vec::<String>::new());
        // The January file has every column already, in its own order.
        let era_fresh = file_of(LegacyState::ERA_FRESH, &empty);
        assert_eq!(
            add_missing_columns(&era_fresh).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_clip_exported_under_the_old_progress_flag_is_stamped_once() {
        let db = file_of(LegacyState::december(), &Contents::default());
        db.execute_script(
            "INSERT INTO projects (name, aspect_ratio) VALUES ('p', '9:16');
             INSERT INTO working_clips (project_id, progress, transform_data) VALUES
                 (1, 0, 't0'), (1, 1, 't1'), (1, 2, NULL), (1, NULL, 't3');",
        )
        .unwrap();
        let added = add_missing_columns(&db).unwrap();
        assert!(added.contains(&"working_clips.exported_at".to_owned()));
        let rows = db
            .query(
                "SELECT id, transform_data, exported_at >= datetime('now', '-1 minute') \
                 FROM working_clips ORDER BY id",
                &[],
            )
            .unwrap();
        let stamped: Vec<i64> = rows
            .iter()
            .filter(|row| row.get::<Option<i64>>(2).unwrap() == Some(1))
            .map(|row| row.get(0).unwrap())
            .collect();
        assert_eq!(stamped, [2, 3]);
        // The obsolete columns keep their values.
        let kept: Vec<Option<String>> = rows.iter().map(|row| row.get(1).unwrap()).collect();
        assert_eq!(
            kept,
            [
                Some("t0".into()),
                Some("t1".into()),
                None,
                Some("t3".into())
            ]
        );
        // A file already up to date is not touched again.
        db.execute(
            "UPDATE working_clips SET exported_at = NULL WHERE id = 2",
            &[],
        )
        .unwrap();
        assert!(add_missing_columns(&db).unwrap().is_empty());
        let unstamped: Option<Option<String>> = db
            .query_value("SELECT exported_at FROM working_clips WHERE id = 2", &[])
            .unwrap();
        assert_eq!(unstamped, Some(None));
    }
}
