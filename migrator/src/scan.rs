//! `migrator scan`: the fleet check before a rollout. Each chosen user's R2 database is judged
//! by the Worker's scan route (`GET /admin/users/{id}/scan`: one R2 read, never the user's
//! object), a few users at a time; a user the listing already shows moved or above the R2
//! path's ceiling is judged from the listing by the Worker's own rule, without a call. The
//! summary counts users by outcome and names each refused user's reason.

use std::time::Instant;

use admin_api::{R2State, ScanOutcome, ScanReport, UserSummary};
use serde_json::json;
use user_data_core::file_check::without_reading;
use user_data_core::preflight;

use crate::client::AdminClient;
use crate::cohort::Chosen;
use crate::pool;
use crate::progress::{Reporter, UserResult, FAILED};

/// What a scan of the chosen users found.
#[derive(Debug)]
pub struct Summary {
    /// Users per outcome, in [`ScanOutcome::ALL`]'s order.
    pub counts: Vec<(ScanOutcome, u64)>,
    /// Each refused user and why.
    pub refused: Vec<(String, String)>,
    /// Each user the R2 path serves whose move into the object would be refused, and why.
    pub cannot_move: Vec<(String, String)>,
    /// Each user that could not be scanned, and why.
    pub failed: Vec<(String, String)>,
    /// Calls to the listing (one per page) and to the scan route.
    pub list_calls: usize,
    pub scan_calls: usize,
    pub seconds: f64,
}

impl Summary {
    /// Users scanned, or judged from the listing, or failed.
    pub fn users(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum::<u64>() + self.failed.len() as u64
    }

    /// Whether every user is served or moved: none refused, none unscanned.
    pub fn clean(&self) -> bool {
        self.refused.is_empty() && self.failed.is_empty()
    }

    /// Counts one user; their line.
    fn add(&mut self, scanned: Scanned) -> UserResult {
        let Scanned {
            user,
            report,
            milliseconds,
            ..
        } = scanned;
        let report = match report {
            Ok(report) => report,
            Err(err) => {
                self.failed.push((user.clone(), err.clone()));
                return UserResult {
                    user,
                    outcome: FAILED,
                    detail: Some(err),
                    bytes: 0,
                    milliseconds,
                };
            }
        };
        if let Some((_, count)) = self.counts.iter_mut().find(|(o, _)| *o == report.outcome) {
            *count += 1;
        }
        let mut detail = report.detail.clone();
        if report.outcome == ScanOutcome::Refused {
            let reason = detail.clone().unwrap_or_default();
            self.refused.push((user.clone(), reason));
        }
        if !report.problems.is_empty() {
            let why = preflight::summary(&report.problems);
            self.cannot_move.push((user.clone(), why.clone()));
            let words = format!("would not move into its object: {why}");
            detail = Some(match detail {
                Some(detail) => format!("{detail}; {words}"),
                None => words,
            });
        }
        UserResult {
            user,
            outcome: report.outcome.as_str(),
            detail,
            bytes: report.size,
            milliseconds,
        }
    }
}

/// One user's verdict, and whether it took a call.
struct Scanned {
    user: String,
    report: Result<ScanReport, String>,
    called: bool,
    milliseconds: u64,
}

