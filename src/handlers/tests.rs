//! Native unit tests of the route table, and the helpers every handler test uses: a migrated
//! in-memory database and request builders.
//!
//! One suite, two backends, every file the existing app left: every handler test runs on rusqlite
//! (the R2 path's database) and on [`object_db::ObjectDb`], the Durable Object's SQLite with its
//! limits, its authorizer and its JavaScript numbers; and on a database of our schema as well as
//! on files the existing app laid down ([`test_support::legacy`]), brought up to date as their
//! first use here does. [`test_db`] opens the backend `HANDLER_TEST_BACKEND` names (`rusqlite`,
//! the default, or `object`) holding the file `HANDLER_TEST_FILE` names (`ours`, the default, or
//! a legacy state's name: `era-fresh`, `december`, `oldest+N`, `oldest-upgraded`).
//!
//! One process runs one pair. A plain `cargo test` runs the handler tests on rusqlite and our
//! schema, and [`every_handler_test_passes_on_both_backends_and_the_apps_own_files`] runs this
//! binary again once per other pair and checks that each of those runs passed exactly the
//! handler tests it lists. A filter that leaves that test out (`cargo test --lib
//! handlers::projects`) runs rusqlite and our schema only, and says so on stderr; to run a pair
//! alone: `HANDLER_TEST_BACKEND=object HANDLER_TEST_FILE=december cargo test --lib handlers::`.

use std::process::Command;

use serde_json::Value;

use test_support::legacy::{Contents, LegacyState, Lineage};

use super::*;
use user_data_core::db::rusqlite_db::RusqliteDb;
use user_data_core::db::{apply_migrations, DbError, Row};

mod legacy_files;
pub mod object_db;

use object_db::ObjectDb;

static NEXT_ENTROPY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The variable that picks the backend of the handler tests.
const BACKEND_VARIABLE: &str = "HANDLER_TEST_BACKEND";
/// The variable that picks the file the handler tests start from.
const FILE_VARIABLE: &str = "HANDLER_TEST_FILE";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    /// rusqlite as the R2 path runs it.
    Rusqlite,
    /// The Durable Object's SQLite ([`ObjectDb`]).
    Object,
}

/// The backend this run of the tests uses.
pub fn backend() -> Backend {
    match std::env::var(BACKEND_VARIABLE).as_deref() {
        Err(_) => {
            say_once_when_the_other_pairs_do_not_run();
            Backend::Rusqlite
        }
        Ok("rusqlite") => Backend::Rusqlite,
        Ok("object") => Backend::Object,
        Ok(other) => panic!("{BACKEND_VARIABLE}={other:?}: expected rusqlite or object"),
    }
}

/// A user's database on either backend.
pub enum TestDb {
    Rusqlite(RusqliteDb),
    Object(ObjectDb),
}

impl Db for TestDb {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, DbError> {
        match self {
            TestDb::Rusqlite(db) => db.execute(sql, params),
            TestDb::Object(db) => db.execute(sql, params),
        }
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        match self {
            TestDb::Rusqlite(db) => db.query(sql, params),
            TestDb::Object(db) => db.query(sql, params),
        }
    }

    fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        match self {
            TestDb::Rusqlite(db) => db.execute_script(sql),
            TestDb::Object(db) => db.execute_script(sql),
        }
    }

    fn transaction<T, E: From<DbError>>(
        &self,
        work: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            TestDb::Rusqlite(db) => db.transaction(work),
            TestDb::Object(db) => db.transaction(work),
        }
    }
}

/// The legacy state this run's tests start from; `None` for a database of our own schema.
fn legacy_state() -> Option<LegacyState> {
    match std::env::var(FILE_VARIABLE).as_deref() {
        Err(_) | Ok("ours") => None,
        Ok(name) => Some(
            LegacyState::all()
                .into_iter()
                .find(|state| state.name() == name)
                .unwrap_or_else(|| panic!("{FILE_VARIABLE}={name:?}: no such legacy state")),
        ),
    }
}

/// A migrated, empty database on this run's backend, opened as its storage path opens it: of
/// our schema, or the file of this run's legacy state, brought up to date.
pub fn test_db() -> TestDb {
    match legacy_state() {
        None => {
            let db = match backend() {
                Backend::Rusqlite => TestDb::Rusqlite(RusqliteDb::empty().unwrap()),
                Backend::Object => TestDb::Object(object_db()),
            };
            apply_migrations(&db).unwrap();
            db
        }
        Some(state) => test_db_of_file(&state.file(&Contents::default())),
    }
}

