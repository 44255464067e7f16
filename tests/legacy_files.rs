//! The existing app's files, put into R2 exactly as the app left them (its own statements, no
//! version metadata), in workerd: served on the R2 path after one upgrade that is stored as a
//! write, moved to the object and back with every row and every column the app no longer uses
//! intact, and bit-exact through every move.

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use rusqlite::Connection;
use serde_json::{json, Value};
use test_support::generate::{contents, first_difference, proptest_config, Contents};
use test_support::legacy::{realistic, LegacyState, Lineage};
use test_support::TestWorker;

/// The states a test seeds: both lineages, the December file before any upgrade, the December
/// file as its last version left it, one half way, and the oldest file upgraded to the end.
fn states() -> Vec<LegacyState> {
    let bare = LegacyState {
        lineage: Lineage::Oldest,
        upgrades: 0,
    };
    let half_way = LegacyState {
        lineage: Lineage::Oldest,
        upgrades: LegacyState::oldest_upgraded().upgrades / 2,
    };
    vec![
        LegacyState::ERA_FRESH,
        bare,
        LegacyState::december(),
        half_way,
        LegacyState::oldest_upgraded(),
    ]
}

/// The read routes a frontend calls on opening the app, and on opening project, game and clip 1.
const READS: &[&str] = &[
    "/api/projects",
    "/api/projects/1",
    "/api/projects/1/working-video",
    "/api/clips/projects/1/clips",
    "/api/export/projects/1/overlay-data",
    "/api/exports/project/1",
    "/api/clips/raw",
    "/api/clips/raw/1",
    "/api/games",
    "/api/games/1",
    "/api/downloads",
    "/api/downloads/count",
    "/api/exports/recent",
];

/// Every read route's status and body, and the path that served them.
fn read_everything(worker: &TestWorker, user: &str, path: &str) -> Vec<(u16, Value)> {
    READS
        .iter()
        .map(|route| {
            let response = worker.get(route, Some(user));
            assert_eq!(response.header("X-Data-Path"), Some(path), "{route}");
            let body = response.json();
            (response.status, body)
        })
        .collect()
}

fn open(file: &[u8]) -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, file, file.len(), true)
        .unwrap();
    conn
}

