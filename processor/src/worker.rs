//! The Worker's service routes (docs/processing.md §2), as the processor calls them: every call
//! carries the service token and the user, and one the Worker cannot take now (503 while the
//! user's data moves, or no connection) is tried again a few times before the job is given back
//! to the queue.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use ureq::http::Response;
use ureq::Body;

/// How often one call is tried before the job goes back to the queue.
const ATTEMPTS: u32 = 5;
/// The longest `Retry-After` honoured between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Why a call to the Worker did not succeed.
#[derive(Debug)]
pub enum CallError {
    /// The Worker says the thing is not there (404).
    NotFound,
    /// The Worker refused the call for good (another 4xx): a bug on one side.
    Refused(u16, String),
    /// Not now: the Worker was unreachable or unavailable on every try.
    Unavailable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotFound => write!(f, "not found"),
            CallError::Refused(status, body) => write!(f, "refused with {status}: {body}"),
            CallError::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

/// A client of one Worker for one user.
pub struct Worker<'a> {
    pub agent: &'a ureq::Agent,
    pub base: &'a str,
    pub token: &'a str,
    pub user: &'a str,
}

impl Worker<'_> {
    /// Downloads `{folder}/{filename}` of the user into `file`, streamed.
    pub fn download(&self, key: &str, file: &mut std::fs::File) -> Result<(), CallError> {
        let mut response = self.call(|| {
            self.agent
                .get(format!("{}/processing/media/{key}", self.base))
                .header("Authorization", &self.bearer())
                .header("X-User-ID", self.user)
                .call()
        })?;
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        std::io::copy(&mut reader, file)
            .and_then(|_| file.flush())
            .map_err(|err| CallError::Unavailable(format!("download of {key}: {err}")))?;
        Ok(())
    }

    /// Stores the file at `path` as `{folder}/{filename}` of the user.
    pub fn upload(&self, key: &str, path: &Path) -> Result<(), CallError> {
        // A cut clip is small (its length of video); the Worker needs its length up front.
        let bytes = std::fs::read(path)
            .map_err(|err| CallError::Unavailable(format!("reading {}: {err}", path.display())))?;
        self.call(|| {
            self.agent
                .put(format!("{}/processing/media/{key}", self.base))
                .header("Authorization", &self.bearer())
                .header("X-User-ID", self.user)
                .header("Content-Type", "video/mp4")
                .send(&bytes[..])
        })?;
        Ok(())
    }

    /// POSTs a result; the Worker's JSON answer.
    pub fn record(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        let mut response = self.call(|| {
            self.agent
                .post(format!("{}{path}", self.base))
                .header("Authorization", &self.bearer())
                .header("X-User-ID", self.user)
                .send_json(body)
        })?;
        response
            .body_mut()
            .read_json()
            .map_err(|err| CallError::Unavailable(format!("the answer to {path}: {err}")))
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Runs one call, again after a 503 or a connection failure, up to [`ATTEMPTS`] times.
    fn call(
        &self,
        send: impl Fn() -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, CallError> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let pause = match send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if response.status() == 404 => return Err(CallError::NotFound),
                Ok(mut response) if response.status().is_client_error() => {
                    let status = response.status().as_u16();
                    let body = response.body_mut().read_to_string().unwrap_or_default();
                    return Err(CallError::Refused(status, body));
                }
                Ok(response) => {
                    last = format!("the Worker answered {}", response.status());
                    retry_after(&response)
                }
                Err(err) => {
                    last = err.to_string();
                    Duration::from_millis(500)
                }
            };
            if attempt < ATTEMPTS {
                std::thread::sleep(pause.min(MAX_PAUSE));
            }
        }
        Err(CallError::Unavailable(last))
    }
}

/// The pause a response asks for (`Retry-After` in seconds), else one second.
fn retry_after(response: &Response<Body>) -> Duration {
    response
        .headers()
        .get("Retry-After")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}
