//! Applies the numbered migrations in `schema/` to a user's database, in order, once each, and
//! checks that a database's app tables have the shape the migrations give them.
//!
//! What is applied is recorded in [`MIGRATIONS_TABLE`], a table of our own: Durable Objects
//! refuse `PRAGMA user_version`, and `_cf_`-prefixed names are reserved. A database created by
//! the existing app has the tables but no record; `0001_init.sql` is written with
//! `IF NOT EXISTS` throughout, so running it there adopts the database without touching a row.
//! That is also why [`check_shape`] exists: `IF NOT EXISTS` keeps a table of the same name
//! whatever its columns, and the handlers' statements would then fail on it, or worse, store
//! values in a column of another type.

use std::fmt;

use crate::db::{app_upgrade, Db, DbError, Row, SqlValue};

/// The table that records which migrations have been applied.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

/// Every migration, in order. Files are never edited after they ship; new ones are appended.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../schema/0001_init.sql"),
    ),
    (
        2,
        "0002_data_version",
        include_str!("../../../schema/0002_data_version.sql"),
    ),
];

/// Brings `db` up to the latest schema, all pending migrations in one transaction. Returns how
/// many it applied, so that callers know whether the database changed (on the R2 path that is a
/// write to upload).
pub fn apply_migrations(db: &impl Db) -> Result<usize, DbError> {
    db.transaction(|| apply_pending(db))
        .map(|applied| applied.len())
}

/// Why a database from outside could not be brought up to date.
#[derive(Debug)]
pub enum UpgradeError {
    /// A statement failed for another reason than the file.
    Db(DbError),
    /// Its app tables do not have the app's shape, or the migrations fail on it: why.
    Incompatible(String),
}

/// What [`upgrade`] did to a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upgrade {
    /// Columns the existing app's own upgrade added ([`app_upgrade`]), as `table.column`.
    pub columns: Vec<String>,
    /// Tables the file lacked and the migrations created.
    pub tables: Vec<String>,
    /// The migrations applied, by name.
    pub migrations: Vec<&'static str>,
}

impl Upgrade {
    /// Whether the file changed: it must then be stored before it is the file in R2.
    pub fn changed(&self) -> bool {
        !(self.columns.is_empty() && self.migrations.is_empty())
    }
}

impl fmt::Display for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.changed() {
            return f.write_str("nothing to upgrade");
        }
        let mut parts = Vec::new();
        if !self.columns.is_empty() {
            parts.push(format!("adds the columns {}", self.columns.join(", ")));
        }
        if !self.tables.is_empty() {
            parts.push(format!("creates the tables {}", self.tables.join(", ")));
        }
        parts.push(format!("applies {}", self.migrations.join(", ")));
        f.write_str(&parts.join("; "))
    }
}

/// Brings a database from outside (an R2 download, an import, the source of a move) up to
/// date, as the existing app would have on its next start and then as our migrations do: the
/// app's missing columns and data steps ([`app_upgrade`]), then the pending migrations (which
/// create missing tables and indexes), all in one transaction; then checks that it has the
/// app's shape ([`check_shape`]). Pure: the R2 path, the admin API and the native migrator all
/// call it. A refused file may be left half upgraded: its callers drop it.
pub fn upgrade(db: &impl Db) -> Result<Upgrade, UpgradeError> {
    let before = tables(db).map_err(UpgradeError::Db)?;
    let applied = db.transaction(|| {
        let columns = app_upgrade::add_missing_columns(db)?;
        let migrations = apply_pending(db)?;
        Ok::<_, DbError>((columns, migrations))
    });
    let fresh = crate::db::rusqlite_db::RusqliteDb::empty().map_err(UpgradeError::Db)?;
    apply_migrations(&fresh).map_err(UpgradeError::Db)?;
    let differences: Vec<Difference> = match check_shape(db, &fresh) {
        Ok(()) => Vec::new(),
        Err(ShapeError::Db(err)) => return Err(UpgradeError::Db(err)),
        // Migrations that failed were rolled back: the tables they would add are not the fault.
        Err(ShapeError::Differs(found)) => found
            .into_iter()
            .filter(|difference| applied.is_ok() || difference.column.is_some())
            .collect(),
    };
    match applied {
        _ if !differences.is_empty() => {
            let words: Vec<String> = differences.iter().map(ToString::to_string).collect();
            Err(UpgradeError::Incompatible(words.join("; ")))
        }
        Ok((columns, migrations)) => {
            let after = tables(db).map_err(UpgradeError::Db)?;
            Ok(Upgrade {
                columns,
                tables: after
                    .into_iter()
                    .filter(|table| !before.contains(table) && table != MIGRATIONS_TABLE)
                    .collect(),
                migrations,
            })
        }
        // They apply to any database of the app's shape (a fresh one above): the file is why.
        Err(err) => Err(UpgradeError::Incompatible(format!(
            "the app's migrations fail on it: {err}"
        ))),
    }
}

