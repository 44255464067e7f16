//! What the operator sees: a progress bar on a terminal, one line per user, a summary; or JSON
//! lines for scripts. The only module that writes to stdout.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::size::format_size;

pub struct Reporter {
    json: bool,
    bar: Option<ProgressBar>,
}

/// The outcome of one user's step.
pub struct UserResult {
    pub user: String,
    pub outcome: String,
    pub bytes: u64,
    pub milliseconds: u64,
    pub detail: Option<String>,
}

impl Reporter {
    pub fn new(json: bool) -> Self {
        Self { json, bar: None }
    }

    /// Starts a progress bar over `total` users (on a terminal, and not in JSON mode).
    pub fn start(&mut self, total: u64, action: &str) {
        if !self.json && std::io::stdout().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(action.to_owned());
            self.bar = Some(bar);
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    pub fn user(&self, result: &UserResult) {
        if self.json {
            self.line(
                &json!({
                    "user": result.user, "outcome": result.outcome, "bytes": result.bytes,
                    "milliseconds": result.milliseconds, "detail": result.detail,
                })
                .to_string(),
            );
        } else {
            let detail = result
                .detail
                .as_deref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default();
            self.line(&format!(
                "{:<24} {:<18} {:>10} {:>7} ms{detail}",
                result.user,
                result.outcome,
                format_size(result.bytes),
                result.milliseconds
            ));
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// A JSON value as is (JSON mode) or through `human` (tables).
    pub fn value(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            self.line(&value.to_string());
        } else {
            self.line(&human(value));
        }
    }
}
