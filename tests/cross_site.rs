//! Requests as browsers send them, for a user signed in with a session cookie (`jwt` mode): a
//! hostile page of another origin changes nothing (issue 26), while every kind of request the
//! real frontend makes from the Worker's own origin, or from an `ALLOWED_ORIGINS` one, passes.
//! Each runs on the R2 path (alice) and on a Durable Object (carol).
//!
//! Browser headers are set as Chromium and Firefox set them: `Sec-Fetch-Site` and `Origin` on a
//! `fetch` or a form post, `Origin` alone from an older browser, neither on a navigation GET
//! (`<a href>`) from the same origin.

use serde_json::json;
use test_support::{multipart, Part, TestResponse, TestWorker};

const SECRET: &str = "the sign-in service's secret for the cross-site tests";
const APP: &str = "https://app.example.test";
const EVIL: &str = "https://evil.example.test";

/// The session cookie of a signed-in `user`.
fn session_cookie(user: &str) -> String {
    format!("session={}", test_support::hs256_token(SECRET, user))
}

/// A Worker in production's sign-in mode that trusts one other origin, with alice on the R2
/// path and carol on her Durable Object, each with one project.
fn worker() -> TestWorker {
    let worker = TestWorker::start_with_admin(&[
        ("AUTH_MODE", "jwt"),
        ("AUTH_JWT_SECRET", SECRET),
        (
            "ALLOWED_ORIGINS",
            &format!("{APP}, https://other.example.test"),
        ),
    ]);
    for user in ["alice", "carol"] {
        let created = worker.request(
            "POST",
            "/api/projects",
            None,
            &[
                ("Cookie", &session_cookie(user)),
                ("Content-Type", "application/json"),
            ],
            json!({"name": "first", "aspect_ratio": "9:16"})
                .to_string()
                .into_bytes(),
        );
        assert_eq!(created.status, 200, "{}", text(&created));
    }
    worker.move_to("carol", test_support::DataPath::Object);
    worker
}

