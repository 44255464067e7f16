//! Runs migrate or rollback over many users: a few at a time, each step journaled before and
//! after, stopping after the users in flight when asked to (Ctrl-C).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use admin_api::{Action, Outcome};

use crate::chunked_move;
use crate::client::AdminClient;
use crate::journal::{Journal, Status};
use crate::progress::{Reporter, UserResult, FAILED};

#[derive(Debug, Default)]
pub struct Summary {
    pub moved: u64,
    pub already: u64,
    pub failed: u64,
    pub skipped_from_journal: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub interrupted: bool,
}

/// What a batch run does.
pub struct Plan {
    pub action: Action,
    pub users: Vec<String>,
    /// Users moved at the same time.
    pub concurrency: usize,
    /// How a user too large to move in one step moves in chunks.
    pub chunks: chunked_move::Options,
}

/// Moves the plan's users (those the journal does not already list as done), `concurrency` at
/// a time.
pub fn run(
    client: &AdminClient,
    plan: Plan,
    journal: &mut Journal,
    reporter: &mut Reporter,
    stop: &AtomicBool,
) -> Summary {
    let Plan {
        action,
        users,
        concurrency,
        chunks,
    } = plan;
    let options = &chunks;
    let started = Instant::now();
    let mut summary = Summary::default();
    let pending: VecDeque<String> = users
        .into_iter()
        .filter(|user| {
            let done = journal.is_done(action.as_str(), user);
            summary.skipped_from_journal += u64::from(done);
            !done
        })
        .collect();
    reporter.start(pending.len() as u64, action.as_str());
    let queue = Mutex::new(pending);
    let journal = Mutex::new(journal);
    // Each user's line, with what the move did (`None`: it failed).
    let (results, received) = mpsc::channel::<(Option<Outcome>, UserResult)>();

    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            let (queue, journal, results) = (&queue, &journal, results.clone());
            scope.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(user) = queue.lock().expect("the queue").pop_front() else {
                    return;
                };
                let record = |status: Status<'_>| {
                    let mut journal = journal.lock().expect("the journal");
                    if let Err(err) = journal.record(action.as_str(), &user, status) {
                        eprintln!("migrator: {err}");
                    }
                };
                record(Status::Started);
                let begun = Instant::now();
                let outcome = match action {
                    Action::Migrate => chunked_move::migrate_user(client, &user, options),
                    Action::Rollback => chunked_move::rollback_user(client, &user, options),
                };
                let result = match outcome {
                    Ok(report) => {
                        record(Status::Done {
                            outcome: report.outcome.as_str(),
                        });
                        let line = UserResult {
                            user: user.clone(),
                            outcome: report.outcome.as_str(),
                            detail: None,
                            bytes: report.bytes,
                            milliseconds: report.milliseconds,
                        };
                        (Some(report.outcome), line)
                    }
                    Err(err) => {
                        record(Status::Failed {
                            detail: err.to_string(),
                        });
                        let line = UserResult {
                            user: user.clone(),
                            outcome: FAILED,
                            detail: Some(err.to_string()),
                            bytes: 0,
                            milliseconds: begun.elapsed().as_millis() as u64,
                        };
                        (None, line)
                    }
                };
                if results.send(result).is_err() {
                    return;
                }
            });
        }
        drop(results);
        for (outcome, result) in received {
            match outcome {
                None => summary.failed += 1,
                Some(Outcome::AlreadyMigrated | Outcome::AlreadyOnR2) => summary.already += 1,
                Some(Outcome::Migrated | Outcome::RolledBack) => summary.moved += 1,
            }
            summary.bytes += result.bytes;
            reporter.user(&result);
        }
    });
    reporter.finish();
    summary.interrupted =
        stop.load(Ordering::SeqCst) && !queue.lock().expect("the queue").is_empty();
    summary.seconds = started.elapsed().as_secs_f64();
    summary
}
