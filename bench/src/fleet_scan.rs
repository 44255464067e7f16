//! `BENCH_ONLY=scan`: the fleet check before a rollout (issue 24), as an operator runs it:
//! `migrator scan --all --concurrency 8` over 1,000 users of mixed lineages and sizes.
//!
//! The fleet: users of our schema (imported through the admin API, so stored brought up to
//! date), files of every state of both legacy lineages as the existing app left them (put into
//! R2 as they are), some of a few MB, a few above the R2 path's ceiling, some moved to their
//! object, and some the R2 path refuses (each kind of `test_support::refused_databases`). The
//! report gives users per minute, the calls per user, the summary by outcome, and each refused
//! user's reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use test_support::legacy::{realistic, LegacyState};
use test_support::{realistic_database, realistic_database_of_size, TestWorker};

use crate::moves_in_chunks::{migrator, migrator_binary};

const MB: usize = 1024 * 1024;
const FLEET_USERS: usize = 1000;
const CONCURRENCY: &str = "8";
/// The R2 path's ceiling, as deployed (12 MB).
const CEILING: usize = 12 * MB;
const MOVED: usize = 50;
const ABOVE_CEILING: usize = 3;
/// Users of a few MB, of each kind.
const MB_CURRENT: usize = 16;
const MB_LEGACY: usize = 8;
/// Copies of each kind of refused file.
const REFUSED_EACH: usize = 3;

/// A user's database and how it gets into R2.
enum Seed {
    /// Through the admin API's import: stored in our schema, brought up to date.
    Imported(Vec<u8>),
    /// Imported, then moved to the user's object.
    Moved(Vec<u8>),
    /// Put into R2 as it is, as the existing app left it.
    Raw(Vec<u8>),
}

/// The state's name as part of a user id, which takes only `[A-Za-z0-9_-]` (`oldest+3` is
/// `oldest_3`).
fn user_id_part(state: LegacyState) -> String {
    state.name().replace('+', "_")
}

/// The fleet, by user id, and the outcome each kind of user must get.
fn fleet() -> (Vec<(String, Seed)>, BTreeMap<&'static str, usize>) {
    let mut users = Vec::new();
    let mut expected = BTreeMap::new();
    let mut add = |user: String, seed: Seed, outcome: &'static str| {
        users.push((user, seed));
        *expected.entry(outcome).or_insert(0) += 1;
    };
    for i in 0..MOVED {
        add(
            format!("moved-{i:04}"),
            Seed::Moved(realistic_database(10 + i % 40)),
            "moved",
        );
    }
    let large = realistic_database_of_size(CEILING + CEILING / 8);
    for i in 0..ABOVE_CEILING {
        add(
            format!("large-{i}"),
            Seed::Raw(large.clone()),
            "chunks_only",
        );
    }
    let refused = test_support::refused_databases();
    for i in 0..REFUSED_EACH {
        for (kind, file) in &refused {
            add(
                format!("refused-{kind}-{i}"),
                Seed::Raw(file.clone()),
                "refused",
            );
        }
    }
    let states = LegacyState::all();
    for i in 0..MB_CURRENT {
        let size = [1, 2, 4, 8][i % 4] * MB;
        add(
            format!("mb-current-{i:02}"),
            Seed::Imported(realistic_database_of_size(size)),
            "as_is",
        );
    }
    for i in 0..MB_LEGACY {
        let state = states[i * 7 % states.len()];
        add(
            format!("mb-{}-{i:02}", user_id_part(state)),
            Seed::Raw(realistic(state, 2000 + 1000 * (i % 3), i as u64)),
            "upgraded",
        );
    }
    // The rest are small: two in five of our schema, the others legacy files of every state.
    let rest = FLEET_USERS
        - (MOVED + ABOVE_CEILING + REFUSED_EACH * refused.len() + MB_CURRENT + MB_LEGACY);
    for i in 0..rest {
        let clips = 5 + i * 37 % 120;
        if i % 5 < 2 {
            add(
                format!("small-current-{i:04}"),
                Seed::Imported(realistic_database(clips)),
                "as_is",
            );
        } else {
            let state = states[i % states.len()];
            add(
                format!("small-{}-{i:04}", user_id_part(state)),
                Seed::Raw(realistic(state, clips, i as u64)),
                "upgraded",
            );
        }
    }
    (users, expected)
}

/// Puts the fleet into the Worker's R2 (and moves the moved users): imports 8 at a time, the
/// raw files with one bulk put.
fn seed(worker: &TestWorker, users: Vec<(String, Seed)>) -> (usize, u64) {
    let mut raw = Vec::new();
    let mut imported = Vec::new();
    let mut moved = Vec::new();
    let mut bytes = 0u64;
    for (user, seed) in users {
        match seed {
            Seed::Raw(file) => {
                bytes += file.len() as u64;
                raw.push((format!("{user}/database.sqlite"), file));
            }
            Seed::Imported(file) => imported.push((user, file)),
            Seed::Moved(file) => {
                moved.push(user.clone());
                imported.push((user, file));
            }
        }
    }
    let count = raw.len() + imported.len();
    eprintln!(
        "bench: seeding {count} users ({} put as they are)",
        raw.len()
    );
    worker.put_r2_many(&raw);
    drop(raw);
    std::thread::scope(|scope| {
        for chunk in imported.chunks(imported.len().div_ceil(8)) {
            scope.spawn(move || {
                for (user, file) in chunk {
                    worker.admin_ok(
                        "PUT",
                        &format!("/admin/users/{user}/database"),
                        file.clone(),
                    );
                }
            });
        }
    });
    bytes += imported.iter().map(|(_, f)| f.len() as u64).sum::<u64>();
    for user in &moved {
        worker.admin_ok("POST", &format!("/admin/users/{user}/migrate"), Vec::new());
    }
    (count, bytes)
}

