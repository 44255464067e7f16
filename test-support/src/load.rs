//! Requests of every kind a Worker serves many of, for the memory test and the benchmark: each
//! kind sent many times over must leave the isolate's heap where it was.
//!
//! Hostile kinds are shaped like a hostile page's or a stale tab's: bodies that are not JSON or
//! nest too deep, strings past the limits, ids that are not ids, odd query strings, unknown
//! routes. Every kind says which answers are acceptable: a 5xx of the Worker's own is not,
//! except where the kind asks for one (a processing service that is down).
//!
//! Queue deliveries are not among them: a test cannot send them from outside, and the consumer
//! is exercised by `tests/processing.rs` and `processor/tests/end_to_end.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{free_port, multipart, realistic_database, Part, TestWorker};

/// The users [`start`] seeds, by the path that serves them: `r2` and `do`.
pub const USERS: [(&str, &str); 2] = [("r2", "on-r2"), ("do", "on-object")];

/// A Worker with the admin API, `vars` and a processing service that is down (nothing listens
/// at its URL), serving one user of a realistic database on each path ([`USERS`]).
pub fn start(vars: &[(&str, &str)]) -> TestWorker {
    let dead_service = format!("http://127.0.0.1:{}", free_port());
    let mut all = vec![("PROCESSING_URL", dead_service.as_str())];
    all.extend_from_slice(vars);
    let worker = TestWorker::start_with_admin(&all);
    for (_, user) in USERS {
        worker.admin_ok(
            "PUT",
            &format!("/admin/users/{user}/database"),
            realistic_database(40),
        );
    }
    let (_, on_object) = USERS[1];
    worker.admin_ok("POST", &format!("/admin/users/{on_object}/migrate"), vec![]);
    worker
}

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /api/games`.
    SmallRead,
    /// `POST /api/projects` with a small JSON body: a stored write.
    Write,
    /// A 100 KB body that is not JSON, on a JSON route: 422.
    InvalidBody,
    /// A 4 KB file uploaded as a form (`POST /api/games`), stored in R2.
    Upload,
    /// Bad ids, wrong types, nested and oversized JSON, odd query strings, unknown routes.
    Hostile,
    /// A frontend processing route, forwarded to a processing service that is down: 503.
    Forwarded,
    /// `GET /admin/users/{id}`: the admin API, which asks the user's object too.
    Admin,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::SmallRead,
        Kind::Write,
        Kind::InvalidBody,
        Kind::Upload,
        Kind::Hostile,
        Kind::Forwarded,
        Kind::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::SmallRead => "small reads",
            Kind::Write => "writes",
            Kind::InvalidBody => "invalid 100 KB bodies",
            Kind::Upload => "uploads",
            Kind::Hostile => "bad input",
            Kind::Forwarded => "forwarded processing routes",
            Kind::Admin => "admin calls",
        }
    }

    /// Sends the `i`th request of this kind for `user`; returns its status, or why it is not
    /// acceptable.
    pub fn send(self, worker: &TestWorker, user: &str, i: usize) -> Result<u16, String> {
        let response = match self {
            Kind::SmallRead => worker.get("/api/games", Some(user)),
            Kind::Write => worker.create_project(user, &format!("project {i}")),
            Kind::InvalidBody => worker.request(
                "POST",
                "/api/projects",
                Some(user),
                &[("Content-Type", "application/json")],
                vec![b'{'; 100_000],
            ),
            Kind::Upload => {
                let video = vec![(i % 251) as u8; 4096];
                let (content_type, body) = multipart(&[
                    ("name", Part::Text("uploaded")),
                    (
                        "video",
                        Part::File {
                            filename: "game.mp4",
                            content_type: "video/mp4",
                            bytes: &video,
                        },
                    ),
                ]);
                worker.request(
                    "POST",
                    "/api/games",
                    Some(user),
                    &[("Content-Type", &content_type)],
                    body,
                )
            }
            Kind::Hostile => {
                let (method, path, body) = hostile(i);
                worker.request(
                    method,
                    &path,
                    Some(user),
                    &[("Content-Type", "application/json")],
                    body,
                )
            }
            Kind::Forwarded => worker.request(
                "POST",
                "/api/export/render",
                Some(user),
                &[("Content-Type", "application/json")],
                br#"{"project_id": 1}"#.to_vec(),
            ),
            Kind::Admin => worker.admin("GET", &format!("/admin/users/{user}"), Vec::new()),
        };
        let status = response.status;
        let acceptable = match self {
            Kind::Forwarded => status == 503,
            Kind::SmallRead | Kind::Admin => status == 200,
            // Many clients writing one user's R2 file at once: a write that loses the race ten
            // times in a row is refused whole with 409 (the R2 path's documented answer).
            Kind::Write | Kind::Upload => status == 200 || status == 409,
            Kind::InvalidBody | Kind::Hostile => (400..500).contains(&status) || status == 200,
        };
        if acceptable {
            Ok(status)
        } else {
            Err(format!(
                "{} #{i} for {user}: {status} {}",
                self.name(),
                String::from_utf8_lossy(&response.body)
            ))
        }
    }

    /// Sends `count` requests of this kind for `user` from `threads` clients at once; returns
    /// the requests not answered as they should be.
    pub fn send_many(
        self,
        worker: &TestWorker,
        user: &str,
        count: usize,
        threads: usize,
    ) -> Vec<String> {
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let clients: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut failures = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= count {
                                return failures;
                            }
                            if let Err(failure) = self.send(worker, user, i) {
                                failures.push(failure);
                            }
                        }
                    })
                })
                .collect();
            clients
                .into_iter()
                .flat_map(|client| client.join().expect("a client thread"))
                .collect()
        })
    }
}

/// The `i`th bad request: cycles through routes, methods and bodies that are each wrong in
/// another way.
fn hostile(i: usize) -> (&'static str, String, Vec<u8>) {
    const PATHS: [&str; 12] = [
        "/api/projects/abc",
        "/api/projects/99999999999999999999",
        "/api/clips/raw/-1",
        "/api/games/1e9",
        "/api/exports/%zz",
        "/api/clips/projects/1/clips/1.5",
        "/api/downloads/0/file",
        "/api/nope",
        "/api/projects?sort=%FF%FE&limit=1e99",
        "/api/clips/raw?game_id=abc",
        "/api/exports/recent?hours=-5",
        "/api/projects/%F0%9F%98%80/state",
    ];
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let bodies: [Vec<u8>; 6] = [
        b"{\"name\":".to_vec(),
        [vec![b'['; 20_000], vec![b']'; 20_000]].concat(),
        format!(
            r#"{{"name": "{}", "aspect_ratio": "9:16"}}"#,
            "x".repeat(500_000)
        )
        .into_bytes(),
        br#"{"name": 5, "aspect_ratio": []}"#.to_vec(),
        b"null".to_vec(),
        br#"{"clip_ids": [1e308, -1, "a", null]}"#.to_vec(),
    ];
    let method = METHODS[i % METHODS.len()];
    let body = match method {
        "GET" | "DELETE" => Vec::new(),
        _ => bodies[i % bodies.len()].clone(),
    };
    // A long path now and then, and a long query string.
    let path = match i % 7 {
        0 => format!("/api/projects/{}", "9".repeat(4000)),
        1 => format!("/api/games?{}", "a=1&".repeat(1000)),
        _ => PATHS[i % PATHS.len()].to_owned(),
    };
    (method, path, body)
}
