//! The outer routes of the Worker.
//!
//! - `GET /`, `GET /api/health` and `GET /api/status` answer without touching any storage.
//! - Every other `/api/*` request names its user (`X-User-ID`, else `DEFAULT_USER_ID`); the KV
//!   flag `migrated:<user_id>` then sends it to the user's `UserDataStore`, and its absence to
//!   the R2-SQLite path.

use serde_json::json;
use worker::{Env, Headers, Method, Request, RequestInit, Response};

use crate::config::{Config, FLAGS_KV, USER_DATA_DO};
use crate::error::ApiError;
use crate::http;
use crate::identity::{UserId, USER_ID_HEADER};
use crate::r2;

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
        (Method::Get, "/api/health") => return http::json(200, &json!({ "status": "ok" })),
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
    if !path.starts_with("/api/") {
        return http::error(&ApiError::NotFound("Not Found".to_owned()));
    }
    match route_api(req, &env).await {
        Ok(response) => response,
        Err(err) => http::error(&err),
    }
}

/// The current time (UTC in Workers) as `2026-01-24T10:11:12.123000`.
fn local_iso_now() -> String {
    let iso = worker::Date::now().to_string(); // 2026-01-24T10:11:12.123Z
    format!("{}000", iso.trim_end_matches('Z'))
}

/// The KV key whose presence says a user is served by their Durable Object.
pub fn migrated_flag_key(user: &UserId) -> String {
    format!("migrated:{user}")
}

async fn route_api(mut req: Request, env: &Env) -> Result<Response, ApiError> {
    let config = Config::from_env(env);
    let header = req.headers().get(USER_ID_HEADER)?;
    let user = UserId::from_header(header.as_deref(), config.default_user_id.as_deref())?;

    let flags = env.kv(FLAGS_KV)?;
    let migrated = flags
        .get(&migrated_flag_key(&user))
        .cache_ttl(config.flag_cache_ttl_seconds)
        .text()
        .await
        .map_err(|err| ApiError::Unavailable(format!("KV error: {err}")))?
        .is_some();

    if migrated {
        forward_to_durable_object(req, env, &user).await
    } else {
        let range = req.headers().get("Range")?;
        let request = http::read_api_request(&mut req).await?;
        Ok(r2::serve(env, &config, &user, &request, range.as_deref()).await)
    }
}

/// Sends the request to the user's object, naming the user in the header it will trust.
async fn forward_to_durable_object(
    mut req: Request,
    env: &Env,
    user: &UserId,
) -> Result<Response, ApiError> {
    let stub = env
        .durable_object(USER_DATA_DO)?
        .id_from_name(user.as_str())?
        .get_stub()?;

    let headers: Headers = req
        .headers()
        .entries()
        .filter(|(name, _)| !name.eq_ignore_ascii_case(USER_ID_HEADER))
        .chain([(USER_ID_HEADER.to_owned(), user.to_string())])
        .collect();
    let body = req.bytes().await?;
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    if !body.is_empty() {
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    }
    let forwarded = Request::new_with_init(req.url()?.as_str(), &init)?;
    Ok(stub.fetch_with_request(forwarded).await?)
}
