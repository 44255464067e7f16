//! Native unit tests of the route table, and the helpers every handler test uses: a migrated
//! in-memory database and request builders.

use serde_json::Value;

use super::*;
use crate::db::apply_migrations;
use crate::db::rusqlite_db::RusqliteDb;

static NEXT_ENTROPY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub fn test_db() -> RusqliteDb {
    let db = RusqliteDb::empty().unwrap();
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
pub fn call(db: &RusqliteDb, method: Method, path: &str, body: Body) -> Result<Reply, ApiError> {
    let user = UserId::parse("tester").unwrap();
    let request = request(method, path, body);
    db.transaction(|| handle(db, &user, &request))
}

/// The JSON body of a successful request.
pub fn ok(db: &RusqliteDb, method: Method, path: &str, body: Body) -> Value {
    match call(db, method, path, body) {
        Ok(Reply {
            response: ApiResponse::Json(value),
            ..
        }) => value,
        other => panic!("{method:?} {path}: {other:?}"),
    }
}

/// The status of a failed request.
pub fn status(db: &RusqliteDb, method: Method, path: &str, body: Body) -> u16 {
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
