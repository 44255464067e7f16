//! `cargo run --release -p bench`: what the Durable Object buys, measured side by side.
//!
//! Starts the Worker in workerd (the same harness as the tests), seeds two users per database
//! size with the same schema.md-shaped file, moves one of them to their Durable Object, and
//! measures both in the same run: read and write latency, requests per second with 8 clients,
//! migration and rollback throughput, and the R2 path's wasm memory. Prints a markdown report and
//! writes it to `bench/results/<date>.md`.
//!
//! Numbers are from local workerd (R2 and Durable Objects on local disk, no network): they
//! compare the two paths' own work, not Cloudflare's network.

#[path = "../../tests/harness/mod.rs"]
mod harness;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use harness::{realistic_database_of_size, TestWorker};
use serde_json::json;

const SIZES: [(&str, usize); 4] = [
    ("200 KB", 200 * 1024),
    ("1 MB", 1024 * 1024),
    ("10 MB", 10 * 1024 * 1024),
    ("30 MB", 30 * 1024 * 1024),
];
const READS: usize = 40;
const WRITES: usize = 20;
const CLIENTS: usize = 8;
const THROUGHPUT_SECONDS: u64 = 3;

/// Median and 99th percentile, in milliseconds.
fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn timed(
    worker: &TestWorker,
    method: &str,
    path: &str,
    user: &str,
    body: &[u8],
) -> (f64, harness::TestResponse) {
    let headers = [("Content-Type", "application/json")];
    let started = Instant::now();
    let response = worker.request(method, path, Some(user), &headers, body.to_vec());
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(
        response.status < 300,
        "{method} {path} as {user}: {} {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    (ms, response)
}

fn read(worker: &TestWorker, user: &str) -> (f64, harness::TestResponse) {
    timed(worker, "GET", "/api/projects", user, b"")
}

fn write(worker: &TestWorker, user: &str, i: usize) -> (f64, harness::TestResponse) {
    let body = json!({"notes": format!("benchmark note {i}")}).to_string();
    timed(worker, "PUT", "/api/clips/raw/1", user, body.as_bytes())
}

/// Successful requests per second of `CLIENTS` clients sending `request` for a few seconds, and
/// the share refused with 409 (the R2 path gives up after its retries rather than lose a write).
fn throughput(request: impl Fn(usize) -> u16 + Sync) -> (f64, f64) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let deadline = Instant::now() + Duration::from_secs(THROUGHPUT_SECONDS);
    let started = Instant::now();
    let (sent, succeeded, refused) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                while Instant::now() < deadline {
                    match request(sent.fetch_add(1, Ordering::Relaxed)) {
                        200..=299 => succeeded.fetch_add(1, Ordering::Relaxed),
                        409 => refused.fetch_add(1, Ordering::Relaxed),
                        status => panic!("unexpected status {status}"),
                    };
                }
            });
        }
    });
    let (succeeded, refused) = (succeeded.into_inner() as f64, refused.into_inner() as f64);
    (
        succeeded / started.elapsed().as_secs_f64(),
        refused / (succeeded + refused),
    )
}

fn status_of(worker: &TestWorker, method: &str, path: &str, user: &str, body: &[u8]) -> u16 {
    let headers = [("Content-Type", "application/json")];
    worker
        .request(method, path, Some(user), &headers, body.to_vec())
        .status
}

struct Move {
    ms: f64,
    mb_per_s: f64,
    rows_per_s: f64,
}

fn move_user(worker: &TestWorker, user: &str, action: &str) -> Move {
    let started = Instant::now();
    let response = worker.admin("POST", &format!("/admin/users/{user}/{action}"), vec![]);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        response.status,
        200,
        "{action} {user}: {}",
        String::from_utf8_lossy(&response.body)
    );
    let report = response.json();
    let rows: u64 = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_u64().unwrap())
        .sum();
    let bytes = report["bytes"].as_u64().unwrap_or(0) as f64;
    Move {
        ms,
        mb_per_s: bytes / (1024.0 * 1024.0) / (ms / 1000.0),
        rows_per_s: rows as f64 / (ms / 1000.0),
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    format!(
        "{} cores ({cpu}), {:.0} GiB memory, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory as f64 / 1024.0 / 1024.0,
        command_output("uname", &["-sr"])
    )
}

