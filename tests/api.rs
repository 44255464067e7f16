//! The data API in workerd, served identically from both storage paths.

use serde_json::{json, Value};
use test_support::{multipart, Part, TestResponse, TestWorker};

/// Keys whose values are clock readings; they differ between any two runs.
const TIME_KEYS: [&str; 7] = [
    "created_at",
    "last_opened_at",
    "started_at",
    "completed_at",
    "saved_at",
    "timestamp",
    "exported_at",
];

/// Replaces every run of 12 or more lowercase hex digits (random file names and job ids).
fn mask_hex(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
            continue;
        }
        if run.len() >= 12 {
            out.push_str("<hex>");
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// A response body with clock readings and random names masked.
fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                let value = if TIME_KEYS.contains(&key.as_str()) && !value.is_null() {
                    json!("<time>")
                } else {
                    normalise(value)
                };
                (key.clone(), value)
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Array(items) => items.iter().map(normalise).collect(),
        Value::String(text) => json!(mask_hex(text)),
        other => other.clone(),
    }
}

/// One user's session: sends requests and records (step, status, normalised body).
struct Session<'a> {
    worker: &'a TestWorker,
    user: &'a str,
    path: &'a str,
    log: Vec<(String, u16, Value)>,
}

impl Session<'_> {
    fn record(&mut self, step: &str, response: TestResponse) -> Value {
        assert_eq!(
            response.header("X-Data-Path"),
            Some(self.path),
            "{step}: served by the wrong path"
        );
        let body = if response
            .header("Content-Type")
            .is_some_and(|ct| ct.starts_with("application/json"))
        {
            response.json()
        } else {
            json!({ "bytes": response.body, "content_range": response.header("Content-Range") })
        };
        // The user id is the one thing that differs by design.
        let body: Value = serde_json::from_str(&body.to_string().replace(self.user, "<user>"))
            .expect("still JSON");
        self.log
            .push((mask_hex(step), response.status, normalise(&body)));
        body
    }

    fn send(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (headers, bytes) = match body {
            Some(body) => (
                vec![("Content-Type", "application/json")],
                body.to_string().into_bytes(),
            ),
            None => (vec![], vec![]),
        };
        let response = self
            .worker
            .request(method, path, Some(self.user), &headers, bytes);
        self.record(&format!("{method} {path}"), response)
    }

    fn form(&mut self, method: &str, path: &str, parts: &[(&str, Part<'_>)]) -> Value {
        let (content_type, bytes) = multipart(parts);
        let headers = [("Content-Type", content_type.as_str())];
        let response = self
            .worker
            .request(method, path, Some(self.user), &headers, bytes);
        self.record(&format!("{method} {path} (form)"), response)
    }

    fn get_range(&mut self, path: &str, range: &str) -> Value {
        let response =
            self.worker
                .request("GET", path, Some(self.user), &[("Range", range)], vec![]);
        self.record(&format!("GET {path} Range {range}"), response)
    }

    fn status_of_last(&self) -> u16 {
        self.log
            .last()
            .map(|(_, status, _)| *status)
            .unwrap_or_default()
    }
}

/// The scripted session: what the frontend does over a working day, plus its error cases.
fn run_session(worker: &TestWorker, user: &str, path: &str) -> Vec<(String, u16, Value)> {
    let mut s = Session {
        worker,
        user,
        path,
        log: Vec::new(),
    };
    let video = b"\x00\x00\x00\x18ftypmp42 pretend video bytes";

    // Games and the clip library.
    let game = s.form(
        "POST",
        "/api/games",
        &[
            ("name", Part::Text("Home game")),
            ("opponent_name", Part::Text("Rivals")),
            ("game_date", Part::Text("2025-10-04")),
            ("game_type", Part::Text("away")),
        ],
    );
    assert_eq!(game["game"]["name"], "at Rivals Oct 4");
    s.form(
        "POST",
        "/api/games",
        &[
            ("name", Part::Text("Cup game")),
            ("video_width", Part::Text("1920")),
        ],
    );
    let saved = s.send("POST", "/api/clips/raw/save", Some(json!(
        {"game_id": 1, "start_time": 1.5, "end_time": 4.0, "rating": 5, "tags": ["Goals"], "name": "Worldie"})));
    assert_eq!(saved["project_created"], true);
    s.send("POST", "/api/clips/raw/save", Some(json!(
        {"game_id": 1, "start_time": 10, "end_time": 12, "rating": 3, "tags": ["Dribbling", "Passing Range"]})));
    s.send("POST", "/api/clips/raw/save", Some(json!(
        {"game_id": 2, "start_time": 3, "end_time": 4.0, "rating": 4, "tags": ["Tackles"], "notes": "défense ✓"})));
    s.send(
        "PUT",
        "/api/clips/raw/2",
        Some(json!({"notes": "edited", "rating": 4})),
    );
    // Moving clip 1 onto clip 2's (game, end time) fails after the auto-project delete: all undone.
    s.send(
        "PUT",
        "/api/clips/raw/1",
        Some(json!({"end_time": 12, "rating": 1})),
    );
    assert_eq!(s.status_of_last(), 409);
    let clip = s.send("GET", "/api/clips/raw/1", None);
    assert_eq!(
        (clip["rating"].clone(), clip["auto_project_id"].clone()),
        (json!(5), json!(1))
    );
    s.send("GET", "/api/projects/1", None);
    assert_eq!(
        s.status_of_last(),
        200,
        "the auto-project deleted before the failure is back"
    );
    s.send("GET", "/api/clips/raw", None);
    s.send("GET", "/api/clips/raw?game_id=1&min_rating=4", None);

    // Projects, clips in projects, reordering and versions.
    s.send(
        "POST",
        "/api/projects",
        Some(json!({"name": "Season", "aspect_ratio": "16:9"})),
    );
    s.send(
        "POST",
        "/api/projects/preview-clips",
        Some(json!({"min_rating": 3, "tags": ["Goals"]})),
    );
    s.send(
        "POST",
        "/api/projects/from-clips",
        Some(json!({"name": "Best", "clip_ids": [3, 1]})),
    );
    s.form(
        "POST",
        "/api/clips/projects/2/clips",
        &[("raw_clip_id", Part::Text("2"))],
    );
    s.send(
        "PUT",
        "/api/clips/projects/3/clips/reorder",
        Some(json!([3, 2])),
    );
    s.send(
        "PUT",
        "/api/clips/projects/3/clips/3",
        Some(json!({"crop_data": "[{\"time\":0,\"x\":10,\"y\":0,\"width\":540,\"height\":960}]"})),
    );
    let version = s.form(
        "POST",
        "/api/clips/projects/3/clips",
        &[("raw_clip_id", Part::Text("1"))],
    );
    assert_eq!(version["id"], 5);
    s.send("GET", "/api/clips/projects/3/clips", None);
    s.send("GET", "/api/projects/3?_t=123", None);
    s.send(
        "PATCH",
        "/api/projects/3/state?update_last_opened=true&current_mode=overlay",
        None,
    );
    s.send("GET", "/api/projects", None);
    s.send("GET", "/api/projects/3/working-video", None);
    assert_eq!(s.status_of_last(), 404);

    // Overlay data.
    s.form(
        "PUT",
        "/api/export/projects/3/overlay-data",
        &[("highlights_data", Part::Text("[]"))],
    );
    assert_eq!(s.status_of_last(), 400);
    s.send("GET", "/api/export/projects/3/overlay-data", None);

    // Export jobs and downloads.
    let job = s.send(
        "POST",
        "/api/exports",
        Some(json!({"project_id": 3, "type": "framing", "config": {"fps": 30}})),
    );
    let job_id = job["job_id"].as_str().expect("a job id").to_owned();
    s.send("GET", "/api/exports/active", None);
    s.send("GET", &format!("/api/exports/{job_id}"), None);
    s.send("DELETE", &format!("/api/exports/{job_id}"), None);
    s.send("DELETE", &format!("/api/exports/{job_id}"), None);
    assert_eq!(s.status_of_last(), 400);
    s.send("GET", "/api/exports/project/3", None);
    s.send("GET", "/api/exports/recent?hours=2", None);
    s.send("GET", "/api/downloads", None);
    s.send("GET", "/api/downloads/count", None);
    s.send("GET", "/api/export/before-after/1/status", None);

    // Videos and files, stored in and streamed from R2.
    s.form(
        "PUT",
        "/api/games/2/video",
        &[(
            "video",
            Part::File {
                filename: "cup.mp4",
                content_type: "video/mp4",
                bytes: video,
            },
        )],
    );
    s.send("GET", "/api/games/2/video", None);
    s.get_range("/api/games/2/video", "bytes=4-11");
    assert_eq!(s.status_of_last(), 206);
    let upload = s.form(
        "POST",
        "/api/clips/projects/2/clips",
        &[(
            "file",
            Part::File {
                filename: "phone.mov",
                content_type: "video/quicktime",
                bytes: b"clip bytes",
            },
        )],
    );
    let clip_id = upload["id"].as_i64().expect("a working clip id");
    s.send(
        "GET",
        &format!("/api/clips/projects/2/clips/{clip_id}/file?stream=true"),
        None,
    );
    s.send("GET", "/api/clips/raw/1/file", None);
    assert_eq!(s.status_of_last(), 404, "pending clips have no file");

    // Annotations, deletes and their cascades.
    s.send("PUT", "/api/games/1/annotations", Some(json!([
        {"start_time": 1.5, "end_time": 4.0, "name": "Worldie", "rating": 5, "tags": ["Goals"], "notes": ""},
        {"start_time": 99, "end_time": 100, "name": "", "rating": 1, "tags": [], "notes": ""}
    ])));
    s.send("GET", "/api/games/1", None);
    s.send("GET", "/api/games", None);
    s.send("DELETE", "/api/clips/raw/3", None);
    s.send("DELETE", "/api/projects/2", None);
    s.send("GET", "/api/projects", None);

    // Errors: the same status and detail on both paths.
    s.send("GET", "/api/projects/999", None);
    s.send(
        "POST",
        "/api/projects",
        Some(json!({"name": "X", "aspect_ratio": "2:1"})),
    );
    s.send(
        "POST",
        "/api/projects/from-clips",
        Some(json!({"name": "None", "min_rating": 6})),
    );
    let response = worker.request(
        "POST",
        "/api/projects",
        Some(user),
        &[("Content-Type", "application/json")],
        b"{not json".to_vec(),
    );
    s.record("POST /api/projects (malformed)", response);
    assert_eq!(s.status_of_last(), 422);

    s.send("DELETE", "/api/auth/user", None);
    s.send("GET", "/api/games", None);
    s.log
}

#[test]
fn the_same_session_answers_identically_on_both_paths() {
    let worker = TestWorker::start();
    let [on_r2, on_do] = test_support::DataPath::BOTH.map(|path| {
        let user = worker.user_on("on", path);
        run_session(&worker, &user, path.header())
    });
    assert_eq!(on_r2.len(), on_do.len());
    for (r2, durable) in on_r2.iter().zip(&on_do) {
        assert_eq!(r2, durable, "the paths differ at {}", r2.0);
    }
}

/// `len` bytes with no pattern: a truncated, shifted or repeated copy cannot pass for them.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn an_uploaded_video_of_megabytes_streams_back_byte_for_byte_on_both_paths() {
    let worker = TestWorker::start();
    let video = random_bytes(5 * 1024 * 1024 + 7);
    test_support::for_each_path(|path| {
        let user = &worker.user_on("big", path);
        let (content_type, body) = multipart(&[("name", Part::Text("Final"))]);
        let headers = [("Content-Type", content_type.as_str())];
        let created = worker.request("POST", "/api/games", Some(user), &headers, body);
        assert_eq!(created.status, 200, "{path}: {:?}", created.json());
        let game = created.json()["game"]["id"].as_i64().expect("a game id");

        let file = Part::File {
            filename: "final.mp4",
            content_type: "video/mp4",
            bytes: &video,
        };
        let (content_type, body) = multipart(&[("video", file)]);
        let headers = [("Content-Type", content_type.as_str())];
        let url = format!("/api/games/{game}/video");
        let stored = worker.request("PUT", &url, Some(user), &headers, body);
        assert_eq!(stored.status, 200, "{path}: {:?}", stored.json());
        assert_eq!(stored.header("X-Data-Path"), Some(path.header()));

        let back = worker.get(&url, Some(user));
        assert_eq!(back.status, 200, "{path}");
        assert_eq!(back.header("Content-Type"), Some("video/mp4"), "{path}");
        assert_eq!(back.body.len(), video.len(), "{path}");
        assert!(back.body == video, "{path}: the bytes differ");

        let tail = worker.request("GET", &url, Some(user), &[("Range", "bytes=-1000")], vec![]);
        assert_eq!(tail.status, 206, "{path}");
        assert!(
            tail.body == video[video.len() - 1000..],
            "{path}: the range differs"
        );
    });
}

#[test]
fn every_answer_after_the_data_was_opened_names_its_version_on_both_paths_failures_too() {
    let worker = TestWorker::start();
    test_support::for_each_path(|path| {
        let user = &worker.user_on("versions", path);
        let version_of = |response: &TestResponse| -> u64 {
            let header = response.header("X-DB-Version");
            header
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{path}: no X-DB-Version on a {}", response.status))
        };
        let project = json!({"name": "Versions", "aspect_ratio": "16:9"});
        let first = worker.send_json("POST", "/api/projects", user, project.clone());
        assert_eq!(first.status, 200, "{path}");
        let second = worker.send_json("POST", "/api/projects", user, project);
        assert_eq!(version_of(&second), version_of(&first) + 1, "{path}");

        let missing = worker.get("/api/projects/999999", Some(user));
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(version_of(&missing), version_of(&second), "{path}");
        let read = worker.get("/api/projects", Some(user));
        assert_eq!(version_of(&read), version_of(&second), "{path}: a read");
    });
}
