//! The outer routes of the Worker.
//!
//! - `GET /`, `GET /api/health` and `GET /api/status` answer without touching any storage.
//! - `/admin/*` is the operators' API ([`crate::admin`]).
//! - Every other `/api/*` request is for the user [`crate::auth`] finds (a signed token's
//!   subject, or `X-User-ID` in `header` mode), before its body is read; the KV
//!   flag `migrated:<user_id>` then sends it to the user's `UserDataStore`, and its absence to
//!   the R2-SQLite path ([`crate::placement`]). The flag may be stale: the R2 path hands a
//!   migrated user's request to the object (its fence), and the object hands a request it must
//!   not serve back.
//! - The frontend's video-processing routes (`/api/export/*` but the two served here,
//!   `/api/annotate/*`, `/api/detect/*`, `/ws/*`) go to the processing service for the same
//!   user ([`crate::processing::forward`]).
//! - A request that would change data for a page of another origin is refused before anything
//!   else, and only allowed origins get CORS answers ([`crate::origin`]).
//! - `/processing/*` is the processing service's: behind its token, its media routes touch only
//!   R2, and its results are routed like the user's own requests, to the side holding their data.

use serde_json::json;
use worker::{Env, Method, Request, Response};

use crate::admin;
use crate::auth;
use crate::config::Config;
use crate::error::ApiError;
use crate::flag::Flags;
use crate::headers;
use crate::http::{self, RawRequest};
use crate::identity::UserId;
use crate::lifecycle::Served;
use crate::object;
use crate::origin;
use crate::placement::{self, Placement, Side};
use crate::processing;
use crate::r2_path;

/// Answers one request; never fails (errors become their HTTP responses here).
pub async fn handle(req: Request, env: Env) -> Response {
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Get, "/") => {
            return http::json(
                200,
                &json!({
                    "message": "Video Editor API is running!",
                    "version": env!("CARGO_PKG_VERSION"),
                    "status": "healthy",
                    "docs": "/docs",
                }),
            )
        }
        (Method::Get, "/api/health") => {
            let mut response = http::json(200, &json!({ "status": "ok" }));
            if Config::from_env(&env).report_wasm_memory {
                let bytes = http::wasm_memory_bytes().to_string();
                let _ = response
                    .headers_mut()
                    .set(headers::WASM_MEMORY_BYTES, &bytes);
            }
            return response;
        }
        (Method::Get, "/api/status") => {
            return http::json(
                200,
                &json!({
                    "status": "healthy",
                    "service": env!("CARGO_PKG_NAME"),
                    "timestamp": local_iso_now(),
                }),
            )
        }
        _ => {}
    }
    if path == "/admin" || path.starts_with("/admin/") {
        return admin::handle(req, &env).await;
    }
    if !path.starts_with("/api/")
        && !is_processing_route(&path)
        && !path.starts_with("/processing/")
    {
        return http::error(&ApiError::NotFound("Not Found".to_owned()), None);
    }
    let config = Config::from_env(&env);
    if let Some(answer) = origin::preflight(&req, &config) {
        return answer.unwrap_or_else(|err| http::error(&err.into(), None));
    }
    let reader = origin::reader(&req, &config);
    origin::let_read(route_api(req, &env).await, reader.as_deref())
}

/// A frontend route served by the video-processing service, not here: every `/api/export/*`
/// route except the two data routes under it (overlay data, before/after status), and
/// `/api/annotate/*`, `/api/detect/*`, `/ws/*` (docs/api.md §11).
fn is_processing_route(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["", "api", "export", "projects", _, "overlay-data"] => false,
        ["", "api", "export", "before-after", _, "status"] => false,
        ["", "api", "export" | "annotate" | "detect", _, ..] => true,
        ["", "ws", _, ..] => true,
        _ => false,
    }
}

/// The current time (UTC in Workers) as `2026-01-24T10:11:12.123000`.
fn local_iso_now() -> String {
    let iso = worker::Date::now().to_string(); // 2026-01-24T10:11:12.123Z
    format!("{}000", iso.trim_end_matches('Z'))
}

