//! `UserDataStore` in workerd: atomic requests, its data version, durability across restarts,
//! concurrent writers, and users kept apart on both paths.

mod harness;

use harness::{TestResponse, TestWorker};
use serde_json::{json, Value};

fn send(worker: &TestWorker, method: &str, path: &str, user: &str, body: Value) -> TestResponse {
    let bytes = body.to_string().into_bytes();
    worker.request(
        method,
        path,
        Some(user),
        &[("Content-Type", "application/json")],
        bytes,
    )
}

fn version(response: &TestResponse) -> u64 {
    response
        .header("X-DB-Version")
        .expect("X-DB-Version")
        .parse()
        .unwrap()
}

fn project_names(worker: &TestWorker, user: &str) -> Vec<String> {
    let mut names: Vec<String> = worker
        .get("/api/projects", Some(user))
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// A worker with `user` flagged to their Durable Object.
fn worker_with_object_for(user: &str) -> TestWorker {
    let worker = TestWorker::start();
    worker.put_kv(&format!("migrated:{user}"), "1");
    worker
}

#[test]
fn a_request_that_fails_after_its_first_write_leaves_nothing_behind() {
    let worker = worker_with_object_for("dora");
    let (content_type, body) = harness::multipart(&[("name", harness::Part::Text("g"))]);
    worker.request(
        "POST",
        "/api/games",
        Some("dora"),
        &[("Content-Type", &content_type)],
        body,
    );
    let first = send(
        &worker,
        "POST",
        "/api/clips/raw/save",
        "dora",
        json!({"game_id": 1, "start_time": 0, "end_time": 4, "rating": 5}),
    );
    assert_eq!(first.json()["project_id"], 1);
    send(
        &worker,
        "POST",
        "/api/clips/raw/save",
        "dora",
        json!({"game_id": 1, "start_time": 5, "end_time": 8}),
    );
    let before = version(&worker.get("/api/projects", Some("dora")));

    // Leaving 5 stars deletes the auto-project (a write), then the new end time collides.
    let failed = send(
        &worker,
        "PUT",
        "/api/clips/raw/1",
        "dora",
        json!({"rating": 2, "end_time": 8}),
    );
    assert_eq!(failed.status, 409);
    assert_eq!(failed.header("X-Data-Path"), Some("do"));

    assert_eq!(
        worker.get("/api/projects/1", Some("dora")).status,
        200,
        "the project is back"
    );
    let clip = worker.get("/api/clips/raw/1", Some("dora")).json();
    assert_eq!(
        (clip["rating"].clone(), clip["end_time"].clone()),
        (json!(5), json!(4.0))
    );
    assert_eq!(
        version(&worker.get("/api/projects", Some("dora"))),
        before,
        "no version for nothing"
    );
}

#[test]
fn the_data_version_counts_writing_requests_only() {
    let worker = worker_with_object_for("otto");
    let start = version(&worker.get("/api/projects", Some("otto")));
    let created = send(
        &worker,
        "POST",
        "/api/projects",
        "otto",
        json!({"name": "a", "aspect_ratio": "1:1"}),
    );
    assert_eq!(version(&created), start + 1);
    assert_eq!(
        version(&worker.get("/api/projects", Some("otto"))),
        start + 1
    );
    // Five rows in one request: one version.
    let state = worker.request(
        "PATCH",
        "/api/projects/1/state?current_mode=overlay&update_last_opened=1",
        Some("otto"),
        &[],
        vec![],
    );
    assert_eq!(version(&state), start + 2);
    let noop = worker.request("PATCH", "/api/projects/1/state", Some("otto"), &[], vec![]);
    assert_eq!(version(&noop), start + 2);
}

#[test]
fn the_objects_data_survives_a_restart() {
    let mut worker = worker_with_object_for("remy");
    send(
        &worker,
        "POST",
        "/api/projects",
        "remy",
        json!({"name": "durable", "aspect_ratio": "1:1"}),
    );
    worker.restart();
    let response = worker.get("/api/projects", Some("remy"));
    assert_eq!(response.header("X-Data-Path"), Some("do"));
    assert_eq!(project_names(&worker, "remy"), ["durable"]);
}

#[test]
fn concurrent_writers_on_one_object_lose_nothing() {
    let worker = worker_with_object_for("many");
    let start = version(&worker.get("/api/projects", Some("many")));
    std::thread::scope(|scope| {
        for client in 0..4 {
            let worker = &worker;
            scope.spawn(move || {
                for i in 0..25 {
                    let name = format!("{client}-{i:02}");
                    let response = send(
                        worker,
                        "POST",
                        "/api/projects",
                        "many",
                        json!({"name": name, "aspect_ratio": "1:1"}),
                    );
                    assert_eq!(response.status, 200);
                }
            });
        }
    });
    assert_eq!(project_names(&worker, "many").len(), 100);
    assert_eq!(
        version(&worker.get("/api/projects", Some("many"))),
        start + 100
    );
}

#[test]
fn users_never_see_each_others_rows_on_either_path() {
    let worker = TestWorker::start();
    worker.put_kv("migrated:bob", "1");
    worker.put_kv("migrated:carl", "1");
    for user in ["alice", "bob", "carl"] {
        send(
            &worker,
            "POST",
            "/api/projects",
            user,
            json!({"name": format!("{user}'s"), "aspect_ratio": "1:1"}),
        );
    }
    for (user, path) in [("alice", "r2"), ("bob", "do"), ("carl", "do")] {
        let response = worker.get("/api/projects", Some(user));
        assert_eq!(response.header("X-Data-Path"), Some(path));
        assert_eq!(project_names(&worker, user), [format!("{user}'s")]);
    }
    // The header name is case-insensitive; two user headers are refused, not merged or guessed.
    let lower = worker.request(
        "GET",
        "/api/projects",
        None,
        &[("x-user-id", "bob")],
        vec![],
    );
    assert_eq!(lower.json()[0]["name"], "bob's");
    let both = worker.request(
        "GET",
        "/api/projects",
        None,
        &[("X-User-ID", "bob"), ("X-User-ID", "alice")],
        vec![],
    );
    assert_eq!(both.status, 400);
    // Ids from a path or query do not select a user.
    let smuggled = worker.request(
        "GET",
        "/api/projects?user_id=bob",
        Some("alice"),
        &[],
        vec![],
    );
    assert_eq!(smuggled.json()[0]["name"], "alice's");
}
