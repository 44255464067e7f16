//! The Worker's side of video processing (docs/processing.md): the edges to the processing
//! service. What a job or a result means for the data is in [`crate::handlers`]; this module
//! only moves things:
//! - [`JobQueue::send`]: a committed request's [`Job`]s onto the `PROCESSING_JOBS` queue;
//! - [`deliver`]: the queue's consumer, which posts each job to `PROCESSING_URL/jobs` and leaves
//!   a job the service did not take on the queue for later (then the dead-letter queue);
//! - [`authorize`] and [`media`]: the service's own routes (`/processing/*`), behind the secret
//!   `PROCESSING_TOKEN`; its results go through the router to the user's authoritative side;
//! - [`forward`]: the frontend's processing routes, passed on to the service with the user's
//!   identity.

use serde::Serialize;
use serde_json::json;
use worker::{
    Env, Fetch, Headers, MessageBatch, MessageExt, QueueContentType, RawMessageBuilder, Request,
    RequestInit, Response,
};

use crate::auth;
use crate::bucket::{self, media};
use crate::config::{self, Config, PROCESSING_QUEUE};
use crate::error::ApiError;
use crate::handlers::{files, ApiResponse, FileResponse, Job};
use crate::headers;
use crate::http;
use crate::identity::UserId;

/// The secret shared with the processing service, both ways.
const TOKEN_SECRET: &str = "PROCESSING_TOKEN";

/// The longest pause before a job is offered again.
const MAX_RETRY_DELAY_SECONDS: u32 = 3600;

/// Media folders the service reads (any file of the user) and writes (its products).
const READABLE_FOLDERS: [&str; 6] = [
    "games",
    "exports",
    "raw_clips",
    "uploads",
    "working_videos",
    "final_videos",
];
const WRITABLE_FOLDERS: [&str; 3] = ["raw_clips", "working_videos", "final_videos"];

/// One queue message: a job and whose it is.
#[derive(Serialize)]
struct JobMessage<'a> {
    user_id: &'a str,
    #[serde(flatten)]
    job: &'a Job,
}

/// The producer side of the jobs queue.
pub struct JobQueue(Option<worker::Queue>);

impl JobQueue {
    pub fn of(env: &Env) -> Self {
        Self(env.queue(PROCESSING_QUEUE).ok())
    }

    /// Sends a committed request's jobs. Called after the commit, so it cannot fail the request:
    /// a job that cannot be sent is logged, and the clip or export it was for stays pending
    /// (a clip's next trigger sends its cut again; docs/processing.md §1).
    pub async fn send(&self, user: &UserId, jobs: &[Job]) {
        for job in jobs {
            let message = JobMessage {
                user_id: user.as_str(),
                job,
            };
            let sent = match &self.0 {
                Some(queue) => send_json(queue, &message).await,
                None => Err(format!("the queue binding {PROCESSING_QUEUE} is missing")),
            };
            if let Err(err) = sent {
                crate::log::error(
                    json!({"event": "job_send_failed", "user": user.as_str(), "kind": job.kind,
                           "ids": job.ids, "error": err}),
                );
            }
        }
    }
}

/// Sends a message as a plain JSON object: workers-rs's own serializer would send a map as a
/// JavaScript `Map`, which the consumer would read back empty.
async fn send_json(queue: &worker::Queue, message: &JobMessage<'_>) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|err| err.to_string())?;
    let object = worker::js_sys::JSON::parse(&text).map_err(|err| format!("{err:?}"))?;
    queue
        .send_raw(RawMessageBuilder::new(object).build_with_content_type(QueueContentType::Json))
        .await
        .map_err(|err| err.to_string())
}

/// The queue consumer: offers each job to the service at once (a batch is at most a few jobs).
/// A 2xx takes the job, and so does a 4xx other than 408 and 429 (the service refused it for
/// good and said why; it records a job's failure itself). Anything else, or no service, leaves
/// the job on the queue for a pause that grows with its age; after the queue's last retry it
/// moves to the dead-letter queue.
pub async fn deliver(batch: MessageBatch<serde_json::Value>, env: &Env) {
    let config = Config::from_env(env);
    let token = config::secret(env, TOKEN_SECRET);
    let messages = match batch.messages() {
        Ok(messages) => messages,
        Err(err) => {
            crate::log::error(json!({
                "event": "job_batch_unreadable",
                "reason": err.to_string(),
            }));
            batch.retry_all();
            return;
        }
    };
    let deliveries = messages
        .iter()
        .map(|message| offer(&config, token.as_deref(), message.body()));
    let outcomes = futures::future::join_all(deliveries).await;
    for (message, outcome) in messages.iter().zip(outcomes) {
        let user = message.body()["user_id"].as_str().unwrap_or_default();
        let age_seconds = (worker::Date::now().as_millis())
            .saturating_sub(message.timestamp().as_millis())
            / 1000;
        match outcome {
            Offer::Taken => message.ack(),
            Offer::Refused(detail) => {
                crate::log::error(
                    json!({"event": "job_refused", "user": user, "job": message.body(), "detail": detail}),
                );
                message.ack();
            }
            Offer::Later(reason) => {
                let delay = u32::try_from(age_seconds).unwrap_or(u32::MAX).clamp(
                    config.processing_retry_seconds.max(1),
                    MAX_RETRY_DELAY_SECONDS,
                );
                crate::log::warn(
                    json!({"event": "job_delivery_failed", "user": user, "kind": message.body()["kind"],
                           "ids": message.body()["ids"], "reason": reason, "retry_in_seconds": delay}),
                );
                message.retry_with_options(
                    &worker::QueueRetryOptionsBuilder::new()
                        .with_delay_seconds(delay)
                        .build(),
                );
            }
        }
    }
}

