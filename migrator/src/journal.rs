//! The journal: an append-only JSON-lines file of what was done to whom, written before and
//! after each user's step, so that a run that was interrupted (Ctrl-C, a crash, a lost
//! connection) can be run again and skips the users it already finished.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// `migrate` or `rollback`.
    pub action: String,
    pub user: String,
    /// `started`, `done` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    /// (action, user) pairs whose last entry is `done`.
    done: HashSet<(String, String)>,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads what it already holds.
    pub fn open(path: &Path) -> Result<Self, String> {
        let mut done = HashSet::new();
        if path.exists() {
            let reader = BufReader::new(
                File::open(path)
                    .map_err(|e| format!("cannot read journal {}: {e}", path.display()))?,
            );
            for line in reader.lines() {
                let line =
                    line.map_err(|e| format!("cannot read journal {}: {e}", path.display()))?;
                // A line cut short by a crash is skipped: its user is simply not done.
                let Ok(entry) = serde_json::from_str::<Entry>(&line) else {
                    continue;
                };
                let key = (entry.action.clone(), entry.user.clone());
                if entry.status == "done" {
                    done.insert(key);
                } else {
                    done.remove(&key);
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot write journal {}: {e}", path.display()))?;
        // End a line that a crash cut short, so the next entry starts on its own line.
        let ends_cleanly = std::fs::read(path)
            .map(|bytes| bytes.last().is_none_or(|last| *last == b'\n'))
            .unwrap_or(true);
        if !ends_cleanly {
            writeln!(file).map_err(|e| format!("cannot write journal {}: {e}", path.display()))?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            done,
        })
    }

    pub fn is_done(&self, action: &str, user: &str) -> bool {
        self.done.contains(&(action.to_owned(), user.to_owned()))
    }

    /// Appends an entry and flushes it to disk before returning.
    pub fn record(&mut self, entry: Entry) -> Result<(), String> {
        let key = (entry.action.clone(), entry.user.clone());
        if entry.status == "done" {
            self.done.insert(key);
        } else {
            self.done.remove(&key);
        }
        let line = serde_json::to_string(&entry).expect("an entry serialises");
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write journal {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, user: &str, status: &str) -> Entry {
        Entry {
            action: action.into(),
            user: user.into(),
            status: status.into(),
            detail: None,
        }
    }

    #[test]
    fn a_reopened_journal_knows_who_is_done_per_action() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let mut journal = Journal::open(&path).unwrap();
            journal.record(entry("migrate", "a", "started")).unwrap();
            journal.record(entry("migrate", "a", "done")).unwrap();
            journal.record(entry("migrate", "b", "started")).unwrap();
            journal.record(entry("migrate", "c", "failed")).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"action\": \"migr")
            .unwrap();
        let mut journal = Journal::open(&path).unwrap();
        assert!(journal.is_done("migrate", "a"));
        assert!(!journal.is_done("migrate", "b"), "started but not finished");
        assert!(!journal.is_done("migrate", "c"));
        assert!(!journal.is_done("rollback", "a"), "done is per action");
        journal.record(entry("migrate", "a", "failed")).unwrap();
        assert!(!journal.is_done("migrate", "a"), "the last entry counts");
        journal.record(entry("migrate", "d", "done")).unwrap();
        assert!(
            Journal::open(&path).unwrap().is_done("migrate", "d"),
            "written after a cut line"
        );
    }
}
