//! The operator's whole job against a Worker served over HTTPS by a private CA, at fleet scale:
//! 1,000 users planned, migrated in growing cohorts with one made to fail, listed as failed,
//! verified, rolled back, and migrated again; and every request in the Worker's JSON log.
//!
//! The certificates are made by the real `openssl`; the migrator trusts the CA only through
//! `--cacert`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use test_support::{sqlite_file_with, Options, TestWorker, TlsFiles, ADMIN_TOKEN};

const USERS: usize = 1000;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A private CA and a certificate for 127.0.0.1 signed by it.
fn private_ca(dir: &Path) -> TlsFiles {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=reel-ballers test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: dir.join("ca.pem"),
    }
}

struct Operator<'a> {
    worker: &'a TestWorker,
    cacert: String,
    journal: String,
}

impl Operator<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_migrator"))
            .args(args)
            .args(["--json", "--cacert", &self.cacert])
            .env("MIGRATOR_ENDPOINT", self.worker.base_url())
            .env("MIGRATOR_TOKEN", ADMIN_TOKEN)
            .env("XDG_STATE_HOME", &self.journal)
            .stdin(Stdio::null())
            .output()
            .expect("the migrator runs")
    }

    /// Runs the migrator; it must succeed. Its JSON lines.
    fn ok(&self, args: &[&str]) -> Vec<Value> {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "migrator {args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        lines(&output)
    }

    /// The users the Worker lists as migrated.
    fn migrated(&self) -> BTreeSet<String> {
        let listed = self.ok(&["status"]);
        assert_eq!(listed[0]["users"], USERS as u64);
        admin_api::join(self.worker.user_pages(1000))
            .into_iter()
            .filter(|user| user.r2.state == admin_api::R2State::Migrated)
            .map(|user| user.user_id)
            .collect()
    }
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[test]
fn an_operator_moves_a_fleet_of_a_thousand_over_https_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let tls = private_ca(dir.path());
    let worker = TestWorker::start_with(Options {
        vars: vec![
            ("ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("FAULT_INJECTION".into(), "1".into()),
        ],
        tls: Some(tls.clone()),
        ..Options::default()
    });
    assert!(worker.base_url().starts_with("https://"));
    let operator = Operator {
        worker: &worker,
        cacert: tls.ca.to_string_lossy().into_owned(),
        journal: dir.path().join("state").to_string_lossy().into_owned(),
    };

    // Without the CA the migrator does not trust the Worker, and says so.
    let untrusted = Command::new(env!("CARGO_BIN_EXE_migrator"))
        .args(["health", "--retries", "0"])
        .env("MIGRATOR_ENDPOINT", worker.base_url())
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    assert!(String::from_utf8_lossy(&untrusted.stderr).contains("cannot reach the Worker"));
    operator.ok(&["health"]);

    let users: Vec<String> = (0..USERS).map(|i| format!("op-{i:04}")).collect();
    let file = sqlite_file_with(
        "INSERT INTO games (id, name) VALUES (1, 'g');
         INSERT INTO raw_clips (id, filename, rating, end_time, game_id) VALUES (1, 'a.mp4', 4, 12.345678901234567, 1);",
    );
    std::thread::scope(|scope| {
        for chunk in users.chunks(USERS / 8) {
            let (worker, file) = (&worker, &file);
            scope.spawn(move || {
                for user in chunk {
                    let path = format!("/admin/users/{user}/database");
                    assert_eq!(worker.admin("PUT", &path, file.clone()).status, 200);
                }
            });
        }
    });

    // 1. plan: everyone, each movable.
    let plan = operator.ok(&["plan"]);
    assert_eq!(plan[0]["count"], USERS as u64);
    assert_eq!(plan[0]["cannot_move"], 0);

    // 2. a gradual migrate: 10%, then 50% with one user made to fail, then everyone.
    operator.ok(&[
        "migrate",
        "--all",
        "--yes",
        "--percent",
        "10",
        "--concurrency",
        "8",
    ]);
    let tenth = operator.migrated();
    assert!((50..=150).contains(&tenth.len()), "10% is {}", tenth.len());
    let would = operator.ok(&["migrate", "--all", "--percent", "50", "--dry-run"]);
    let doomed = would
        .iter()
        .filter_map(|line| line["user"].as_str())
        .find(|user| !tenth.contains(*user))
        .expect("a user in 50% but not in 10%")
        .to_owned();
    worker.admin_ok(
        "POST",
        &format!("/admin/users/{doomed}/fault?action=migrate&step=copy&crash=false"),
        Vec::new(),
    );
    // No retries: a retried move would succeed, the fault being spent (moves are idempotent).
    let half = operator.run(&[
        "migrate",
        "--all",
        "--yes",
        "--percent",
        "50",
        "--concurrency",
        "8",
        "--retries",
        "0",
    ]);
    assert_eq!(half.status.code(), Some(1), "one user failed");
    let summary = lines(&half).last().cloned().unwrap();
    assert_eq!(summary["summary"]["failed"], 1);
    assert!(summary["summary"]["users_per_second"].as_f64().unwrap() > 0.0);

    // 3. status --failed names that user and the reason, and nobody else.
    let failed = operator.run(&["status", "--failed"]);
    assert_eq!(failed.status.code(), Some(1));
    let failed = lines(&failed);
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0]["user"], doomed.as_str());
    assert_eq!(failed[0]["action"], "migrate");
    assert!(
        failed[0]["reason"].as_str().unwrap().contains("injected"),
        "{}",
        failed[0]
    );

    let before = operator.migrated().len();
    let everyone = operator.ok(&["migrate", "--all", "--yes", "--concurrency", "8"]);
    let summary = &everyone.last().unwrap()["summary"];
    assert_eq!(summary["failed"], 0);
    assert_eq!(
        summary["moved"],
        (USERS - before) as u64,
        "only who was left"
    );
    assert_eq!(operator.migrated().len(), USERS);
    assert!(
        operator.run(&["status", "--failed"]).status.success(),
        "no failure left"
    );

    // 4. verify: a sample, the once-failed user among them.
    let mut sample: Vec<&str> = users.iter().step_by(97).map(String::as_str).collect();
    sample.push(&doomed);
    let mut args = vec!["verify"];
    args.extend(&sample);
    for line in operator.ok(&args) {
        assert_eq!(line["ok"], true, "{line}");
    }

    // 5. rollback everyone, 6. and migrate again: the journal skips no one.
    operator.ok(&["rollback", "--all", "--yes", "--concurrency", "8"]);
    assert!(operator.migrated().is_empty());
    let again = operator.ok(&["migrate", "--all", "--yes", "--concurrency", "8"]);
    assert_eq!(again.last().unwrap()["summary"]["moved"], USERS as u64);
    assert_eq!(operator.migrated().len(), USERS);

    // The data came through: a 17-digit float, exactly.
    let games = worker.request("GET", "/api/clips/raw", Some("op-0042"), &[], Vec::new());
    assert_eq!(games.status, 200);
    assert_eq!(games.header("X-Data-Path"), Some("do"));
    assert_eq!(games.json()[0]["end_time"], 12.345678901234567);

    // Every request is in the JSON log, searchable by user.
    let logged = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        worker.logs().lines().any(|line| {
            line.contains(r#""event":"request""#)
                && line.contains(r#""user":"op-0042""#)
                && line.contains(r#""route":"GET /api/clips/raw""#)
        })
    });
    assert!(logged, "the request of op-0042 is not in the log");
}
