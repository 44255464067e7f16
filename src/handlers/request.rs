//! What a handler gets and gives: [`ApiRequest`] in, [`Reply`] out, plus the parsing of path,
//! query, JSON and form input into typed values, and the API's input limits. Malformed input is
//! a 422 and input over a cap a 413, each with a detail that names the field; neither reaches SQL.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::worker_sys::web_sys::Blob;

// The largest integer magnitude accepted anywhere (JSON, forms, query strings, path ids): a
// larger one could be stored on the R2 path but not in the object.
use crate::error::ApiError;
use user_data_core::db::MAX_SAFE_INTEGER;

// The input limits, the same on both storage paths (docs/api.md §2.3). They are chosen
// well inside what a user's Durable Object holds (no single value or row over 2 MB, integers
// only as exact JavaScript numbers) and what a Worker can buffer (128 MB): whatever the R2 path
// accepts, the object accepts too, and no single request keeps a user's object busy for seconds.

/// A JSON body. A row collects at most four large text fields, each from a separate request:
/// 4 × 384 KiB stays below the object's 2 MB per row.
pub const MAX_JSON_BODY_BYTES: usize = 384 * 1024;
/// A text field of a form, for the same reason as a JSON body.
pub const MAX_FORM_TEXT_BYTES: usize = 384 * 1024;
/// An uploaded file: the Worker buffers it whole within its 128 MB, in JS memory, never in wasm
/// memory (docs/api.md §2.3).
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Items of any JSON array (tags, ids to reorder, annotations, keyframes): an item can cost a
/// statement, and a request must stay short.
pub const MAX_JSON_ARRAY_ITEMS: usize = 10_000;
/// A whole request body: one upload and the form's other fields. A larger one is refused before
/// it is read into memory.
pub const MAX_REQUEST_BODY_BYTES: usize = MAX_UPLOAD_BYTES + 1024 * 1024;

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Other,
}

/// A request as the handlers see it.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// The URL path, e.g. `/api/games/3`.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub body: Body,
    /// Randomness for generated ids and file names, drawn by the edge: a handler is then a pure
    /// function of the database and the request, so running it again (after a conflict, or
    /// after storing its uploads) makes the same names.
    pub entropy: u64,
}

/// A request body.
#[derive(Debug, Clone, Default)]
pub enum Body {
    #[default]
    Empty,
    /// A body sent as JSON (`application/json` or `*/*+json`); JSON routes parse it.
    Json(Vec<u8>),
    /// A non-empty body of any other type (`text/plain`, none): no route reads it. Only its
    /// type is kept, for the 415 a JSON route answers.
    Other(String),
    /// A JSON body of this many bytes, more than any route reads
    /// ([`MAX_JSON_BODY_BYTES`]): only its length is kept, so that it never enters wasm memory
    /// (which never shrinks). A route that parses it answers 413; one that ignores it, as ever.
    Oversized(usize),
    /// `multipart/form-data` or `application/x-www-form-urlencoded`; made by [`Body::form`].
    Form(Vec<(String, FormValue)>),
}

impl Body {
    /// A parsed form, refused when a text field or a file is over its cap.
    pub fn form(fields: Vec<(String, FormValue)>) -> Result<Self, ApiError> {
        for (name, value) in &fields {
            let (size, cap, what) = match value {
                FormValue::Text(text) => (text.len(), MAX_FORM_TEXT_BYTES, "a form text field"),
                FormValue::File(file) => (file.bytes.len(), MAX_UPLOAD_BYTES, "an uploaded file"),
            };
            if size > cap {
                return Err(too_large(
                    &field("body", name),
                    format!(
                        "{size} bytes, more than the {} {what} may have",
                        amount(cap)
                    ),
                ));
            }
        }
        Ok(Body::Form(fields))
    }
}

