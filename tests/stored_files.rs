//! Stored files never run as a page (issue 26): files are served from the API's own origin, so
//! an HTML or SVG file shown by the browser would run its script with the user's access. Uploads
//! are taken only as the videos each folder is for; every file is served with `nosniff` and a
//! sandboxing CSP, as a known video type or else as a download, also a file stored before these
//! rules. On the R2 path (alice) and a Durable Object (carol).

use serde_json::json;
use test_support::{multipart, sqlite_file_with, Part, TestResponse, TestWorker};

const TOKEN: &str = "the processing service's token for the stored-file tests";
const PAGE: &[u8] =
    b"<html><script>fetch('/api/projects').then(r => r.text()).then(steal)</script></html>";
const SVG: &[u8] = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>steal()</script></svg>"#;

fn text(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

fn form(
    worker: &TestWorker,
    method: &str,
    path: &str,
    user: &str,
    field: &str,
    file: (&str, &str, &[u8]),
) -> TestResponse {
    let (filename, content_type, bytes) = file;
    worker.send_form(
        method,
        path,
        user,
        &[(
            field,
            Part::File {
                filename,
                content_type,
                bytes,
            },
        )],
    )
}

/// The headers every file response carries, whatever the file.
fn assert_inert(response: &TestResponse, case: &str) {
    assert_eq!(
        response.header("X-Content-Type-Options"),
        Some("nosniff"),
        "{case}"
    );
    let csp = response
        .header("Content-Security-Policy")
        .unwrap_or_default();
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{case}: {csp:?}"
    );
}

#[test]
fn pages_and_images_are_not_taken_as_uploads_on_either_path_nor_from_the_service() {
    let worker = TestWorker::start_with_admin(&[("PROCESSING_TOKEN", TOKEN)]);
    for user in ["alice", "carol"] {
        let (content_type, body) = multipart(&[("name", Part::Text("Cup final"))]);
        let game = worker.request(
            "POST",
            "/api/games",
            Some(user),
            &[("Content-Type", &content_type)],
            body,
        );
        assert_eq!(game.status, 200, "{}", text(&game));
        worker.create_project(user, "reel");
    }
    worker.move_to("carol", test_support::DataPath::Object);
    let games = |user| worker.get("/api/games", Some(user)).json()["games"].clone();

    for (user, path) in test_support::users_on_each_path("alice", "carol") {
        let before = games(user);
        let routes = [
            ("POST", "/api/games", "video"),
            ("PUT", "/api/games/1/video", "video"),
            ("POST", "/api/clips/projects/1/clips", "file"),
            (
                "POST",
                "/api/clips/projects/1/clips/upload-with-metadata",
                "file",
            ),
        ];
        let files = [
            ("x.html", "text/html", PAGE),
            ("x.svg", "image/svg+xml", SVG),
            ("x.mp4", "text/html", PAGE),
            ("x.html", "video/mp4", PAGE),
        ];
        let attempts = routes.iter().flat_map(|&(method, route, field)| {
            files.iter().map(move |&file| (method, route, field, file))
        });
        for (method, route, field, file) in attempts {
            let case = format!("{method} {route} {} {} for {user}", file.0, file.1);
            let response = if route == "/api/games" {
                let (content_type, body) = multipart(&[
                    ("name", Part::Text("planted")),
                    (
                        field,
                        Part::File {
                            filename: file.0,
                            content_type: file.1,
                            bytes: file.2,
                        },
                    ),
                ]);
                worker.request(
                    method,
                    route,
                    Some(user),
                    &[("Content-Type", &content_type)],
                    body,
                )
            } else {
                form(&worker, method, route, user, field, file)
            };
            assert_eq!(response.status, 415, "{case}: {}", text(&response));
            assert!(
                text(&response).contains(".mp4"),
                "{case}: {}",
                text(&response)
            );
            assert_eq!(
                response.header("X-Data-Path"),
                Some(path.header()),
                "{case}"
            );
        }
        assert_eq!(games(user), before, "{user}'s games changed");
        let clips = worker.get("/api/clips/projects/1/clips", Some(user)).json();
        assert_eq!(clips, json!([]), "{user}");

        // The processing service's products follow the same rules.
        let bearer = format!("Bearer {TOKEN}");
        for (name, content_type) in [("x.html", "text/html"), ("x.mp4", "text/html")] {
            let stored = worker.request(
                "PUT",
                &format!("/processing/media/raw_clips/{name}"),
                Some(user),
                &[("Authorization", &bearer), ("Content-Type", content_type)],
                PAGE.to_vec(),
            );
            assert_eq!(stored.status, 415, "{name} for {user}: {}", text(&stored));
            assert_eq!(worker.get_r2(&format!("{user}/raw_clips/{name}")), None);
        }
    }
}