/// Answers an API request and logs it (one JSON line per request, [`http::log_request`]).
async fn route_api(req: Request, env: &Env) -> Response {
    let started = worker::Date::now().as_millis();
    let route = http::route_template(&req.method(), &req.path());
    let (user, response) = answer_api(req, env).await;
    http::log_request(user.as_ref(), &route, &response, started);
    response
}

/// The answer to an API request, and its user once known.
async fn answer_api(mut req: Request, env: &Env) -> (Option<UserId>, Response) {
    if req.path().starts_with("/processing/") {
        return answer_service(req, env).await;
    }
    let config = Config::from_env(env);
    // A page of another origin changes nothing, whoever's credentials its request carries.
    if let Err(err) = origin::check(&req, &config) {
        return (None, http::error(&err.into(), None));
    }
    // Who it is for before its body is read: an unauthenticated upload costs us nothing.
    let user = match auth::authenticate(req.headers(), &config).await {
        Ok(user) => user,
        Err(err) => return (None, http::error(&err.into(), None)),
    };
    if is_processing_route(&req.path()) {
        let response = or_error(processing::forward(req, env, &user).await, &user);
        return (Some(user), response);
    }
    let response = match RawRequest::read(&mut req).await {
        Ok(mut raw) => {
            raw.remove_header(headers::FLAG_SEEN);
            match route_user(env, &config, &user, raw).await {
                Ok(response) => response,
                Err(err) => http::error(&err, Some(&user)),
            }
        }
        Err(err) => http::error(&err, Some(&user)),
    };
    (Some(user), response)
}

/// The answer to a request of the processing service (`/processing/*`), and its user once known.
async fn answer_service(mut req: Request, env: &Env) -> (Option<UserId>, Response) {
    let user = match processing::authorize(&req, env) {
        Ok(user) => user,
        Err(err) => return (None, http::error(&err, None)),
    };
    if req.path().starts_with("/processing/media/") {
        let response = or_error(processing::media(req, env, &user).await, &user);
        return (Some(user), response);
    }
    let config = Config::from_env(env);
    let response = match RawRequest::read(&mut req).await {
        Ok(mut raw) => {
            raw.remove_header(headers::FLAG_SEEN);
            route_user(env, &config, &user, raw).await
        }
        Err(err) => Err(err),
    };
    let response = or_error(response, &user);
    (Some(user), response)
}

fn or_error(response: Result<Response, ApiError>, user: &UserId) -> Response {
    response.unwrap_or_else(|err| http::error(&err, Some(user)))
}

/// Sends a request of `user` to the side that serves them.
async fn route_user(
    env: &Env,
    config: &Config,
    user: &UserId,
    raw: RawRequest,
) -> Result<Response, ApiError> {
    let flag_seen = match config.router_flag_override {
        Some(flagged) => flagged,
        None => {
            Flags::new(env)?
                .is_set(user, Some(config.flag_cache_ttl_seconds))
                .await?
        }
    };
    if placement::decide_without_r2(Side::Router { flag_seen }) == Some(Placement::HandOver) {
        return forward_to_object(env, user, raw, true).await;
    }
    match r2_path::serve(env, config, user, &raw).await {
        Served::Response(response) => Ok(response),
        Served::Elsewhere => forward_to_object(env, user, raw, false).await,
    }
}

/// Sends the request to the user's object, naming the user in the header it will trust and
/// saying whether the KV flag was seen.
async fn forward_to_object(
    env: &Env,
    user: &UserId,
    mut raw: RawRequest,
    flag_seen: bool,
) -> Result<Response, ApiError> {
    raw.set_header(headers::USER_ID, user.as_str());
    raw.set_header(
        headers::FLAG_SEEN,
        if flag_seen { "present" } else { "absent" },
    );
    object::call(env, user, raw.to_worker_request()?).await
}
