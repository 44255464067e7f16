//! What a handler gets and gives: [`ApiRequest`] in, [`Reply`] out, plus the parsing of path,
//! query, JSON and form input into typed values. Malformed input is a 422 with a detail that
//! names the field; it never reaches SQL.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

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
    /// Any non-form body; JSON routes parse it.
    Bytes(Vec<u8>),
    /// `multipart/form-data` or `application/x-www-form-urlencoded`.
    Form(Vec<(String, FormValue)>),
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
    pub bytes: Vec<u8>,
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
    pub bytes: Vec<u8>,
}

/// Objects to delete from the user's folder *after* the commit: a failure leaves an orphan file,
/// never a row that names a missing one.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    Object(String),
    /// Every media file of the user (not the database, not its backups).
    AllMedia,
}

/// A handler's whole answer: the response and the storage effects around the commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub response: ApiResponse,
    pub uploads: Vec<Upload>,
    pub deletions: Vec<Deletion>,
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
}

impl From<ApiResponse> for Reply {
    fn from(response: ApiResponse) -> Self {
        Self {
            response,
            uploads: Vec::new(),
            deletions: Vec::new(),
        }
    }
}

fn unprocessable(location: &str, name: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("{location} field '{name}': {problem}"))
}

/// A path segment that must be an integer id.
pub fn path_id(segment: &str, name: &str) -> Result<i64, ApiError> {
    segment
        .parse()
        .map_err(|_| unprocessable("path", name, format!("'{segment}' is not an integer")))
}

/// Query booleans as the existing app accepts them.
fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl ApiRequest {
    /// The JSON body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let bytes = match &self.body {
            Body::Bytes(bytes) => bytes.as_slice(),
            Body::Empty => b"".as_slice(),
            Body::Form(_) => {
                return Err(ApiError::Unprocessable(
                    "body: expected JSON, got a form".into(),
                ))
            }
        };
        serde_json::from_slice(bytes)
            .map_err(|err| ApiError::Unprocessable(format!("body: invalid JSON: {err}")))
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
                text.parse().map_err(|_| {
                    unprocessable("query", name, format!("'{text}' is not an integer"))
                })
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
    pub fn form_number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.form_text(name)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| unprocessable("body", name, format!("'{text}' is not a number")))
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

/// The extension of an uploaded file's name, with its dot (`.mov`), else `default`.
pub fn extension_of(filename: &str, default: &str) -> String {
    match filename.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() && ext.len() <= 10 => {
            format!(".{}", ext.to_ascii_lowercase())
        }
        _ => default.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_per_entropy_and_distinct_in_sequence() {
        let (mut a, mut b) = (Names::new(7), Names::new(7));
        let first = a.hex(32);
        assert_eq!(first, b.hex(32));
        assert_eq!(first.len(), 32);
        assert_ne!(a.hex(12), first[..12]);
    }

    #[test]
    fn extension_keeps_the_uploads_and_defaults_otherwise() {
        assert_eq!(extension_of("match.MOV", ".mp4"), ".mov");
        assert_eq!(extension_of("noext", ".mp4"), ".mp4");
        assert_eq!(extension_of(".hidden", ".mp4"), ".mp4");
    }

    #[test]
    fn query_booleans_accept_the_contract_spellings() {
        for (text, value) in [("true", true), ("On", true), ("1", true), ("no", false)] {
            assert_eq!(parse_bool(text), Some(value));
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}