#[test]
fn every_file_is_served_inert_and_files_stored_before_by_the_same_rules() {
    let worker = TestWorker::start_with_admin(&[]);
    // Files the existing app (or this Worker before issue 26) stored as their uploaders typed them.
    let seed = sqlite_file_with(
        "INSERT INTO games (id, name, video_filename) VALUES
             (1, 'page', 'planted.html'), (2, 'typed as a page', 'old.mp4'),
             (3, 'drawing', 'pic.svg'), (4, 'no extension', 'bare');",
    );
    for user in ["alice", "carol"] {
        worker.put_r2(&test_support::database_key(user), &seed);
        worker.put_r2_typed(
            &format!("{user}/games/planted.html"),
            PAGE,
            Some("text/html"),
        );
        worker.put_r2_typed(&format!("{user}/games/old.mp4"), PAGE, Some("text/html"));
        worker.put_r2_typed(&format!("{user}/games/pic.svg"), SVG, Some("image/svg+xml"));
        worker.put_r2_typed(
            &format!("{user}/games/bare"),
            b"\x1a\x45\xdf\xa3 webm",
            Some("video/webm"),
        );
    }
    worker.move_to("carol", test_support::DataPath::Object);

    for (user, path) in test_support::users_on_each_path("alice", "carol") {
        let video = |game: i64| worker.get(&format!("/api/games/{game}/video"), Some(user));
        for (game, name) in [(1, "planted.html"), (3, "pic.svg")] {
            let served = video(game);
            let case = format!("{name} for {user}");
            assert_eq!(served.status, 200, "{case}: {}", text(&served));
            assert_eq!(
                served.header("Content-Type"),
                Some("application/octet-stream"),
                "{case}"
            );
            assert_eq!(
                served.header("Content-Disposition"),
                Some(format!("attachment; filename=\"{name}\"").as_str()),
                "{case}"
            );
            assert_inert(&served, &case);
            assert_eq!(served.header("X-Data-Path"), Some(path.header()), "{case}");
        }
        // A known extension decides the type, whatever the file was stored as.
        let typed_as_page = video(2);
        assert_eq!(
            typed_as_page.header("Content-Type"),
            Some("video/mp4"),
            "{user}"
        );
        assert_eq!(typed_as_page.header("Content-Disposition"), None);
        assert_inert(&typed_as_page, "old.mp4");
        // No extension: the stored type, when it is a video's.
        let bare = video(4);
        assert_eq!(bare.header("Content-Type"), Some("video/webm"), "{user}");
        assert_inert(&bare, "bare");

        // A new upload, whole and by range: typed by its extension, inert as well.
        let uploaded = form(
            &worker,
            "PUT",
            "/api/games/3/video",
            user,
            "video",
            (
                "match.MOV",
                "video/quicktime",
                b"moov bytes of a phone video",
            ),
        );
        assert_eq!(uploaded.status, 200, "{user}: {}", text(&uploaded));
        assert_eq!(uploaded.json()["video_filename"], json!("pic.mov"));
        let whole = video(3);
        assert_eq!(whole.header("Content-Type"), Some("video/quicktime"));
        assert_eq!(whole.body, b"moov bytes of a phone video");
        assert_inert(&whole, "uploaded");
        let part = worker.request(
            "GET",
            "/api/games/3/video",
            Some(user),
            &[("Range", "bytes=0-3")],
            Vec::new(),
        );
        assert_eq!(
            (part.status, part.body.as_slice()),
            (206, b"moov".as_slice())
        );
        assert_inert(&part, "range");
    }
}