/// Every row of every table of `file` (by rowid), with the values of its columns in `file`:
/// what must still be there, value for value, in a later file. A clip's `exported_at` that was
/// NULL is left out: the app's data step stamps clips exported under the old `progress` flag.
fn rows_of(file: &[u8]) -> Vec<(String, i64, Vec<String>)> {
    let conn = open(file);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut rows = Vec::new();
    for table in tables {
        let columns: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info(\"{table}\")"))
            .unwrap()
            .query_map([], |row| row.get(1))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let values = columns
            .iter()
            .map(|column| format!("'{column}=' || quote(\"{column}\")"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut statement = conn
            .prepare(&format!("SELECT rowid, {values} FROM \"{table}\""))
            .unwrap();
        let found = statement
            .query_map([], |row| {
                let values: Vec<String> = (1..=columns.len())
                    .map(|i| row.get::<_, String>(i))
                    .collect::<Result<_, _>>()?;
                Ok((row.get::<_, i64>(0)?, values))
            })
            .unwrap()
            .map(Result::unwrap);
        for (rowid, values) in found {
            let values = values
                .into_iter()
                .filter(|value| value != "exported_at=NULL")
                .collect();
            rows.push((table.clone(), rowid, values));
        }
    }
    rows
}

/// The rows of `original` that `later` lacks or holds otherwise.
fn missing_rows(original: &[u8], later: &[u8]) -> Vec<String> {
    let later: Vec<(String, i64, Vec<String>)> = rows_of(later);
    rows_of(original)
        .into_iter()
        .filter(|(table, _, _)| table != "data_version")
        .filter(|(table, rowid, values)| {
            !later.iter().any(|(t, r, v)| {
                t == table && r == rowid && values.iter().all(|value| v.contains(value))
            })
        })
        .map(|(table, rowid, values)| format!("{table} rowid {rowid}: {values:?}"))
        .collect()
}

fn admin_move(worker: &TestWorker, user: &str, action: &str, outcome: &str) {
    let report = worker.admin_ok("POST", &format!("/admin/users/{user}/{action}"), vec![]);
    assert_eq!(report["outcome"], outcome, "{action} {user}: {report}");
}

#[test]
fn files_the_app_left_are_served_upgraded_once_moved_and_rolled_back_with_every_row() {
    let worker = TestWorker::start_with_admin(&[]);
    for (i, state) in states().into_iter().enumerate() {
        let user = format!("legacy{i}");
        let name = state.name();
        let original = realistic(state, 30, 24 + i as u64);
        worker.put_r2(&test_support::database_key(&user), &original);

        // The first request, a read, brings the file up to date and stores it as version 1.
        let on_r2 = read_everything(&worker, &user, "r2");
        let statuses: Vec<u16> = on_r2.iter().map(|(status, _)| *status).collect();
        // Project 1 may have no working video yet: that one may be 404, nothing else.
        let served = READS.iter().zip(&statuses).all(|(route, status)| {
            *status == 200 || (*status == 404 && route.ends_with("working-video"))
        });
        assert!(served, "{name}: {statuses:?}");
        let stored = worker.get_r2(&test_support::database_key(&user)).unwrap();
        assert_ne!(stored, original, "{name}: the upgrade was stored");
        let status = worker.admin_ok("GET", &format!("/admin/users/{user}"), vec![]);
        assert_eq!(status["r2"]["version"], 1, "{name}: {status}");
        assert_eq!(
            missing_rows(&original, &stored),
            Vec::<String>::new(),
            "{name}"
        );
        // Once: the next reads find the file up to date and store nothing.
        let again = worker.get("/api/projects", Some(&user));
        assert_eq!(
            (again.db_version(), again.header("X-DB-Cache")),
            (1, Some("hit"))
        );
        assert_eq!(
            worker.get_r2(&test_support::database_key(&user)).unwrap(),
            stored,
            "{name}"
        );

        let written_on_r2 = worker.create_project(&user, "écrit sur R2");
        assert_eq!(written_on_r2.status, 200, "{name}");
        admin_move(&worker, &user, "migrate", "migrated");
        // The object answers every read as R2 did, but for the new project.
        let projects = worker.get("/api/projects", Some(&user));
        assert_eq!(projects.header("X-Data-Path"), Some("do"));
        let on_object = read_everything(&worker, &user, "do");
        for ((route, before), after) in READS.iter().zip(&on_r2).zip(&on_object) {
            if !route.starts_with("/api/projects") {
                assert_eq!(before, after, "{name}: {route} on R2, then on the object");
            }
        }
        let written_on_object = worker.create_project(&user, "écrit dans l'objet");
        assert_eq!(written_on_object.status, 200, "{name}");
        admin_move(&worker, &user, "rollback", "rolled_back");

        let last = worker.get_r2(&test_support::database_key(&user)).unwrap();
        assert_eq!(
            missing_rows(&original, &last),
            Vec::<String>::new(),
            "{name}"
        );
        assert_eq!(
            worker
                .project_names(&user)
                .iter()
                .filter(|n| n.starts_with("écrit"))
                .count(),
            2,
            "{name}: both writes kept"
        );
        // The columns the app no longer uses are still there, with their values.
        if state.lineage == Lineage::Oldest {
            let conn = open(&last);
            let obsolete: i64 = conn
                .query_row(
                    "SELECT COUNT(progress) + COUNT(transform_data) FROM working_clips",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert!(obsolete > 0, "{name}");
        }
    }
}

/// What a file holds, less the version the Worker records in it on every stored write.
fn data_of(file: &[u8]) -> Contents {
    let mut held = contents(file);
    held.tables.retain(|table| table.name != "data_version");
    held
}

#[test]
fn generated_legacy_files_migrate_roll_back_and_export_bit_exact() {
    let worker = TestWorker::start_with_admin(&[]);
    let users = std::cell::Cell::new(0);
    let strategy = (any::<u64>(), 0..states().len(), 1usize..40);
    let result = TestRunner::new(proptest_config(6)).run(&strategy, |(seed, state, clips)| {
        users.set(users.get() + 1);
        let user = format!("generated{}", users.get());
        let state = states()[state];
        worker.put_r2(
            &test_support::database_key(&user),
            &realistic(state, clips, seed),
        );
        // The file as its first use leaves it in R2: what every move must keep.
        assert_eq!(worker.get("/api/games", Some(&user)).status, 200);
        let expected = data_of(&worker.get_r2(&test_support::database_key(&user)).unwrap());
        for (action, outcome) in [("migrate", "migrated"), ("rollback", "rolled_back")] {
            admin_move(&worker, &user, action, outcome);
            let exported = worker.admin("GET", &format!("/admin/users/{user}/database"), vec![]);
            prop_assert_eq!(exported.status, 200);
            if let Some(difference) = first_difference(&expected, &data_of(&exported.body)) {
                return Err(TestCaseError::fail(format!(
                    "{} after {action}: {difference}",
                    state.name()
                )));
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn an_import_of_a_file_the_app_left_is_upgraded_and_keeps_the_file_it_replaces() {
    let worker = TestWorker::start_with_admin(&[]);
    let first = realistic(LegacyState::december(), 10, 1);
    worker.put_r2(&test_support::database_key("imported"), &first);
    let second = realistic(LegacyState::ERA_FRESH, 12, 2);
    let report = worker.admin_ok("PUT", "/admin/users/imported/database", second.clone());
    assert_eq!(report["version"], 1);
    assert_eq!(
        report["backup"],
        json!(test_support::backup_key("imported", 0))
    );
    assert!(report["upgrade"]
        .as_str()
        .unwrap()
        .contains("0002_data_version"));
    assert_eq!(
        worker
            .get_r2(&test_support::backup_key("imported", 0))
            .unwrap(),
        first
    );
    let stored = worker
        .get_r2(&test_support::database_key("imported"))
        .unwrap();
    assert_eq!(missing_rows(&second, &stored), Vec::<String>::new());
    // Stored up to date: the next read stores nothing more.
    let read = worker.get("/api/games", Some("imported"));
    assert_eq!((read.status, read.db_version()), (200, 1));
    assert_eq!(
        worker
            .get_r2(&test_support::database_key("imported"))
            .unwrap(),
        stored
    );
}
