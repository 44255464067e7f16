//! The Worker's calls to a user's Durable Object: `/internal/*` on the object, made by the admin
//! API (and never reachable from outside: the router forwards only `/api/*` there).
//!
//! One type, [`ObjectCall`], formats each call ([`ObjectCall::path`]) and parses it again
//! ([`ObjectCall::parse`]), so the admin API that sends it and the object that answers it
//! cannot disagree on a path, a query field or a default. The answers are this crate's types
//! ([`crate::MoveReport`], [`crate::ObjectStatus`], ...), as the admin API passes them on.

use crate::{Action, Step};

/// The origin of every call: a stub's `fetch` needs an absolute URL, and no host is looked up.
pub const ORIGIN: &str = "https://user-data-store";

/// One call to a user's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectCall {
    /// `POST /internal/migrate`: a move in one step into the object ([`crate::MoveReport`]).
    Migrate,
    /// `POST /internal/rollback`: a move in one step back to R2 ([`crate::MoveReport`]).
    Rollback,
    /// `GET /internal/status`: state, version, size, rows per table ([`crate::ObjectStatus`]).
    Status,
    /// `GET /internal/verify`: integrity, and agreement with R2 ([`crate::VerifyResult`]).
    Verify,
    /// `GET /internal/preflight`: what stands in the way of the next move
    /// ([`crate::PreflightReport`]).
    Preflight,
    /// `GET /internal/export`: the object's data as a SQLite file.
    Export,
    /// `POST /internal/fault?action=&step=&crash=`: arms a fault (tests only, with
    /// `FAULT_INJECTION`).
    ArmFault(Fault),
    /// `POST /internal/move/{step}`: one step of a chunked move.
    Move(MoveStep),
}

/// Why a request is not a call the object knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No call has this method and path (404).
    NotFound,
    /// The call exists but a query field is wrong (422): which field, and why.
    Invalid(String),
}

/// A fault a test arms: the next `action` of the user that enters `step` fails there, or with
/// `crash`, resets the object as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub action: Action,
    pub step: Step,
    pub crash: bool,
}

impl Fault {
    /// The fault of a query whose fields `get` returns; `Err` says which field is wrong.
    pub fn from_query<'q>(get: impl Fn(&str) -> Option<&'q str>) -> Result<Self, String> {
        let action = match get("action") {
            Some("migrate") => Action::Migrate,
            Some("rollback") => Action::Rollback,
            _ => return Err("query field 'action': migrate or rollback".into()),
        };
        let step = get("step").unwrap_or_default();
        // `interrupted` is what a crash is recorded as, not a step a move enters.
        let step = Step::parse(step)
            .filter(|step| *step != Step::Interrupted)
            .ok_or_else(|| format!("query field 'step': unknown step '{step}'"))?;
        let crash = get("crash") == Some("true");
        Ok(Fault {
            action,
            step,
            crash,
        })
    }

    /// The query of this fault, without its `?`.
    pub fn query(&self) -> String {
        format!(
            "action={}&step={}&crash={}",
            self.action.as_str(),
            self.step.as_str(),
            self.crash
        )
    }
}

/// One step of a chunked move (docs/chunked-moves.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStep {
    /// Starts (or resumes) a move, with a [`crate::in_chunks::Begin`].
    Begin,
    /// Applies a binary row batch of a migrate.
    Rows,
    /// Reads up to `limit` rows of a rollback or export, after the key of the batch it is sent.
    Read { limit: usize },
    /// Compares the digests, with a [`crate::in_chunks::Finish`].
    Finish,
    /// Hands authority over, with a [`crate::in_chunks::CutOver`].
    CutOver,
    /// Ends a move that will not finish.
    Abort,
}

impl MoveStep {
    /// The rows a read answers when it names no `limit`.
    pub const DEFAULT_READ_LIMIT: usize = 256;

    /// The step of a path segment (`cut-over`) and its query; `None` for no step.
    pub fn parse<'q>(name: &str, get: impl Fn(&str) -> Option<&'q str>) -> Option<Self> {
        Some(match name {
            "begin" => MoveStep::Begin,
            "rows" => MoveStep::Rows,
            "read" => MoveStep::Read {
                limit: get("limit")
                    .and_then(|limit| limit.parse().ok())
                    .unwrap_or(Self::DEFAULT_READ_LIMIT),
            },
            "finish" => MoveStep::Finish,
            "cut-over" => MoveStep::CutOver,
            "abort" => MoveStep::Abort,
            _ => return None,
        })
    }

    /// The path segment: `begin`, `rows`, `read`, `finish`, `cut-over`, `abort`.
    pub fn name(self) -> &'static str {
        match self {
            MoveStep::Begin => "begin",
            MoveStep::Rows => "rows",
            MoveStep::Read { .. } => "read",
            MoveStep::Finish => "finish",
            MoveStep::CutOver => "cut-over",
            MoveStep::Abort => "abort",
        }
    }

    /// The path of the step under `/move/`, with its query.
    pub fn path(self) -> String {
        match self {
            MoveStep::Read { limit } => format!("read?limit={limit}"),
            step => step.name().to_owned(),
        }
    }
}

