//! The router in workerd: health, user identification, and the KV flag choosing the storage path.

use test_support::{sqlite_file_with, Options, TestWorker};

#[test]
fn health_answers_ok_without_naming_a_user() {
    let worker = TestWorker::start();
    let response = worker.get("/api/health", None);
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), serde_json::json!({"status": "ok"}));
    // An invalid user id is irrelevant to health: it does not resolve a user at all.
    assert_eq!(worker.get("/api/health", Some("not valid!")).status, 200);
}

#[test]
fn invalid_user_ids_are_refused_with_400_and_a_detail() {
    let worker = TestWorker::start();
    let too_long = "x".repeat(65);
    for user in ["ab$x-1_Z", "a b", "../a", "caf%C3%A9", too_long.as_str()] {
        let response = worker.get("/api/games", Some(user));
        assert_eq!(response.status, 400, "user {user:?}");
        let detail = response.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("X-User-ID"), "detail: {detail}");
    }
    // The longest valid id is accepted.
    assert_eq!(worker.get("/api/games", Some(&"x".repeat(64))).status, 200);
}

#[test]
fn missing_user_header_is_401_when_no_default_user_is_configured() {
    let worker = TestWorker::start();
    let response = worker.get("/api/games", None);
    assert_eq!(response.status, 401);
    assert_eq!(
        response.json()["detail"],
        serde_json::json!("Missing X-User-ID header")
    );
}

#[test]
fn dev_environment_serves_missing_header_as_the_default_user() {
    let worker = TestWorker::start_with(Options {
        config: Some("wrangler.dev.toml".into()),
        ..Options::default()
    });
    let response = worker.get("/api/auth/whoami", None);
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), serde_json::json!({"user_id": "a"}));
    assert_eq!(response.header("X-Data-Path"), Some("r2"));
}

#[test]
fn unflagged_user_is_served_from_their_sqlite_file_in_r2() {
    let worker = TestWorker::start();
    let file = sqlite_file_with("INSERT INTO games (name) VALUES ('Seeded game');");
    worker.put_r2(&test_support::database_key("dave"), &file);

    let response = worker.get("/api/games", Some("dave"));
    assert_eq!(response.status, 200);
    assert_eq!(response.header("X-Data-Path"), Some("r2"));
    let games = response.json()["games"].clone();
    assert_eq!(games.as_array().unwrap().len(), 1);
    assert_eq!(games[0]["raw_name"], "Seeded game");

    // Another user with no object reads as empty, not as dave's data.
    let other = worker.get("/api/games", Some("erin"));
    assert_eq!(other.header("X-Data-Path"), Some("r2"));
    assert_eq!(other.json(), serde_json::json!({"games": []}));
}

#[test]
fn a_flagged_user_is_served_by_their_durable_object_with_their_r2_data() {
    let worker = TestWorker::start();
    let file = sqlite_file_with("INSERT INTO games (name) VALUES ('Made on R2');");
    worker.put_r2(&test_support::database_key("carol"), &file);
    worker.put_kv(&test_support::flag_key("carol"), "1");

    // The flag (set by hand here) sends carol to her object, which moves her data in first.
    let response = worker.get("/api/games", Some("carol"));
    assert_eq!(response.status, 200, "{}", worker.logs());
    assert_eq!(response.header("X-Data-Path"), Some("do"));
    assert_eq!(response.json()["games"][0]["raw_name"], "Made on R2");

    let whoami = worker.get("/api/auth/whoami", Some("carol"));
    assert_eq!(whoami.json(), serde_json::json!({"user_id": "carol"}));
    assert_eq!(whoami.header("X-Data-Path"), Some("do"));

    // A location that does not see the flag yet still reaches the object: R2 says migrated.
    worker.delete_kv(&test_support::flag_key("carol"));
    let fenced = worker.get("/api/games", Some("carol"));
    assert_eq!(fenced.header("X-Data-Path"), Some("do"));
    assert_eq!(fenced.json()["games"][0]["raw_name"], "Made on R2");
}

#[test]
fn r2_object_that_is_not_sqlite_is_answered_503() {
    let worker = TestWorker::start();
    worker.put_r2(
        &test_support::database_key("mallory"),
        b"this is not a database file at all",
    );
    let response = worker.get("/api/games", Some("mallory"));
    assert_eq!(response.status, 503);
    assert!(response.json()["detail"]
        .as_str()
        .unwrap()
        .contains("not a valid SQLite database"));
}

/// The JSON lines of the Worker's log whose `event` is `event` and `user` is `user`, once
/// `count` of them are there (wrangler writes the log a moment after each response).
fn log_events(
    worker: &TestWorker,
    event: &str,
    user: &str,
    count: usize,
) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for _ in 0..50 {
        found = worker
            .logs()
            .lines()
            .filter_map(|line| {
                serde_json::from_str::<serde_json::Value>(&line[line.find('{')?..]).ok()
            })
            .filter(|line| line["event"] == event && line["user"] == user)
            .collect();
        if found.len() >= count {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    found
}

#[test]
fn every_request_and_move_logs_one_json_line_an_operator_can_search_by_user() {
    let worker = TestWorker::start_with_admin(&[]);
    assert_eq!(worker.create_project("loggy", "first").status, 200);
    assert_eq!(worker.get("/api/projects/1", Some("loggy")).status, 200);
    assert_eq!(worker.get("/api/projects/999", Some("loggy")).status, 404);
    worker.admin_ok("POST", "/admin/users/loggy/migrate", Vec::new());
    assert_eq!(worker.get("/api/projects/1", Some("loggy")).status, 200);

    let requests = log_events(&worker, "request", "loggy", 4);
    let summary: Vec<(String, u64, String)> = requests
        .iter()
        .map(|line| {
            (
                line["route"].as_str().unwrap().to_owned(),
                line["status"].as_u64().unwrap(),
                line["data_path"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("POST /api/projects".to_owned(), 200, "r2".to_owned()),
            ("GET /api/projects/{id}".to_owned(), 200, "r2".to_owned()),
            ("GET /api/projects/{id}".to_owned(), 404, "r2".to_owned()),
            ("GET /api/projects/{id}".to_owned(), 200, "do".to_owned()),
        ],
        "{}",
        worker.logs()
    );
    for line in &requests {
        assert!(line["ms"].is_u64(), "{line}");
        assert!(line["db_version"].is_u64(), "{line}");
        assert!(line["request_id"].is_string(), "{line}");
    }
    assert!(
        requests[1]["cache_hit"].is_boolean(),
        "the R2 path says whether its cache served"
    );

    let started = log_events(&worker, "move_started", "loggy", 1);
    let finished = log_events(&worker, "move_finished", "loggy", 1);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["action"], "migrate");
    assert_eq!(finished.len(), 1, "{}", worker.logs());
    assert_eq!(finished[0]["outcome"], "migrated");
    assert!(finished[0]["bytes"].as_u64().unwrap() > 0);
    assert!(finished[0]["ms"].is_u64());
}
