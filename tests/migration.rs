//! Migration to the Durable Object and rollback to R2, in workerd: the data arrives whole, and no
//! acknowledged write is lost to concurrent writers, stale KV, or a crash half way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use admin_api::R2State;
use serde_json::json;
use test_support::{
    realistic_database, realistic_database_of_size, sequence_of, table_rows, TestWorker,
};

/// The app's tables: what must survive every move unchanged.
const APP_TABLES: [&str; 8] = [
    "games",
    "raw_clips",
    "projects",
    "working_clips",
    "working_videos",
    "final_videos",
    "export_jobs",
    "before_after_tracks",
];

fn seed(worker: &TestWorker, user: &str, file: &[u8]) {
    let response = worker.admin(
        "PUT",
        &format!("/admin/users/{user}/database"),
        file.to_vec(),
    );
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

fn authoritative_file(worker: &TestWorker, user: &str) -> Vec<u8> {
    let response = worker.admin("GET", &format!("/admin/users/{user}/database"), Vec::new());
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Content-Type"),
        Some("application/vnd.sqlite3")
    );
    response.body
}

#[test]
fn the_admin_api_needs_its_token_and_does_not_exist_without_one() {
    let without = TestWorker::start();
    assert_eq!(without.admin("GET", "/admin/users", vec![]).status, 404);
    let worker = TestWorker::start_with_admin(&[]);
    assert_eq!(worker.get("/admin/users", None).status, 401);
    let wrong = worker.request(
        "GET",
        "/admin/users",
        None,
        &[("Authorization", "Bearer nope")],
        vec![],
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(worker.admin("GET", "/admin/users", vec![]).status, 200);
    let not_sqlite = worker.admin("PUT", "/admin/users/x/database", b"hello".to_vec());
    assert_eq!(not_sqlite.status, 400);
}

#[test]
fn a_realistic_database_migrates_whole_and_rolls_back_with_the_writes_made_meanwhile() {
    let worker = TestWorker::start_with_admin(&[]);
    let seed_file = realistic_database(3000);
    assert!(
        seed_file.len() > 2 * 1024 * 1024,
        "a multi-megabyte database"
    );
    seed(&worker, "rich", &seed_file);

    let report = worker.admin_ok("POST", "/admin/users/rich/migrate", Vec::new());
    assert_eq!(report["outcome"], "migrated");
    let clips = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "raw_clips")
        .unwrap();
    assert_eq!(clips["rows"], 3000 - 3000 / 97);
    let on_object = authoritative_file(&worker, "rich");
    for table in APP_TABLES {
        assert_eq!(
            table_rows(&on_object, table),
            table_rows(&seed_file, table),
            "{table} after migrating"
        );
    }
    for table in ["raw_clips", "games", "projects"] {
        assert_eq!(
            sequence_of(&on_object, table),
            sequence_of(&seed_file, table),
            "{table} sequence"
        );
    }
    let status = worker.admin_ok("GET", "/admin/users/rich", Vec::new());
    assert_eq!(
        (status["flag"].clone(), status["r2"]["state"].clone()),
        (json!(true), json!("migrated"))
    );
    assert_eq!(status["object"]["state"], "active");

    let written = worker.create_project("rich", "made on the object");
    assert_eq!(written.header("X-Data-Path"), Some("do"));
    let new_id = written.json()["id"].as_i64().unwrap();
    assert!(
        new_id > sequence_of(&seed_file, "projects"),
        "AUTOINCREMENT ids are not reused"
    );
    assert_eq!(
        worker.admin_ok("POST", "/admin/users/rich/migrate", Vec::new())["outcome"],
        "already_migrated"
    );

    let report = worker.admin_ok("POST", "/admin/users/rich/rollback", Vec::new());
    assert_eq!(report["outcome"], "rolled_back");
    assert_eq!(
        worker.admin_ok("POST", "/admin/users/rich/rollback", Vec::new())["outcome"],
        "already_on_r2"
    );
    let back = worker.get("/api/projects", Some("rich"));
    assert_eq!(back.header("X-Data-Path"), Some("r2"));
    let on_r2 = authoritative_file(&worker, "rich");
    assert!(table_rows(&on_r2, "projects")
        .iter()
        .any(|row| row.contains("made on the object")));
    for table in APP_TABLES.iter().filter(|t| **t != "projects") {
        assert_eq!(
            table_rows(&on_r2, table),
            table_rows(&seed_file, table),
            "{table} after rolling back"
        );
    }
    let backup_version = status["r2"]["version"].as_u64().unwrap();
    assert!(worker
        .get_r2(&test_support::backup_key("rich", backup_version))
        .is_some());
}