enum Offer {
    Taken,
    Refused(String),
    Later(String),
}

async fn offer(config: &Config, token: Option<&str>, job: &serde_json::Value) -> Offer {
    let (Some(base), Some(token)) = (&config.processing_url, token) else {
        return Offer::Later("PROCESSING_URL or PROCESSING_TOKEN is unset".into());
    };
    let request = (|| {
        let headers = Headers::new();
        headers.set("Content-Type", "application/json")?;
        headers.set("Authorization", &format!("Bearer {token}"))?;
        let mut init = RequestInit::new();
        init.with_method(worker::Method::Post)
            .with_headers(headers)
            .with_body(Some(job.to_string().into()));
        Request::new_with_init(&format!("{base}/jobs"), &init)
    })();
    let response = match request {
        Ok(request) => Fetch::Request(request).send().await,
        Err(err) => Err(err),
    };
    let mut response = match response {
        Ok(response) => response,
        Err(err) => return Offer::Later(format!("the service is unreachable: {err}")),
    };
    // Read to the end in every case: an unread body keeps its connection open, and the runtime
    // holds the batch's next deliveries until connections are free (seen with 6 jobs at once).
    let body = response.text().await.unwrap_or_default();
    match response.status_code() {
        200..=299 => Offer::Taken,
        status @ (408 | 429) => Offer::Later(format!("the service answered {status}")),
        status @ 400..=499 => Offer::Refused(format!(
            "{status}: {}",
            body.chars().take(300).collect::<String>()
        )),
        status => Offer::Later(format!("the service answered {status}")),
    }
}

/// The user a service request (`/processing/*`) is for, once it carries the service's token
/// ([`auth::service::require_secret_bearer`]: 404 without the secret, 401 for a wrong token).
pub fn authorize(req: &Request, env: &Env) -> Result<UserId, ApiError> {
    auth::service::require_secret_bearer(req, env, TOKEN_SECRET)?;
    let user = req
        .headers()
        .get(headers::USER_ID)
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::BadRequest(format!("{} is required", headers::USER_ID)))?;
    Ok(UserId::parse(&user)?)
}

/// `GET|PUT /processing/media/{folder}/{filename}`: a file of the user's, read (honouring
/// `Range`) or stored (streamed from the request body). Files live in R2 whichever side holds
/// the user's data, so this touches no database.
pub async fn media(req: Request, env: &Env, user: &UserId) -> Result<Response, ApiError> {
    let path = req.path();
    let rest = path.strip_prefix("/processing/media/").unwrap_or_default();
    let (folder, filename) = rest
        .split_once('/')
        .ok_or_else(|| ApiError::NotFound("Not Found".into()))?;
    let filename = plain_filename(filename)?;
    let key = format!("{folder}/{filename}");
    let bucket = bucket::user_data(env)?;
    match req.method() {
        worker::Method::Get if READABLE_FOLDERS.contains(&folder) => {
            let file = ApiResponse::File(FileResponse {
                key,
                missing_detail: "File not found".into(),
                attachment_name: None,
                no_cache: false,
            });
            let range = req.headers().get("Range").ok().flatten();
            http::file::respond(&bucket, user, file, range.as_deref()).await
        }
        worker::Method::Put if WRITABLE_FOLDERS.contains(&folder) => {
            // The service's products are stored by the same rules as the user's uploads.
            let declared = req.headers().get("Content-Type").ok().flatten();
            let media =
                files::upload_type(folder, "path", filename, &declared.unwrap_or_default())?;
            let content_type = Some(media.mime.to_owned());
            let length = req.headers().get("Content-Length").ok().flatten();
            let body = req
                .inner()
                .body()
                .filter(|_| length.is_some())
                .ok_or_else(|| {
                    ApiError::Unprocessable("body: the file's bytes, with a Content-Length".into())
                })?;
            media::store_stream(&bucket, user, &key, body, content_type).await?;
            Ok(http::json(200, &json!({ "stored": key })))
        }
        _ => Err(ApiError::NotFound("Not Found".into())),
    }
}

