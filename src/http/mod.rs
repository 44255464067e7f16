//! The edge between workers-rs HTTP types and the handlers' plain [`ApiRequest`] /
//! [`ApiResponse`], and the one place JSON, error and file ([`file`]) responses are built.

pub mod file;

use wasm_bindgen::JsCast;
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::web_sys;
use worker::{Headers, Request, Response, ResponseBody, ResponseBuilder};

use crate::error::ApiError;
use crate::handlers::{
    check_request_body_size, ApiRequest, Body, FileBytes, FormValue, Method, UploadedFile,
    MAX_JSON_BODY_BYTES,
};
use crate::headers;
use crate::identity::UserId;
use user_data_core::db::DbVersion;

/// Which storage served a request; sent as `X-Data-Path` on every response from a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    R2,
    DurableObject,
}

impl DataPath {
    pub fn as_str(self) -> &'static str {
        match self {
            DataPath::R2 => "r2",
            DataPath::DurableObject => "do",
        }
    }
}

/// A request read whole: parsed for the handlers, or forwarded to a Durable Object as it came.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: worker::Method,
    pub url: worker::Url,
    pub headers: Vec<(String, String)>,
    /// Kept on the JS side, as is a form's file: an upload's bytes never enter wasm memory.
    body: Uint8Array,
}

impl RawRequest {
    /// Reads the request whole, within the API's cap ([`read_body`]).
    pub async fn read(req: &mut Request) -> Result<Self, ApiError> {
        let url = req
            .url()
            .map_err(|err| ApiError::BadRequest(format!("Invalid URL: {err}")))?;
        let body = read_body(req, check_request_body_size).await?;
        Ok(Self {
            method: req.method(),
            url,
            headers: req.headers().entries().collect(),
            body,
        })
    }

    /// The body's bytes, copied into wasm memory (only for the bodies a route reads whole).
    pub fn bytes(&self) -> Vec<u8> {
        self.body.to_vec()
    }

    /// The first value of a header (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Replaces (or adds) a header.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Removes a header a client must not be able to send (one the Worker sets itself).
    pub fn remove_header(&mut self, name: &str) {
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
    }

    /// The request as the handlers see it, with form bodies parsed.
    pub async fn to_api_request(&self) -> Result<ApiRequest, ApiError> {
        let method = match self.method {
            worker::Method::Get => Method::Get,
            worker::Method::Post => Method::Post,
            worker::Method::Put => Method::Put,
            worker::Method::Patch => Method::Patch,
            worker::Method::Delete => Method::Delete,
            _ => Method::Other,
        };
        Ok(ApiRequest {
            method,
            path: self.url.path().to_owned(),
            query: self.url.query_pairs().into_owned().collect(),
            body: parse_body(self.header("Content-Type"), &self.body).await?,
            entropy: random_u64(),
        })
    }

    /// A workers-rs request with the same method, URL, headers and body.
    pub fn to_worker_request(&self) -> Result<Request, ApiError> {
        let headers: Headers = self.headers.iter().collect();
        let mut init = worker::RequestInit::new();
        init.with_method(self.method.clone()).with_headers(headers);
        if self.body.length() > 0 {
            init.with_body(Some(self.body.clone().into()));
        }
        Request::new_with_init(self.url.as_str(), &init)
            .map_err(|err| ApiError::Internal(format!("Could not forward the request: {err}")))
    }
}