/// Median and largest of `samples`.
fn median_max(mut samples: Vec<u64>) -> (u64, u64) {
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

pub fn report(date: &str, machine: &str) -> String {
    let binary = migrator_binary();
    let worker = TestWorker::start_with_admin(&[("R2_MAX_DATABASE_BYTES", &CEILING.to_string())]);
    let (users, expected) = fleet();
    let (count, bytes) = seed(&worker, users);
    assert_eq!(count, FLEET_USERS);

    eprintln!("bench: migrator scan --all --concurrency {CONCURRENCY}");
    let (seconds, output) = migrator(
        &binary,
        &worker,
        &["scan", "--all", "--json", "--concurrency", CONCURRENCY],
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let (summary, per_user) = lines.split_last().expect("the scan printed its summary");
    let summary = &summary["summary"];
    assert_eq!(
        output.status.code(),
        Some(1),
        "the fleet has refused users: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (outcome, users) in &expected {
        assert_eq!(
            summary["outcomes"][outcome].as_u64(),
            Some(*users as u64),
            "{outcome}: {summary}"
        );
    }
    assert_eq!(summary["outcomes"]["failed"], 0, "{summary}");

    let users_per_minute = FLEET_USERS as f64 / seconds * 60.0;
    let (list_calls, scan_calls) = (
        summary["calls"]["list"].as_u64().unwrap_or(0),
        summary["calls"]["scan"].as_u64().unwrap_or(0),
    );
    let mut outcomes = String::from(
        "| outcome | users | scan calls | ms per call, median / max |\n|---|---|---|---|\n",
    );
    for (outcome, meaning) in [
        ("as_is", "served as is"),
        ("upgraded", "upgraded on first use"),
        ("refused", "refused"),
        (
            "chunks_only",
            "moves only in chunks (no call: the listing shows the size)",
        ),
        (
            "moved",
            "already moved (no call: the listing shows the state)",
        ),
    ] {
        // The listing decides these two: their lines took no call.
        let scanned = !matches!(outcome, "chunks_only" | "moved");
        let called: Vec<u64> = per_user
            .iter()
            .filter(|line| scanned && line["outcome"] == outcome)
            .filter_map(|line| line["milliseconds"].as_u64())
            .collect();
        let timing = match called.is_empty() {
            true => "–".to_owned(),
            false => {
                let (median, max) = median_max(called.clone());
                format!("{median} / {max}")
            }
        };
        writeln!(
            outcomes,
            "| `{outcome}`: {meaning} | {} | {} | {timing} |",
            summary["outcomes"][outcome],
            called.len()
        )
        .unwrap();
    }
    let mut refused = String::new();
    for user in summary["refused"].as_array().into_iter().flatten() {
        writeln!(
            refused,
            "- `{}`: {}",
            user["user"].as_str().unwrap_or_default(),
            user["reason"].as_str().unwrap_or_default()
        )
        .unwrap();
    }
    let cannot_move = summary["cannot_move"].as_array().map_or(0, Vec::len);
    format!(
        "# Benchmark: the fleet check (BENCH_ONLY=scan)\n\n{date}, {machine}; workerd from `wrangler dev` \
         (local R2 and Durable Objects); the release migrator on the same machine.\n\n\
         `migrator scan --all --concurrency {CONCURRENCY}` over {FLEET_USERS} users ({:.0} MB in R2): \
         {MOVED} moved to their object, {ABOVE_CEILING} above the R2 path's ceiling of {} MB, \
         {} refused ({REFUSED_EACH} of each kind: TEXT `video_duration`, an extra NOT NULL column, \
         not SQLite, damaged), {MB_CURRENT} of our schema of 1 to 8 MB, {MB_LEGACY} legacy files of \
         a few MB, and the rest small: two in five of our schema, the others legacy files of every \
         state of both lineages ({} states).\n\n\
         **{users_per_minute:.0} users per minute** ({seconds:.1} s for {FLEET_USERS} users); \
         **{:.2} calls per user**: {list_calls} listing calls (a page asks for 1,000 users; R2 returns \
         fewer objects per page when it includes their metadata) and {scan_calls} scans (one R2 read \
         each; none for the moved and the too large, which the listing shows). No Durable Object was \
         called. At this pace 100,000 users take about {:.0} minutes, with about {:.0} listing \
         calls.\n\n{outcomes}\n\
         Served, but a move into the object would be refused: {cannot_move}.\n\n\
         Refused, with the reasons the scan names:\n\n{refused}",
        bytes as f64 / MB as f64,
        CEILING / MB,
        REFUSED_EACH * test_support::refused_databases().len(),
        LegacyState::all().len(),
        (list_calls + scan_calls) as f64 / FLEET_USERS as f64,
        100_000.0 / users_per_minute,
        list_calls as f64 * 100_000.0 / FLEET_USERS as f64,
    )
}