#[test]
fn a_client_writing_throughout_migration_and_rollback_loses_no_acknowledged_write() {
    let worker = TestWorker::start_with_admin(&[]);
    seed(&worker, "busy", &realistic_database(300));
    let acknowledged = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let name = format!("w{i:04}");
                if worker.create_project("busy", &name).status == 200 {
                    acknowledged.lock().unwrap().push(name);
                }
                i += 1;
            }
        });
        for action in ["migrate", "rollback", "migrate", "rollback"] {
            std::thread::sleep(std::time::Duration::from_millis(300));
            worker.admin_ok("POST", &format!("/admin/users/busy/{action}"), Vec::new());
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() > 10,
        "the writer got through: {}",
        acknowledged.len()
    );
    let names = worker.project_names("busy");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|name| !names.contains(name))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

#[test]
fn migrate_write_rollback_write_migrate_again_keeps_every_write() {
    let worker = TestWorker::start_with_admin(&[]);
    seed(&worker, "loop", &realistic_database(50));
    worker.create_project("loop", "1 on r2");
    worker.admin_ok("POST", "/admin/users/loop/migrate", Vec::new());
    worker.create_project("loop", "2 on the object");
    worker.admin_ok("POST", "/admin/users/loop/rollback", Vec::new());
    worker.create_project("loop", "3 on r2 again");
    worker.admin_ok("POST", "/admin/users/loop/migrate", Vec::new());
    let response = worker.create_project("loop", "4 on the object again");
    assert_eq!(response.header("X-Data-Path"), Some("do"));
    let names = worker.project_names("loop");
    for name in [
        "1 on r2",
        "2 on the object",
        "3 on r2 again",
        "4 on the object again",
    ] {
        assert!(
            names.contains(&name.to_owned()),
            "{name} missing from {names:?}"
        );
    }
}

#[test]
fn stale_routing_that_ignores_the_flag_still_reaches_the_object() {
    let worker = TestWorker::start_with_admin(&[("ROUTER_FLAG_OVERRIDE", "ignore")]);
    seed(&worker, "stale", &realistic_database(20));
    worker.admin_ok("POST", "/admin/users/stale/migrate", Vec::new());
    let written = worker.create_project("stale", "through the fence");
    assert_eq!(written.status, 200);
    assert_eq!(
        written.header("X-Data-Path"),
        Some("do"),
        "R2 is marked migrated: the fence forwards"
    );
    assert!(
        table_rows(&authoritative_file(&worker, "stale"), "projects")
            .iter()
            .any(|row| row.contains("through the fence"))
    );
}

#[test]
fn stale_routing_that_still_sees_the_flag_after_a_rollback_reaches_r2() {
    let worker = TestWorker::start_with_admin(&[("ROUTER_FLAG_OVERRIDE", "always")]);
    seed(&worker, "back", &realistic_database(20));
    worker.admin_ok("POST", "/admin/users/back/migrate", Vec::new());
    worker.create_project("back", "before rollback");
    worker.admin_ok("POST", "/admin/users/back/rollback", Vec::new());
    let written = worker.create_project("back", "after rollback");
    assert_eq!(written.status, 200);
    assert_eq!(
        written.header("X-Data-Path"),
        Some("r2"),
        "a rolled-back object hands over"
    );
    let names = worker.project_names("back");
    assert!(
        names.contains(&"before rollback".to_owned())
            && names.contains(&"after rollback".to_owned())
    );
}

