//! Chunked moves in workerd: a database far above what the R2 path opens (12 MB) moves to its
//! Durable Object and back with the migrator, in steps of bounded size, while the runtime's
//! memory stays well below the file's size and another user keeps being answered. How quickly
//! is the benchmark's to measure (`BENCH_ONLY=chunked`, "slowest answer to another user"): a
//! time limit here would be a measure of the machine, which runs other work too.
//!
//! The file is the existing app's shape at scale (`realistic_database_of_size`). Its size is
//! `CHUNKED_MOVE_TEST_MB` (150 by default, the size the issue asks for). Generated, adversarial
//! files (every table shape, values of every class at their edges) move in chunks too, with the
//! R2 path's ceiling lowered so that a small file takes the chunked move.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use test_support::generate::{
    build, contents, database_spec_with, first_difference, proptest_config, Limits,
};
use test_support::watch::{baseline, watching, Watched};
use test_support::{realistic_database_of_size, table_rows, TestWorker, ADMIN_TOKEN};

const MB: u64 = 1024 * 1024;

/// Runs the migrator against `worker`; `Err` with what it printed when it fails.
fn try_migrator(worker: &TestWorker, args: &[&str]) -> Result<Output, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_migrator"))
        .args(args)
        .env("MIGRATOR_ENDPOINT", worker.base_url())
        .env("MIGRATOR_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .expect("the migrator runs");
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "migrator {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn migrator(worker: &TestWorker, args: &[&str]) -> Output {
    try_migrator(worker, args).unwrap_or_else(|failure| panic!("{failure}"))
}