/// A request's body, read as it arrives and kept on the JS side: `check` is asked about its
/// declared length before anything is read, then about the bytes read so far after each chunk,
/// so a body over the cap is refused (413) once the cap is passed, chunked or not, never read
/// whole first (a 120 MiB body would take the isolate past its 128 MB).
pub async fn read_body(
    req: &Request,
    check: impl Fn(u64) -> Result<(), ApiError>,
) -> Result<Uint8Array, ApiError> {
    let declared = req.headers().get("Content-Length").ok().flatten();
    if let Some(length) = declared.and_then(|length| length.trim().parse().ok()) {
        check(length)?;
    }
    let Some(stream) = req.inner().body() else {
        return Ok(Uint8Array::new_with_length(0));
    };
    let unreadable = |err: wasm_bindgen::JsValue| {
        ApiError::BadRequest(format!("Could not read the request body: {err:?}"))
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut chunks = Vec::new();
    let mut total: u64 = 0;
    loop {
        let result = JsFuture::from(reader.read()).await.map_err(unreadable)?;
        let field = |name: &str| js_sys::Reflect::get(&result, &name.into());
        if field("done").map_err(unreadable)?.is_truthy() {
            break;
        }
        let chunk: Uint8Array = field("value").map_err(unreadable)?.unchecked_into();
        total += u64::from(chunk.length());
        if let Err(err) = check(total) {
            // Tells the runtime the rest is not wanted; its promise settles by itself.
            let _ = reader.cancel();
            return Err(err);
        }
        chunks.push(chunk);
    }
    // Joined on the JS side too: the body does not enter wasm memory here.
    let body = Uint8Array::new_with_length(u32::try_from(total).unwrap_or(u32::MAX));
    let mut at = 0;
    for chunk in chunks {
        body.set(&chunk, at);
        at += chunk.length();
    }
    Ok(body)
}

fn random_u64() -> u64 {
    let half = || (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    (half() << 32) | half()
}

async fn parse_body(content_type: Option<&str>, bytes: &Uint8Array) -> Result<Body, ApiError> {
    let essence = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let is_form = matches!(
        essence.as_str(),
        "multipart/form-data" | "application/x-www-form-urlencoded"
    );
    // Only a JSON type is JSON: a page of another origin can send any body as `text/plain`
    // without a preflight, never as `application/json`.
    let is_json = essence == "application/json" || essence.ends_with("+json");
    match (is_form, content_type) {
        (true, Some(content_type)) => Body::form(parse_form(content_type, bytes).await?),
        _ if bytes.length() == 0 => Ok(Body::Empty),
        _ if !is_json => Ok(Body::Other(content_type.unwrap_or("none").to_owned())),
        _ if bytes.length() as usize > MAX_JSON_BODY_BYTES => {
            Ok(Body::Oversized(bytes.length() as usize))
        }
        _ => Ok(Body::Json(bytes.to_vec())),
    }
}

/// Parses a form body with the runtime's own parser (`Response.formData()`).
async fn parse_form(
    content_type: &str,
    bytes: &Uint8Array,
) -> Result<Vec<(String, FormValue)>, ApiError> {
    let malformed = |err: wasm_bindgen::JsValue| {
        ApiError::Unprocessable(format!("body: malformed form data: {err:?}"))
    };
    let headers = web_sys::Headers::new().map_err(malformed)?;
    headers
        .set("Content-Type", content_type)
        .map_err(malformed)?;
    let init = web_sys::ResponseInit::new();
    init.set_headers(&headers);
    let response = web_sys::Response::new_with_opt_buffer_source_and_init(Some(bytes), &init)
        .map_err(malformed)?;
    let form = JsFuture::from(response.form_data().map_err(malformed)?)
        .await
        .map_err(malformed)?;
    let entries = js_sys::try_iter(&form)
        .map_err(malformed)?
        .ok_or_else(|| ApiError::Unprocessable("body: form data is not iterable".into()))?;

    let mut fields = Vec::new();
    for entry in entries {
        let entry: js_sys::Array = entry.map_err(malformed)?.unchecked_into();
        let name = entry.get(0).as_string().unwrap_or_default();
        let value = entry.get(1);
        let value = match value.dyn_into::<web_sys::File>() {
            // The file stays the runtime's: its bytes never enter wasm memory.
            Ok(file) => FormValue::File(UploadedFile {
                filename: file.name(),
                content_type: file.type_(),
                bytes: FileBytes::from_blob(file.into()),
            }),
            Err(text) => FormValue::Text(text.as_string().unwrap_or_default()),
        };
        fields.push((name, value));
    }
    Ok(fields)
}

/// Labels a response with the path that served it.
pub fn labelled(mut response: Response, path: DataPath) -> Response {
    // Our own responses have mutable headers; setting one cannot fail.
    let _ = response
        .headers_mut()
        .set(headers::DATA_PATH, path.as_str());
    response
}

/// The response for an error: its status, `{"detail": ...}` and, for a wait that passes,
/// `Retry-After`. Server-side failures are logged, with the request's `user` when known.
pub fn error(err: &ApiError, user: Option<&UserId>) -> Response {
    let mut body = err.body();
    let mut request_id_header = None;
    if err.status() >= 500 {
        let request_id = request_id();
        request_id_header = Some(request_id.clone());
        crate::log::error(serde_json::json!({
            "event": "request_failed",
            "request_id": request_id,
            "user": user.map(UserId::as_str),
            "status": err.status(),
            "detail": err.detail(),
        }));
        if err.public_detail().is_some() {
            body.request_id = Some(request_id);
        }
    }
    let mut response = json(err.status(), &body);
    // Our own responses have mutable headers; setting one cannot fail.
    if let Some(seconds) = err.retry_after() {
        let _ = response
            .headers_mut()
            .set("Retry-After", &seconds.to_string());
    }
    if let Some(challenge) = err.challenge() {
        let _ = response.headers_mut().set("WWW-Authenticate", challenge);
    }
    if let Some(id) = request_id_header {
        let _ = response.headers_mut().set(headers::REQUEST_ID, &id);
    }
    response
}

/// Logs one JSON line for an answered API request: who, which route, where it was served, how
/// it went and how long it took. Operators search these by `user`; a failure's
/// `request_failed` line has the same `request_id`.
pub fn log_request(user: Option<&UserId>, route: &str, response: &Response, started_ms: u64) {
    let header = |name| response.headers().get(name).ok().flatten();
    let request_id = header(headers::REQUEST_ID).unwrap_or_else(request_id);
    let db_version = header(headers::DB_VERSION).and_then(|v| v.parse::<u64>().ok());
    let cache_hit = header(headers::DB_CACHE).map(|cache| cache == "hit");
    crate::log::info(serde_json::json!({
            "event": "request",
            "request_id": request_id,
            "user": user.map(UserId::as_str),
            "data_path": header(headers::DATA_PATH),
            "route": route,
            "status": response.status_code(),
            "ms": (worker::Date::now().as_millis()).saturating_sub(started_ms),
            "db_version": db_version,
            "cache_hit": cache_hit,
    }));
}

/// `GET /api/projects/{id}` for `GET /api/projects/42`: the route a request took, without the
/// values in its path, so that log lines group by route. The routes' fixed segments are
/// lowercase words; anything else (numbers, job ids) is a value.
pub fn route_template(method: &worker::Method, path: &str) -> String {
    let segments: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .map(|segment| {
            let word =
                !segment.is_empty() && segment.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            if word || segment.is_empty() {
                segment
            } else {
                "{id}"
            }
        })
        .collect();
    format!("{method} {}", segments.join("/"))
}

/// An id for one failed request, to find its log line by.
fn request_id() -> String {
    let random = worker::js_sys::Math::random();
    format!("{:013x}", (random * (1u64 << 52) as f64) as u64)
}

/// A user's database as a SQLite file at `version` (the admin API's export).
pub fn sqlite_file(version: DbVersion, bytes: Vec<u8>) -> Response {
    ResponseBuilder::new()
        .with_headers(sqlite_headers(version))
        .fixed(bytes)
}

/// A SQLite file answered from a stream (R2's body), never held by the Worker.
pub fn sqlite_stream(version: DbVersion, body: ResponseBody) -> Response {
    ResponseBuilder::new()
        .with_headers(sqlite_headers(version))
        .body(body)
}

fn sqlite_headers(version: DbVersion) -> Headers {
    let version = version.to_string();
    [
        ("Content-Type", "application/vnd.sqlite3"),
        (headers::DB_VERSION, &version),
    ]
    .iter()
    .collect()
}

/// The size of the isolate's wasm linear memory: it never shrinks, so it is its high-water mark
/// (reported with `REPORT_WASM_MEMORY`, for measurements).
#[cfg(target_arch = "wasm32")]
pub fn wasm_memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65536
}

#[cfg(not(target_arch = "wasm32"))]
pub fn wasm_memory_bytes() -> usize {
    0
}

/// Bytes that are neither JSON nor a file: a chunked move's row batch.
pub fn octets(bytes: Vec<u8>) -> Response {
    let headers: Headers = [("Content-Type", "application/octet-stream")]
        .iter()
        .collect();
    ResponseBuilder::new().with_headers(headers).fixed(bytes)
}

/// A JSON response with the given status.
pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        // Only a map with keys that are not strings fails; no body of the API has one.
        Err(err) => {
            let detail = format!("The response could not be written: {err}");
            (
                500,
                serde_json::json!({ "detail": detail })
                    .to_string()
                    .into_bytes(),
            )
        }
    };
    let headers: Headers = [("Content-Type", "application/json")].iter().collect();
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .fixed(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_keep_the_fixed_segments_and_hide_the_values() {
        let cases = [
            (
                worker::Method::Get,
                "/api/projects/42",
                "GET /api/projects/{id}",
            ),
            (worker::Method::Get, "/api/projects/", "GET /api/projects"),
            (
                worker::Method::Put,
                "/api/clips/projects/7/clips/reorder",
                "PUT /api/clips/projects/{id}/clips/reorder",
            ),
            (
                worker::Method::Get,
                "/api/exports/export_1a2b",
                "GET /api/exports/{id}",
            ),
            (
                worker::Method::Get,
                "/api/export/projects/3/overlay-data",
                "GET /api/export/projects/{id}/overlay-data",
            ),
            (
                worker::Method::Delete,
                "/api/games/Ab_9",
                "DELETE /api/games/{id}",
            ),
        ];
        for (method, path, template) in cases {
            assert_eq!(route_template(&method, path), template, "{path}");
        }
    }
}
