//! The Worker's edges to the video-processing service, in workerd (docs/processing.md): the
//! service's token-guarded routes recording results on both paths, the frontend's processing
//! routes forwarded with the user's identity, and jobs delivered through the local queue, again
//! after the service failed. The service here is a recording HTTP server; the reference
//! processor with real ffmpeg is tested in processor/tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::{Options, Part, TestWorker, ADMIN_TOKEN};

const TOKEN: &str = "test-processing-token";

/// One request the recording service received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A processing service that records every request and answers each with the next status of
/// `statuses` (the last one repeats).
struct RecordingService {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl RecordingService {
    fn start(statuses: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        // Ends with the test process; it holds no state worth cleaning up.
        std::thread::spawn(move || {
            for (index, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                log.lock().unwrap().push(request);
                let status = *statuses.get(index).or(statuses.last()).unwrap_or(&200);
                let body = json!({"answered_by": "recording service"}).to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { port, received }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests arrived at `path`; returns them.
    fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let matching: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|request| request.target == path)
                .collect();
            if matching.len() >= count {
                return matching;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{count} requests to {path} expected, got {matching:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        target,
        headers,
        body,
    })
}

fn worker_with(vars: &[(&str, &str)]) -> TestWorker {
    let mut all = vec![("ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestWorker::start_with(Options {
        vars: all,
        ..Options::default()
    })
}

/// A request of the processing service: a JSON body to a result route, a video to a media
/// route (typed as the reference processor types them).
fn service_request(
    worker: &TestWorker,
    method: &str,
    path: &str,
    user: &str,
    body: Vec<u8>,
) -> test_support::TestResponse {
    let auth = format!("Bearer {TOKEN}");
    let content_type = if path.starts_with("/processing/media/") {
        "video/mp4"
    } else {
        "application/json"
    };
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", content_type),
    ];
    worker.request(method, path, Some(user), &headers, body)
}

fn create_game(worker: &TestWorker, user: &str) -> i64 {
    let response = worker.send_form(
        "POST",
        "/api/games",
        user,
        &[("name", Part::Text("Cup final"))],
    );
    assert_eq!(response.status, 200);
    response.json()["game"]["id"].as_i64().unwrap()
}

fn upload_video(worker: &TestWorker, user: &str, game: i64, bytes: &[u8]) -> Value {
    let video = Part::File {
        filename: "game.mp4",
        content_type: "video/mp4",
        bytes,
    };
    let path = format!("/api/games/{game}/video");
    let response = worker.send_form("PUT", &path, user, &[("video", video)]);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

fn save_clip(worker: &TestWorker, user: &str, game: i64, start: f64, end: f64) -> i64 {
    let body = json!({"game_id": game, "start_time": start, "end_time": end, "rating": 5});
    let response = worker.send_json("POST", "/api/clips/raw/save", user, body);
    assert_eq!(response.status, 200);
    response.json()["raw_clip_id"].as_i64().unwrap()
}

#[test]
fn the_services_results_are_recorded_once_on_either_path_behind_its_token() {
    let worker = worker_with(&[("PROCESSING_TOKEN", TOKEN)]);
    worker.create_project("carol", "made before her move");
    worker.move_to("carol", test_support::DataPath::Object);

    for (user, path) in test_support::users_on_each_path("alice", "carol") {
        let game = create_game(&worker, user);
        let clip = save_clip(&worker, user, game, 1.0, 3.5);
        let cut_path = format!("/processing/clips/{clip}/cut");
        let cut = json!({"filename": "0123456789ab.mp4", "start_time": 1.0, "end_time": 3.5});
        let cut = cut.to_string().into_bytes();

        // Only the service's token opens these routes, and it must name the user.
        let wrong = worker.request(
            "POST",
            &cut_path,
            Some(user),
            &[("Authorization", "Bearer nope")],
            cut.clone(),
        );
        assert_eq!(wrong.status, 401);
        let anonymous = worker.request(
            "POST",
            &cut_path,
            None,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            cut.clone(),
        );
        assert_eq!(anonymous.status, 400);
        assert!(anonymous.json()["detail"]
            .as_str()
            .unwrap()
            .contains("X-User-ID"));

        // The file first, then the row that names it.
        let video: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let stored = service_request(
            &worker,
            "PUT",
            "/processing/media/raw_clips/0123456789ab.mp4",
            user,
            video.clone(),
        );
        assert_eq!(
            stored.status,
            200,
            "{}",
            String::from_utf8_lossy(&stored.body)
        );
        let read = service_request(
            &worker,
            "GET",
            "/processing/media/raw_clips/0123456789ab.mp4",
            user,
            Vec::new(),
        );
        assert_eq!(read.body, video);
        for refused in [
            "/processing/media/games/x.mp4",
            "/processing/media/raw_clips/..",
            "/processing/media/database.sqlite",
        ] {
            let response = service_request(&worker, "PUT", refused, user, b"x".to_vec());
            assert!(
                matches!(response.status, 400 | 404),
                "{refused}: {}",
                response.status
            );
        }

        let first = service_request(&worker, "POST", &cut_path, user, cut.clone());
        assert_eq!(
            first.status,
            200,
            "{}",
            String::from_utf8_lossy(&first.body)
        );
        assert_eq!(first.json(), json!({"applied": true}));
        assert_eq!(first.header("X-Data-Path"), Some(path.header()));
        let replay = service_request(&worker, "POST", &cut_path, user, cut.clone());
        assert_eq!(replay.json(), json!({"applied": false}));
        assert_eq!(
            replay.db_version(),
            first.db_version(),
            "a replay bumped the version"
        );

        // The clip's file is served to its user, and the 5-star project's working clip too.
        let file = worker.get(&format!("/api/clips/raw/{clip}/file"), Some(user));
        assert_eq!(file.status, 200);
        assert_eq!(file.body, video);
        let project = worker
            .get(&format!("/api/clips/raw/{clip}"), Some(user))
            .json()["auto_project_id"]
            .as_i64()
            .unwrap();
        let clips = worker
            .get(&format!("/api/clips/projects/{project}/clips"), Some(user))
            .json();
        let working = clips[0]["id"].as_i64().unwrap();
        let served = worker.get(
            &format!("/api/clips/projects/{project}/clips/{working}/file"),
            Some(user),
        );
        assert_eq!(served.body, video);
    }
}

#[test]
fn processing_routes_answer_501_without_a_service_and_503_when_it_is_down() {
    let unconfigured = worker_with(&[]);
    for path in [
        "/api/export/upscale",
        "/api/detect/players",
        "/api/annotate/export",
    ] {
        let response = unconfigured.request("POST", path, Some("alice"), &[], b"{}".to_vec());
        assert_eq!(response.status, 501, "{path}");
        assert!(response.json()["detail"]
            .as_str()
            .unwrap()
            .contains("PROCESSING_URL"));
    }
    assert_eq!(
        unconfigured
            .get("/ws/export/export_1", Some("alice"))
            .status,
        501
    );
    // The data routes under /api/export stay here.
    let overlay = unconfigured.get("/api/export/projects/1/overlay-data", Some("alice"));
    assert_eq!(overlay.header("X-Data-Path"), Some("r2"));
    // Without a token the service's routes do not exist.
    assert_eq!(
        unconfigured
            .request(
                "POST",
                "/processing/clips/1/cut",
                Some("alice"),
                &[],
                Vec::new()
            )
            .status,
        404
    );

    let dead_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = worker_with(&[("PROCESSING_URL", &format!("http://127.0.0.1:{dead_port}"))]);
    let response = down.request(
        "POST",
        "/api/export/upscale",
        Some("alice"),
        &[],
        b"{}".to_vec(),
    );
    assert_eq!(response.status, 503);
    let detail = response.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("cannot be reached"), "{detail}");
    assert!(
        !detail.contains("127.0.0.1"),
        "the detail leaks the service's address: {detail}"
    );
}

#[test]
fn requests_and_jobs_reach_the_service_with_the_users_identity_and_survive_its_failures() {
    // The service fails the first two requests it gets (the first job delivery among them).
    let service = RecordingService::start(vec![503, 503, 200]);
    let worker = worker_with(&[
        ("PROCESSING_URL", &service.url()),
        ("PROCESSING_TOKEN", TOKEN),
        ("PROCESSING_RETRY_SECONDS", "1"),
    ]);

    // A job: a clip saved on a game whose video is there.
    let game = create_game(&worker, "alice");
    let pending = save_clip(&worker, "alice", game, 2.0, 4.0);
    let upload = upload_video(&worker, "alice", game, b"not really a video");
    let video = upload["video_filename"].as_str().unwrap().to_owned();
    // Times as a player's scrubbing makes them: 17 significant digits, no short decimal.
    let (odd_start, odd_end) = (0.1 + 0.2, 12.345_678_901_234_567);
    let after = save_clip(&worker, "alice", game, odd_start, odd_end);

    let jobs = service.wait_for("/jobs", 4);
    let mut delivered: Vec<Value> = Vec::new();
    for job in &jobs {
        assert_eq!(job.method, "POST");
        assert_eq!(
            job.header("Authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        delivered.push(serde_json::from_slice(&job.body).unwrap());
    }
    for (clip, start, end) in [(pending, 2.0, 4.0), (after, odd_start, odd_end)] {
        let job = delivered
            .iter()
            .find(|job| job["ids"]["raw_clip_id"] == json!(clip))
            .unwrap_or_else(|| panic!("no job for clip {clip} in {delivered:?}"));
        assert_eq!(job["user_id"], json!("alice"));
        assert_eq!(job["kind"], json!("cut_clip"));
        assert_eq!(job["ids"]["game_id"], json!(game));
        assert_eq!(job["source"], json!({"game_video": video}));
        // JSON numbers: 2.0 may travel as 2, but every float arrives bit for bit.
        assert_eq!(job["params"]["start_time"].as_f64(), Some(start));
        assert_eq!(job["params"]["end_time"].as_f64(), Some(end));
        // The times as the job carried them are the clip's: a cut recorded with them applies.
        let cut = json!({"filename": format!("{clip}00000000000.mp4"),
                         "start_time": job["params"]["start_time"], "end_time": job["params"]["end_time"]});
        let recorded = service_request(
            &worker,
            "POST",
            &format!("/processing/clips/{clip}/cut"),
            "alice",
            cut.to_string().into_bytes(),
        );
        assert_eq!(recorded.json(), json!({"applied": true}), "clip {clip}");
    }
    // Both were taken in the end: the two failures were offered again, nothing more.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        service
            .received()
            .iter()
            .filter(|r| r.target == "/jobs")
            .count(),
        4
    );

    // A frontend request: the user's credentials stay here, the identity and body go on, and
    // the service's answer comes back as it was.
    let body = b"{\"clip\": 1}".to_vec();
    let forwarded = worker.request(
        "POST",
        "/api/export/upscale?quality=high",
        Some("alice"),
        &[
            ("Authorization", "Bearer users-own-token"),
            ("Cookie", "session=secret"),
            ("Content-Type", "application/json"),
        ],
        body.clone(),
    );
    assert_eq!(forwarded.status, 200);
    assert_eq!(
        forwarded.json(),
        json!({"answered_by": "recording service"})
    );
    let received = service
        .wait_for("/api/export/upscale?quality=high", 1)
        .remove(0);
    assert_eq!(received.method, "POST");
    assert_eq!(received.header("X-User-ID"), Some("alice"));
    assert_eq!(received.header("Authorization"), None);
    assert_eq!(received.header("Cookie"), None);
    assert_eq!(received.body, body);
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn no_credential_of_the_user_nor_the_services_token_reaches_the_service_and_traversals_stay_here() {
    const SIGN_IN_SECRET: &str = "the sign-in secret of the forwarding test";
    let service = RecordingService::start(vec![200]);
    let worker = worker_with(&[
        ("PROCESSING_URL", &service.url()),
        ("PROCESSING_TOKEN", TOKEN),
        ("AUTH_MODE", "jwt"),
        ("AUTH_JWT_SECRET", SIGN_IN_SECRET),
        ("AUTH_HEADER", "X-Auth-Token"),
    ]);
    let token = test_support::hs256_token(SIGN_IN_SECRET, "alice");
    let (bearer, cookie) = (
        format!("Bearer {token}"),
        format!("theme=dark; session={token}"),
    );
    // The user's token in each place the Worker takes it from.
    for (name, value) in [
        ("Authorization", bearer.as_str()),
        ("X-Auth-Token", token.as_str()),
        ("Cookie", cookie.as_str()),
    ] {
        let target = format!("/api/export/upscale?via={name}");
        let headers = [(name, value), ("Content-Type", "application/json")];
        let forwarded = worker.request("POST", &target, None, &headers, b"{}".to_vec());
        assert_eq!(forwarded.status, 200, "via {name}");
        let received = service.wait_for(&target, 1).remove(0);
        for (header, sent) in &received.headers {
            assert!(
                !sent.contains(&token),
                "via {name}: the user's token in {header}"
            );
            assert!(
                !sent.contains(TOKEN),
                "via {name}: the service's token in {header}"
            );
        }
        assert_eq!(received.header("X-User-ID"), Some("alice"));
        // Instead: an assertion of this user and this request, which the service can check.
        let assertion = received
            .header(processing_assertion::HEADER)
            .unwrap_or_else(|| panic!("via {name}: no assertion in {:?}", received.headers));
        assert_eq!(
            processing_assertion::verify(TOKEN, assertion, "POST", &target, now_seconds()),
            Ok("alice".to_owned())
        );
        // It opens none of the service's routes at the Worker.
        let replayed = worker.request(
            "GET",
            "/processing/media/games/a.mp4",
            Some("alice"),
            &[("Authorization", &format!("Bearer {assertion}"))],
            Vec::new(),
        );
        assert_eq!(replayed.status, 401);
    }

    // A path the service could decode into another route is refused here, never forwarded.
    let before = service.received().len();
    for path in [
        "/api/export/..%2F..%2Fjobs",
        "/api/export/%2e%2e%2fjobs",
        "/api/detect/a%5C..%5Cjobs",
        "/api/annotate/x%2f..%2f..%2fjobs",
    ] {
        let response = worker.request(
            "POST",
            path,
            None,
            &[("Authorization", &bearer)],
            Vec::new(),
        );
        assert_eq!(
            response.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    let after = worker.get("/api/health", None);
    assert_eq!(after.status, 200);
    assert_eq!(service.received().len(), before, "{:?}", service.received());
}