fn text(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// A browser's request with the user's cookie and the given browser headers.
fn browser(
    worker: &TestWorker,
    user: &str,
    (method, path): (&str, &str),
    browser_headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> TestResponse {
    let cookie = session_cookie(user);
    let mut headers = vec![("Cookie", cookie.as_str())];
    headers.extend_from_slice(browser_headers);
    let (content_type, bytes) = body.unwrap_or_default();
    if !content_type.is_empty() {
        headers.push(("Content-Type", content_type));
    }
    worker.request(method, path, None, &headers, bytes)
}

/// How many projects and games the user has.
fn state(worker: &TestWorker, user: &str) -> (usize, usize) {
    let list = |path| {
        let response = browser(worker, user, ("GET", path), &[], None);
        assert_eq!(response.status, 200, "{path}: {}", text(&response));
        response.json()
    };
    let count = |list: &serde_json::Value| list.as_array().expect("a list").len();
    (
        count(&list("/api/projects")),
        count(&list("/api/games")["games"]),
    )
}

#[test]
fn cross_site_writes_with_the_users_cookie_get_403_and_change_nothing_on_both_paths() {
    let worker = worker();
    let json_as_text = || {
        Some((
            "text/plain",
            br#"{"name": "planted", "aspect_ratio": "9:16"}"#.to_vec(),
        ))
    };
    let (form_type, form) = multipart(&[
        ("name", Part::Text("planted")),
        (
            "video",
            Part::File {
                filename: "x.html",
                content_type: "text/html",
                bytes: b"<script>alert(1)</script>",
            },
        ),
    ]);
    let cross_site = [("Origin", EVIL), ("Sec-Fetch-Site", "cross-site")];
    let same_site = [
        ("Origin", "https://sub.example.test"),
        ("Sec-Fetch-Site", "same-site"),
    ];
    let old_browser = [("Origin", EVIL)];
    let sandboxed = [("Origin", "null"), ("Sec-Fetch-Site", "cross-site")];
    for user in ["alice", "carol"] {
        let before = state(&worker, user);
        let attacks = [
            (
                "text/plain JSON",
                ("POST", "/api/projects"),
                &cross_site[..],
                json_as_text(),
            ),
            (
                "multipart",
                ("POST", "/api/games"),
                &cross_site[..],
                Some((form_type.as_str(), form.clone())),
            ),
            (
                "empty POST",
                ("POST", "/api/projects/1/discard-uncommitted"),
                &cross_site[..],
                None,
            ),
            (
                "same-site page",
                ("POST", "/api/projects"),
                &same_site[..],
                json_as_text(),
            ),
            (
                "older browser",
                ("POST", "/api/projects"),
                &old_browser[..],
                json_as_text(),
            ),
            (
                "sandboxed page",
                ("DELETE", "/api/projects/1"),
                &sandboxed[..],
                None,
            ),
            (
                "WebSocket",
                ("GET", "/ws/export/job1"),
                &[
                    ("Origin", EVIL),
                    ("Sec-Fetch-Site", "cross-site"),
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Version", "13"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ][..],
                None,
            ),
        ];
        for (case, route, headers, body) in attacks {
            let response = browser(&worker, user, route, headers, body);
            assert_eq!(
                response.status,
                403,
                "{case} for {user}: {}",
                text(&response)
            );
            assert!(
                response.json()["detail"]
                    .as_str()
                    .unwrap()
                    .contains("Cross-site"),
                "{case}"
            );
            assert_eq!(
                response.header("Access-Control-Allow-Origin"),
                None,
                "{case}"
            );
        }
        assert_eq!(state(&worker, user), before, "{user}'s data changed");
        // The same page's preflight is refused, and a read it makes is not readable by it.
        let preflight = worker.request(
            "OPTIONS",
            "/api/projects",
            None,
            &[("Origin", EVIL), ("Access-Control-Request-Method", "POST")],
            Vec::new(),
        );
        assert_eq!(preflight.status, 403);
        assert_eq!(preflight.header("Access-Control-Allow-Origin"), None);
        let read = browser(&worker, user, ("GET", "/api/projects"), &cross_site, None);
        assert_eq!(read.header("Access-Control-Allow-Origin"), None);
    }
}

#[test]
fn requests_shaped_like_the_frontends_pass_on_both_paths_and_allowed_origins_read_them() {
    let worker = worker();
    let own = worker.base_url();
    let fetch = [
        ("Origin", own.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
        ("Sec-Fetch-Mode", "cors"),
    ];
    let older_browser = [("Origin", own.as_str())];
    let link = [
        ("Sec-Fetch-Site", "same-origin"),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-Dest", "document"),
    ];
    let from_app = [
        ("Origin", APP),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Mode", "cors"),
    ];
    let json_body = |name: &str| {
        Some((
            "application/json",
            json!({"name": name, "aspect_ratio": "16:9"})
                .to_string()
                .into_bytes(),
        ))
    };
    for (user, path) in test_support::users_on_each_path("alice", "carol") {
        // fetch() with a JSON body, from a current and an older browser.
        for (case, headers) in [("fetch", &fetch[..]), ("older browser", &older_browser[..])] {
            let created = browser(
                &worker,
                user,
                ("POST", "/api/projects"),
                headers,
                json_body(case),
            );
            assert_eq!(created.status, 200, "{case} for {user}: {}", text(&created));
            assert_eq!(created.header("X-Data-Path"), Some(path.header()));
        }
        // A FormData upload: the game, then its video (G8, the frontend's upload path).
        let (game_type, game_form) = multipart(&[("name", Part::Text("Cup final"))]);
        let game = browser(
            &worker,
            user,
            ("POST", "/api/games"),
            &fetch,
            Some((&game_type, game_form)),
        );
        assert_eq!(game.status, 200, "{user}: {}", text(&game));
        let game = game.json()["game"]["id"].as_i64().unwrap();
        let video = b"\x00\x00\x00\x18ftypmp42 a video".to_vec();
        let (video_type, video_form) = multipart(&[(
            "video",
            Part::File {
                filename: "match.mp4",
                content_type: "video/mp4",
                bytes: &video,
            },
        )]);
        let uploaded = browser(
            &worker,
            user,
            ("PUT", &format!("/api/games/{game}/video")),
            &fetch,
            Some((&video_type, video_form)),
        );
        assert_eq!(uploaded.status, 200, "{user}: {}", text(&uploaded));
        // A keepalive save as the page unloads (O2, a form): the handler answers it.
        let (save_type, save) = multipart(&[("highlights_data", Part::Text("[]"))]);
        let saved = browser(
            &worker,
            user,
            ("PUT", "/api/export/projects/1/overlay-data"),
            &fetch,
            Some((&save_type, save)),
        );
        assert_eq!(saved.status, 400, "{user}: {}", text(&saved));
        assert!(
            text(&saved).contains("no working video"),
            "{user}: {}",
            text(&saved)
        );
        // An <a href> download, from the page and from a link elsewhere: a read, never refused.
        for headers in [
            &link[..],
            &[
                ("Sec-Fetch-Site", "cross-site"),
                ("Sec-Fetch-Mode", "navigate"),
            ][..],
        ] {
            let download = browser(
                &worker,
                user,
                ("GET", &format!("/api/games/{game}/video")),
                headers,
                None,
            );
            assert_eq!(download.status, 200, "{user}: {}", text(&download));
            assert_eq!(download.body, video);
        }

        // A page of an allowed origin asks first, then writes and reads with credentials.
        let preflight = worker.request(
            "OPTIONS",
            "/api/projects",
            None,
            &[
                ("Origin", APP),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            Vec::new(),
        );
        assert_eq!(preflight.status, 204);
        assert_eq!(preflight.header("Access-Control-Allow-Origin"), Some(APP));
        assert_eq!(
            preflight.header("Access-Control-Allow-Credentials"),
            Some("true")
        );
        assert!(preflight
            .header("Access-Control-Allow-Methods")
            .unwrap()
            .contains("POST"));
        assert!(preflight
            .header("Access-Control-Allow-Headers")
            .unwrap()
            .contains("Content-Type"));
        let created = browser(
            &worker,
            user,
            ("POST", "/api/projects"),
            &from_app,
            json_body("from the app"),
        );
        assert_eq!(created.status, 200, "{user}: {}", text(&created));
        assert_eq!(created.header("Access-Control-Allow-Origin"), Some(APP));
        assert_eq!(
            created.header("Access-Control-Allow-Credentials"),
            Some("true")
        );
        assert_eq!(created.header("X-Data-Path"), Some(path.header()));
        assert_eq!(state(&worker, user), (4, 1), "{user}");
    }
}

#[test]
fn a_json_route_refuses_a_body_not_sent_as_json_and_writes_nothing() {
    let worker = worker();
    let own = worker.base_url();
    let fetch = [("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let body = br#"{"name": "typed as text", "aspect_ratio": "9:16"}"#.to_vec();
    for user in ["alice", "carol"] {
        for content_type in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/octet-stream",
            "",
        ] {
            let response = browser(
                &worker,
                user,
                ("POST", "/api/projects"),
                &fetch,
                Some((content_type, body.clone())),
            );
            assert_eq!(
                response.status,
                415,
                "{content_type:?} for {user}: {}",
                text(&response)
            );
            assert!(
                text(&response).contains("application/json"),
                "{}",
                text(&response)
            );
        }
        assert_eq!(state(&worker, user), (1, 0), "{user}");
    }
}