/// Applies the pending migrations (inside the caller's transaction); returns their names.
fn apply_pending(db: &impl Db) -> Result<Vec<&'static str>, DbError> {
    db.execute_script(&format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        )"
    ))?;
    let applied = db
        .query_value::<i64>(
            &format!("SELECT COALESCE(MAX(version), 0) FROM {MIGRATIONS_TABLE}"),
            &[],
        )?
        .unwrap_or(0);

    let pending: Vec<_> = MIGRATIONS.iter().filter(|(v, _, _)| *v > applied).collect();
    for (version, name, sql) in &pending {
        db.execute_script(sql)
            .map_err(|err| err.context(&format!("migration {name}")))?;
        db.execute(
            &format!("INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (?, ?)"),
            &[SqlValue::Integer(*version), SqlValue::from(*name)],
        )?;
    }
    Ok(pending.iter().map(|(_, name, _)| *name).collect())
}

/// One way a database's app table differs from the app's schema, naming table and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub table: String,
    /// `None` when the whole table is missing.
    pub column: Option<String>,
    pub problem: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(
                f,
                "table '{}', column '{column}': {}",
                self.table, self.problem
            ),
            None => write!(f, "table '{}': {}", self.table, self.problem),
        }
    }
}

/// Why [`check_shape`] refused a database.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeError {
    /// The app tables differ from the app's schema: every difference found.
    Differs(Vec<Difference>),
    /// Reading the schema failed.
    Db(DbError),
}

impl From<DbError> for ShapeError {
    fn from(err: DbError) -> Self {
        ShapeError::Db(err)
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Differs(differences) => {
                let words: Vec<String> = differences.iter().map(ToString::to_string).collect();
                f.write_str(&words.join("; "))
            }
            ShapeError::Db(err) => write!(f, "reading the schema failed: {err}"),
        }
    }
}

/// A column as `PRAGMA table_info` describes it, reduced to what the handlers' statements
/// depend on.
#[derive(Debug)]
struct Column {
    name: String,
    declared: String,
    not_null: bool,
    has_default: bool,
    /// Its position in the primary key; 0 when not part of it.
    key: i64,
}

