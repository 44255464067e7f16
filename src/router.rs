//! The outer routes of the Worker.
//!
//! - `GET /api/health` answers without touching any storage.
//! - Every other `/api/*` request names its user (`X-User-ID`, else `DEFAULT_USER_ID`); the KV
//!   flag `migrated:<user_id>` then sends it to the user's `UserDataStore`, and its absence to
//!   the R2-SQLite path.

use worker::{Env, Headers, Method, Request, RequestInit, Response};

use crate::config::{Config, FLAGS_KV, USER_DATA_DO};
use crate::error::ApiError;
use crate::http::{self, DataPath};
use crate::identity::{UserId, USER_ID_HEADER};
use crate::r2;

/// Answers one request; never fails (errors become their HTTP responses here).
pub async fn handle(req: Request, env: Env) -> Response {
    let path = req.path();
    if req.method() == Method::Get && path == "/api/health" {
        return http::json(200, &serde_json::json!({ "status": "ok" }));
    }
    if path != "/api" && !path.starts_with("/api/") {
        return http::error(&ApiError::NotFound("Not Found".to_owned()));
    }
    match route_api(req, &env).await {
        Ok(response) => response,
        Err(err) => http::error(&err),
    }
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
        .text()
        .await
        .map_err(|err| ApiError::Unavailable(format!("KV error: {err}")))?
        .is_some();

    if migrated {
        forward_to_durable_object(req, env, &user).await
    } else {
        let request = http::read_api_request(&mut req).await?;
        let result = r2::serve(env, &user, &request).await;
        Ok(http::respond(result, DataPath::R2))
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
        init.with_body(Some(js_sys_bytes(&body)));
    }
    let forwarded = Request::new_with_init(req.url()?.as_str(), &init)?;
    Ok(stub.fetch_with_request(forwarded).await?)
}

fn js_sys_bytes(bytes: &[u8]) -> wasm_bindgen::JsValue {
    worker::js_sys::Uint8Array::from(bytes).into()
}