#[test]
fn deleting_the_flag_by_hand_rolls_the_user_back_on_the_next_request() {
    let worker = TestWorker::start_with_admin(&[("FLAG_PROPAGATION_SECONDS", "0")]);
    seed(&worker, "hand", &realistic_database(20));
    worker.admin_ok("POST", "/admin/users/hand/migrate", Vec::new());
    worker.create_project("hand", "on the object");
    worker.delete_kv(&test_support::flag_key("hand"));
    let response = worker.get("/api/projects", Some("hand"));
    assert_eq!(response.header("X-Data-Path"), Some("r2"));
    assert!(worker
        .project_names("hand")
        .contains(&"on the object".to_owned()));
    let status = worker.admin_ok("GET", "/admin/users/hand", Vec::new());
    assert_eq!(
        (
            status["r2"]["state"].clone(),
            status["object"]["state"].clone()
        ),
        (json!("active"), json!("rolled_back"))
    );
}

/// A migrate cut short for real, then the whole runtime restarted: a crash armed through the
/// admin API (the Worker runs with `FAULT_INJECTION`) stops the migrate at a step and resets
/// the user's object as the runtime would, with no clean-up, at two points: while copying
/// (nothing has reached R2 yet) and after the cut-over (R2 already says `migrated`, the object
/// is not active yet). Each first migrate must get no report and leave the move half way, as
/// the admin status shows; then `wrangler dev` stops and starts again on the same storage, and
/// the migrate run again converges with every row of the seed.
#[test]
fn a_migration_cut_short_by_a_crash_converges_when_run_again_after_a_restart() {
    let mut worker = TestWorker::start_with_admin(&[("FAULT_INJECTION", "1")]);
    let seed_file = realistic_database(600);
    // The user, the step the crash is armed at, and R2's state once it has struck.
    let cases = [
        ("crash-copy", "copy", "active"),
        ("crash-activate", "activate", "migrated"),
    ];
    for (user, step, r2_state) in cases {
        seed(&worker, user, &seed_file);
        worker.admin_ok(
            "POST",
            &format!("/admin/users/{user}/fault?action=migrate&step={step}&crash=true"),
            Vec::new(),
        );
        let cut_short = worker.admin("POST", &format!("/admin/users/{user}/migrate"), vec![]);
        assert!(
            cut_short.status >= 500,
            "{user}: the migrate was not cut short: {} {}",
            cut_short.status,
            String::from_utf8_lossy(&cut_short.body)
        );
        let status = worker.admin_ok("GET", &format!("/admin/users/{user}"), Vec::new());
        assert_eq!(status["r2"]["state"], r2_state, "{user}: {status}");
        assert_ne!(status["object"]["state"], "active", "{user}: {status}");
        assert_eq!(status["flag"], false, "{user}: {status}");
    }

    worker.restart();
    for (user, ..) in cases {
        let report = worker.admin_ok("POST", &format!("/admin/users/{user}/migrate"), vec![]);
        assert!(
            ["migrated", "already_migrated"].contains(&report["outcome"].as_str().unwrap()),
            "{user}: {report}"
        );
        let on_object = authoritative_file(&worker, user);
        for table in APP_TABLES {
            assert_eq!(
                table_rows(&on_object, table),
                table_rows(&seed_file, table),
                "{user}: {table}"
            );
        }
        assert_eq!(
            worker.create_project(user, "after").header("X-Data-Path"),
            Some("do"),
            "{user}"
        );
    }
}

