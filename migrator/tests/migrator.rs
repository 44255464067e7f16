//! The migrator against the Worker in workerd: cohorts that nest, an interrupted run resumed,
//! a rollback, and every user's data intact at the end.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::{realistic_database, table_rows, TestWorker, ADMIN_TOKEN};

fn migrator(worker: &TestWorker, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migrator"));
    command
        .args(args)
        .env("MIGRATOR_ENDPOINT", worker.base_url())
        .env("MIGRATOR_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null());
    command
}

fn run(worker: &TestWorker, args: &[&str]) -> Output {
    migrator(worker, args).output().expect("the migrator runs")
}

/// The JSON lines a `--json` run printed.
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn migrated_users(worker: &TestWorker) -> Vec<String> {
    let listed = worker
        .admin("GET", "/admin/users?limit=1000", vec![])
        .json();
    let mut users: Vec<String> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["state"] == "migrated")
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    users
}

#[test]
fn cohorts_nest_an_interrupted_run_resumes_and_no_data_is_lost() {
    let worker = TestWorker::start_with_admin(&[]);
    let journal_dir = tempfile::tempdir().unwrap();
    let journal = journal_dir.path().join("journal.jsonl");
    let journal = journal.to_str().unwrap();
    let users: Vec<String> = (0..20).map(|i| format!("user_{i:02}")).collect();
    let seed = realistic_database(5);
    for user in &users {
        assert_eq!(
            worker
                .admin(
                    "PUT",
                    &format!("/admin/users/{user}/database"),
                    seed.clone()
                )
                .status,
            200
        );
    }

    let plan = run(&worker, &["plan", "--json"]);
    assert!(plan.status.success());
    assert_eq!(json_lines(&plan)[0]["count"], 20);

    let mut previous: Vec<String> = Vec::new();
    for percent in ["10", "50", "100"] {
        let output = run(
            &worker,
            &[
                "migrate",
                "--all",
                "--yes",
                "--percent",
                percent,
                "--json",
                "--journal",
                journal,
            ],
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let now = migrated_users(&worker);
        assert!(
            previous.iter().all(|u| now.contains(u)),
            "{percent}% contains the smaller cohort"
        );
        previous = now;
        // Writes made between the stages, on whichever path serves each user.
        for user in &users {
            assert_eq!(
                worker
                    .create_project(user, &format!("written after {percent}%"))
                    .status,
                200
            );
        }
    }
    assert_eq!(previous, users, "100% is everyone");

    let one = run(&worker, &["rollback", "user_03", "--journal", journal]);
    assert!(one.status.success());
    assert!(!migrated_users(&worker).contains(&"user_03".to_owned()));

    // Roll everyone back one at a time, interrupt after two, then run again to resume.
    let child = migrator(
        &worker,
        &[
            "rollback",
            "--all",
            "--yes",
            "--concurrency",
            "1",
            "--json",
            "--journal",
            journal,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(journal)
        .unwrap()
        .matches("\"rollback\",\"user\":\"user_")
        .count()
        < 6
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let interrupted = child.wait_with_output().unwrap();
    let summary = json_lines(&interrupted).last().cloned().unwrap();
    assert_eq!(
        interrupted.status.code(),
        Some(130),
        "an interrupted run says so"
    );
    assert_eq!(summary["summary"]["interrupted"], true);
    assert!(
        !migrated_users(&worker).is_empty(),
        "stopped before the end"
    );

    let resumed = run(
        &worker,
        &["rollback", "--all", "--yes", "--json", "--journal", journal],
    );
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(migrated_users(&worker).is_empty(), "everyone is back on R2");

    for user in &users {
        let file = worker
            .admin("GET", &format!("/admin/users/{user}/database"), vec![])
            .body;
        for table in [
            "games",
            "raw_clips",
            "working_clips",
            "final_videos",
            "export_jobs",
        ] {
            assert_eq!(
                table_rows(&file, table),
                table_rows(&seed, table),
                "{user} {table}"
            );
        }
        let projects = table_rows(&file, "projects");
        assert_eq!(
            projects.len(),
            table_rows(&seed, "projects").len() + 3,
            "{user}: the 3 writes"
        );
        for percent in ["10", "50", "100"] {
            assert!(
                projects
                    .iter()
                    .any(|p| p.contains(&format!("written after {percent}%"))),
                "{user}"
            );
        }
    }
}

#[test]
fn errors_are_sentences_not_stack_traces() {
    let worker = TestWorker::start_with_admin(&[]);
    let wrong_token = migrator(&worker, &["status"])
        .env("MIGRATOR_TOKEN", "nope")
        .output()
        .unwrap();
    assert!(!wrong_token.status.success());
    let stderr = String::from_utf8_lossy(&wrong_token.stderr);
    assert!(stderr.contains("refused the admin token"), "{stderr}");

    let unreachable = migrator(&worker, &["status"])
        .env("MIGRATOR_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the Worker"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sqlite");
    std::fs::write(&bad, b"not a database").unwrap();
    let import = run(&worker, &["import", "someone", bad.to_str().unwrap()]);
    assert!(!import.status.success());
    assert!(String::from_utf8_lossy(&import.stderr).contains("not a usable SQLite database"));

    let export = run(
        &worker,
        &[
            "export",
            "nobody",
            "-o",
            dir.path().join("x").to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&export.stderr).contains("has no data"),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    for output in [&wrong_token, &unreachable, &import, &export] {
        assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    }
}

#[test]
fn unknown_users_are_404_and_nothing_is_created_for_them() {
    let worker = TestWorker::start_with_admin(&[]);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("x.sqlite");
    let journal = dir.path().join("journal.jsonl");
    for args in [
        vec!["status", "nosuchuser"],
        vec!["verify", "nosuchuser"],
        vec![
            "migrate",
            "nosuchuser",
            "--journal",
            journal.to_str().unwrap(),
        ],
        vec![
            "rollback",
            "nosuchuser",
            "--journal",
            journal.to_str().unwrap(),
        ],
        vec!["export", "nosuchuser", "-o", output.to_str().unwrap()],
    ] {
        let ran = run(&worker, &args);
        let stderr = String::from_utf8_lossy(&ran.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&ran.stdout).into_owned();
        assert!(!ran.status.success(), "{args:?} succeeded: {stdout}");
        assert!(
            format!("{stdout}{stderr}").contains("nosuchuser has no data"),
            "{args:?}: {stdout} {stderr}"
        );
    }
    assert_eq!(
        worker
            .admin("GET", "/admin/users/nosuchuser", vec![])
            .status,
        404
    );
    assert!(
        worker
            .get_r2(&test_support::database_key("nosuchuser"))
            .is_none(),
        "no R2 file"
    );
    let listed = worker.admin_ok("GET", "/admin/users", vec![]);
    assert_eq!(listed["users"], serde_json::json!([]), "no user, no flag");
    // No Durable Object was created either: its storage would be a file under the persist dir,
    // as it is once a known user moves.
    assert!(
        worker.objects_with_storage().is_empty(),
        "an object was created for an unknown user"
    );
    let seed = realistic_database(2);
    worker.admin_ok("PUT", "/admin/users/known/database", seed);
    worker.admin_ok("POST", "/admin/users/known/migrate", vec![]);
    assert!(
        !worker.objects_with_storage().is_empty(),
        "a moved user's object is seen where it is stored"
    );
}

#[test]
fn verify_agrees_right_after_a_move_and_migrate_after_rollback_is_not_skipped() {
    let worker = TestWorker::start_with_admin(&[]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let journal = journal.to_str().unwrap();
    let seed = realistic_database(8);
    assert_eq!(
        worker
            .admin("PUT", "/admin/users/vera/database", seed.clone())
            .status,
        200
    );
    for (action, expect_migrated) in [("migrate", true), ("rollback", false), ("migrate", true)] {
        let ran = run(&worker, &[action, "vera", "--json", "--journal", journal]);
        assert!(
            ran.status.success(),
            "{action}: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let moved = json_lines(&ran)
            .into_iter()
            .find(|line| line["user"] == "vera")
            .unwrap_or_else(|| panic!("{action} did not run vera: the journal skipped her"));
        assert_ne!(moved["outcome"], "failed", "{moved}");
        assert_eq!(
            migrated_users(&worker).contains(&"vera".to_owned()),
            expect_migrated
        );
    }
    let verified = run(&worker, &["verify", "vera", "--json"]);
    assert!(
        verified.status.success(),
        "verify right after a move: {}",
        String::from_utf8_lossy(&verified.stdout)
    );
    assert_eq!(json_lines(&verified)[0]["verdict"]["agrees_with_r2"], true);

    // A bulk change is refused without a terminal to confirm on, unless --yes.
    let refused = run(&worker, &["rollback", "--all", "--journal", journal]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(
        migrated_users(&worker).contains(&"vera".to_owned()),
        "nothing was done"
    );
}
