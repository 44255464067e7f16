//! What each command does: choose users ([`crate::cohort`]), ask the admin API
//! ([`crate::client`]), report ([`crate::progress`]), and the exit status.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use admin_api::{Action, ObjectState, PreflightReport, R2State};
use serde_json::{json, Value};

use crate::cli::{Batch, Cli, Command};
use crate::client::{AdminClient, ClientError};
use crate::progress::Reporter;
use crate::size::format_size;
use crate::{chunked_move, cohort, journal, moves, pool, scan};

/// The size above which a user should move (the Worker's own warning threshold).
const MIGRATION_THRESHOLD: u64 = 1024 * 1024;

/// Runs the command `cli` names; `Err` is a message for standard error.
pub fn run(cli: &Cli, client: &AdminClient, reporter: &mut Reporter) -> Result<ExitCode, String> {
    let error = |err: ClientError| err.to_string();
    match &cli.command {
        Command::Health => health(client, reporter),
        Command::Plan { min_size, limit } => plan(client, reporter, min_size, limit),
        Command::Scan {
            selection,
            concurrency,
        } => {
            let chosen = cohort::choose(client, selection, "scan", |u| u.r2.exists)?;
            let summary = scan::run(client, chosen, (*concurrency).into(), reporter);
            scan::report(&summary, reporter);
            Ok(if summary.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Migrate(batch) => run_batch(client, reporter, batch, Action::Migrate, cli.yes),
        Command::Rollback(batch) => run_batch(client, reporter, batch, Action::Rollback, cli.yes),
        Command::Status {
            failed: true,
            concurrency,
            ..
        } => failed_users(client, reporter, (*concurrency).into()),
        Command::Status {
            user: Some(user), ..
        } => {
            let status = client.user(user).map_err(error)?;
            reporter.value(&status, |s| {
                serde_json::to_string_pretty(s).unwrap_or_default()
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { user: None, .. } => fleet_status(client, reporter),
        Command::Verify { users } => verify(client, reporter, users),
        Command::Export { user, output } => export(client, reporter, user, output),
        Command::Import { user, file } => import(client, reporter, user, file),
        Command::Prune {
            older_than,
            dry_run,
        } => prune(cli, client, reporter, *older_than, *dry_run),
    }
}

/// `plan`: the users on the R2 path, largest first, and whether each can move.
fn plan(
    client: &AdminClient,
    reporter: &mut Reporter,
    min_size: &Option<u64>,
    limit: &Option<usize>,
) -> Result<ExitCode, String> {
    let error = |err: ClientError| err.to_string();
    let mut users: Vec<_> = client
        .users()
        .map_err(error)?
        .into_iter()
        .filter(|u| u.r2.exists && u.r2.state == R2State::Active)
        .filter(|u| u.r2.size.unwrap_or(0) >= min_size.unwrap_or(0))
        .collect();
    users.sort_by(|a, b| b.r2.size.cmp(&a.r2.size).then(a.user_id.cmp(&b.user_id)));
    users.truncate(limit.unwrap_or(usize::MAX));
    let total: u64 = users.iter().map(|u| u.r2.size.unwrap_or(0)).sum();
    let over = users
        .iter()
        .filter(|u| u.r2.size.unwrap_or(0) > MIGRATION_THRESHOLD)
        .count();
    // Each planned user's preflight: who cannot move, and why, before anyone tries.
    let checks: Vec<Result<PreflightReport, String>> = users
        .iter()
        .map(|u| client.preflight(&u.user_id).map_err(error))
        .collect();
    // Users above what the R2 path serves first: they get 507 until they move.
    let in_chunks =
        |check: &Result<PreflightReport, String>| check.as_ref().is_ok_and(|r| r.in_chunks);
    let mut planned: Vec<_> = users.into_iter().zip(checks).collect();
    planned.sort_by_key(|(_, check)| !in_chunks(check));
    let (users, checks): (Vec<_>, Vec<_>) = planned.into_iter().unzip();
    let blocked = |check: &Result<PreflightReport, String>| -> Option<String> {
        match check {
            Ok(report) if report.movable => None,
            Ok(report) => Some(
                report
                    .problems
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "cannot move".into()),
            ),
            Err(err) => Some(format!("preflight failed: {err}")),
        }
    };
    let cannot_move = checks.iter().filter(|c| blocked(c).is_some()).count();
    let rows: Vec<Value> = users
        .iter()
        .zip(&checks)
        .map(|(u, check)| {
            json!({"user_id": u.user_id, "size": u.r2.size, "version": u.r2.version,
                           "over_threshold": u.r2.size.unwrap_or(0) > MIGRATION_THRESHOLD,
                           "movable": blocked(check).is_none(),
                           "in_chunks": in_chunks(check),
                           "problems": check.as_ref().ok().map(|r| &r.problems),
                           "reason": blocked(check)})
        })
        .collect();
    reporter.value(
        &json!({"users": rows, "count": users.len(), "total_bytes": total,
                        "over_threshold": over, "cannot_move": cannot_move}),
        |_| {
            let mut out = format!("{:<24} {:>10} {:>8}\n", "USER", "SIZE", "VERSION");
            for (u, check) in users.iter().zip(&checks) {
                let mark = match blocked(check) {
                    Some(reason) => format!("  cannot move: {reason}"),
                    None if in_chunks(check) => {
                        "  above the R2 path's ceiling (507 there): migrate, in chunks".into()
                    }
                    None if u.r2.size.unwrap_or(0) > MIGRATION_THRESHOLD => {
                        "  > 1 MB: migrate".into()
                    }
                    None => String::new(),
                };
                out.push_str(&format!(
                    "{:<24} {:>10} {:>8}{mark}\n",
                    u.user_id,
                    format_size(u.r2.size.unwrap_or(0)),
                    u.r2.version
                ));
            }
            out + &format!(
                "{} users on the R2 path, {} in all, {over} over 1 MB, {cannot_move} cannot move",
                users.len(),
                format_size(total)
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `status` without a user: how many users are on each side, and where the flag disagrees.
fn fleet_status(client: &AdminClient, reporter: &mut Reporter) -> Result<ExitCode, String> {
    let error = |err: ClientError| err.to_string();
    let users = client.users().map_err(error)?;
    let count = |state: R2State| {
        users
            .iter()
            .filter(|u| u.r2.exists && u.r2.state == state)
            .count()
    };
    let mismatched = users
        .iter()
        .filter(|u| u.r2.exists && (u.r2.state == R2State::Migrated) != u.flag)
        .count();
    let counts = json!({"on_r2": count(R2State::Active), "migrated": count(R2State::Migrated),
                                "flag_disagrees_with_r2": mismatched, "users": users.len()});
    reporter.value(&counts, |c| {
                format!(
                    "on the R2 path: {}\nmigrated:       {}\nflag differs from R2 state (a move in progress or a hand edit): {}",
                    c["on_r2"], c["migrated"], c["flag_disagrees_with_r2"]
                )
            });
    Ok(ExitCode::SUCCESS)
}

/// `verify`: each named user's object against its R2 copy, and its integrity.
fn verify(
    client: &AdminClient,
    reporter: &mut Reporter,
    users: &[String],
) -> Result<ExitCode, String> {
    let mut failures = 0;
    for user in users {
        let verdict = match client.verify(user) {
            Ok(v) => v,
            Err(err) => {
                failures += 1;
                reporter.value(
                    &json!({"user": user, "ok": false, "detail": err.to_string()}),
                    |v| format!("{user:<24} FAILED  {}", v["detail"]),
                );
                continue;
            }
        };
        let written = verdict.written_since_migration;
        let ok = verdict.state == ObjectState::Active
            && verdict.passes_quick_check()
            && (written || verdict.agrees_with_r2 == Some(true));
        failures += u32::from(!ok);
        let how = if written {
            "integrity check (written since migration)"
        } else {
            "agrees with its R2 copy"
        };
        reporter.value(&json!({"user": user, "ok": ok, "verdict": verdict}), |_| {
            format!("{user:<24} {}  {how}", if ok { "ok    " } else { "FAILED" })
        });
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `export`: the authoritative database of a user into a file (in chunks when it must).
fn export(
    client: &AdminClient,
    reporter: &mut Reporter,
    user: &str,
    output: &std::path::Path,
) -> Result<ExitCode, String> {
    let error = |err: ClientError| err.to_string();
    let version = match client.export(user) {
        Ok((bytes, version)) => {
            std::fs::write(output, &bytes)
                .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            // A number, as every version the migrator prints.
            version.and_then(|v| v.parse().ok())
        }
        // Too large to export in one step: read out of the object in chunks.
        Err(err) if chunked_move::needs_chunks(&err) => {
            Some(chunked_move::export(client, user, output).map_err(error)?)
        }
        Err(err) => return Err(error(err)),
    };
    let bytes = std::fs::metadata(output)
        .map_err(|e| format!("cannot read {}: {e}", output.display()))?
        .len();
    reporter.value(
        &json!({"user": user, "file": output, "bytes": bytes, "version": version}),
        |v| {
            format!(
                "{user}: {} written to {} (version {})",
                format_size(bytes),
                output.display(),
                v["version"]
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `import`: a SQLite file as the user's R2 database.
fn import(
    client: &AdminClient,
    reporter: &mut Reporter,
    user: &str,
    file: &std::path::Path,
) -> Result<ExitCode, String> {
    let error = |err: ClientError| err.to_string();
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    check_sqlite_file(&bytes)
        .map_err(|e| format!("{} is not a usable SQLite database: {e}", file.display()))?;
    let stored = client.import(user, bytes).map_err(error)?;
    reporter.value(&stored, |v| {
        let backup = v.backup.as_deref().map_or_else(String::new, |key| {
            format!("; the file it replaced is kept as {key}")
        });
        format!(
            "{user}: stored as version {} ({}){backup}",
            v.version, v.upgrade
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// `prune`: old backups deleted and old R2 copies of migrated users turned into tombstones.
fn prune(
    cli: &Cli,
    client: &AdminClient,
    reporter: &mut Reporter,
    older_than: u64,
    dry_run: bool,
) -> Result<ExitCode, String> {
    let error = |err: ClientError| err.to_string();
    if !dry_run {
        confirm(
                    cli.yes,
                    &format!(
                        "Delete backups older than {older_than} days and prune the R2 copies of users migrated before then, at {}?",
                        cli.endpoint
                    ),
                )?;
    }
    let report = client.prune(older_than, dry_run).map_err(error)?;
    reporter.value(&report, |r| {
        format!(
            "{}{} backups deleted, {} R2 copies turned into tombstones",
            if dry_run { "dry run: " } else { "" },
            r.deleted_backups.len(),
            r.tombstoned.len()
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// `status --failed`: asks every user's status, `concurrency` at a time, and lists those whose
/// object recorded a failed last move. Exit status 1 when any did, so scripts can alert.
fn failed_users(
    client: &AdminClient,
    reporter: &Reporter,
    concurrency: usize,
) -> Result<ExitCode, String> {
    let users = client.users().map_err(|err| err.to_string())?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    pool::each(
        &users,
        concurrency,
        |user| (user.user_id.clone(), client.user(&user.user_id)),
        |(user, status)| match status {
            Ok(status) => found.extend(status.object.last_failure.map(|failure| (user, failure))),
            Err(err) => errors.push(format!("{user}: {err}")),
        },
    );
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (user, failure) in &found {
        reporter.value(
            &json!({"user": user, "action": failure.action, "step": failure.step,
                    "reason": failure.reason, "at_ms": failure.at_ms}),
            |_| {
                format!(
                    "{user:<24} {:<9} at {:<10} {}",
                    failure.action.as_str(),
                    failure.step.as_str(),
                    failure.reason
                )
            },
        );
    }
    for error in &errors {
        eprintln!("migrator: could not ask {error}");
    }
    reporter.value(
        &json!({"summary": {"users": users.len(), "failed": found.len(), "unreachable": errors.len()}}),
        |_| format!("{} of {} users' last move failed", found.len(), users.len()),
    );
    Ok(if found.is_empty() && errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn health(client: &AdminClient, reporter: &Reporter) -> Result<ExitCode, String> {
    let endpoint = client.endpoint();
    let body = client.health().map_err(|err| err.to_string())?;
    if body["status"] != "ok" {
        return Err(format!("{endpoint}/api/health answered {body}"));
    }
    reporter.value(&json!({"endpoint": endpoint, "status": "ok"}), |_| {
        format!("{endpoint}: ok")
    });
    Ok(ExitCode::SUCCESS)
}

/// A file fit to import: the SQLite header, it opens, and `quick_check` says ok.
fn check_sqlite_file(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(b"SQLite format 3\0") {
        return Err("no SQLite header".into());
    }
    let mut conn = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
    conn.deserialize_read_exact(rusqlite::MAIN_DB, bytes, bytes.len(), true)
        .map_err(|e| e.to_string())?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(format!("quick_check: {verdict}"))
    }
}

/// Asks the operator before a bulk remote change, unless `--yes`; without a terminal to ask
/// on, refuses.
fn confirm(yes: bool, question: &str) -> Result<(), String> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "{question} Refused: no terminal to confirm on; pass --yes to go ahead"
        ));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|err| format!("cannot read the answer: {err}"))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err("nothing done".into())
    }
}

/// The exit status of a run that Ctrl-C stopped after its users in flight (128 + SIGINT).
const INTERRUPTED: u8 = 130;

/// Chooses the users of a batch command and runs it.
fn run_batch(
    client: &AdminClient,
    reporter: &mut Reporter,
    batch: &Batch,
    action: Action,
    yes: bool,
) -> Result<ExitCode, String> {
    let wanted = match action {
        Action::Migrate => R2State::Active,
        Action::Rollback => R2State::Migrated,
    };
    let selection = &batch.selection;
    let users = cohort::choose(client, selection, action.as_str(), |u| {
        u.r2.exists && u.r2.state == wanted
    })?
    .ids();
    if selection.all && !batch.dry_run && !users.is_empty() {
        confirm(
            yes,
            &format!(
                "{} {} users at {}?",
                match action {
                    Action::Migrate => "Migrate",
                    Action::Rollback => "Roll back",
                },
                users.len(),
                client.endpoint()
            ),
        )?;
    }
    if batch.dry_run {
        for user in &users {
            reporter.value(&json!({"user": user, "would": action.as_str()}), |_| {
                format!("would {} {user}", action.as_str())
            });
        }
        return Ok(ExitCode::SUCCESS);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // A second Ctrl-C is not caught: it ends the process at once (the journal is flushed per entry).
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(INTERRUPTED.into());
        }
        eprintln!("migrator: stopping after the users in flight (Ctrl-C again to quit now)");
    });
    let journal_path = match &batch.journal {
        Some(path) => path.clone(),
        None => journal::default_path(client.endpoint())?,
    };
    let mut journal = journal::Journal::open(&journal_path, client.endpoint())?;
    let plan = moves::Plan {
        action,
        users,
        concurrency: batch.concurrency.into(),
        chunks: chunked_move::Options {
            force: batch.force,
            batch_bytes: batch.batch_size as usize,
        },
    };
    let summary = moves::run(client, plan, &mut journal, reporter, &stop);
    let totals = json!({
        "summary": {
            "moved": summary.moved, "already": summary.already, "failed": summary.failed,
            "skipped_from_journal": summary.skipped_from_journal, "bytes": summary.bytes,
            "seconds": summary.seconds, "interrupted": summary.interrupted,
            "users_per_second": (summary.moved + summary.already + summary.failed) as f64 / summary.seconds.max(1e-3),
            "mb_per_second": summary.bytes as f64 / 1_048_576.0 / summary.seconds.max(1e-3),
            "journal": journal.path(),
        }
    });
    reporter.value(&totals, |_| {
        format!(
            "{}: {} moved, {} already there, {} failed, {} skipped (journal), {} in {:.1} s ({:.1} users/s, {:.2} MB/s){}",
            action.as_str(),
            summary.moved,
            summary.already,
            summary.failed,
            summary.skipped_from_journal,
            format_size(summary.bytes),
            summary.seconds,
            totals["summary"]["users_per_second"].as_f64().unwrap_or(0.0),
            totals["summary"]["mb_per_second"].as_f64().unwrap_or(0.0),
            if summary.interrupted {
                " (interrupted: run again to resume)"
            } else {
                ""
            }
        ) + &format!("\njournal: {}", journal.path().display())
    });
    Ok(if summary.interrupted {
        ExitCode::from(INTERRUPTED)
    } else if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
