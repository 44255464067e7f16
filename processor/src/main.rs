//! `processor`: the reference video-processing service of docs/processing.md.
//!
//! It takes the Worker's jobs on `POST /jobs` and does each before it answers, so that a job is
//! acknowledged only once its result is recorded in the Worker: 200 when done, 400 for a job
//! that can never be done (the queue drops it), 503 for one worth another try (the queue offers
//! it again later). It cuts clips with ffmpeg ([`jobs`]) and records results through the
//! Worker's service routes ([`worker`]). The frontend's processing routes that the Worker
//! forwards here (`/api/export/*`, `/api/annotate/*`, `/api/detect/*`, `/ws/*`) are answered
//! 501: rendering and detection are not part of this reference.
//!
//! ```text
//! PROCESSING_TOKEN=... processor --listen 127.0.0.1:8790 --worker http://127.0.0.1:8787
//! ```

mod jobs;
mod worker;

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use constant_time_eq::constant_time_eq;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::jobs::{Job, JobError};

/// How many requests are served at once (each job runs ffmpeg on its own thread).
const THREADS: usize = 4;
/// The largest job body taken: a job is a few hundred bytes of JSON.
const MAX_JOB_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Reference video-processing service: cuts clips for the Worker"
)]
struct Args {
    /// Address to serve the jobs endpoint on.
    #[arg(long, default_value = "127.0.0.1:8790")]
    listen: String,
    /// Base URL of the Worker whose service routes record the results.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    worker: String,
    /// The ffmpeg program.
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: String,
    /// The secret shared with the Worker (its secret PROCESSING_TOKEN).
    #[arg(long, env = "PROCESSING_TOKEN", hide_env_values = true)]
    token: String,
}

struct Service {
    args: Args,
    agent: ureq::Agent,
}

fn main() {
    let args = Args::parse();
    if args.token.is_empty() {
        eprintln!("processor: PROCESSING_TOKEN is empty");
        std::process::exit(2);
    }
    let server = match Server::http(&args.listen) {
        Ok(server) => Arc::new(server),
        Err(err) => {
            eprintln!("processor: cannot listen on {}: {err}", args.listen);
            std::process::exit(1);
        }
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let service = Arc::new(Service {
        args: Args {
            worker: args.worker.trim_end_matches('/').to_owned(),
            ..args
        },
        agent,
    });
    eprintln!(
        "processor: listening on {}, recording in {}",
        service.args.listen, service.args.worker
    );
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (server, service) = (Arc::clone(&server), Arc::clone(&service));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    service.answer(request);
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

impl Service {
    fn answer(&self, mut request: Request) {
        let path = request
            .url()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (status, body) = match (request.method(), path.as_str()) {
            (Method::Get, "/health") => (200, json!({"status": "ok"})),
            // A user's request the Worker forwarded: it carries the Worker's assertion of the
            // user and this request, never the token.
            (method, path) if is_forwarded(path) => match self.asserted_user(&request) {
                Ok(_user) => (
                    501,
                    json!({"detail": format!("{method} {path} is not implemented by the reference processor")}),
                ),
                Err(refused) => (
                    401,
                    json!({"detail": format!("Forwarded request refused: {refused}")}),
                ),
            },
            _ if !self.authorized(&request) => (
                401,
                json!({"detail": "Missing or wrong processing token (Authorization: Bearer ...)"}),
            ),
            (Method::Post, "/jobs") => self.take_job(&mut request),
            _ => (404, json!({"detail": "Not Found"})),
        };
        let response = Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(
                "Content-Type: application/json"
                    .parse::<Header>()
                    .expect("a valid header"),
            );
        let _ = request.respond(response);
    }

    fn authorized(&self, request: &Request) -> bool {
        let given = request
            .headers()
            .iter()
            .find(|header| header.field.equiv("Authorization"))
            .map(|header| header.value.as_str())
            .unwrap_or_default();
        let given = given.strip_prefix("Bearer ").unwrap_or_default();
        constant_time_eq(given.as_bytes(), self.args.token.as_bytes())
    }

    /// The user a forwarded request is for, once the Worker's assertion on it verifies for
    /// exactly this method and target and has not expired.
    fn asserted_user(&self, request: &Request) -> Result<String, processing_assertion::Refused> {
        let assertion = request
            .headers()
            .iter()
            .find(|header| header.field.equiv(processing_assertion::HEADER))
            .map(|header| header.value.as_str())
            .ok_or(processing_assertion::Refused::Malformed)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let method = request.method().as_str();
        processing_assertion::verify(&self.args.token, assertion, method, request.url(), now)
    }

    /// `POST /jobs`: does the job, then answers how it went; logs one line per job.
    fn take_job(&self, request: &mut Request) -> (u16, Value) {
        let mut body = Vec::new();
        if let Err(err) = request
            .as_reader()
            .take(MAX_JOB_BYTES)
            .read_to_end(&mut body)
        {
            return (400, json!({"detail": format!("unreadable body: {err}")}));
        }
        let job: Job = match serde_json::from_slice(&body) {
            Ok(job) => job,
            Err(err) => {
                eprintln!("processor: malformed job refused: {err}");
                return (400, json!({"detail": format!("malformed job: {err}")}));
            }
        };
        let started = Instant::now();
        let worker = worker::Worker {
            agent: &self.agent,
            base: &self.args.worker,
            token: &self.args.token,
            user: &job.user_id,
        };
        let result = jobs::run(&job, &worker, &self.args.ffmpeg);
        let (status, body, outcome) = match result {
            Ok(outcome) => (
                200,
                json!({"outcome": outcome.as_str()}),
                outcome.as_str().to_owned(),
            ),
            Err(JobError::Malformed(why)) => {
                (400, json!({"detail": why}), format!("refused: {why}"))
            }
            Err(JobError::Retry(why)) => (503, json!({"detail": why}), format!("retry: {why}")),
        };
        eprintln!(
            "{}",
            json!({"event": "job", "user": job.user_id, "kind": job.kind, "ids": job.ids,
                   "outcome": outcome, "ms": started.elapsed().as_millis() as u64})
        );
        (status, body)
    }
}

/// A frontend route the Worker forwards to the processing service.
fn is_forwarded(path: &str) -> bool {
    ["/api/export/", "/api/annotate/", "/api/detect/", "/ws/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}