impl Column {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Column {
            name: row.get(1)?,
            declared: row.get::<Option<String>>(2)?.unwrap_or_default(),
            not_null: row.get::<i64>(3)? != 0,
            // `DEFAULT NULL` is what no DEFAULT clause means: the app's `last_opened_at` has
            // none, ours says `DEFAULT NULL`, and an insert that leaves either out stores NULL.
            has_default: row
                .get::<Option<String>>(4)?
                .is_some_and(|default| !default.trim().eq_ignore_ascii_case("NULL")),
            key: row.get(5)?,
        })
    }

    /// SQLite's type affinity of the declared type (datatype3.html, section 3.1): what a value
    /// stored in the column becomes.
    fn affinity(&self) -> &'static str {
        let declared = self.declared.to_ascii_uppercase();
        if declared.contains("INT") {
            "INTEGER"
        } else if ["CHAR", "CLOB", "TEXT"]
            .iter()
            .any(|t| declared.contains(t))
        {
            "TEXT"
        } else if declared.is_empty() || declared.contains("BLOB") {
            "BLOB"
        } else if ["REAL", "FLOA", "DOUB"]
            .iter()
            .any(|t| declared.contains(t))
        {
            "REAL"
        } else {
            "NUMERIC"
        }
    }

    /// What in `self` (the database's column) breaks statements written for `app` (the app's
    /// column of the same name), if anything.
    fn problem_against(&self, app: &Column) -> Option<String> {
        if self.key != app.key {
            return Some(match (self.key, app.key) {
                (0, _) => "not part of the primary key, as the app needs".to_owned(),
                (_, 0) => "part of the primary key, which the app's is not".to_owned(),
                _ => "at another position in the primary key".to_owned(),
            });
        }
        // `INTEGER PRIMARY KEY`, spelled so, makes the column the rowid: ids are then assigned.
        // Any other key only needs the same affinity, checked below.
        let rowid = |column: &Column| column.declared.eq_ignore_ascii_case("INTEGER");
        if app.key > 0 && rowid(app) && !rowid(self) {
            return Some(format!(
                "a primary key declared {:?}, where the app's is {:?}",
                self.declared, app.declared
            ));
        }
        if self.affinity() != app.affinity() {
            return Some(format!(
                "declared {:?} ({} affinity), where the app's is {:?} ({} affinity)",
                self.declared,
                self.affinity(),
                app.declared,
                app.affinity()
            ));
        }
        if self.not_null && !app.not_null {
            return Some("NOT NULL, where the app may leave it empty".to_owned());
        }
        if app.has_default && !self.has_default {
            return Some("no default value, where the app's inserts rely on one".to_owned());
        }
        None
    }
}

/// The tables (not views) of `db`, SQLite's own left out.
fn tables(db: &impl Db) -> Result<Vec<String>, DbError> {
    db.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         ORDER BY name",
        &[],
    )?
    .iter()
    .map(|row| row.get(0))
    .collect()
}

fn columns(db: &impl Db, table: &str) -> Result<Vec<Column>, DbError> {
    // Table names come from the app's own migrations (plain identifiers), never from input.
    db.query(&format!("PRAGMA table_info(\"{table}\")"), &[])?
        .iter()
        .map(Column::from_row)
        .collect()
}