fn main() {
    let date = command_output("date", &["-u", "+%Y-%m-%d"]);
    eprintln!("bench: starting the Worker in workerd");
    // The R2 path's ceiling and cache are raised so that it can be measured on every size;
    // deployed, a database over 12 MB gets 507 there instead.
    let worker = TestWorker::start_with_admin(&[
        ("REPORT_WASM_MEMORY", "1"),
        ("R2_MAX_DATABASE_BYTES", "104857600"),
        ("R2_CACHE_BYTES", "104857600"),
    ]);

    let mut latency = String::from(
        "| database | read R2 p50 / p99 | read DO p50 / p99 | read R2/DO | write R2 p50 / p99 | write DO p50 / p99 | write R2/DO | R2 wasm memory |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut moves = String::from(
        "| database | migrate | MB/s | rows/s | rollback | MB/s | rows/s |\n|---|---|---|---|---|---|---|\n",
    );
    let mut rates = String::new();

    for (label, bytes) in SIZES {
        eprintln!("bench: {label}");
        let file = realistic_database_of_size(bytes);
        let tag = label.replace(' ', "").to_lowercase();
        let (on_r2, on_do) = (format!("r2_{tag}"), format!("do_{tag}"));
        for user in [&on_r2, &on_do] {
            let seeded = worker.admin(
                "PUT",
                &format!("/admin/users/{user}/database"),
                file.clone(),
            );
            assert_eq!(seeded.status, 200, "seeding {user}");
        }
        let migrated = move_user(&worker, &on_do, "migrate");

        let mut results = Vec::new();
        for user in [&on_r2, &on_do] {
            read(&worker, user); // warm: the isolate's cache, the object in memory
            let reads: Vec<f64> = (0..READS).map(|_| read(&worker, user).0).collect();
            let writes: Vec<f64> = (0..WRITES).map(|i| write(&worker, user, i).0).collect();
            results.push((percentiles(reads), percentiles(writes)));
        }
        let memory = read(&worker, &on_r2)
            .1
            .header("X-Wasm-Memory-Bytes")
            .and_then(|m| m.parse::<f64>().ok())
            .unwrap_or(0.0)
            / (1024.0 * 1024.0);
        let [((r2_read, r2_read99), (r2_write, r2_write99)), ((do_read, do_read99), (do_write, do_write99))] =
            [results[0], results[1]];
        writeln!(
            latency,
            "| {label} ({:.1} MB) | {r2_read:.1} / {r2_read99:.1} ms | {do_read:.1} / {do_read99:.1} ms | {:.1}x | {r2_write:.1} / {r2_write99:.1} ms | {do_write:.1} / {do_write99:.1} ms | {:.1}x | {memory:.0} MB |",
            file.len() as f64 / (1024.0 * 1024.0),
            r2_read / do_read,
            r2_write / do_write,
        )
        .unwrap();

        if bytes == 1024 * 1024 {
            let mut row = Vec::new();
            for user in [&on_r2, &on_do] {
                let (reads, _) =
                    throughput(|_| status_of(&worker, "GET", "/api/projects", user, b""));
                let (writes, refused) = throughput(|i| {
                    let body = json!({"notes": format!("concurrent note {i}")}).to_string();
                    status_of(&worker, "PUT", "/api/clips/raw/1", user, body.as_bytes())
                });
                row.push((reads, writes, refused));
            }
            rates = format!(
                "| path | reads/s | acknowledged writes/s | writes refused (409) |\n|---|---|---|---|\n\
                 | R2 | {:.0} | {:.0} | {:.0}% |\n| Durable Object | {:.0} | {:.0} | {:.0}% |\n| DO/R2 | {:.1}x | {:.1}x | |\n",
                row[0].0, row[0].1, row[0].2 * 100.0, row[1].0, row[1].1, row[1].2 * 100.0,
                row[1].0 / row[0].0, row[1].1 / row[0].1
            );
        }

        let rolled_back = move_user(&worker, &on_do, "rollback");
        writeln!(
            moves,
            "| {label} | {:.0} ms | {:.1} | {:.0} | {:.0} ms | {:.1} | {:.0} |",
            migrated.ms,
            migrated.mb_per_s,
            migrated.rows_per_s,
            rolled_back.ms,
            rolled_back.mb_per_s,
            rolled_back.rows_per_s
        )
        .unwrap();
    }

    let report = format!(
        "# Benchmark: R2-SQLite path vs Durable Object\n\n{date}, {}; workerd from `wrangler dev` (local R2 and Durable Objects).\n\
         Read: `GET /api/projects`; write: `PUT /api/clips/raw/{{id}}`; {READS} reads and {WRITES} writes per path and size, one client.\n\n\
         {latency}\n## One user, {CLIENTS} concurrent clients, 1 MB database\n\n{rates}\n## Moving a user\n\n{moves}",
        machine()
    );
    println!("{report}");
    let path = format!("{}/results/{date}.md", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&path, &report).expect("the results file is written");
    eprintln!("bench: written to {path}");
}