/// Refuses a request body over [`MAX_REQUEST_BODY_BYTES`] (its declared or its read length).
pub fn check_request_body_size(bytes: u64) -> Result<(), ApiError> {
    if bytes > MAX_REQUEST_BODY_BYTES as u64 {
        return Err(too_large(
            "request body",
            format!(
                "{bytes} bytes, more than the {} a request may have",
                amount(MAX_REQUEST_BODY_BYTES)
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub enum FormValue {
    Text(String),
    File(UploadedFile),
}

/// A file part of a form.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub filename: String,
    pub content_type: String,
    /// Shared with the [`Upload`] that stores it: an upload of up to 32 MiB is not copied again.
    pub bytes: FileBytes,
}

/// An uploaded file's bytes. In the Worker they stay in the runtime's `Blob`, in JS memory,
/// and R2 stores that `Blob` itself: wasm memory never shrinks, so a copy there would raise the
/// isolate's memory for good. Handlers only need the length.
#[derive(Debug, Clone, PartialEq)]
pub struct FileBytes(Held);

#[derive(Debug, Clone, PartialEq)]
enum Held {
    Blob(Blob),
    /// Native tests have no runtime to make a `Blob`; the wasm build cannot hold bytes.
    #[cfg(not(target_arch = "wasm32"))]
    Bytes(std::rc::Rc<[u8]>),
}

impl FileBytes {
    pub fn from_blob(blob: Blob) -> Self {
        Self(Held::Blob(blob))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Held::Blob(blob) => blob.size() as usize,
            #[cfg(not(target_arch = "wasm32"))]
            Held::Bytes(bytes) => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value to hand R2: the `Blob` itself, not a copy.
    pub fn to_js(&self) -> JsValue {
        match &self.0 {
            Held::Blob(blob) => blob.into(),
            // Natively never called: no test stores files.
            #[cfg(not(target_arch = "wasm32"))]
            Held::Bytes(bytes) => worker::js_sys::Uint8Array::from(&bytes[..]).into(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl From<Vec<u8>> for FileBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(Held::Bytes(bytes.into()))
    }
}

/// A successful answer; the status is always 200 (the contract never uses 201).
#[derive(Debug, Clone, PartialEq)]
pub enum ApiResponse {
    Json(Value),
    /// The bytes of the R2 object `{user_id}/{key}`, streamed by the edge (honouring `Range`).
    File(FileResponse),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileResponse {
    /// The key below the user's folder, e.g. `games/0123456789ab.mp4`.
    pub key: String,
    /// The 404 detail when the object is missing.
    pub missing_detail: String,
    /// `Content-Disposition: attachment; filename="..."` when set.
    pub attachment_name: Option<String>,
    /// `Cache-Control: no-cache` (the project-clip route's `stream=true`).
    pub no_cache: bool,
}

/// A file to store under the user's folder in R2 *before* the request's database changes commit,
/// so that no committed row ever names a file that was not stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub key: String,
    pub content_type: String,
    pub bytes: FileBytes,
}

impl Upload {
    /// The file's name in its folder: `0123456789ab.mp4` for `games/0123456789ab.mp4`.
    pub fn filename(&self) -> &str {
        self.key.split_once('/').map_or(&self.key, |(_, name)| name)
    }
}

/// Objects to delete from the user's folder *after* the commit: a failure leaves an orphan file,
/// never a row that names a missing one.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    Object(String),
    /// Every media file of the user (not the database, not its backups).
    AllMedia,
}

/// Work for the video-processing service that a request asks for (docs/processing.md §1): sent
/// after the commit, so a job never names a row that was rolled back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Job {
    /// `cut_clip`, `framing` or `overlay`.
    pub kind: &'static str,
    pub ids: Value,
    /// Keys below the user's folder that the service reads.
    pub source: Value,
    pub params: Value,
}

/// A handler's whole answer: the response and the storage effects around the commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub response: ApiResponse,
    pub uploads: Vec<Upload>,
    pub deletions: Vec<Deletion>,
    pub jobs: Vec<Job>,
}

impl Reply {
    pub fn json(body: Value) -> Self {
        Self::from(ApiResponse::Json(body))
    }

    pub fn with_upload(mut self, upload: Upload) -> Self {
        self.uploads.push(upload);
        self
    }

    pub fn with_deletion(mut self, deletion: Deletion) -> Self {
        self.deletions.push(deletion);
        self
    }

    /// Adds the storage effects of a change a handler made on the way (a re-timed clip's cut).
    pub fn with_effects(mut self, effects: Effects) -> Self {
        self.deletions.extend(effects.deletions);
        self.jobs.extend(effects.jobs);
        self
    }
}

/// Deletions and jobs gathered while a handler works, before its [`Reply`] exists.
#[derive(Debug, Default)]
pub struct Effects {
    pub deletions: Vec<Deletion>,
    pub jobs: Vec<Job>,
}

impl Effects {
    pub fn add(&mut self, other: Effects) {
        self.deletions.extend(other.deletions);
        self.jobs.extend(other.jobs);
    }
}

impl From<ApiResponse> for Reply {
    fn from(response: ApiResponse) -> Self {
        Self {
            response,
            uploads: Vec::new(),
            deletions: Vec::new(),
            jobs: Vec::new(),
        }
    }
}

/// How a detail names where the input was: `body`, or `body field 'clips[3].x'`.
fn field(location: &str, name: &str) -> String {
    if name.is_empty() {
        location.to_owned()
    } else {
        format!("{location} field '{name}'")
    }
}

fn unprocessable(location: &str, name: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("{}: {problem}", field(location, name)))
}

fn too_large(what: &str, problem: String) -> ApiError {
    ApiError::ContentTooLarge(format!("{what}: {problem}"))
}

/// A cap in the unit it was chosen in: `384 KiB`, `32 MiB`.
fn amount(bytes: usize) -> String {
    match bytes {
        b if b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

fn out_of_range(number: impl std::fmt::Display) -> String {
    format!("{number} is outside the integers the API accepts (±{MAX_SAFE_INTEGER})")
}

/// How text reads as a number: as an integer when it is written as one that fits 64 bits (as a
/// JSON parser reads it), else as a float.
enum TextNumber {
    Integer(i64),
    BeyondI64,
    Float(f64),
    NonFinite,
    NotANumber,
}

impl TextNumber {
    fn read(text: &str) -> Self {
        if let Ok(integer) = text.parse() {
            return TextNumber::Integer(integer);
        }
        if text.parse::<u64>().is_ok() {
            return TextNumber::BeyondI64;
        }
        // Rust reads `nan`, `inf`, `infinity` and `1e309` (as infinity): none can be stored.
        match text.parse::<f64>() {
            Ok(float) if float.is_finite() => TextNumber::Float(float),
            Ok(_) => TextNumber::NonFinite,
            Err(_) => TextNumber::NotANumber,
        }
    }
}

/// A number type read from text (a path id, a query parameter, a form field) by the rules JSON
/// bodies follow: an integer within ±[`MAX_SAFE_INTEGER`], a float finite.
pub trait Number: Sized {
    /// The value, or why `text` is refused.
    fn from_text(text: &str) -> Result<Self, String>;
}

fn safe_integer(integer: i64) -> Result<i64, String> {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&integer) {
        Ok(integer)
    } else {
        Err(out_of_range(integer))
    }
}

impl Number for i64 {
    fn from_text(text: &str) -> Result<Self, String> {
        match TextNumber::read(text) {
            TextNumber::Integer(integer) => safe_integer(integer),
            TextNumber::BeyondI64 => Err(out_of_range(text)),
            // `-9223372036854775809`, `1e20`: whole, only too large for 64 bits.
            TextNumber::Float(float)
                if float.fract() == 0.0 && float.abs() > MAX_SAFE_INTEGER as f64 =>
            {
                Err(out_of_range(text))
            }
            _ => Err(format!("'{text}' is not an integer")),
        }
    }
}

impl Number for f64 {
    fn from_text(text: &str) -> Result<Self, String> {
        match TextNumber::read(text) {
            // Written as an integer, the integer rule holds: as in a JSON body.
            TextNumber::Integer(integer) => safe_integer(integer).map(|integer| integer as f64),
            TextNumber::BeyondI64 => Err(out_of_range(text)),
            TextNumber::Float(float) => Ok(float),
            TextNumber::NonFinite => Err(format!("'{text}' is not a finite number")),
            TextNumber::NotANumber => Err(format!("'{text}' is not a number")),
        }
    }
}

/// A path segment that must be an integer id.
pub fn path_id(segment: &str, name: &str) -> Result<i64, ApiError> {
    i64::from_text(segment).map_err(|problem| unprocessable("path", name, problem))
}

/// Checks parsed JSON against the limits: every integer within ±[`MAX_SAFE_INTEGER`] (422), every
/// array at most [`MAX_JSON_ARRAY_ITEMS`] items (413). `name` is where `value` sits in the body
/// (`""` for the body itself, or a form field's name); details name the offending item's path.
/// A number written as an integer too large for 64 bits is a float to JSON parsers (and to
/// JavaScript), and is checked as one.
pub fn check_json(value: &Value, name: &str) -> Result<(), ApiError> {
    check_json_at(value, &mut name.to_owned())
}

fn check_json_at(value: &Value, path: &mut String) -> Result<(), ApiError> {
    let depth = path.len();
    match value {
        Value::Number(number) => {
            let allowed = match number.as_i64() {
                Some(integer) => safe_integer(integer).is_ok(),
                // A float (always finite in serde_json), or an integer beyond i64.
                None => number.is_f64(),
            };
            if !allowed {
                return Err(unprocessable("body", path, out_of_range(number)));
            }
        }
        Value::Array(items) => {
            if items.len() > MAX_JSON_ARRAY_ITEMS {
                return Err(too_large(
                    &field("body", path),
                    format!(
                        "{} items, more than the {MAX_JSON_ARRAY_ITEMS} a JSON array may have",
                        items.len()
                    ),
                ));
            }
            for (index, item) in items.iter().enumerate() {
                let _ = write!(path, "[{index}]");
                check_json_at(item, path)?;
                path.truncate(depth);
            }
        }
        Value::Object(members) => {
            for (key, member) in members {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                check_json_at(member, path)?;
                path.truncate(depth);
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
    Ok(())
}

/// Query booleans as the existing app accepts them.
fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn json_too_large(length: usize) -> ApiError {
    too_large(
        "body",
        format!(
            "{length} bytes of JSON, more than the {} a JSON body may have",
            amount(MAX_JSON_BODY_BYTES)
        ),
    )
}

impl ApiRequest {
    /// The JSON body as `T`, within the limits: parsed exactly (every number to the nearest
    /// f64), checked once by [`check_json`], then read as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let bytes = match &self.body {
            Body::Json(bytes) => bytes.as_slice(),
            Body::Oversized(length) => return Err(json_too_large(*length)),
            Body::Empty => b"".as_slice(),
            Body::Other(content_type) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "body: expected Content-Type application/json, got {content_type:?}"
                )))
            }
            Body::Form(_) => {
                return Err(ApiError::Unprocessable(
                    "body: expected JSON, got a form".into(),
                ))
            }
        };
        if bytes.len() > MAX_JSON_BODY_BYTES {
            return Err(json_too_large(bytes.len()));
        }
        // Numbers beyond f64 (`1e400`) are a parse error here, never infinity.
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|err| ApiError::Unprocessable(format!("body: invalid JSON: {err}")))?;
        check_json(&value, "")?;
        T::deserialize(value).map_err(|err| ApiError::Unprocessable(format!("body: {err}")))
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn query_bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.query_param(name) {
            None => Ok(default),
            Some(text) => parse_bool(text)
                .ok_or_else(|| unprocessable("query", name, format!("'{text}' is not a boolean"))),
        }
    }

    pub fn query_int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.query_param(name)
            .map(|text| {
                i64::from_text(text).map_err(|problem| unprocessable("query", name, problem))
            })
            .transpose()
    }

    fn form_fields(&self) -> &[(String, FormValue)] {
        match &self.body {
            Body::Form(fields) => fields,
            _ => &[],
        }
    }

    /// A text field of the form; an empty value counts as absent, as in the existing app.
    pub fn form_text(&self, name: &str) -> Option<&str> {
        self.form_fields()
            .iter()
            .find_map(|(key, value)| match value {
                FormValue::Text(text) if key == name && !text.is_empty() => Some(text.as_str()),
                _ => None,
            })
    }

    pub fn form_file(&self, name: &str) -> Option<&UploadedFile> {
        self.form_fields()
            .iter()
            .find_map(|(key, value)| match value {
                FormValue::File(file) if key == name => Some(file),
                _ => None,
            })
    }

    pub fn form_required_text(&self, name: &str) -> Result<&str, ApiError> {
        self.form_text(name)
            .ok_or_else(|| unprocessable("body", name, "field required"))
    }

    pub fn form_required_file(&self, name: &str) -> Result<&UploadedFile, ApiError> {
        self.form_file(name)
            .ok_or_else(|| unprocessable("body", name, "file required"))
    }

    /// A numeric form field (forms carry numbers as text).
    pub fn form_number<T: Number>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.form_text(name)
            .map(|text| {
                T::from_text(text.trim()).map_err(|problem| unprocessable("body", name, problem))
            })
            .transpose()
    }
}

