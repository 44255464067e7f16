//! The journal: an append-only JSON-lines file of what was done to whom, where and when,
//! written before and after each user's step, so that a run that was interrupted (Ctrl-C, a
//! crash, a lost connection) can be run again and skips the users it already finished.
//!
//! A user counts as done for an action only while that action is the last thing that
//! happened to them at that endpoint: after migrate, rollback, migrate, the second migrate
//! is not skipped. The default journal is one file per endpoint in the operator's state
//! directory ([`default_path`]), never the current directory.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// When it was written, in seconds since the Unix epoch.
    pub at: u64,
    /// The Worker the step was asked of.
    pub endpoint: String,
    /// `migrate` or `rollback`.
    pub action: String,
    pub user: String,
    /// `started`, `done` or `failed`.
    pub status: String,
    /// What the move did (`migrated`, `already_migrated`, ...) when it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a step of a user's move ended as, for [`Journal::record`].
pub enum Status<'a> {
    Started,
    Done { outcome: &'a str },
    Failed { detail: String },
}

pub struct Journal {
    path: PathBuf,
    endpoint: String,
    file: File,
    /// Per user at this endpoint, the action and status of their last entry.
    last: HashMap<String, (String, String)>,
}

/// `$XDG_STATE_HOME/reel-ballers-migrator/<endpoint>.jsonl` (else `~/.local/state/...`): one
/// journal per endpoint, kept out of the current directory.
pub fn default_path(endpoint: &str) -> Result<PathBuf, String> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/state")))
        .ok_or("no state directory: set XDG_STATE_HOME or HOME, or pass --journal FILE")?;
    let name: String = endpoint
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(state
        .join("reel-ballers-migrator")
        .join(format!("{name}.jsonl")))
}

impl Journal {
    /// Opens (or creates, with its folder) the journal at `path` for `endpoint`, and reads
    /// what it already holds of that endpoint.
    pub fn open(path: &Path, endpoint: &str) -> Result<Self, String> {
        let failed = |e: std::io::Error| format!("cannot use journal {}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut last = HashMap::new();
        if path.exists() {
            for line in BufReader::new(File::open(path).map_err(failed)?).lines() {
                // A line cut short by a crash is skipped: its user is simply not done.
                let Ok(entry) = serde_json::from_str::<Entry>(&line.map_err(failed)?) else {
                    continue;
                };
                if entry.endpoint == endpoint {
                    last.insert(entry.user, (entry.action, entry.status));
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(failed)?;
        // End a line that a crash cut short, so the next entry starts on its own line.
        let ends_cleanly = std::fs::read(path)
            .map(|bytes| bytes.last().is_none_or(|last| *last == b'\n'))
            .unwrap_or(true);
        if !ends_cleanly {
            writeln!(file).map_err(failed)?;
        }
        Ok(Self {
            path: path.to_owned(),
            endpoint: endpoint.to_owned(),
            file,
            last,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `action` is the last thing done to `user`, and it finished.
    pub fn is_done(&self, action: &str, user: &str) -> bool {
        self.last
            .get(user)
            .is_some_and(|(last, status)| last == action && status == "done")
    }

    /// Appends an entry and flushes it to disk before returning.
    pub fn record(&mut self, action: &str, user: &str, status: Status<'_>) -> Result<(), String> {
        let (status, outcome, detail) = match status {
            Status::Started => ("started", None, None),
            Status::Done { outcome } => ("done", Some(outcome.to_owned()), None),
            Status::Failed { detail } => ("failed", None, Some(detail)),
        };
        let entry = Entry {
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
            endpoint: self.endpoint.clone(),
            action: action.to_owned(),
            user: user.to_owned(),
            status: status.to_owned(),
            outcome,
            detail,
        };
        self.last.insert(
            entry.user.clone(),
            (entry.action.clone(), entry.status.clone()),
        );
        let line = serde_json::to_string(&entry).expect("an entry serialises");
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write journal {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: &str = "https://users.example.workers.dev";

    fn done(journal: &mut Journal, action: &str, user: &str) {
        journal.record(action, user, Status::Started).unwrap();
        let outcome = if action == "migrate" {
            "migrated"
        } else {
            "rolled_back"
        };
        journal
            .record(action, user, Status::Done { outcome })
            .unwrap();
    }

    #[test]
    fn a_reopened_journal_knows_who_is_done_per_action() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let mut journal = Journal::open(&path, HERE).unwrap();
            done(&mut journal, "migrate", "a");
            journal.record("migrate", "b", Status::Started).unwrap();
            let detail = "boom".to_owned();
            journal
                .record("migrate", "c", Status::Failed { detail })
                .unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"action\": \"migr")
            .unwrap();
        let mut journal = Journal::open(&path, HERE).unwrap();
        assert!(journal.is_done("migrate", "a"));
        assert!(!journal.is_done("migrate", "b"), "started but not finished");
        assert!(!journal.is_done("migrate", "c"));
        assert!(!journal.is_done("rollback", "a"), "done is per action");
        done(&mut journal, "migrate", "d");
        assert!(
            Journal::open(&path, HERE).unwrap().is_done("migrate", "d"),
            "written after a cut line"
        );
    }

    #[test]
    fn a_later_opposite_action_is_never_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut journal = Journal::open(&path, HERE).unwrap();
        done(&mut journal, "migrate", "a");
        done(&mut journal, "rollback", "a");
        let journal = Journal::open(&path, HERE).unwrap();
        assert!(journal.is_done("rollback", "a"));
        assert!(
            !journal.is_done("migrate", "a"),
            "migrate again after a rollback"
        );
    }

    #[test]
    fn entries_carry_time_endpoint_and_outcome_and_other_endpoints_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/journal.jsonl");
        let mut journal = Journal::open(&path, HERE).unwrap();
        done(&mut journal, "migrate", "a");
        let text = std::fs::read_to_string(&path).unwrap();
        let last: Entry = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last.endpoint, HERE);
        assert_eq!(last.outcome.as_deref(), Some("migrated"));
        assert!(last.at > 1_700_000_000);
        let elsewhere = Journal::open(&path, "http://127.0.0.1:8787").unwrap();
        assert!(!elsewhere.is_done("migrate", "a"));
    }

    #[test]
    fn the_default_journal_is_per_endpoint_in_the_state_directory() {
        let path = default_path("https://a.example.workers.dev/").unwrap();
        let other = default_path("http://127.0.0.1:8787").unwrap();
        assert_ne!(path, other);
        assert!(path.to_string_lossy().contains("reel-ballers-migrator"));
        assert_eq!(
            path.file_name().unwrap(),
            "https___a.example.workers.dev.jsonl"
        );
    }
}
