//! Native unit tests of the route table, and the helpers every handler test uses: a migrated
//! in-memory database and request builders.
//!
//! One suite, two backends: every handler test runs on rusqlite (the R2 path's database) and on
//! [`object_db::ObjectDb`], the Durable Object's SQLite with its limits, its authorizer and its
//! JavaScript numbers. [`test_db`] opens the backend `HANDLER_TEST_BACKEND` names (`rusqlite`,
//! the default, or `object`); a plain `cargo test` runs the handler tests on rusqlite, and
//! [`every_handler_test_passes_on_the_objects_sqlite_too`] runs them all again on the object's,
//! in a second run of the same test binary. `HANDLER_TEST_BACKEND=object cargo test --lib
//! handlers::` runs them on the object's SQLite alone.

use std::process::Command;

use serde_json::Value;

use super::*;
use crate::db::rusqlite_db::RusqliteDb;
use crate::db::{apply_migrations, DbError, Row};

pub mod object_db;

use object_db::ObjectDb;

static NEXT_ENTROPY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The variable that picks the backend of the handler tests.
const BACKEND_VARIABLE: &str = "HANDLER_TEST_BACKEND";

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

/// A migrated, empty database on this run's backend, opened as its storage path opens it.
pub fn test_db() -> TestDb {
    let db = match backend() {
        Backend::Rusqlite => TestDb::Rusqlite(RusqliteDb::empty().unwrap()),
        Backend::Object => {
            let db = ObjectDb::empty().unwrap();
            // What `UserDataStore` does first (`SqlDb::disable_foreign_keys`).
            db.execute_script("PRAGMA foreign_keys = OFF").unwrap();
            TestDb::Object(db)
        }
    };
    apply_migrations(&db).unwrap();
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
    Body::Bytes(value.to_string().into_bytes())
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

/// The second backend of the suite: this test binary again, with the handler tests only, on the
/// object's SQLite. A test that fails there fails here, with its output.
#[test]
fn every_handler_test_passes_on_the_objects_sqlite_too() {
    if backend() == Backend::Object {
        return; // This is that run.
    }
    let output = Command::new(std::env::current_exe().expect("the test binary's path"))
        .arg("handlers::")
        .env(BACKEND_VARIABLE, "object")
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = || format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "handler tests failed on the object's SQLite ({BACKEND_VARIABLE}=object):\n{}",
        report()
    );
    let passed = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum::<usize>();
    assert!(
        passed > 1,
        "no handler test ran on the object's SQLite:\n{}",
        report()
    );
}
