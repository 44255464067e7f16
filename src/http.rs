//! The edge between workers-rs HTTP types and the handlers' plain [`ApiRequest`] /
//! [`ApiResponse`], and the one place responses are built.

use worker::{Headers, Request, Response, ResponseBuilder};

use crate::error::ApiError;
use crate::handlers::{ApiRequest, ApiResponse, Method};

/// Which storage served a request; sent as `X-Data-Path` on every response from a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    R2,
    DurableObject,
}

impl DataPath {
    pub const HEADER: &'static str = "X-Data-Path";

    pub fn as_str(self) -> &'static str {
        match self {
            DataPath::R2 => "r2",
            DataPath::DurableObject => "do",
        }
    }
}

/// Reads method, path, query and body of a workers-rs request.
pub async fn read_api_request(req: &mut Request) -> Result<ApiRequest, ApiError> {
    let url = req
        .url()
        .map_err(|err| ApiError::BadRequest(format!("Invalid URL: {err}")))?;
    let method = match req.method() {
        worker::Method::Get => Method::Get,
        worker::Method::Post => Method::Post,
        worker::Method::Put => Method::Put,
        worker::Method::Patch => Method::Patch,
        worker::Method::Delete => Method::Delete,
        _ => Method::Other,
    };
    let body = req
        .bytes()
        .await
        .map_err(|err| ApiError::BadRequest(format!("Could not read the request body: {err}")))?;
    Ok(ApiRequest {
        method,
        path: url.path().to_owned(),
        query: url.query_pairs().into_owned().collect(),
        content_type: req.headers().get("Content-Type").ok().flatten(),
        body,
    })
}

/// Builds the HTTP response for a handler's result, labelled with the path that served it.
pub fn respond(result: Result<ApiResponse, ApiError>, path: DataPath) -> Response {
    let mut response = match result {
        Ok(ApiResponse::Json(body)) => json(200, &body),
        Err(err) => error(&err),
    };
    // Setting a header on a response we built ourselves cannot fail (its headers are mutable).
    let _ = response.headers_mut().set(DataPath::HEADER, path.as_str());
    response
}

/// The response for an error: its status and `{"detail": ...}`. Server-side failures are logged.
pub fn error(err: &ApiError) -> Response {
    if err.status() >= 500 {
        worker::console_error!("{err}");
    }
    json(err.status(), &err.body())
}

/// A JSON response with the given status.
pub fn json(status: u16, body: &serde_json::Value) -> Response {
    let headers: Headers = [("Content-Type", "application/json")].iter().collect();
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .fixed(body.to_string().into_bytes())
}
