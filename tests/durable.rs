//! `UserDataStore` in workerd: atomic requests, its data version, durability across restarts,
//! concurrent writers, and users kept apart on both paths.

use serde_json::json;
use test_support::TestWorker;

/// A worker with `user` flagged to their Durable Object.
fn worker_with_object_for(user: &str) -> TestWorker {
    let worker = TestWorker::start();
    worker.put_kv(&test_support::flag_key(user), "1");
    worker
}

#[test]
fn a_request_that_fails_after_its_first_write_leaves_nothing_behind() {
    let worker = worker_with_object_for("dora");
    let (content_type, body) = test_support::multipart(&[("name", test_support::Part::Text("g"))]);
    worker.request(
        "POST",
        "/api/games",
        Some("dora"),
        &[("Content-Type", &content_type)],
        body,
    );
    let first = worker.send_json(
        "POST",
        "/api/clips/raw/save",
        "dora",
        json!({"game_id": 1, "start_time": 0, "end_time": 4, "rating": 5}),
    );
    assert_eq!(first.json()["project_id"], 1);
    worker.send_json(
        "POST",
        "/api/clips/raw/save",
        "dora",
        json!({"game_id": 1, "start_time": 5, "end_time": 8}),
    );
    let before = worker.get("/api/projects", Some("dora")).db_version();

    // Leaving 5 stars deletes the auto-project (a write), then the new end time collides.
    let failed = worker.send_json(
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
        worker.get("/api/projects", Some("dora")).db_version(),
        before,
        "no version for nothing"
    );
}

#[test]
fn the_data_version_counts_writing_requests_only() {
    let worker = worker_with_object_for("otto");
    let start = worker.get("/api/projects", Some("otto")).db_version();
    let created = worker.send_json(
        "POST",
        "/api/projects",
        "otto",
        json!({"name": "a", "aspect_ratio": "1:1"}),
    );
    assert_eq!(created.db_version(), start + 1);
    assert_eq!(
        worker.get("/api/projects", Some("otto")).db_version(),
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
    assert_eq!(state.db_version(), start + 2);
    let noop = worker.request("PATCH", "/api/projects/1/state", Some("otto"), &[], vec![]);
    assert_eq!(noop.db_version(), start + 2);
}

#[test]
fn the_objects_data_survives_a_restart() {
    let mut worker = worker_with_object_for("remy");
    worker.send_json(
        "POST",
        "/api/projects",
        "remy",
        json!({"name": "durable", "aspect_ratio": "1:1"}),
    );
    worker.restart();
    let response = worker.get("/api/projects", Some("remy"));
    assert_eq!(response.header("X-Data-Path"), Some("do"));
    assert_eq!(worker.project_names("remy"), ["durable"]);
}

#[test]
fn concurrent_writers_on_one_object_lose_nothing() {
    let worker = worker_with_object_for("many");
    let start = worker.get("/api/projects", Some("many")).db_version();
    std::thread::scope(|scope| {
        for client in 0..4 {
            let worker = &worker;
            scope.spawn(move || {
                for i in 0..25 {
                    let name = format!("{client}-{i:02}");
                    let response = worker.send_json(
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
    assert_eq!(worker.project_names("many").len(), 100);
    assert_eq!(
        worker.get("/api/projects", Some("many")).db_version(),
        start + 100
    );
}

#[test]
fn users_never_see_each_others_rows_on_either_path() {
    let worker = TestWorker::start();
    worker.put_kv(&test_support::flag_key("bob"), "1");
    worker.put_kv(&test_support::flag_key("carl"), "1");
    for user in ["alice", "bob", "carl"] {
        worker.send_json(
            "POST",
            "/api/projects",
            user,
            json!({"name": format!("{user}'s"), "aspect_ratio": "1:1"}),
        );
    }
    for (user, path) in [("alice", "r2"), ("bob", "do"), ("carl", "do")] {
        let response = worker.get("/api/projects", Some(user));
        assert_eq!(response.header("X-Data-Path"), Some(path));
        assert_eq!(worker.project_names(user), [format!("{user}'s")]);
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