#[test]
fn prune_deletes_old_backups_and_leaves_a_tombstone_that_still_fences() {
    let worker = TestWorker::start_with_admin(&[]);
    seed(&worker, "old", &realistic_database(20));
    worker.admin_ok("POST", "/admin/users/old/migrate", Vec::new());
    worker.admin_ok("POST", "/admin/users/old/rollback", Vec::new());
    worker.admin_ok("POST", "/admin/users/old/migrate", Vec::new());
    worker.create_project("old", "kept on the object");

    let dry = worker.admin_ok(
        "POST",
        "/admin/prune?older_than_days=0&dry_run=true",
        Vec::new(),
    );
    assert_eq!(
        dry["tombstoned"],
        json!([test_support::database_key("old")])
    );
    assert_eq!(dry["deleted_backups"].as_array().unwrap().len(), 1);
    assert!(
        worker
            .get_r2(&test_support::database_key("old"))
            .unwrap()
            .starts_with(b"SQLite format 3"),
        "dry run"
    );

    worker.admin_ok("POST", "/admin/prune?older_than_days=0", Vec::new());
    let tombstone = worker.get_r2(&test_support::database_key("old")).unwrap();
    assert!(!tombstone.starts_with(b"SQLite format 3"));
    // Even a router that ignores the flag still reaches the object: the tombstone fences.
    let response = worker.get("/api/projects", Some("old"));
    assert_eq!(response.header("X-Data-Path"), Some("do"));
    assert!(worker
        .project_names("old")
        .contains(&"kept on the object".to_owned()));
    assert_eq!(
        worker.admin_ok("POST", "/admin/users/old/rollback", Vec::new())["outcome"],
        "rolled_back"
    );
    assert!(worker
        .project_names("old")
        .contains(&"kept on the object".to_owned()));
}

#[test]
fn a_database_grown_past_the_auto_migrate_size_moves_on_its_next_request() {
    let worker = TestWorker::start_with_admin(&[("AUTO_MIGRATE_BYTES", "400000")]);
    seed(&worker, "grow", &realistic_database(600));
    let write = worker.create_project("grow", "the write that tips it");
    assert_eq!(write.header("X-Data-Path"), Some("r2"));
    let next = worker.get("/api/projects", Some("grow"));
    assert_eq!(next.header("X-Data-Path"), Some("do"));
    assert!(worker
        .project_names("grow")
        .contains(&"the write that tips it".to_owned()));
    assert_eq!(
        worker.create_project("tiny", "small").header("X-Data-Path"),
        Some("r2")
    );
    assert_eq!(
        worker
            .get("/api/projects", Some("tiny"))
            .header("X-Data-Path"),
        Some("r2")
    );
}

/// A thousand users and more list page by page: each page is one R2 list and one KV list in
/// the Worker, so nothing here grows with the fleet but the number of pages.
#[test]
fn a_fleet_of_a_thousand_users_lists_page_by_page_with_states_and_flags() {
    let worker = TestWorker::start_with_admin(&[]);
    let users: Vec<String> = (0..1005).map(|i| format!("fleet-{i:04}")).collect();
    let small = test_support::sqlite_file_with("INSERT INTO games (id, name) VALUES (1, 'g');");
    std::thread::scope(|scope| {
        for chunk in users.chunks(users.len().div_ceil(8)) {
            let (worker, small) = (&worker, &small);
            scope.spawn(move || {
                for user in chunk {
                    seed(worker, user, small);
                }
            });
        }
    });
    // Media beside the databases is listed too, and skipped.
    worker.put_r2("fleet-0000/raw_clips/a.mp4", b"not really a video");
    for user in ["fleet-0003", "fleet-0500", "fleet-1004"] {
        worker.admin_ok("POST", &format!("/admin/users/{user}/migrate"), Vec::new());
    }
    worker.put_kv(&test_support::flag_key("only-a-flag"), "1");

    let pages = worker.user_pages(100);
    for page in &pages {
        assert!(page.users.len() <= 100 && page.flagged.len() <= 100);
    }
    assert!(pages.len() >= 11, "{} pages", pages.len());
    let listed = admin_api::join(pages);
    assert_eq!(listed.len(), users.len() + 1);
    for summary in &listed {
        let migrated =
            ["fleet-0003", "fleet-0500", "fleet-1004"].contains(&summary.user_id.as_str());
        if summary.user_id == "only-a-flag" {
            assert!(summary.flag && !summary.r2.exists, "{summary:?}");
            continue;
        }
        assert!(
            summary.r2.exists && summary.r2.size.unwrap() > 0,
            "{summary:?}"
        );
        assert_eq!(summary.flag, migrated, "{summary:?}");
        let state = if migrated {
            R2State::Migrated
        } else {
            R2State::Active
        };
        assert_eq!(summary.r2.state, state, "{summary:?}");
    }
    let wrong = worker.admin("GET", "/admin/users?cursor=garbage", Vec::new());
    assert_eq!(wrong.status, 422);
}