/// Checks that every app table of `db` has the shape it has in `fresh`, a database with nothing
/// but the migrations applied: each of the app's tables exists, has each of the app's columns
/// with the same type affinity (however spelled), the same place in the primary key (an
/// `INTEGER PRIMARY KEY` spelled so, being the rowid), no NOT NULL where the app's allows NULL,
/// a default wherever the app's has one (`DEFAULT NULL` is none); and has no
/// extra column that would make the app's inserts fail (NOT NULL without a default, or in the
/// key). Other tables, extra nullable columns, indexes, triggers and row data are not looked at.
/// Each refusal is a statement of the handlers' that would fail or store another type: the
/// tests show the statement.
pub fn check_shape(db: &impl Db, fresh: &impl Db) -> Result<(), ShapeError> {
    let present = tables(db)?;
    let mut differences = Vec::new();
    for table in tables(fresh)? {
        let difference = |column: Option<&str>, problem: String| Difference {
            table: table.clone(),
            column: column.map(str::to_owned),
            problem,
        };
        if !present.contains(&table) {
            differences.push(difference(None, "missing".to_owned()));
            continue;
        }
        let ours = columns(db, &table)?;
        let apps = columns(fresh, &table)?;
        for app in &apps {
            match ours
                .iter()
                .find(|column| column.name.eq_ignore_ascii_case(&app.name))
            {
                None => differences.push(difference(Some(&app.name), "missing".to_owned())),
                Some(column) => {
                    if let Some(problem) = column.problem_against(app) {
                        differences.push(difference(Some(&app.name), problem));
                    }
                }
            }
        }
        for extra in ours.iter().filter(|column| {
            !apps
                .iter()
                .any(|app| app.name.eq_ignore_ascii_case(&column.name))
        }) {
            let problem = if extra.key > 0 {
                "an extra column in the primary key: the app's inserts would fail"
            } else if extra.not_null && !extra.has_default {
                "an extra column, NOT NULL without a default: the app's inserts would fail"
            } else {
                continue;
            };
            differences.push(difference(Some(&extra.name), problem.to_owned()));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(ShapeError::Differs(differences))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::rusqlite_db::RusqliteDb;

    /// A database with nothing but the migrations applied.
    fn fresh() -> RusqliteDb {
        let db = RusqliteDb::empty().unwrap();
        apply_migrations(&db).unwrap();
        db
    }

    /// A database whose tables `sql` made first; the migrations then add what is missing.
    fn made_with(sql: &str) -> RusqliteDb {
        let db = RusqliteDb::empty().unwrap();
        db.execute_script(sql).unwrap();
        apply_migrations(&db).unwrap();
        db
    }

    fn differences(db: &RusqliteDb) -> Vec<String> {
        match check_shape(db, &fresh()) {
            Ok(()) => vec![],
            Err(ShapeError::Differs(found)) => found.iter().map(ToString::to_string).collect(),
            Err(err) => panic!("{err}"),
        }
    }

    /// `0001_init.sql`'s `table`, with `change` applied to its text; the migrations add the rest.
    fn table_with(table: &str, change: impl Fn(&str) -> String) -> RusqliteDb {
        let init = include_str!("../../../schema/0001_init.sql");
        let start = init
            .find(&format!("CREATE TABLE IF NOT EXISTS {table} "))
            .unwrap();
        let end = start + init[start..].find(");").unwrap() + 2;
        made_with(&change(&init[start..end]))
    }

    fn games_with(change: impl Fn(&str) -> String) -> RusqliteDb {
        table_with("games", change)
    }

    #[test]
    fn a_fresh_and_an_adopted_existing_app_database_have_the_apps_shape() {
        assert_eq!(differences(&fresh()), Vec::<String>::new());
        let existing = made_with(include_str!("../../../schema/0001_init.sql"));
        assert_eq!(differences(&existing), Vec::<String>::new());
        // Extra tables and extra nullable columns are the database's own business.
        let extended = games_with(|sql| {
            sql.replace("tournament_name TEXT", "tournament_name TEXT, venue TEXT")
        });
        extended.execute_script("CREATE TABLE notes (x)").unwrap();
        assert_eq!(differences(&extended), Vec::<String>::new());
        // Indexes and triggers of its own, too.
        extended
            .execute_script(
                "CREATE INDEX by_venue ON games(venue);
                 CREATE TRIGGER noted AFTER INSERT ON games BEGIN INSERT INTO notes VALUES (1); END;",
            )
            .unwrap();
        assert_eq!(differences(&extended), Vec::<String>::new());
    }

    #[test]
    fn no_default_clause_and_default_null_are_the_same_and_so_are_spellings_of_an_affinity() {
        // The January app's `last_opened_at TIMESTAMP` has no DEFAULT clause; ours DEFAULT NULL.
        let db = table_with("projects", |sql| {
            sql.replace(
                "last_opened_at TIMESTAMP DEFAULT NULL",
                "last_opened_at TIMESTAMP",
            )
        });
        assert_eq!(differences(&db), Vec::<String>::new());
        let db = table_with("working_clips", |sql| {
            sql.replace(
                "exported_at TEXT DEFAULT NULL",
                "exported_at VARCHAR(32) default null",
            )
        });
        assert_eq!(differences(&db), Vec::<String>::new());
        // A text key spelled another way is still a text key; only `INTEGER PRIMARY KEY` is
        // the rowid.
        let db = table_with("export_jobs", |sql| {
            sql.replace("id TEXT PRIMARY KEY", "id VARCHAR(64) PRIMARY KEY")
        });
        assert_eq!(differences(&db), Vec::<String>::new());
        let db = games_with(|sql| {
            sql.replace("video_duration REAL", "video_duration DOUBLE PRECISION")
                .replace("video_width INTEGER", "video_width BIGINT")
                .replace("id INTEGER PRIMARY KEY", "id integer PRIMARY KEY")
        });
        assert_eq!(differences(&db), Vec::<String>::new());
    }

    /// A file refused, and the handlers' statement that shows why: it fails, or stores what the
    /// handlers then cannot read.
    struct Refusal {
        db: RusqliteDb,
        named: &'static str,
        statement: &'static str,
    }

    #[test]
    fn every_refusal_names_table_and_column_and_is_a_statement_that_would_break() {
        let refusals = [
            // games.rs (G2 create): a REAL stored into TEXT affinity comes back as text.
            Refusal {
                db: games_with(|sql| sql.replace("video_duration REAL", "video_duration TEXT")),
                named: "table 'games', column 'video_duration': declared \"TEXT\"",
                statement: "INSERT INTO games (name, video_duration) VALUES ('g', 12.5)",
            },
            // games.rs (G2 create) stores NULL where the game has no type.
            Refusal {
                db: games_with(|sql| {
                    sql.replace("game_type TEXT", "game_type TEXT NOT NULL DEFAULT ''")
                }),
                named: "table 'games', column 'game_type': NOT NULL",
                statement: "INSERT INTO games (name, game_type) VALUES ('g', NULL)",
            },
            // clips.rs (a project's working video) leaves `version` to its default.
            Refusal {
                db: table_with("working_videos", |sql| {
                    sql.replace(
                        "version INTEGER NOT NULL DEFAULT 1",
                        "version INTEGER NOT NULL",
                    )
                }),
                named: "table 'working_videos', column 'version': no default value",
                statement: "INSERT INTO working_videos (project_id, filename) VALUES (1, 'w.mp4')",
            },
            // games.rs (G2 create) takes the id SQLite assigns: `INT PRIMARY KEY` assigns none.
            Refusal {
                db: games_with(|sql| {
                    sql.replace("id INTEGER PRIMARY KEY AUTOINCREMENT", "id INT PRIMARY KEY")
                }),
                named: "table 'games', column 'id': a primary key declared",
                statement: "INSERT INTO games (name) VALUES ('g')",
            },
            // An extra column the app's inserts know nothing of, which must be given.
            Refusal {
                db: games_with(|sql| {
                    sql.replace(
                        "tournament_name TEXT",
                        "tournament_name TEXT, owner TEXT NOT NULL",
                    )
                }),
                named: "table 'games', column 'owner': an extra column, NOT NULL",
                statement: "INSERT INTO games (name) VALUES ('g')",
            },
            // A table of the app's name without one of the app's first columns.
            Refusal {
                db: games_with(|sql| sql.replace("    name TEXT NOT NULL,\n", "")),
                named: "table 'games', column 'name': missing",
                statement: "INSERT INTO games (name) VALUES ('g')",
            },
        ];
        for Refusal {
            db,
            named,
            statement,
        } in refusals
        {
            let found = differences(&db);
            assert!(
                found.len() == 1 && found[0].starts_with(named),
                "expected {named:?}, found {found:?}"
            );
            // The same statement on a fresh file stores a row whose every value reads back as
            // the app declared it; on the refused file it fails, or it does not.
            let fresh = fresh();
            fresh.execute(statement, &[]).unwrap();
            assert!(well_typed_games_row(&fresh), "{statement} on a fresh file");
            let broke = match db.execute(statement, &[]) {
                Err(_) => true,
                Ok(_) => !well_typed_games_row(&db),
            };
            assert!(broke, "{statement} works on a file refused for {named}");
        }
    }

    /// Whether the last row of `games` (if the statement wrote there) has an integer id and a
    /// real or NULL `video_duration`: what the handlers read back.
    fn well_typed_games_row(db: &RusqliteDb) -> bool {
        let row = db
            .query_row(
                "SELECT typeof(id), typeof(video_duration) FROM games ORDER BY rowid DESC LIMIT 1",
                &[],
            )
            .unwrap();
        match row {
            None => true,
            Some(row) => {
                let id: String = row.get(0).unwrap();
                let duration: String = row.get(1).unwrap();
                id == "integer" && (duration == "real" || duration == "null")
            }
        }
    }

    #[test]
    fn a_missing_column_is_named_with_its_table() {
        let db = games_with(|sql| sql.replace("    opponent_name TEXT,\n", ""));
        assert_eq!(
            differences(&db),
            ["table 'games', column 'opponent_name': missing"]
        );
    }

    #[test]
    fn a_column_of_another_type_or_key_or_nullability_is_named() {
        let db = games_with(|sql| sql.replace("video_duration REAL", "video_duration TEXT"));
        assert_eq!(
            differences(&db),
            [
                "table 'games', column 'video_duration': declared \"TEXT\" (TEXT affinity), where \
              the app's is \"REAL\" (REAL affinity)"
            ]
        );
        // `INT PRIMARY KEY` is not the rowid: inserts would get no id.
        let db = games_with(|sql| {
            sql.replace("id INTEGER PRIMARY KEY AUTOINCREMENT", "id INT PRIMARY KEY")
        });
        assert_eq!(differences(&db).len(), 1, "{:?}", differences(&db));
        assert!(
            differences(&db)[0].starts_with("table 'games', column 'id': a primary key declared")
        );
        let db =
            games_with(|sql| sql.replace("game_type TEXT", "game_type TEXT NOT NULL DEFAULT ''"));
        assert_eq!(
            differences(&db),
            ["table 'games', column 'game_type': NOT NULL, where the app may leave it empty"]
        );
        let db =
            games_with(|sql| sql.replace("clip_count INTEGER DEFAULT 0", "clip_count INTEGER"));
        assert_eq!(
            differences(&db),
            ["table 'games', column 'clip_count': no default value, where the app's inserts rely on one"]
        );
    }

    #[test]
    fn an_extra_required_column_that_would_break_inserts_is_named() {
        let db = games_with(|sql| {
            sql.replace(
                "tournament_name TEXT",
                "tournament_name TEXT, owner TEXT NOT NULL",
            )
        });
        assert_eq!(
            differences(&db),
            [
                "table 'games', column 'owner': an extra column, NOT NULL without a default: the \
              app's inserts would fail"
            ]
        );
    }

    #[test]
    fn a_table_dropped_after_its_migration_was_recorded_is_missing() {
        let db = fresh();
        db.execute_script("DROP TABLE data_version").unwrap();
        assert_eq!(apply_migrations(&db).unwrap(), 0);
        assert_eq!(differences(&db), ["table 'data_version': missing"]);
    }

    /// Every value of `table` in rowid order, as SQLite quotes it; a time stamped by an upgrade
    /// a moment ago reads `stamped now` (two upgrades a second apart stamp different seconds).
    fn values(db: &RusqliteDb, table: &str, columns: &[String]) -> Vec<String> {
        let quoted: Vec<String> = columns
            .iter()
            .map(|column| {
                format!(
                    "CASE WHEN typeof(\"{column}\") = 'text' AND \"{column}\" >= \
                     datetime('now', '-1 minute') AND \"{column}\" < '2100' \
                     THEN 'stamped now' ELSE quote(\"{column}\") END"
                )
            })
            .collect();
        db.query(
            &format!(
                "SELECT {} FROM \"{table}\" ORDER BY rowid",
                quoted.join(" || '|' || ")
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0).unwrap())
        .collect()
    }

    proptest::proptest! {
        #![proptest_config(test_support::generate::proptest_config(12))]

        /// The claim of issue 24: whatever state the existing app left a user's file in, and
        /// whatever its rows, the upgrade accepts it, keeps every value (also in the columns the
        /// app no longer uses) and leaves what the app itself would have made of it, then has
        /// nothing more to do.
        #[test]
        fn every_file_the_app_ever_wrote_is_upgraded_as_the_app_would_keeping_every_value(
            seed in proptest::prelude::any::<u64>(),
            clips in 1usize..30,
        ) {
            use test_support::legacy::{upgraded_by_the_app, Contents, LegacyState};
            let contents = Contents::generate(seed, clips);
            for state in LegacyState::all() {
                let file = state.file(&contents);
                let ours = RusqliteDb::from_bytes(&file).unwrap();
                let done = upgrade(&ours).unwrap_or_else(|err| panic!("{}: {err:?}", state.name()));
                proptest::prop_assert!(done.changed(), "{}: adopted with our migrations", state.name());
                let apps = RusqliteDb::from_bytes(&upgraded_by_the_app(state, &file)).unwrap();
                for table in tables(&apps).unwrap() {
                    let names: Vec<String> =
                        columns(&apps, &table).unwrap().into_iter().map(|c| c.name).collect();
                    proptest::prop_assert_eq!(
                        values(&ours, &table, &names),
                        values(&apps, &table, &names),
                        "table {} of {}", table, state.name()
                    );
                }
                proptest::prop_assert!(!upgrade(&ours).unwrap().changed());
            }
        }
    }
}
