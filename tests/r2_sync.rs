//! The R2-SQLite path in workerd: versions, write tracking, conflicts, and R2 as the source of
//! truth.

use serde_json::json;
use test_support::{sqlite_file_with, Options, TestWorker};

/// The version stored inside the database file that R2 holds.
fn version_inside(worker: &TestWorker, user: &str) -> i64 {
    let bytes = worker
        .get_r2(&test_support::database_key(user))
        .expect("the object exists");
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, bytes.as_slice(), bytes.len(), true)
        .unwrap();
    conn.query_row("SELECT version FROM data_version", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn version_goes_up_by_one_per_writing_request_and_reads_upload_nothing() {
    let worker = TestWorker::start();
    // No object yet: reads are empty and create nothing.
    let empty = worker.get("/api/projects", Some("vera"));
    assert_eq!((empty.json(), empty.db_version()), (json!([]), 0));
    assert_eq!(
        worker.get_r2(&test_support::database_key("vera")),
        None,
        "a read must not create the object"
    );

    assert_eq!(worker.create_project("vera", "one").db_version(), 1);
    let stored = worker.get_r2(&test_support::database_key("vera")).unwrap();
    for _ in 0..3 {
        let read = worker.get("/api/projects", Some("vera"));
        assert_eq!(read.db_version(), 1);
        // The database stored by the write is still R2's object: not downloaded nor parsed again.
        assert_eq!(read.header("X-DB-Cache"), Some("hit"));
    }
    assert_eq!(
        worker.get_r2(&test_support::database_key("vera")).unwrap(),
        stored,
        "reads upload nothing"
    );
    assert_eq!(worker.create_project("vera", "two").db_version(), 2);
    assert_eq!(version_inside(&worker, "vera"), 2);
    // A request that fails writes nothing either.
    let json = [("Content-Type", "application/json")];
    let bad = worker.request("POST", "/api/projects", Some("vera"), &json, b"{".to_vec());
    assert_eq!((bad.status, bad.db_version()), (422, 2));
    assert_eq!(worker.get("/api/projects", Some("vera")).db_version(), 2);
}

#[test]
fn a_request_that_changes_no_row_uploads_nothing_exports_active_included() {
    let worker = TestWorker::start();
    let project = "INSERT INTO projects (id, name, aspect_ratio) VALUES (1, 'p', '1:1');";
    let jobs =
        "INSERT INTO export_jobs (id, project_id, type, status, input_data, created_at) VALUES
        ('export_old', 1, 'framing', 'pending', '{}', datetime('now', '-1 hour')),
        ('export_new', 1, 'framing', 'pending', '{}', datetime('now'));";
    worker.put_r2(
        &test_support::database_key("ida"),
        &sqlite_file_with(project),
    );
    worker.put_r2(
        &test_support::database_key("jobs"),
        &sqlite_file_with(&format!("{project}{jobs}")),
    );
    // A first write stores each legacy file as version 1.
    for user in ["ida", "jobs"] {
        assert_eq!(worker.create_project(user, "w").db_version(), 1);
    }
    let active = |user: &str| {
        let response = worker.get("/api/exports/active", Some(user));
        assert_eq!(response.status, 200);
        let ids: Vec<String> = response.json()["exports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["job_id"].as_str().unwrap().to_owned())
            .collect();
        (ids, response.db_version())
    };

    // No job at all: nothing to time out, nothing uploaded.
    let stored = worker.get_r2(&test_support::database_key("ida")).unwrap();
    for _ in 0..2 {
        assert_eq!(active("ida"), (vec![], 1));
    }
    assert_eq!(
        worker.get_r2(&test_support::database_key("ida")).unwrap(),
        stored
    );

    // A job older than the timeout is timed out: that is a change, stored as version 2.
    let before = worker.get_r2(&test_support::database_key("jobs")).unwrap();
    assert_eq!(active("jobs"), (vec!["export_new".to_owned()], 2));
    let after = worker.get_r2(&test_support::database_key("jobs")).unwrap();
    assert_ne!(after, before);
    assert_eq!(version_inside(&worker, "jobs"), 2);
    // Only a job newer than the timeout is left pending: nothing changes, nothing is uploaded.
    for _ in 0..2 {
        assert_eq!(active("jobs"), (vec!["export_new".to_owned()], 2));
    }
    assert_eq!(
        worker.get_r2(&test_support::database_key("jobs")).unwrap(),
        after
    );
}

#[test]
fn one_request_that_writes_five_times_uploads_once() {
    let worker = TestWorker::start();
    let seed = sqlite_file_with(
        "INSERT INTO games (id, name) VALUES (1, 'g');
         INSERT INTO raw_clips (id, filename, rating, end_time, game_id) VALUES
             (1, '', 3, 1, 1), (2, '', 3, 2, 1), (3, '', 3, 3, 1), (4, '', 3, 4, 1);",
    );
    worker.put_r2(&test_support::database_key("walt"), &seed);
    // The legacy file is adopted (migrated) by the first write: one upload, version 0 -> 1.
    let body = json!({"name": "Five", "clip_ids": [1, 2, 3, 4]})
        .to_string()
        .into_bytes();
    let response = worker.request(
        "POST",
        "/api/projects/from-clips",
        Some("walt"),
        &[("Content-Type", "application/json")],
        body,
    );
    assert_eq!((response.status, response.db_version()), (200, 1));
    assert_eq!(version_inside(&worker, "walt"), 1);
    let project = worker.get("/api/projects/1", Some("walt")).json();
    assert_eq!(project["clips"].as_array().unwrap().len(), 4);
}

/// An object without metadata is the legacy version 0; its first use, a read, brings it up to
/// date and stores that as version 1, once.
#[test]
fn a_legacy_object_without_metadata_is_version_zero_and_its_upgrade_is_stored_once_as_one() {
    let worker = TestWorker::start();
    let legacy = sqlite_file_with("INSERT INTO games (name) VALUES ('old');");
    worker.put_r2(&test_support::database_key("lena"), &legacy);
    let read = worker.get("/api/games", Some("lena"));
    assert_eq!((read.status, read.db_version()), (200, 1));
    assert_eq!(read.json()["games"][0]["raw_name"], "old");
    assert_eq!(version_inside(&worker, "lena"), 1);
    let upgraded = worker.get_r2(&test_support::database_key("lena")).unwrap();
    assert_ne!(upgraded, legacy);
    // Once: later reads store nothing.
    assert_eq!(worker.get("/api/games", Some("lena")).db_version(), 1);
    assert_eq!(
        worker.get_r2(&test_support::database_key("lena")).unwrap(),
        upgraded
    );
    assert_eq!(worker.create_project("lena", "new").db_version(), 2);
    assert_eq!(worker.get("/api/games", Some("lena")).db_version(), 2);
}

#[test]
fn a_corrupt_object_gets_503_and_stays_byte_for_byte_unchanged() {
    let worker = TestWorker::start();
    let garbage = b"SQLite format 3\0 but not really a database, just bytes".to_vec();
    worker.put_r2(&test_support::database_key("cora"), &garbage);
    for response in [
        worker.get("/api/games", Some("cora")),
        worker.create_project("cora", "x"),
    ] {
        assert_eq!(response.status, 503);
        assert_eq!(response.json()["code"], "corrupt_database");
    }
    assert_eq!(
        worker.get_r2(&test_support::database_key("cora")).unwrap(),
        garbage
    );
}

#[test]
fn concurrent_writers_on_one_user_lose_nothing() {
    let worker = TestWorker::start();
    let per_client = 50;
    std::thread::scope(|scope| {
        for client in ["left", "right"] {
            let worker = &worker;
            scope.spawn(move || {
                for i in 0..per_client {
                    let response = worker.create_project("tabs", &format!("{client}-{i:02}"));
                    assert_eq!(
                        response.status,
                        200,
                        "{client} {i}: {:?}",
                        String::from_utf8_lossy(&response.body)
                    );
                }
            });
        }
    });
    let names = worker.project_names("tabs");
    assert_eq!(
        names.len(),
        2 * per_client,
        "every acknowledged write is there"
    );
    assert_eq!(
        worker.get("/api/projects", Some("tabs")).db_version(),
        2 * per_client as u64
    );
}

#[test]
fn last_write_wins_logs_the_conflict() {
    let worker = TestWorker::start_with(Options {
        vars: vec![("CONFLICT_STRATEGY".into(), "last-write-wins".into())],
        ..Options::default()
    });
    let conflicts = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for client in 0..4 {
            let (worker, conflicts) = (&worker, &conflicts);
            scope.spawn(move || {
                for i in 0..25 {
                    let response = worker.create_project("lww", &format!("{client}-{i}"));
                    assert_eq!(response.status, 200);
                    if response.header("X-Sync-Status") == Some("conflict") {
                        conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let conflicts = conflicts.into_inner();
    assert!(
        conflicts > 0,
        "four writers racing 25 times each never conflicted"
    );
    assert!(
        worker
            .logs()
            .lines()
            .any(|line| line.contains(r#""event":"r2_write_conflict""#)
                && line.contains(r#""user":"lww""#)),
        "{}",
        worker.logs()
    );
}

#[test]
fn data_comes_back_from_r2_when_all_other_local_state_is_gone() {
    let mut worker = TestWorker::start();
    worker.create_project("rita", "kept in R2");
    worker.put_kv("unrelated", "1");
    worker.restart_after(|persist| {
        // Everything but R2: KV, Durable Objects, caches.
        for entry in std::fs::read_dir(persist.join("v3")).unwrap().flatten() {
            if entry.file_name() != "r2" {
                std::fs::remove_dir_all(entry.path()).unwrap();
            }
        }
    });
    assert_eq!(worker.project_names("rita"), ["kept in R2"]);
    assert_eq!(worker.get("/api/projects", Some("rita")).db_version(), 1);
}

#[test]
fn a_database_above_the_size_ceiling_gets_507_not_a_crash() {
    let worker = TestWorker::start_with(Options {
        vars: vec![("R2_MAX_DATABASE_BYTES".into(), "65536".into())],
        ..Options::default()
    });
    let big = sqlite_file_with(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
         INSERT INTO games (name) SELECT printf('game %d %s', i, hex(zeroblob(200))) FROM n;",
    );
    assert!(big.len() > 65536);
    worker.put_r2(&test_support::database_key("bige"), &big);
    let response = worker.get("/api/games", Some("bige"));
    assert_eq!(response.status, 507);
    let detail = response.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("migrator migrate"), "{detail}");
    // A small database of another user is served as usual.
    assert_eq!(worker.get("/api/games", Some("small")).status, 200);
}

/// A user can grow their file with writes that are each within the input limits. The write that
/// would take it past what the R2 path can open is refused with 507 before anything changes, so
/// no write is acknowledged only for its user to be locked out; the move the detail names works.
#[test]
fn a_write_that_would_outgrow_the_r2_path_is_refused_and_changes_nothing() {
    let worker = TestWorker::start_with_admin(&[("R2_MAX_DATABASE_BYTES", "1048576")]);
    let write = |n: usize| {
        // 300 KiB of text per project, under the 384 KiB a field may hold.
        let name = format!("{n} {}", "long name ".repeat(30 * 1024));
        worker.send_json(
            "POST",
            "/api/projects",
            "grower",
            json!({"name": name, "aspect_ratio": "16:9"}),
        )
    };
    let mut accepted = Vec::new();
    let refused = loop {
        let response = write(accepted.len());
        if response.status != 200 {
            break response;
        }
        accepted.push(response.db_version());
        assert!(
            accepted.len() < 10,
            "the file grew past 1 MB and was never refused"
        );
    };
    assert_eq!(
        refused.status,
        507,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let detail = refused.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("nothing was saved"), "{detail}");
    assert!(detail.contains("Durable Object"), "{detail}");
    assert!(!accepted.is_empty(), "the first writes fit");

    // Nothing changed, and the user is still served from R2.
    let after = worker.get("/api/projects", Some("grower"));
    assert_eq!(after.status, 200);
    assert_eq!(after.header("X-Data-Path"), Some("r2"));
    assert_eq!(after.json().as_array().unwrap().len(), accepted.len());
    assert_eq!(after.db_version(), *accepted.last().unwrap());
    let stored = worker
        .get_r2(&test_support::database_key("grower"))
        .expect("the R2 file");
    assert!(
        stored.len() <= 1048576,
        "R2 holds a file it can open: {}",
        stored.len()
    );

    // The move the detail names works, and the same write then succeeds on the object.
    worker.admin_ok("POST", "/admin/users/grower/migrate", Vec::new());
    let moved = write(accepted.len());
    assert_eq!(
        moved.status,
        200,
        "{}",
        String::from_utf8_lossy(&moved.body)
    );
    assert_eq!(moved.header("X-Data-Path"), Some("do"));
}
