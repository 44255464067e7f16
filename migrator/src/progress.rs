//! What the operator sees: a progress bar on a terminal, one line per user, a summary; or JSON
//! lines for scripts. The only module that writes to stdout.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use crate::size::format_size;

pub struct Reporter {
    json: bool,
    bar: Option<ProgressBar>,
    /// The batch under way: when it started, how many users it has, how far it is.
    batch: Option<Batch>,
}

struct Batch {
    started: Instant,
    total: u64,
    done: u64,
    bytes: u64,
}

impl Batch {
    /// Users and megabytes per second so far, and the seconds the rest should take at that pace.
    fn rates(&self) -> (f64, f64, Option<f64>) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let users_per_second = self.done as f64 / seconds;
        let mb_per_second = self.bytes as f64 / 1_048_576.0 / seconds;
        let eta = (self.done > 0).then(|| (self.total - self.done) as f64 / users_per_second);
        (users_per_second, mb_per_second, eta)
    }
}

/// What a failed user's line says for its outcome.
pub const FAILED: &str = "failed";

/// The outcome of one user's step, as its line shows it.
pub struct UserResult {
    pub user: String,
    /// What happened, by its wire name (`migrated`, `upgraded`, ...), or [`FAILED`].
    pub outcome: &'static str,
    /// Why it failed, or what the outcome means for the user.
    pub detail: Option<String>,
    pub bytes: u64,
    pub milliseconds: u64,
}

impl Reporter {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            bar: None,
            batch: None,
        }
    }

    /// Starts a progress bar over `total` users (on a terminal, and not in JSON mode).
    pub fn start(&mut self, total: u64, action: &str) {
        self.batch = Some(Batch {
            started: Instant::now(),
            total,
            done: 0,
            bytes: 0,
        });
        if !self.json && std::io::stdout().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {elapsed} eta {eta} {per_sec} {msg}",
                )
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

    pub fn user(&mut self, result: &UserResult) {
        let (done, total, (users_per_second, mb_per_second, eta)) = match &mut self.batch {
            Some(batch) => {
                batch.done += 1;
                batch.bytes += result.bytes;
                (batch.done, batch.total, batch.rates())
            }
            None => (1, 1, (0.0, 0.0, None)),
        };
        if self.json {
            self.line(
                &json!({
                    "user": result.user, "outcome": result.outcome, "bytes": result.bytes,
                    "milliseconds": result.milliseconds, "detail": result.detail,
                    "progress": {"done": done, "total": total, "users_per_second": users_per_second,
                                 "mb_per_second": mb_per_second, "eta_seconds": eta},
                })
                .to_string(),
            );
        } else {
            let detail = result
                .detail
                .as_ref()
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
            bar.set_message(format!("{mb_per_second:.2} MB/s"));
            bar.inc(1);
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// A value as one line of JSON (JSON mode) or through `human` (tables).
    pub fn value<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            self.line(&serde_json::to_string(value).expect("string keys serialize"));
        } else {
            self.line(&human(value));
        }
    }
}