/// Successive random hex names from a request's entropy (splitmix64: small, and good enough
/// for names that only need to be unique within one user's folder).
pub struct Names {
    state: u64,
}

impl Names {
    pub fn new(entropy: u64) -> Self {
        Self { state: entropy }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` lowercase hex characters.
    pub fn hex(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len + 16);
        while out.len() < len {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::tests::request;
    use proptest::prelude::*;
    use serde_json::json;

    const TWO_POW_53: i64 = 1 << 53;

    fn with_body(body: Body) -> ApiRequest {
        request(Method::Post, "/", body)
    }

    fn json_text(text: &str) -> ApiRequest {
        with_body(Body::Json(text.as_bytes().to_vec()))
    }

    fn form_text(name: &str, value: &str) -> ApiRequest {
        with_body(Body::form(vec![(name.into(), FormValue::Text(value.into()))]).unwrap())
    }

    /// What every entrance does with the integer written as `text`: a path id, a query
    /// parameter, an integer and a float form field, a JSON field: `Ok` with the value, or the
    /// status and detail.
    fn through_every_entrance(text: &str) -> Vec<Result<f64, (u16, String)>> {
        let refused = |err: ApiError| (err.status(), err.detail().to_owned());
        let query = request(Method::Get, &format!("/?n={text}"), Body::Empty);
        let form = form_text("n", text);
        vec![
            path_id(text, "n").map(|i| i as f64).map_err(refused),
            query
                .query_int("n")
                .map(|i| i.unwrap() as f64)
                .map_err(refused),
            form.form_number::<i64>("n")
                .map(|i| i.unwrap() as f64)
                .map_err(refused),
            form.form_number::<f64>("n")
                .map(Option::unwrap)
                .map_err(refused),
            json_text(&format!(r#"{{"n": {text}}}"#))
                .json::<Value>()
                .map(|value| value["n"].as_f64().unwrap())
                .map_err(refused),
        ]
    }

    fn accepted_everywhere(integer: i64) {
        for outcome in through_every_entrance(&integer.to_string()) {
            assert_eq!(outcome, Ok(integer as f64), "{integer}");
        }
    }

    fn refused_everywhere(text: &str) {
        for outcome in through_every_entrance(text) {
            let (status, detail) = outcome.expect_err(text);
            assert_eq!(status, 422, "{text}: {detail}");
            assert!(detail.contains("field 'n'"), "names the field: {detail}");
        }
    }

    #[test]
    fn integers_up_to_2_pow_53_minus_1_are_accepted_on_every_entrance() {
        for integer in [TWO_POW_53 - 1, -(TWO_POW_53 - 1), 0, -1, 42] {
            accepted_everywhere(integer);
        }
    }

    #[test]
    fn an_integer_beyond_2_pow_53_is_refused_on_every_entrance() {
        for text in [
            TWO_POW_53.to_string(),
            (-TWO_POW_53).to_string(),
            i64::MAX.to_string(),
            i64::MIN.to_string(),
            // beyond i64, as an unsigned 64-bit integer
            (i64::MAX as u64 + 1).to_string(),
            u64::MAX.to_string(),
        ] {
            refused_everywhere(&text);
        }
        let detail = path_id(&i64::MAX.to_string(), "project_id").unwrap_err();
        assert_eq!(
            detail.detail(),
            "path field 'project_id': 9223372036854775807 is outside the integers the API \
             accepts (±9007199254740991)"
        );
    }

    #[test]
    fn an_integer_field_given_a_whole_float_too_large_says_so() {
        let refused = path_id("-9223372036854775809", "id").unwrap_err();
        assert!(
            refused.detail().contains("outside the integers"),
            "{refused}"
        );
        assert!(path_id("5.0", "id")
            .unwrap_err()
            .detail()
            .contains("not an integer"));
    }

    #[test]
    fn a_nested_json_integer_is_refused_with_its_path() {
        let body = json!({"name": "x", "clips": [{}, {}, {}, {"x": TWO_POW_53}]});
        let err = json_text(&body.to_string()).json::<Value>().unwrap_err();
        assert_eq!(err.status(), 422);
        assert!(
            err.detail().starts_with("body field 'clips[3].x': "),
            "{err}"
        );

        let err = json_text(&format!("[1, 2, {}]", i64::MAX))
            .json::<Vec<i64>>()
            .unwrap_err();
        assert!(err.detail().starts_with("body field '[2]': "), "{err}");
    }

    #[test]
    fn non_finite_form_numbers_are_refused() {
        for text in [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "infinity",
            "-Infinity",
            "1e309",
            "-1e309",
        ] {
            let err = form_text("video_duration", text)
                .form_number::<f64>("video_duration")
                .unwrap_err();
            assert_eq!(err.status(), 422, "{text}");
            assert!(err.detail().contains("field 'video_duration'"), "{err}");
        }
        let largest = form_text("d", "1.7976931348623157e308").form_number::<f64>("d");
        assert_eq!(largest.unwrap(), Some(f64::MAX));
    }

    #[test]
    fn a_json_number_beyond_f64_is_refused_not_infinity() {
        for text in [r#"{"x": 1e400}"#, r#"{"x": -1e400}"#] {
            #[derive(Debug, serde::Deserialize)]
            struct Probe {
                #[allow(dead_code)]
                x: f64,
            }
            let err = json_text(text).json::<Probe>().unwrap_err();
            assert_eq!(err.status(), 422, "{text}");
        }
    }

    /// The float a JSON body `{"x": <text>}` hands a handler.
    fn parsed_float(text: &str) -> f64 {
        #[derive(serde::Deserialize)]
        struct Probe {
            x: f64,
        }
        json_text(&format!(r#"{{"x": {text}}}"#))
            .json::<Probe>()
            .unwrap()
            .x
    }

    #[test]
    fn json_numbers_are_parsed_exactly_and_printed_back_the_same() {
        for text in [
            "10718476.925999999",
            "0.30000000000000004",
            "83.41666666666667",
            "0.3333333333333333",
            "5e-324",
            "1.7976931348623157e308",
        ] {
            let parsed = parsed_float(text);
            // Rust's own parser rounds correctly: the nearest f64 to the text.
            assert_eq!(
                parsed.to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "{text}"
            );
            // Responses print the shortest text that reads back as the same f64.
            let printed = json!(parsed).to_string();
            assert_eq!(printed.parse::<f64>().unwrap().to_bits(), parsed.to_bits());
        }
        assert_eq!(
            parsed_float("10718476.925999999").to_string(),
            "10718476.925999999"
        );
        assert_ne!(parsed_float("10718476.925999999"), 10718476.926);
        assert_eq!(parsed_float("0.30000000000000004"), 0.1 + 0.2);
        assert_eq!(parsed_float("0.3333333333333333"), 1.0 / 3.0);
    }

    /// A JSON body of exactly `bytes` bytes.
    fn json_body_of(bytes: usize) -> ApiRequest {
        let frame = r#"{"name": ""}"#.len();
        json_text(&format!(r#"{{"name": "{}"}}"#, "a".repeat(bytes - frame)))
    }

    #[test]
    fn a_json_body_may_have_384_kib_and_no_more() {
        assert!(json_body_of(MAX_JSON_BODY_BYTES).json::<Value>().is_ok());
        let err = json_body_of(MAX_JSON_BODY_BYTES + 1)
            .json::<Value>()
            .unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(err.detail().contains("384 KiB"), "{err}");
        // The edge keeps only the length of a body that large: the same answer.
        let oversized = with_body(Body::Oversized(MAX_JSON_BODY_BYTES + 1));
        assert_eq!(oversized.json::<Value>().unwrap_err(), err);
    }

    #[test]
    fn a_json_array_may_have_10000_items_and_no_more_at_any_depth() {
        let items = |n: usize| vec![1; n];
        assert!(json_text(&json!(items(MAX_JSON_ARRAY_ITEMS)).to_string())
            .json::<Vec<i64>>()
            .is_ok());
        let err = json_text(&json!(items(MAX_JSON_ARRAY_ITEMS + 1)).to_string())
            .json::<Vec<i64>>()
            .unwrap_err();
        assert_eq!(
            (err.status(), err.detail()),
            (
                413,
                "body: 10001 items, more than the 10000 a JSON array may have"
            )
        );
        let nested = json!({"annotations": [{"tags": items(MAX_JSON_ARRAY_ITEMS + 1)}]});
        let err = json_text(&nested.to_string()).json::<Value>().unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(
            err.detail()
                .starts_with("body field 'annotations[0].tags': "),
            "{err}"
        );
    }

    #[test]
    fn a_form_text_may_have_384_kib_and_a_file_32_mib() {
        let text = |n: usize| vec![("notes".into(), FormValue::Text("a".repeat(n)))];
        let file = |n: usize| {
            let bytes = vec![0; n];
            vec![(
                "video".into(),
                FormValue::File(UploadedFile {
                    filename: "v.mp4".into(),
                    content_type: "video/mp4".into(),
                    bytes: bytes.into(),
                }),
            )]
        };
        assert!(Body::form(text(MAX_FORM_TEXT_BYTES)).is_ok());
        let err = Body::form(text(MAX_FORM_TEXT_BYTES + 1)).unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(
            err.detail().starts_with("body field 'notes': ") && err.detail().contains("384 KiB"),
            "{err}"
        );
        assert!(Body::form(file(MAX_UPLOAD_BYTES)).is_ok());
        let err = Body::form(file(MAX_UPLOAD_BYTES + 1)).unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(
            err.detail().starts_with("body field 'video': ") && err.detail().contains("32 MiB"),
            "{err}"
        );
        assert!(check_request_body_size(MAX_REQUEST_BODY_BYTES as u64).is_ok());
        assert_eq!(
            check_request_body_size(MAX_REQUEST_BODY_BYTES as u64 + 1)
                .unwrap_err()
                .status(),
            413
        );
    }

    proptest! {
        #[test]
        fn any_integer_outside_the_safe_range_is_refused(
            integer in prop_oneof![i64::MIN..-MAX_SAFE_INTEGER, (MAX_SAFE_INTEGER + 1)..=i64::MAX]
        ) {
            refused_everywhere(&integer.to_string());
        }

        #[test]
        fn any_integer_inside_the_safe_range_is_accepted(
            integer in -MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER
        ) {
            accepted_everywhere(integer);
        }

        #[test]
        fn any_unsigned_integer_beyond_i64_is_refused(integer in (i64::MAX as u64 + 1)..=u64::MAX) {
            refused_everywhere(&integer.to_string());
        }

        #[test]
        fn any_finite_float_reaches_the_handler_bit_exact(
            float in any::<f64>().prop_filter("finite", |f| f.is_finite())
        ) {
            // As serde_json and JavaScript print it (shortest), and in full exponent form.
            for text in [json!(float).to_string(), format!("{float:e}")] {
                prop_assert_eq!(parsed_float(&text).to_bits(), float.to_bits(), "{}", text);
            }
            let form = form_text("x", &format!("{float:?}")).form_number::<f64>("x");
            prop_assert_eq!(form.unwrap().map(f64::to_bits), Some(float.to_bits()));
        }
    }

    #[test]
    fn names_are_deterministic_per_entropy_and_distinct_in_sequence() {
        let (mut a, mut b) = (Names::new(7), Names::new(7));
        let first = a.hex(32);
        assert_eq!(first, b.hex(32));
        assert_eq!(first.len(), 32);
        assert_ne!(a.hex(12), first[..12]);
    }

    #[test]
    fn query_booleans_accept_the_contract_spellings() {
        for (text, value) in [("true", true), ("On", true), ("1", true), ("no", false)] {
            assert_eq!(parse_bool(text), Some(value));
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}
