//! The whole loop, for real: the Worker in workerd with its local queue, this processor, and
//! Debian's ffmpeg on a generated game video. Clips saved before and after the video arrives are
//! cut to the frame and served, on the R2 path and on a user's object; a job waits for a
//! processor that is down; cuts that come back while the user's data moves are refused until
//! the move is over, then kept.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::{realistic_database, Options, Part, TestWorker, ADMIN_TOKEN};

const TOKEN: &str = "end-to-end-processing-token";
/// The generated video's frame rate: "to within a frame" is 1/30 s.
const FPS: f64 = 30.0;

/// A 20-second game video with sound, made once per test run.
fn game_video() -> &'static [u8] {
    static VIDEO: OnceLock<Vec<u8>> = OnceLock::new();
    VIDEO.get_or_init(|| {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("game.mp4");
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-t", "20", "-c:v", "libx264", "-g", "60", "-pix_fmt", "yuv420p",
            ])
            .args(["-c:a", "aac", "-shortest"])
            .arg(&path)
            .status()
            .expect("ffmpeg runs (scripts/setup.sh installs it)");
        assert!(status.success());
        std::fs::read(&path).unwrap()
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The processor under test, stopped when dropped.
struct Processor(Child);

impl Processor {
    fn start(port: u16, worker: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_processor"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--worker", worker])
            .env("PROCESSING_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("the processor starts");
        let started = Instant::now();
        while ureq::get(format!("http://127.0.0.1:{port}/health"))
            .call()
            .is_err()
        {
            assert!(started.elapsed() < Duration::from_secs(10), "no processor");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Worker whose processing service is on `processor_port`.
fn worker(processor_port: u16) -> TestWorker {
    worker_with(processor_port, &[])
}

/// [`worker`] with more vars.
fn worker_with(processor_port: u16, more: &[(&str, &str)]) -> TestWorker {
    let vars = [
        ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("PROCESSING_TOKEN", TOKEN.to_owned()),
        (
            "PROCESSING_URL",
            format!("http://127.0.0.1:{processor_port}"),
        ),
        ("PROCESSING_RETRY_SECONDS", "1".to_owned()),
    ];
    TestWorker::start_with(Options {
        vars: vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .chain(
                more.iter()
                    .map(|(name, value)| (name.to_string(), value.to_string())),
            )
            .collect(),
        ..Options::default()
    })
}

/// A form request that must succeed; its JSON answer.
fn send_form(
    worker: &TestWorker,
    method: &str,
    path: &str,
    user: &str,
    parts: &[(&str, Part<'_>)],
) -> Value {
    let response = worker.send_form(method, path, user, parts);
    assert_eq!(
        response.status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

fn create_game(worker: &TestWorker, user: &str) -> i64 {
    send_form(
        worker,
        "POST",
        "/api/games",
        user,
        &[("name", Part::Text("Derby"))],
    )["game"]["id"]
        .as_i64()
        .unwrap()
}

fn upload_video(worker: &TestWorker, user: &str, game: i64) {
    let video = Part::File {
        filename: "derby.mp4",
        content_type: "video/mp4",
        bytes: game_video(),
    };
    send_form(
        worker,
        "PUT",
        &format!("/api/games/{game}/video"),
        user,
        &[("video", video)],
    );
}

fn save_clip(worker: &TestWorker, user: &str, game: i64, start: f64, end: f64, rating: i64) -> i64 {
    let body = json!({"game_id": game, "start_time": start, "end_time": end, "rating": rating,
                      "name": format!("clip {start}")});
    let response = worker.send_json("POST", "/api/clips/raw/save", user, body);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()["raw_clip_id"].as_i64().unwrap()
}

/// Waits until the clip has its file; returns the clip.
fn wait_for_cut(worker: &TestWorker, user: &str, clip: i64, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let response = worker.get(&format!("/api/clips/raw/{clip}"), Some(user));
        if response.status == 200 && response.json()["filename"] != json!("") {
            return response.json();
        }
        assert!(
            started.elapsed() < within,
            "clip {clip} of {user} was not cut within {within:?}: {}\n{}",
            String::from_utf8_lossy(&response.body),
            worker
                .logs()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The video stream's duration of a file, by ffprobe.
fn video_seconds(bytes: &[u8], folder: &Path) -> f64 {
    let path: PathBuf = folder.join(format!("probe-{}.mp4", bytes.len()));
    std::fs::write(&path, bytes).unwrap();
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=duration",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "ffprobe said {text:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The clip's file is served, lasts its range to within a frame; the bytes.
fn assert_cut_to_the_frame(
    worker: &TestWorker,
    user: &str,
    clip: i64,
    start: f64,
    end: f64,
) -> Vec<u8> {
    let file = worker.get(&format!("/api/clips/raw/{clip}/file"), Some(user));
    assert_eq!(file.status, 200, "clip {clip} of {user}");
    let folder = tempfile::tempdir().unwrap();
    let seconds = video_seconds(&file.body, folder.path());
    assert!(
        (seconds - (end - start)).abs() <= 1.0 / FPS + 1e-6,
        "clip {clip} of {user} lasts {seconds} s, its range {} s",
        end - start
    );
    file.body
}

#[test]
fn clips_saved_before_and_after_the_video_are_cut_to_the_frame_on_either_path() {
    let processor_port = free_port();
    let worker = worker(processor_port);
    let _processor = Processor::start(processor_port, &worker.base_url());
    worker.create_project("carol", "before her move");
    worker.move_to("carol", test_support::DataPath::Object);

    for (user, path) in test_support::users_on_each_path("alice", "carol") {
        let game = create_game(&worker, user);
        let before = save_clip(&worker, user, game, 1.0, 3.5, 5);
        upload_video(&worker, user, game);
        let after = save_clip(&worker, user, game, 6.2, 9.0, 3);

        wait_for_cut(&worker, user, before, Duration::from_secs(90));
        wait_for_cut(&worker, user, after, Duration::from_secs(90));
        let five_star = assert_cut_to_the_frame(&worker, user, before, 1.0, 3.5);
        assert_cut_to_the_frame(&worker, user, after, 6.2, 9.0);

        // The 5-star clip's auto-project opens in framing with its video.
        let project = worker
            .get(&format!("/api/clips/raw/{before}"), Some(user))
            .json()["auto_project_id"]
            .as_i64()
            .expect("a 5-star clip has its auto-project");
        let clips = worker
            .get(&format!("/api/clips/projects/{project}/clips"), Some(user))
            .json();
        assert_eq!(clips.as_array().unwrap().len(), 1);
        assert_ne!(clips[0]["filename"], json!(""));
        let working = clips[0]["id"].as_i64().unwrap();
        let served = worker.get(
            &format!("/api/clips/projects/{project}/clips/{working}/file"),
            Some(user),
        );
        assert_eq!(served.status, 200);
        assert_eq!(served.body, five_star);
        let served_by = worker
            .get("/api/games", Some(user))
            .header("X-Data-Path")
            .map(str::to_owned);
        assert_eq!(served_by.as_deref(), Some(path.header()));

        // Rendering is not implemented here: the export job ends as an error that says so.
        let export =
            json!({"project_id": project, "type": "framing", "config": {"target_fps": 30}});
        let created = worker.send_json("POST", "/api/exports", user, export);
        let job = created.json()["job_id"].as_str().unwrap().to_owned();
        let started = Instant::now();
        let failed = loop {
            let state = worker
                .get(&format!("/api/exports/{job}"), Some(user))
                .json();
            if state["status"] == json!("error") {
                break state;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "job {job}: {state}"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        assert_eq!(
            failed["error"],
            json!("Rendering (framing) is not implemented by the reference processor")
        );
        // The frontend's processing routes reach the processor, which says what it lacks.
        let detect = worker.request(
            "POST",
            "/api/detect/players",
            Some(user),
            &[],
            b"{}".to_vec(),
        );
        assert_eq!(detect.status, 501);
        assert_eq!(
            detect.json()["detail"],
            json!("POST /api/detect/players is not implemented by the reference processor")
        );
    }
}

#[test]
fn a_job_sent_while_the_processor_is_down_is_done_once_it_starts() {
    let processor_port = free_port();
    let worker = worker(processor_port);
    let game = create_game(&worker, "dora");
    upload_video(&worker, "dora", game);
    let clip = save_clip(&worker, "dora", game, 2.0, 4.0, 4);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        worker
            .get(&format!("/api/clips/raw/{clip}"), Some("dora"))
            .json()["filename"],
        json!(""),
        "cut with no processor running"
    );
    assert!(
        worker.logs().contains("job_delivery_failed"),
        "the failed delivery is logged"
    );

    let _processor = Processor::start(processor_port, &worker.base_url());
    wait_for_cut(&worker, "dora", clip, Duration::from_secs(120));
    assert_cut_to_the_frame(&worker, "dora", clip, 2.0, 4.0);
}

/// How long the chunked move of [`cuts_recorded_while_the_user_moves_are_kept`] may make no
/// step before the user's object gives it up (`MOVE_LEASE_SECONDS`).
const LEASE_SECONDS: &str = "15";

/// Whether the Worker's log shows a record of one of `clips`' cuts answered 503 (wrangler logs
/// every request with its status).
fn a_cut_refused_with_503(logs: &str, clips: &[i64]) -> bool {
    logs.lines().any(|line| {
        line.contains(" 503 ")
            && clips
                .iter()
                .any(|clip| line.contains(&format!("POST /processing/clips/{clip}/cut ")))
    })
}

/// Cuts that come back while the user's data is being moved are refused with 503 and
/// `Retry-After`, tried again by the processor, and kept once the move is over; and they
/// survive the moves that follow.
///
/// The move is held open on purpose, so that no cut can come back before it or after it: the
/// clips are saved while the processor is down (their jobs wait in the queue), a chunked
/// rollback is begun through the admin API and given no further step, as by a migrator that
/// stopped (the object, `exporting`, serves nothing meanwhile), and only then does the
/// processor start. The Worker's log must show the record of a cut answered 503 during the
/// move; the object gives the move up once it has made no step for `MOVE_LEASE_SECONDS`, and
/// the processor's next try is recorded.
#[test]
fn cuts_recorded_while_the_user_moves_are_kept() {
    let processor_port = free_port();
    let worker = worker_with(processor_port, &[("MOVE_LEASE_SECONDS", LEASE_SECONDS)]);
    let seeded = worker.admin("PUT", "/admin/users/mo/database", realistic_database(300));
    assert_eq!(
        seeded.status,
        200,
        "{}",
        String::from_utf8_lossy(&seeded.body)
    );
    let game = create_game(&worker, "mo");
    upload_video(&worker, "mo", game);
    worker.admin_ok("POST", "/admin/users/mo/migrate", Vec::new());
    // The processor is not running yet: these jobs wait in the queue.
    let ranges: Vec<(f64, f64)> = (0..6)
        .map(|i| (i as f64 * 3.0, i as f64 * 3.0 + 1.5))
        .collect();
    let clips: Vec<i64> = ranges
        .iter()
        .map(|(start, end)| save_clip(&worker, "mo", game, *start, *end, 3))
        .collect();

    let begin = json!({"action": "rollback", "source": null, "tables": [], "indexes": []});
    worker.admin_ok(
        "POST",
        "/admin/users/mo/move/begin",
        begin.to_string().into_bytes(),
    );
    let during = worker.get("/api/games", Some("mo"));
    assert_eq!(during.status, 503, "the move is in progress");
    assert!(during.header("Retry-After").is_some());

    let _processor = Processor::start(processor_port, &worker.base_url());
    let started = Instant::now();
    while !a_cut_refused_with_503(&worker.logs(), &clips) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no cut was refused during the move:\n{}",
            worker.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (clip, (start, end)) in clips.iter().zip(&ranges) {
        wait_for_cut(&worker, "mo", *clip, Duration::from_secs(120));
        assert_cut_to_the_frame(&worker, "mo", *clip, *start, *end);
    }
    let status = worker.admin_ok("GET", "/admin/users/mo", Vec::new());
    assert_eq!(status["object"]["state"], "active", "the move was given up");

    // And they survive the moves that follow.
    for (action, outcome) in [("rollback", "rolled_back"), ("migrate", "migrated")] {
        let report = worker.admin_ok("POST", &format!("/admin/users/mo/{action}"), Vec::new());
        assert_eq!(report["outcome"], outcome);
        for clip in &clips {
            let stored = worker
                .get(&format!("/api/clips/raw/{clip}"), Some("mo"))
                .json();
            assert_ne!(
                stored["filename"],
                json!(""),
                "clip {clip} lost its cut after the {action}"
            );
        }
    }
}