/// The database of this run's backend holding `file` as a user's first request finds it: on the
/// R2 path the file brought up to date ([`user_data_core::db::upgrade`]); in the object, the file
/// brought up to date and copied in, as a move does.
pub fn test_db_of_file(file: &[u8]) -> TestDb {
    let upgraded = RusqliteDb::from_bytes(file).unwrap();
    user_data_core::db::upgrade(&upgraded).unwrap();
    match backend() {
        Backend::Rusqlite => TestDb::Rusqlite(upgraded),
        Backend::Object => {
            let db = object_db();
            user_data_core::copy::copy_database(&upgraded, &db).unwrap();
            assert_eq!(apply_migrations(&db).unwrap(), 0);
            TestDb::Object(db)
        }
    }
}

/// An empty object database, as `UserDataStore` opens it (`SqlDb::disable_foreign_keys`).
fn object_db() -> ObjectDb {
    let db = ObjectDb::empty().unwrap();
    db.execute_script("PRAGMA foreign_keys = OFF").unwrap();
    db
}

pub fn request(method: Method, path: &str, body: Body) -> ApiRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    ApiRequest {
        method,
        path: path.to_owned(),
        query: query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        body,
        // Fresh per request, as the edge draws it; deterministic across test runs.
        entropy: NEXT_ENTROPY.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    }
}

pub fn json_body(value: Value) -> Body {
    Body::Json(value.to_string().into_bytes())
}

pub fn form(fields: &[(&str, &str)]) -> Body {
    Body::Form(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), FormValue::Text(v.to_string())))
            .collect(),
    )
}

/// Runs a request the way the storage paths do (one transaction) and returns the reply.
pub fn call(db: &TestDb, method: Method, path: &str, body: Body) -> Result<Reply, ApiError> {
    let user = UserId::parse("tester").unwrap();
    let request = request(method, path, body);
    db.transaction(|| handle(db, &user, &request))
}

/// The JSON body of a successful request.
pub fn ok(db: &TestDb, method: Method, path: &str, body: Body) -> Value {
    match call(db, method, path, body) {
        Ok(Reply {
            response: ApiResponse::Json(value),
            ..
        }) => value,
        other => panic!("{method:?} {path}: {other:?}"),
    }
}

/// The status of a failed request.
pub fn status(db: &TestDb, method: Method, path: &str, body: Body) -> u16 {
    match call(db, method, path, body) {
        Err(err) => err.status(),
        Ok(reply) => panic!("{method:?} {path} succeeded: {reply:?}"),
    }
}

#[test]
fn unknown_routes_are_404_and_bad_path_ids_422() {
    let db = test_db();
    assert_eq!(status(&db, Method::Get, "/api/nope", Body::Empty), 404);
    assert_eq!(status(&db, Method::Delete, "/api/games", Body::Empty), 404);
    assert_eq!(
        status(&db, Method::Get, "/api/projects/abc", Body::Empty),
        422
    );
}

#[test]
fn whoami_echoes_the_resolved_user() {
    let db = test_db();
    let body = ok(&db, Method::Get, "/api/auth/whoami", Body::Empty);
    assert_eq!(body, serde_json::json!({"user_id": "tester"}));
}

/// The full name of the test that runs the other pairs.
const OTHER_PAIRS_TEST: &str =
    "handlers::tests::every_handler_test_passes_on_both_backends_and_the_apps_own_files";

/// Says on stderr, once per process, that the handler tests of this run use rusqlite and our
/// schema only, when the test that runs the other pairs is not in the run (a filter left it
/// out). Written to stderr itself, which the test harness does not capture, so that a passing
/// run says it too.
fn say_once_when_the_other_pairs_do_not_run() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if !runs_test(&args, OTHER_PAIRS_TEST) {
            let note = format!(
                "note: these handler tests run on rusqlite with our schema only; the object's \
                 backend and the app's files run in {OTHER_PAIRS_TEST}, which this filter leaves \
                 out (or set {BACKEND_VARIABLE}=object, {FILE_VARIABLE}=<file>)\n"
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
        }
    });
}

/// Whether a test binary run with `args` (libtest's) runs the test named `name`: no filter, or
/// a filter that matches it (the whole name with `--exact`), and no `--skip` that matches it.
fn runs_test(args: &[String], name: &str) -> bool {
    const TAKES_A_VALUE: [&str; 7] = [
        "--test-threads",
        "--skip",
        "--format",
        "--color",
        "--logfile",
        "--shuffle-seed",
        "-Z",
    ];
    let exact = args.iter().any(|arg| arg == "--exact");
    let matches = |pattern: &str| {
        if exact {
            pattern == name
        } else {
            name.contains(pattern)
        }
    };
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--skip" {
            skips.extend(args.next());
        } else if TAKES_A_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg.as_str());
        }
    }
    (filters.is_empty() || filters.iter().any(|filter| matches(filter)))
        && !skips.iter().any(|skip| matches(skip))
}

