//! How each admin route is called: its method, its path and query, and the JSON it answers.
//!
//! A client builds a request value and sends `METHOD` to `path()` (ids and query values
//! percent-encoded); the Worker reads the query fields of [`ListUsers`] and [`Prune`] with their
//! `from_query`, so both sides agree on names, defaults and limits.

use serde::de::DeserializeOwned;

use crate::in_chunks::{Aborted, Applied, Begun, Finished, Part, UploadStarted, UploadTarget};
use crate::object_call::{Fault, MoveStep};
use crate::{
    Action, FaultArmed, ImportResult, MoveReport, PreflightReport, PruneResult, ScanReport, Step,
    UserPage, UserStatus, VerifyResult,
};

/// An admin route: the method and the path (with its query) to call it by.
pub trait Route {
    /// `GET`, `POST` or `PUT`.
    const METHOD: &'static str;
    /// The path from the Worker's root, with the query: `/admin/users/ann/migrate`.
    fn path(&self) -> String;
}

/// A route that answers JSON: what a 2xx response holds. An error response holds an
/// [`ErrorBody`](crate::ErrorBody).
pub trait Call: Route {
    type Response: DeserializeOwned;
}

/// Percent-encodes all but the unreserved characters (RFC 3986), for a path segment or a query
/// value: R2 cursors are base64, whose `+` would otherwise arrive as a space.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn user_path(user_id: &str, tail: &str) -> String {
    format!("/admin/users/{}{tail}", encode(user_id))
}

macro_rules! user_routes {
    ($($(#[$doc:meta])* $name:ident: $method:literal $tail:literal $(=> $response:ty)?;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub struct $name {
                pub user_id: String,
            }

            impl $name {
                pub fn new(user_id: impl Into<String>) -> Self {
                    $name {
                        user_id: user_id.into(),
                    }
                }
            }

            impl Route for $name {
                const METHOD: &'static str = $method;
                fn path(&self) -> String {
                    user_path(&self.user_id, $tail)
                }
            }

            $(impl Call for $name {
                type Response = $response;
            })?
        )*
    };
}

user_routes! {
    /// `GET /admin/users/{id}`: R2, the KV flag, and the object.
    GetUser: "GET" "" => UserStatus;
    /// `PUT /admin/users/{id}/database`, with a SQLite file as the body: stored in R2 as the next
    /// version (refused while the user is migrated).
    ImportDatabase: "PUT" "/database" => ImportResult;
    /// `GET /admin/users/{id}/database`: the authoritative database as a file
    /// (`application/vnd.sqlite3`, its version in `X-DB-Version`), not JSON.
    ExportDatabase: "GET" "/database";
    /// `POST /admin/users/{id}/migrate`: moves the user into their Durable Object (idempotent).
    Migrate: "POST" "/migrate" => MoveReport;
    /// `POST /admin/users/{id}/rollback`: moves the user back to R2 (idempotent).
    Rollback: "POST" "/rollback" => MoveReport;
    /// `GET /admin/users/{id}/preflight`: what stands in the way of the next move, without moving.
    Preflight: "GET" "/preflight" => PreflightReport;
    /// `GET /admin/users/{id}/verify`: the object's integrity, and whether it agrees with R2.
    Verify: "GET" "/verify" => VerifyResult;
    /// `GET /admin/users/{id}/scan`: what the user's R2 database meets on the R2 path, and what
    /// would stop its move, from one R2 read and without waking the user's object.
    Scan: "GET" "/scan" => ScanReport;
    /// `POST /admin/users/{id}/move/begin`, with a [`crate::in_chunks::Begin`]: starts (or
    /// resumes) a chunked move.
    MoveBegin: "POST" "/move/begin" => Begun;
    /// `POST /admin/users/{id}/move/rows`, with a binary row batch: the object applies it in one
    /// transaction if it follows the table's cursor (else 409).
    MoveRows: "POST" "/move/rows" => Applied;
    /// `POST /admin/users/{id}/move/finish`, with a [`crate::in_chunks::Finish`]: the object
    /// compares its digests with the migrator's.
    MoveFinish: "POST" "/move/finish" => Finished;
    /// `POST /admin/users/{id}/move/cut-over`, with a [`crate::in_chunks::CutOver`].
    MoveCutOver: "POST" "/move/cut-over" => MoveReport;
    /// `POST /admin/users/{id}/move/abort`: ends a chunked move that will not finish; the
    /// side that was authoritative stays so.
    MoveAbort: "POST" "/move/abort" => Aborted;
}

/// `GET /admin/users/{id}/move/file?offset=&length=&etag=`: a range of the user's R2 database
/// (at most [`crate::in_chunks::PART_BYTES`]), only while R2 holds the object `etag` (else 412).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveFile {
    pub user_id: String,
    pub offset: u64,
    pub length: u64,
    pub etag: String,
}

impl Route for MoveFile {
    const METHOD: &'static str = "GET";
    fn path(&self) -> String {
        user_path(
            &self.user_id,
            &format!(
                "/move/file?offset={}&length={}&etag={}",
                self.offset,
                self.length,
                encode(&self.etag)
            ),
        )
    }
}