impl ObjectCall {
    /// `GET` or `POST`.
    pub fn method(&self) -> &'static str {
        match self {
            ObjectCall::Status
            | ObjectCall::Verify
            | ObjectCall::Preflight
            | ObjectCall::Export => "GET",
            ObjectCall::Migrate
            | ObjectCall::Rollback
            | ObjectCall::ArmFault(_)
            | ObjectCall::Move(_) => "POST",
        }
    }

    /// The path with its query: `/internal/move/read?limit=256`.
    pub fn path(&self) -> String {
        let tail = match self {
            ObjectCall::Migrate => "migrate".to_owned(),
            ObjectCall::Rollback => "rollback".to_owned(),
            ObjectCall::Status => "status".to_owned(),
            ObjectCall::Verify => "verify".to_owned(),
            ObjectCall::Preflight => "preflight".to_owned(),
            ObjectCall::Export => "export".to_owned(),
            ObjectCall::ArmFault(fault) => format!("fault?{}", fault.query()),
            ObjectCall::Move(step) => format!("move/{}", step.path()),
        };
        format!("/internal/{tail}")
    }

    /// The URL a stub is called with.
    pub fn url(&self) -> String {
        format!("{ORIGIN}{}", self.path())
    }

    /// The call of a request the object received, from its method, path and query fields;
    /// `Ok(None)` for a path outside `/internal/` (an API request).
    pub fn parse<'q>(
        method: &str,
        path: &str,
        get: impl Fn(&str) -> Option<&'q str>,
    ) -> Result<Option<Self>, CallError> {
        let Some(tail) = path.strip_prefix("/internal/") else {
            return Ok(None);
        };
        let call = match (method, tail) {
            ("POST", "migrate") => ObjectCall::Migrate,
            ("POST", "rollback") => ObjectCall::Rollback,
            ("GET", "status") => ObjectCall::Status,
            ("GET", "verify") => ObjectCall::Verify,
            ("GET", "preflight") => ObjectCall::Preflight,
            ("GET", "export") => ObjectCall::Export,
            ("POST", "fault") => {
                ObjectCall::ArmFault(Fault::from_query(get).map_err(CallError::Invalid)?)
            }
            ("POST", step) => match step.strip_prefix("move/") {
                Some(step) => {
                    ObjectCall::Move(MoveStep::parse(step, get).ok_or(CallError::NotFound)?)
                }
                None => return Err(CallError::NotFound),
            },
            _ => return Err(CallError::NotFound),
        };
        Ok(Some(call))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The query fields of a path.
    fn fields(path: &str) -> HashMap<String, String> {
        let query = path.split_once('?').map_or("", |(_, query)| query);
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(field, value)| (field.to_owned(), value.to_owned()))
            .collect()
    }

    fn parse(method: &str, path: &str) -> Result<Option<ObjectCall>, CallError> {
        let fields = fields(path);
        let bare = path.split('?').next().unwrap();
        ObjectCall::parse(method, bare, |name| fields.get(name).map(String::as_str))
    }

    fn round_trip(call: ObjectCall) -> Option<ObjectCall> {
        parse(call.method(), &call.path()).unwrap()
    }

    #[test]
    fn every_call_parses_back_from_its_own_path() {
        let mut calls = vec![
            ObjectCall::Migrate,
            ObjectCall::Rollback,
            ObjectCall::Status,
            ObjectCall::Verify,
            ObjectCall::Preflight,
            ObjectCall::Export,
            ObjectCall::Move(MoveStep::Begin),
            ObjectCall::Move(MoveStep::Rows),
            ObjectCall::Move(MoveStep::Read { limit: 7 }),
            ObjectCall::Move(MoveStep::Finish),
            ObjectCall::Move(MoveStep::CutOver),
            ObjectCall::Move(MoveStep::Abort),
        ];
        for action in [Action::Migrate, Action::Rollback] {
            for step in Step::ALL.into_iter().filter(|s| *s != Step::Interrupted) {
                for crash in [false, true] {
                    calls.push(ObjectCall::ArmFault(Fault {
                        action,
                        step,
                        crash,
                    }));
                }
            }
        }
        for call in calls {
            assert_eq!(round_trip(call), Some(call), "{}", call.path());
            assert!(call.url().starts_with("https://user-data-store/internal/"));
        }
    }

    #[test]
    fn the_paths_are_the_wire_format() {
        assert_eq!(ObjectCall::Migrate.path(), "/internal/migrate");
        assert_eq!(
            ObjectCall::Move(MoveStep::CutOver).path(),
            "/internal/move/cut-over"
        );
        assert_eq!(
            ObjectCall::Move(MoveStep::Read { limit: 64 }).path(),
            "/internal/move/read?limit=64"
        );
        let fault = Fault {
            action: Action::Rollback,
            step: Step::CutOver,
            crash: true,
        };
        assert_eq!(
            ObjectCall::ArmFault(fault).path(),
            "/internal/fault?action=rollback&step=cut_over&crash=true"
        );
    }

    #[test]
    fn a_read_without_a_limit_reads_the_default() {
        assert_eq!(
            ObjectCall::parse("POST", "/internal/move/read", |_| None),
            Ok(Some(ObjectCall::Move(MoveStep::Read {
                limit: MoveStep::DEFAULT_READ_LIMIT
            })))
        );
    }

    #[test]
    fn what_is_not_a_call_is_told_apart() {
        let none = |_: &str| None;
        assert_eq!(ObjectCall::parse("GET", "/api/games", none), Ok(None));
        for (method, path) in [
            ("GET", "/internal/migrate"),
            ("POST", "/internal/status"),
            ("POST", "/internal/move/jump"),
            ("POST", "/internal/nothing"),
            ("DELETE", "/internal/export"),
        ] {
            assert_eq!(
                ObjectCall::parse(method, path, none),
                Err(CallError::NotFound),
                "{method} {path}"
            );
        }
        let invalid = |query: &str| parse("POST", &format!("/internal/fault{query}")).unwrap_err();
        assert_eq!(
            invalid("?action=sideways&step=copy"),
            CallError::Invalid("query field 'action': migrate or rollback".into())
        );
        assert_eq!(
            invalid("?action=migrate&step=interrupted"),
            CallError::Invalid("query field 'step': unknown step 'interrupted'".into())
        );
    }
}
