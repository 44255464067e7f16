//! `BENCH_ONLY=chunked`: moves in chunks (issue 13, docs/chunked-moves.md), driven by the
//! migrator as an operator runs it, and a fleet of small users moved with its concurrency.
//!
//! Per size: the file in the existing app's shape is put in R2, migrated, then rolled back
//! (`--force`, since the R2 path does not serve it), while `test_support::watch` samples the
//! isolate's memory, workerd's resident set and another user's answers; and the same file goes
//! through `sqlite3 SRC .dump | sqlite3 DST`. The R2 path's ceiling is lowered to 4 MB so that
//! every size moves in chunks. `CHUNKED_SIZES_MB` (say `10,100,250`) chooses the sizes; 250 MB
//! is the largest `wrangler r2 object put --local` takes (its limit is 300 MiB).

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

use test_support::watch::{baseline, watching, Watched};
use test_support::{realistic_database_of_size, TestWorker, ADMIN_TOKEN};

use crate::dump_restore;

const MB: f64 = 1024.0 * 1024.0;
const FLEET_USERS: usize = 1000;
const FLEET_CONCURRENCY: &str = "8";

/// The release migrator, built if it is not there.
pub fn migrator_binary() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = Command::new("cargo")
        .args(["build", "--release", "--locked", "-p", "migrator"])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building the migrator failed");
    root.join("target/release/migrator")
}

/// Runs the migrator; its seconds and what it printed.
pub fn migrator(
    binary: &std::path::Path,
    worker: &TestWorker,
    args: &[&str],
) -> (f64, std::process::Output) {
    let started = Instant::now();
    let output = Command::new(binary)
        .args(args)
        .env("MIGRATOR_ENDPOINT", worker.base_url())
        .env("MIGRATOR_TOKEN", ADMIN_TOKEN)
        .env("XDG_STATE_HOME", std::env::temp_dir())
        .output()
        .expect("the migrator runs");
    (started.elapsed().as_secs_f64(), output)
}

/// Runs the migrator, which must succeed; its seconds.
fn run_migrator(binary: &std::path::Path, worker: &TestWorker, args: &[&str]) -> f64 {
    let (seconds, output) = migrator(binary, worker, args);
    assert!(
        output.status.success(),
        "migrator {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    seconds
}

fn row(
    label: &str,
    mb: f64,
    seconds: f64,
    dump: f64,
    before: (u64, u64),
    seen: &Watched,
) -> String {
    format!(
        "| {label} | {mb:.0} MB | {seconds:.1} s | {:.1} | {:.1}x | {:.0} MB (+{:.0}) | {:.0} MB (+{:.0}) | {:.0} ms |",
        mb / seconds,
        seconds / dump,
        seen.peak_isolate as f64 / MB,
        seen.peak_isolate.saturating_sub(before.0) as f64 / MB,
        seen.peak_resident as f64 / MB,
        seen.peak_resident.saturating_sub(before.1) as f64 / MB,
        seen.slowest.as_secs_f64() * 1000.0,
    )
}

pub fn report(date: &str, machine: &str, sqlite3: &str) -> String {
    let sizes: Vec<usize> = std::env::var("CHUNKED_SIZES_MB")
        .unwrap_or_else(|_| "10,100,250".into())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    let binary = migrator_binary();
    let worker = TestWorker::start_with_admin(&[
        ("REPORT_WASM_MEMORY", "1"),
        ("R2_MAX_DATABASE_BYTES", "4194304"),
    ]);
    assert_eq!(worker.create_project("other", "other").status, 200);
    let mut table = String::from(
        "| move | database | time | MB/s | vs `sqlite3 .dump \\| sqlite3` | isolate peak (growth) | workerd resident peak (growth) | slowest answer to another user |\n|---|---|---|---|---|---|---|---|\n",
    );
    for size in sizes {
        eprintln!("bench: chunked moves at {size} MB");
        let file = realistic_database_of_size(size << 20);
        let mb = file.len() as f64 / MB;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (src, dst) = (dir.path().join("src.sqlite"), dir.path().join("dst.sqlite"));
        std::fs::write(&src, &file).expect("the source file is written");
        let dump = dump_restore(&src, &dst) / 1000.0;
        let user = format!("chunked_{size}");
        worker.put_r2(&format!("{user}/database.sqlite"), &file);
        drop(file);
        for (label, args) in [
            ("migrate", vec!["migrate", user.as_str()]),
            ("rollback", vec!["rollback", user.as_str(), "--force"]),
        ] {
            let before = baseline(&worker);
            let (seconds, seen) =
                watching(&worker, "other", || run_migrator(&binary, &worker, &args));
            writeln!(table, "{}", row(label, mb, seconds, dump, before, &seen)).unwrap();
        }
    }

    eprintln!("bench: a fleet of {FLEET_USERS} users of about 1 MB");
    let file = realistic_database_of_size(1 << 20);
    for i in 0..FLEET_USERS {
        let seeded = worker.admin(
            "PUT",
            &format!("/admin/users/fleet_{i:04}/database"),
            file.clone(),
        );
        assert_eq!(seeded.status, 200, "seeding fleet_{i:04}");
    }
    let seconds = run_migrator(
        &binary,
        &worker,
        &[
            "migrate",
            "--all",
            "--yes",
            "--min-size",
            "512KB",
            "--concurrency",
            FLEET_CONCURRENCY,
        ],
    );
    let fleet = format!(
        "| users | size each | concurrency | time | users/min | MB/s |\n|---|---|---|---|---|---|\n\
         | {FLEET_USERS} | {:.1} MB | {FLEET_CONCURRENCY} | {seconds:.0} s | {:.0} | {:.1} |\n",
        file.len() as f64 / MB,
        FLEET_USERS as f64 / seconds * 60.0,
        FLEET_USERS as f64 * file.len() as f64 / MB / seconds,
    );
    format!(
        "# Benchmark: chunked moves (BENCH_ONLY=chunked)\n\n{date}, {machine}; workerd from `wrangler dev` \
         (local R2 and Durable Objects); the release migrator on the same machine; `sqlite3` {sqlite3}.\n\n\
         ## One user, moved in chunks\n\n\
         Wall time of `migrator migrate` / `migrator rollback --force` (download, native work, batches, \
         upload and cut-over). The isolate is the Worker's V8 isolate (JavaScript heap and buffers, from \
         the inspector, plus its wasm memory): what the platform's 128 MB limit counts. workerd's resident \
         set also holds workerd's own memory and the local R2 and SQLite it simulates.\n\n{table}\n\
         ## A fleet\n\n`migrator migrate --all --concurrency {FLEET_CONCURRENCY}`: each of these users \
         moves in one step inside their object.\n\n{fleet}"
    )
}