/// `POST /admin/users/{id}/move/read?limit=`, with a batch naming a table and the key to read
/// after (no rows): up to `limit` rows of an exporting object, as a binary batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRead {
    pub user_id: String,
    pub limit: usize,
}

impl Route for MoveRead {
    const METHOD: &'static str = "POST";
    fn path(&self) -> String {
        let step = MoveStep::Read { limit: self.limit };
        user_path(&self.user_id, &format!("/move/{}", step.path()))
    }
}

/// `POST /admin/users/{id}/move/upload?target=&version=`: starts an R2 multipart upload of a
/// file at `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveUpload {
    pub user_id: String,
    pub target: UploadTarget,
    pub version: u64,
}

impl Route for MoveUpload {
    const METHOD: &'static str = "POST";
    fn path(&self) -> String {
        user_path(
            &self.user_id,
            &format!(
                "/move/upload?target={}&version={}",
                self.target.as_str(),
                self.version
            ),
        )
    }
}

impl Call for MoveUpload {
    type Response = UploadStarted;
}

/// `POST /admin/users/{id}/move/upload/part?target=&version=&upload_id=&part=`, with the part's
/// bytes (POST, and retried: uploading a part again replaces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveUploadPart {
    pub user_id: String,
    pub target: UploadTarget,
    pub version: u64,
    pub upload_id: String,
    pub part: u16,
}

impl Route for MoveUploadPart {
    const METHOD: &'static str = "POST";
    fn path(&self) -> String {
        user_path(
            &self.user_id,
            &format!(
                "/move/upload/part?target={}&version={}&upload_id={}&part={}",
                self.target.as_str(),
                self.version,
                encode(&self.upload_id),
                self.part
            ),
        )
    }
}

impl Call for MoveUploadPart {
    type Response = Part;
}

/// `GET /admin/users?cursor=&limit=`: a page of the users with a folder in R2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUsers {
    /// Where the page starts: the previous page's `cursor`; `None` for the first.
    pub cursor: Option<String>,
    /// Users per page, 1 to [`ListUsers::MAX_LIMIT`].
    pub limit: u32,
}

impl ListUsers {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    /// The request of a query whose fields `get` returns; `Err` says which field is wrong.
    /// A missing `limit` is the default; an empty `cursor` is the first page.
    pub fn from_query<'q>(get: impl Fn(&str) -> Option<&'q str>) -> Result<Self, String> {
        let limit = match get("limit") {
            Some(text) => text
                .parse()
                .ok()
                .filter(|n| (1..=Self::MAX_LIMIT).contains(n))
                .ok_or_else(|| format!("query field 'limit': 1 to {}", Self::MAX_LIMIT))?,
            None => Self::DEFAULT_LIMIT,
        };
        let cursor = get("cursor").filter(|c| !c.is_empty()).map(str::to_owned);
        Ok(ListUsers { cursor, limit })
    }
}

impl Route for ListUsers {
    const METHOD: &'static str = "GET";
    fn path(&self) -> String {
        let mut path = format!("/admin/users?limit={}", self.limit);
        if let Some(cursor) = &self.cursor {
            path.push_str("&cursor=");
            path.push_str(&encode(cursor));
        }
        path
    }
}

impl Call for ListUsers {
    type Response = UserPage;
}

/// `POST /admin/prune?older_than_days=&dry_run=`: deletes backups older than that, and turns
/// the R2 copies of users migrated longer ago into tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prune {
    pub older_than_days: u64,
    /// Only list what would be deleted and tombstoned.
    pub dry_run: bool,
}

impl Prune {
    pub const DEFAULT_DAYS: u64 = 30;

    /// The request of a query whose fields `get` returns; `Err` says which field is wrong.
    /// `dry_run` is on for `true`, `1` or `yes`.
    pub fn from_query<'q>(get: impl Fn(&str) -> Option<&'q str>) -> Result<Self, String> {
        let older_than_days = get("older_than_days")
            .map(str::parse)
            .transpose()
            .map_err(|_| "query field 'older_than_days': a whole number".to_owned())?
            .unwrap_or(Self::DEFAULT_DAYS);
        let dry_run = matches!(get("dry_run"), Some("true" | "1" | "yes"));
        Ok(Prune {
            older_than_days,
            dry_run,
        })
    }
}

impl Route for Prune {
    const METHOD: &'static str = "POST";
    fn path(&self) -> String {
        format!(
            "/admin/prune?older_than_days={}&dry_run={}",
            self.older_than_days, self.dry_run
        )
    }
}

impl Call for Prune {
    type Response = PruneResult;
}

/// `POST /admin/users/{id}/fault?action=&step=&crash=`, only when the Worker runs with
/// `FAULT_INJECTION` (tests): the next `action` of the user that enters `step` fails there, or
/// with `crash`, resets the object as a crash would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmFault {
    pub user_id: String,
    pub action: Action,
    pub step: Step,
    pub crash: bool,
}

impl Route for ArmFault {
    const METHOD: &'static str = "POST";
    fn path(&self) -> String {
        let fault = Fault {
            action: self.action,
            step: self.step,
            crash: self.crash,
        };
        user_path(&self.user_id, &format!("/fault?{}", fault.query()))
    }
}

impl Call for ArmFault {
    type Response = FaultArmed;
}