#[test]
fn a_file_the_object_cannot_hold_is_refused_with_a_reason_and_its_user_keeps_working() {
    let worker = TestWorker::start_with_admin(&[]);
    // A rating of 2^63 − 1, which the existing app stored; the object's numbers are JavaScript's.
    let file = test_support::sqlite_file_with(
        "INSERT INTO games (id, name) VALUES (1, 'g');
         INSERT INTO raw_clips (id, filename, rating, end_time, game_id) VALUES
             (3, '', 3, 1.5, 1), (8, '', 9223372036854775807, 2.5, 1), (9, '', -9007199254740992, 3.5, 1);",
    );
    seed(&worker, "big", &file);

    let refused = worker.admin("POST", "/admin/users/big/migrate", Vec::new());
    assert_eq!(refused.status, 409);
    let body = refused.json();
    assert_eq!(body["code"], "not_migratable");
    let problem = &body["problems"][0];
    assert_eq!(
        (
            problem["table"].clone(),
            problem["column"].clone(),
            problem["rowid"].clone(),
            problem["count"].clone()
        ),
        (json!("raw_clips"), json!("rating"), json!(8), json!(2)),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("raw_clips.rating") && detail.contains("rowid 8"),
        "{detail}"
    );
    let preflight = worker.admin_ok("GET", "/admin/users/big/preflight", Vec::new());
    assert_eq!(
        (preflight["action"].clone(), preflight["movable"].clone()),
        (json!("migrate"), json!(false))
    );

    // Flagged by hand anyway: the object cannot take the user, so R2 keeps serving them.
    worker.put_kv(&test_support::flag_key("big"), "1");
    let read = worker.get("/api/games", Some("big"));
    assert_eq!((read.status, read.header("X-Data-Path")), (200, Some("r2")));
    let write = worker.create_project("big", "still writable");
    assert_eq!(
        (write.status, write.header("X-Data-Path")),
        (200, Some("r2"))
    );
    let status = worker.admin_ok("GET", "/admin/users/big", Vec::new());
    assert_eq!(status["r2"]["state"], "active");
    assert_eq!(status["object"]["last_failure"]["step"], "preflight");
    assert_eq!(
        table_rows(&authoritative_file(&worker, "big"), "raw_clips"),
        table_rows(&file, "raw_clips")
    );
}

/// The R2 path never opens a file above its ceiling, but an operator can still export it: the
/// Worker passes R2's stream on rather than holding the file.
#[test]
fn a_file_above_the_r2_ceiling_exports_byte_for_byte() {
    let worker = TestWorker::start_with_admin(&[]);
    let file = realistic_database_of_size(16 * 1024 * 1024);
    worker.put_r2(&test_support::database_key("large"), &file);
    let exported = authoritative_file(&worker, "large");
    assert_eq!(exported.len(), file.len());
    assert!(exported == file, "the export differs from the R2 file");
}