/// The JSON lines a `--json` run printed.
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A move of a `size`-byte file grew the isolate by less than half of it (and kept it within the
/// platform's 128 MB), and another user was answered throughout, every answer as it should be.
fn assert_bounded(what: &str, size: u64, before: (u64, u64), watched: &Watched) {
    let (isolate, resident) = before;
    eprintln!(
        "{what} of {size} bytes: isolate {isolate} -> peak {} bytes; workerd resident {resident} \
         -> peak {}; slowest answer to another user {:?} of {}",
        watched.peak_isolate, watched.peak_resident, watched.slowest, watched.answers
    );
    let grew = watched.peak_isolate.saturating_sub(isolate);
    assert!(grew < size / 2, "{what}: the isolate grew by {grew} bytes");
    // Each invocation holds one batch or one part (a few MB); what the isolate shows beyond that
    // is garbage of earlier ones, which V8 collects once its buffers grow by 64 MB (its soft
    // limit for external memory): the peak is about that constant, whatever the file's size,
    // and within the platform's 128 MB even counting the garbage.
    assert!(
        watched.peak_isolate < 128 * MB,
        "{what}: the isolate held {} bytes",
        watched.peak_isolate
    );
    assert!(watched.failures.is_empty(), "{:?}", watched.failures);
    assert!(watched.answers > 0);
}

#[test]
fn a_database_of_150_mb_moves_to_its_object_and_back_in_bounded_memory_while_others_are_served() {
    let size_mb: u64 = std::env::var("CHUNKED_MOVE_TEST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let file = realistic_database_of_size((size_mb * MB) as usize);
    let size = file.len() as u64;
    let worker = TestWorker::start_with_admin(&[("REPORT_WASM_MEMORY", "1")]);
    worker.put_r2(&test_support::database_key("big"), &file);
    let other = "other";
    assert_eq!(worker.create_project(other, "small").status, 200);
    let big = worker.get("/api/projects", Some("big"));
    assert_eq!(big.status, 507, "the R2 path cannot open it");
    assert!(
        String::from_utf8_lossy(&big.body).contains("migrator migrate"),
        "the 507 says which move works: {}",
        String::from_utf8_lossy(&big.body)
    );

    let plan = json_lines(&migrator(&worker, &["plan", "--json"]));
    let planned = plan[0]["users"].as_array().unwrap();
    assert_eq!(
        planned[0]["user_id"], "big",
        "users above the ceiling come first"
    );
    assert_eq!(planned[0]["movable"], true);
    assert_eq!(planned[0]["in_chunks"], true);

    let before = baseline(&worker);
    let (migrated, watched) = watching(&worker, other, || {
        migrator(&worker, &["migrate", "big", "--json"])
    });
    let summary = json_lines(&migrated)
        .into_iter()
        .find(|line| line.get("summary").is_some())
        .expect("a summary line");
    assert_eq!(summary["summary"]["moved"], 1, "{summary}");
    assert_bounded("migrate", size, before, &watched);

    // The object serves the user now, with every project.
    let served = worker.get("/api/projects", Some("big"));
    assert_eq!(
        served.status,
        200,
        "{}",
        String::from_utf8_lossy(&served.body)
    );
    assert_eq!(served.header("X-Data-Path"), Some("do"));
    assert_eq!(
        served.json().as_array().map(Vec::len),
        Some(table_rows(&file, "projects").len())
    );
    let status = worker.admin_ok("GET", "/admin/users/big", vec![]);
    assert_eq!(status["object"]["state"], "active");
    assert_eq!(status["r2"]["state"], "migrated");
    assert_eq!(status["flag"], true);
    let backup = worker
        .get_r2(&test_support::backup_key("big", 0))
        .expect("the file that moved is kept");
    assert!(backup == file, "the backup is the file, byte for byte");

    // Back to R2: refused without --force (the R2 path would answer 507), then forced.
    let refused = Command::new(env!("CARGO_BIN_EXE_migrator"))
        .args(["rollback", "big"])
        .env("MIGRATOR_ENDPOINT", worker.base_url())
        .env("MIGRATOR_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert_eq!(
        worker.get("/api/projects", Some("big")).status,
        200,
        "a refused rollback leaves the object serving"
    );
    let before = baseline(&worker);
    let (_, watched) = watching(&worker, other, || {
        migrator(&worker, &["rollback", "big", "--force"])
    });
    assert_bounded("rollback", size, before, &watched);
    let status = worker.admin_ok("GET", "/admin/users/big", vec![]);
    assert_eq!(status["object"]["state"], "rolled_back");
    assert_eq!(status["r2"]["state"], "active");
    assert_eq!(status["flag"], false);

    // Identical data: every table of the original, row for row and value for value.
    let scratch = tempfile::tempdir().unwrap();
    let exported = scratch.path().join("big.sqlite");
    migrator(
        &worker,
        &["export", "big", "--output", exported.to_str().unwrap()],
    );
    let exported = std::fs::read(&exported).unwrap();
    let (original, back) = (contents(&file), contents(&exported));
    assert!(!original.tables.is_empty());
    for table in &original.tables {
        let moved = back
            .table(&table.name)
            .unwrap_or_else(|| panic!("{} is missing", table.name));
        assert!(moved == table, "{} differs after the moves", table.name);
    }
    for sequence in &original.sequences {
        assert!(back.sequences.contains(sequence), "{sequence:?}");
    }
    for object in &original.schema {
        assert!(back.schema.contains(object), "{object:?}");
    }
}

/// The migrator killed half way through a chunked migrate: R2 keeps serving the user meanwhile
/// (the object is only `importing`), and the next run resumes from the object's cursors rather
/// than starting over, and ends with the same data.
#[test]
fn a_chunked_migrate_killed_half_way_resumes_from_the_objects_cursor() {
    let file = realistic_database_of_size(30 << 20);
    let worker = TestWorker::start_with_admin(&[]);
    worker.put_r2(&test_support::database_key("crashy"), &file);
    let mut run = Command::new(env!("CARGO_BIN_EXE_migrator"))
        .args(["migrate", "crashy", "--batch-size", "256KiB"])
        .env("MIGRATOR_ENDPOINT", worker.base_url())
        .env("MIGRATOR_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the object has applied some rows (its cursors say so).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let status = worker.admin_ok("GET", "/admin/users/crashy", vec![]);
        let rows: u64 = status["object"]["tables"]
            .as_object()
            .map(|tables| tables.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        if status["object"]["state"] == "importing" && rows > 1000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the import never began"
        );
        assert!(
            run.try_wait().unwrap().is_none(),
            "the migrator ended first"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let applied: u64 = worker.admin_ok("GET", "/admin/users/crashy", vec![])["object"]["tables"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();

    // Meanwhile R2 is authoritative: the user gets its answer (507, the file is too large for
    // the R2 path), quickly, and nothing hangs.
    let during = worker.get("/api/projects", Some("crashy"));
    assert_eq!(during.status, 507);

    let resumed = json_lines(&migrator(&worker, &["migrate", "crashy", "--json"]));
    let summary = resumed
        .iter()
        .find(|line| line.get("summary").is_some())
        .unwrap();
    assert_eq!(summary["summary"]["moved"], 1, "{summary}");
    let logs = worker.logs();
    assert!(applied > 1000);
    assert!(
        logs.contains(r#""event":"move_resumed","user":"crashy""#),
        "the second run resumed the first one's import: {logs}"
    );
    let served = worker.get("/api/projects", Some("crashy"));
    assert_eq!(served.status, 200, "{logs}");
    assert_eq!(served.header("X-Data-Path"), Some("do"));
    let raw_clips = worker.admin_ok("GET", "/admin/users/crashy", vec![])["object"]["tables"]
        ["raw_clips"]
        .as_u64()
        .unwrap();
    assert_eq!(raw_clips as usize, table_rows(&file, "raw_clips").len());
}

/// A chunked export holds its user at 503 with `Retry-After`, never a wait; one whose migrator
/// went away is given up after `MOVE_LEASE_SECONDS`, and the object serves again with every
/// write.
#[test]
fn a_chunked_export_that_stops_is_given_up_and_the_object_serves_again() {
    let file = realistic_database_of_size(16 << 20);
    let worker = TestWorker::start_with_admin(&[("MOVE_LEASE_SECONDS", "3")]);
    worker.put_r2(&test_support::database_key("lease"), &file);
    migrator(&worker, &["migrate", "lease"]);
    assert_eq!(worker.create_project("lease", "written after").status, 200);

    let begun = worker.admin_ok(
        "POST",
        "/admin/users/lease/move/begin",
        br#"{"action": "rollback", "source": null, "tables": [], "indexes": []}"#.to_vec(),
    );
    assert!(begun["size"].as_u64().unwrap() > 12 << 20);
    let held = worker.get("/api/projects", Some("lease"));
    assert_eq!(held.status, 503);
    assert!(held.header("Retry-After").is_some());
    // A move in one step does not start over the export.
    assert_eq!(
        worker
            .admin("POST", "/admin/users/lease/migrate", Vec::new())
            .status,
        409
    );

    std::thread::sleep(Duration::from_secs(4));
    let served = worker.get("/api/projects", Some("lease"));
    assert_eq!(served.status, 200);
    assert_eq!(served.header("X-Data-Path"), Some("do"));
    let names: Vec<String> = served
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        names.iter().any(|name| name == "written after"),
        "{names:?}"
    );
    let status = worker.admin_ok("GET", "/admin/users/lease", vec![]);
    assert_eq!(status["object"]["state"], "active");
    assert_eq!(status["object"]["last_failure"]["step"], "interrupted");
}

/// Generated databases moved in chunks, R2 → object → R2: after each move the authoritative
/// copy (exported in chunks from the object, streamed from R2) holds every value of the file
/// bit-exact and of its class, with its schema, rowids and counters.
#[test]
fn generated_databases_move_in_chunks_there_and_back_bit_exact() {
    // Every file is above this ceiling, so every move is a chunked one.
    let worker = TestWorker::start_with_admin(&[("R2_MAX_DATABASE_BYTES", "1024")]);
    let scratch = tempfile::tempdir().unwrap();
    let exported = scratch.path().join("exported.sqlite");
    let exported = exported.to_str().unwrap();
    let config = Config {
        max_shrink_iters: 32,
        ..proptest_config(10)
    };
    let limits = Limits {
        max_tables: 5,
        max_rows: 60,
        max_value_bytes: 20_000,
    };
    let users = std::cell::Cell::new(0);
    let result = TestRunner::new(config).run(&database_spec_with(limits), |spec| {
        users.set(users.get() + 1);
        let user = format!("generated{}", users.get());
        let file = build(&spec);
        let original = contents(&file);
        let seeded = worker.admin("PUT", &format!("/admin/users/{user}/database"), file);
        assert_eq!(
            seeded.status,
            200,
            "{}",
            String::from_utf8_lossy(&seeded.body)
        );
        for action in [vec!["migrate", &user], vec!["rollback", &user, "--force"]] {
            try_migrator(&worker, &action).map_err(TestCaseError::fail)?;
            if action[0] == "migrate" {
                // The chunked cut-over leaves a tombstone in R2, never the file.
                let status = worker.admin_ok("GET", &format!("/admin/users/{user}"), vec![]);
                let size = status["r2"]["size"].as_u64().unwrap_or(0) as usize;
                assert_eq!(
                    size,
                    b"This user's data lives in their Durable Object; the R2 copy was pruned.\n"
                        .len()
                );
            }
            try_migrator(&worker, &["export", &user, "--output", exported])
                .map_err(TestCaseError::fail)?;
            let moved = contents(&std::fs::read(exported).unwrap()).part_of(&original);
            if let Some(difference) = first_difference(&original, &moved) {
                return Err(TestCaseError::fail(format!(
                    "after {} (first: the seed): {difference}",
                    action[0]
                )));
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