/// A file name from a path: one segment, no percent-encoding (names the Worker and the service
/// make are plain), never `.` or `..`.
fn plain_filename(filename: &str) -> Result<&str, ApiError> {
    let plain = !filename.is_empty()
        && filename != "."
        && filename != ".."
        && !filename.contains(['/', '%', '\\']);
    if plain {
        Ok(filename)
    } else {
        Err(ApiError::BadRequest(format!(
            "Invalid file name in the path: {filename:?}"
        )))
    }
}

/// Passes a frontend request on to the processing service with the user's identity
/// (`X-User-ID`) and, instead of any credential, a short-lived assertion of the user and this
/// request ([`processing_assertion`]): every credential the Worker accepts (`Authorization`,
/// cookies, the `AUTH_HEADER` header) is removed, and the service's own token never travels
/// with a user's request. A path with an encoded slash or a dot segment is refused (400), never
/// forwarded: the service might decode it into another route. The body is streamed through, and
/// a WebSocket upgrade passes as it is. 501 when no service is configured, 503 when it cannot be
/// reached.
pub async fn forward(req: Request, env: &Env, user: &UserId) -> Result<Response, ApiError> {
    let config = Config::from_env(env);
    let url = req
        .url()
        .map_err(|err| ApiError::BadRequest(format!("Invalid URL: {err}")))?;
    refuse_hidden_segments(url.path())?;
    let base = config.processing_url.as_deref().ok_or_else(|| {
        ApiError::NotImplemented(
            "Video processing is not configured on this server (PROCESSING_URL is unset)".into(),
        )
    })?;
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let headers = Headers::new();
    let build_failed =
        |err: worker::Error| ApiError::Internal(format!("Could not forward the request: {err}"));
    let user_header = config.auth.header.as_deref().map(str::to_ascii_lowercase);
    for (name, value) in req.headers().entries() {
        let name_lower = name.to_ascii_lowercase();
        let credential = matches!(
            name_lower.as_str(),
            "authorization" | "cookie" | "host" | "x-user-id" | "content-length"
        ) || user_header.as_deref() == Some(name_lower.as_str())
            || name_lower == processing_assertion::HEADER.to_ascii_lowercase();
        if !credential && !name_lower.starts_with("cf-") {
            headers.set(&name, &value).map_err(build_failed)?;
        }
    }
    headers
        .set(headers::USER_ID, user.as_str())
        .map_err(build_failed)?;
    if let Some(token) = config::secret(env, TOKEN_SECRET) {
        let now = worker::Date::now().as_millis() / 1000;
        let method = req.method().to_string();
        let assertion = processing_assertion::sign(&token, user.as_str(), &method, &target, now);
        headers
            .set(processing_assertion::HEADER, &assertion)
            .map_err(build_failed)?;
    }
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    if let Some(body) = req.inner().body() {
        init.with_body(Some(body.into()));
    }
    let request =
        Request::new_with_init(&format!("{base}{target}"), &init).map_err(build_failed)?;
    Fetch::Request(request).send().await.map_err(|err| {
        crate::log::error(json!({"event": "processing_unreachable", "user": user.as_str(), "error": err.to_string()}));
        ApiError::ServiceUnavailable(
            "The video-processing service cannot be reached; try again".into(),
        )
    })
}

/// Refuses a path that a server decoding it could read as another one: a segment holding an
/// encoded slash or backslash, or one that is `.` or `..` once decoded (the URL parser has
/// already resolved the plain ones).
fn refuse_hidden_segments(path: &str) -> Result<(), ApiError> {
    let hidden = path.split('/').any(|segment| {
        let lower = segment.to_ascii_lowercase();
        let decoded_dots = lower.replace("%2e", ".");
        lower.contains("%2f")
            || lower.contains("%5c")
            || segment.contains('\\')
            || decoded_dots == "."
            || decoded_dots == ".."
    });
    if hidden {
        return Err(ApiError::BadRequest(format!(
            "The path {path:?} holds an encoded slash or a dot segment; it is not forwarded"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_slashes_and_dot_segments_are_not_forwarded() {
        for path in [
            "/api/export/..%2F..%2Fjobs",
            "/api/export/%2e%2e/jobs",
            "/api/export/.%2E/jobs",
            "/api/export/%2E/x",
            "/api/detect/a%2fb",
            "/api/detect/a%5Cb",
            "/ws/export/a\\b",
        ] {
            let err = refuse_hidden_segments(path).unwrap_err();
            assert_eq!(err.status(), 400, "{path}");
        }
        for path in [
            "/api/export/upscale",
            "/api/export/progress/export_1a2b",
            "/api/annotate/download/clip.v2.mp4",
            "/ws/export/x..y",
        ] {
            assert!(refuse_hidden_segments(path).is_ok(), "{path}");
        }
    }
}