#[test]
fn a_filter_that_leaves_out_the_other_pairs_is_noticed() {
    let args = |line: &str| -> Vec<String> { line.split_whitespace().map(String::from).collect() };
    assert!(runs_test(&args(""), OTHER_PAIRS_TEST));
    assert!(runs_test(
        &args("handlers:: --test-threads 2"),
        OTHER_PAIRS_TEST
    ));
    assert!(!runs_test(&args("handlers::projects"), OTHER_PAIRS_TEST));
    assert!(!runs_test(&args("--skip every_handler"), OTHER_PAIRS_TEST));
    assert!(!runs_test(&args("--exact handlers::"), OTHER_PAIRS_TEST));
    let exact = format!("--exact handlers::projects {OTHER_PAIRS_TEST}");
    assert!(runs_test(&args(&exact), OTHER_PAIRS_TEST));
}

/// The names of the tests this binary runs with `args` in the environment `env`, as its
/// `--list` prints them.
fn listed_tests(exe: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let listed = Command::new(exe)
        .args(args)
        .args(["--list", "--format", "pretty"])
        .envs(env.iter().copied())
        .output()
        .expect("the test binary lists its tests");
    assert!(listed.status.success(), "{listed:?}");
    let mut names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// The other pairs of backend and starting file: this test binary again, with the handler tests
/// only, once per pair. Each run must pass exactly the handler tests the binary lists for it
/// (all of them but this one), each by name: a run that ran fewer, skipped or ignored some, or
/// failed one fails here, with its output. The legacy states are the January file, the December
/// file, one half way through the upgrade history and the oldest file upgraded to the end.
#[test]
fn every_handler_test_passes_on_both_backends_and_the_apps_own_files() {
    if std::env::var_os(BACKEND_VARIABLE).is_some() || std::env::var_os(FILE_VARIABLE).is_some() {
        return; // This is one of those runs, or a run of one pair alone.
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let run_args = ["handlers::", "--skip", OTHER_PAIRS_TEST];
    let half_way = LegacyState {
        lineage: Lineage::Oldest,
        upgrades: LegacyState::oldest_upgraded().upgrades / 2,
    };
    let files = [
        "ours".to_owned(),
        LegacyState::ERA_FRESH.name(),
        LegacyState::december().name(),
        half_way.name(),
        LegacyState::oldest_upgraded().name(),
    ];
    // What every run must pass: the same tests whatever the pair.
    let handler_tests = listed_tests(&exe, &run_args, &[]);
    assert!(
        handler_tests.contains(&"handlers::tests::whoami_echoes_the_resolved_user".to_owned())
            && !handler_tests.contains(&OTHER_PAIRS_TEST.to_owned()),
        "the listing of the handler tests is not what this test expects: {handler_tests:?}"
    );
    for backend in ["rusqlite", "object"] {
        for file in &files {
            if (backend, file.as_str()) == ("rusqlite", "ours") {
                continue; // This run.
            }
            let env = [(BACKEND_VARIABLE, backend), (FILE_VARIABLE, file.as_str())];
            let pair = format!("{BACKEND_VARIABLE}={backend} {FILE_VARIABLE}={file}");
            assert_eq!(
                listed_tests(&exe, &run_args, &env),
                handler_tests,
                "{pair} lists other tests"
            );
            let output = Command::new(&exe)
                .args(run_args)
                .args(["--format", "pretty", "--color", "never"])
                .envs(env)
                .output()
                .expect("the test binary runs again");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let report = || format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
            assert!(
                output.status.success(),
                "handler tests failed with {pair}:\n{}",
                report()
            );
            let mut passed: Vec<String> = stdout
                .lines()
                .filter_map(|line| line.strip_prefix("test ")?.strip_suffix(" ... ok"))
                .map(str::to_owned)
                .collect();
            passed.sort();
            let missing: Vec<&String> = handler_tests
                .iter()
                .filter(|name| !passed.contains(name))
                .collect();
            assert!(
                missing.is_empty() && passed.len() == handler_tests.len(),
                "with {pair}, {} of {} handler tests passed; not passed: {missing:?}\n{}",
                passed.len(),
                handler_tests.len(),
                report()
            );
        }
    }
}
