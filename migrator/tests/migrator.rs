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
    assert!(!interrupted.status.success(), "an interrupted run says so");
    assert_eq!(summary["summary"]["interrupted"], true);
    assert!(
        !migrated_users(&worker).is_empty(),
        "stopped before the end"
    );

    let resumed = run(
        &worker,
        &["rollback", "--all", "--json", "--journal", journal],
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
        String::from_utf8_lossy(&export.stderr).contains("has no database"),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    for output in [&wrong_token, &unreachable, &import, &export] {
        assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    }
}
