//! Native unit tests of the route table, and the helpers every handler test uses: a migrated
//! in-memory database and request builders.
//!
//! One suite, two backends, every file the existing app left: every handler test runs on rusqlite
//! (the R2 path's database) and on [`object_db::ObjectDb`], the Durable Object's SQLite with its
//! limits, its authorizer and its JavaScript numbers; and on a database of our schema as well as
//! on files the existing app laid down ([`test_support::legacy`]), brought up to date as their
//! first use here does. [`test_db`] opens the backend `HANDLER_TEST_BACKEND` names (`rusqlite`,
//! the default, or `object`) holding the file `HANDLER_TEST_FILE` names (`ours`, the default, or
//! a legacy state's name: `era-fresh`, `december`, `oldest+N`, `oldest-upgraded`). A plain
//! `cargo test` runs the handler tests on rusqlite and our schema, and
//! [`every_handler_test_passes_on_both_backends_and_the_apps_own_files`] runs them all again for
//! each other pair, in further runs of the same test binary. `HANDLER_TEST_BACKEND=object
//! HANDLER_TEST_FILE=december cargo test --lib handlers::` runs one pair alone.

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
        Err(_) | Ok("rusqlite") => Backend::Rusqlite,
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

/// The other pairs of backend and starting file: this test binary again, with the handler tests
/// only, once per pair. A test that fails there fails here, with its output. The legacy states
/// are the January file, the December file, one half way through the upgrade history and the
/// oldest file upgraded to the end.
#[test]
fn every_handler_test_passes_on_both_backends_and_the_apps_own_files() {
    if std::env::var_os(BACKEND_VARIABLE).is_some() || std::env::var_os(FILE_VARIABLE).is_some() {
        return; // This is one of those runs.
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let listed = Command::new(&exe)
        .args(["handlers::", "--list"])
        .output()
        .expect("the test binary lists its tests");
    let handler_tests = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|line| line.ends_with(": test"))
        .count();
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
    for backend in ["rusqlite", "object"] {
        for file in &files {
            if (backend, file.as_str()) == ("rusqlite", "ours") {
                continue; // This run.
            }
            let output = Command::new(&exe)
                .arg("handlers::")
                .env(BACKEND_VARIABLE, backend)
                .env(FILE_VARIABLE, file)
                .output()
                .expect("the test binary runs again");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let report = || format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
            assert!(
                output.status.success(),
                "handler tests failed with {BACKEND_VARIABLE}={backend} {FILE_VARIABLE}={file}:\n{}",
                report()
            );
            let passed = stdout
                .lines()
                .filter_map(|line| line.strip_prefix("test result: ok. "))
                .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
                .sum::<usize>();
            assert_eq!(
                passed,
                handler_tests,
                "not every handler test ran with {BACKEND_VARIABLE}={backend} \
                 {FILE_VARIABLE}={file}:\n{}",
                report()
            );
        }
    }
}