/// Scans the `chosen` users, `concurrency` at a time, one line each and a progress bar.
pub fn run(
    client: &AdminClient,
    chosen: Chosen,
    concurrency: usize,
    reporter: &mut Reporter,
) -> Summary {
    let started = Instant::now();
    let mut summary = Summary {
        counts: ScanOutcome::ALL.iter().map(|o| (*o, 0)).collect(),
        refused: Vec::new(),
        cannot_move: Vec::new(),
        failed: Vec::new(),
        list_calls: chosen.list_calls,
        scan_calls: 0,
        seconds: 0.0,
    };
    let r2_max_bytes = chosen.r2_max_bytes;
    reporter.start(chosen.users.len() as u64, "scan");
    pool::each(
        &chosen.users,
        concurrency,
        |(user, listed)| scan_user(client, r2_max_bytes, user, listed.as_ref()),
        |scanned| {
            summary.scan_calls += usize::from(scanned.called);
            reporter.user(&summary.add(scanned));
        },
    );
    reporter.finish();
    for list in [
        &mut summary.refused,
        &mut summary.cannot_move,
        &mut summary.failed,
    ] {
        list.sort();
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary
}

/// The verdict on `user`: from the listing when it decides it, else from the Worker.
fn scan_user(
    client: &AdminClient,
    r2_max_bytes: Option<u64>,
    user: &str,
    listed: Option<&UserSummary>,
) -> Scanned {
    let begun = Instant::now();
    let decided = listed.and_then(|listed| {
        let migrated = listed.r2.state == R2State::Migrated;
        let size = listed.r2.size.unwrap_or(0);
        // A Worker that does not name its ceiling: only the moved users are known.
        let verdict = without_reading(migrated, size, r2_max_bytes.unwrap_or(u64::MAX))?;
        Some(ScanReport {
            user_id: user.to_owned(),
            outcome: verdict.outcome,
            version: listed.r2.version,
            size,
            detail: verdict.detail,
            problems: verdict.problems,
        })
    });
    let called = decided.is_none();
    let report = match decided {
        Some(report) => Ok(report),
        None => client.scan(user).map_err(|err| err.to_string()),
    };
    Scanned {
        user: user.to_owned(),
        report,
        called,
        milliseconds: begun.elapsed().as_millis() as u64,
    }
}

/// Prints the summary: counts by outcome, the calls it took, each refused user's reason.
pub fn report(summary: &Summary, reporter: &Reporter) {
    let users = summary.users();
    let calls = summary.list_calls + summary.scan_calls;
    let per_minute = users as f64 / summary.seconds.max(1e-3) * 60.0;
    let people = |list: &[(String, String)]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|(user, reason)| json!({"user": user, "reason": reason}))
            .collect()
    };
    let mut counts = serde_json::Map::new();
    for (outcome, count) in &summary.counts {
        counts.insert(outcome.as_str().to_owned(), json!(count));
    }
    counts.insert(FAILED.to_owned(), json!(summary.failed.len()));
    let value = json!({"summary": {
        "users": users,
        "outcomes": counts,
        "refused": people(&summary.refused),
        "cannot_move": people(&summary.cannot_move),
        "failed": people(&summary.failed),
        "calls": {"list": summary.list_calls, "scan": summary.scan_calls,
                  "per_user": calls as f64 / users.max(1) as f64},
        "seconds": summary.seconds,
        "users_per_minute": per_minute,
    }});
    reporter.value(&value, |_| {
        let mut out = format!(
            "scan: {users} users in {:.1} s ({per_minute:.0} users/min); {} listing calls + {} \
             scans = {:.2} calls per user; no Durable Object woken\n",
            summary.seconds,
            summary.list_calls,
            summary.scan_calls,
            calls as f64 / users.max(1) as f64
        );
        for (outcome, count) in &summary.counts {
            out += &format!(
                "  {:<12} {count:>7}  {}\n",
                outcome.as_str(),
                outcome.meaning()
            );
        }
        out += &format!(
            "  {FAILED:<12} {:>7}  could not be scanned\n",
            summary.failed.len()
        );
        for (title, list) in [
            (
                "refused (the R2 path answers 503 until the file is repaired)",
                &summary.refused,
            ),
            (
                "served, but a move into the object would be refused",
                &summary.cannot_move,
            ),
            ("could not be scanned", &summary.failed),
        ] {
            if !list.is_empty() {
                out += &format!("{title}:\n");
                for (user, reason) in list {
                    out += &format!("  {user:<24} {reason}\n");
                }
            }
        }
        out.trim_end().to_owned()
    });
}
