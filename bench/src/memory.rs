//! `BENCH_ONLY=memory`: what requests leave behind in the isolate (issue 25). For each kind of
//! request ([`Kind`]) on each path, 1,000 requests after 100 to warm up; the isolate's heap
//! after a forced collection (the V8 inspector) and the runtime's resident memory (workerd's
//! processes) before and after. The same requests to a plain JavaScript Worker that reads each
//! body and logs a line (`bench/plain-worker/`), under the same `wrangler dev`, show what the
//! local runtime grows by on its own.

use std::fmt::Write as _;

use test_support::load::{self, Kind};
use test_support::{Options, TestWorker};

const WARM_UP: usize = 100;
const REQUESTS: usize = 1000;
const CLIENTS: usize = 8;

/// Heap and resident growth per 1,000 requests of `kind` for `user`, in KB and MB.
fn growth(worker: &TestWorker, user: &str, kind: Kind) -> (i64, i64) {
    let mut inspector = worker.inspector();
    // A plain Worker answers every kind with 200: only ours is held to each kind's answers.
    let _ = kind.send_many(worker, user, WARM_UP, CLIENTS);
    let (heap, resident) = (
        inspector.heap_after_collection(),
        worker.runtime_memory_bytes(),
    );
    let _ = kind.send_many(worker, user, REQUESTS, CLIENTS);
    let (heap_after, resident_after) = (
        inspector.heap_after_collection(),
        worker.runtime_memory_bytes(),
    );
    let per_thousand = |bytes: i64| bytes * 1000 / REQUESTS as i64;
    (
        per_thousand(
            (heap_after.used + heap_after.array_buffers) as i64
                - (heap.used + heap.array_buffers) as i64,
        ) / 1024,
        per_thousand(resident_after as i64 - resident as i64) >> 20,
    )
}

pub fn report(date: &str, machine: &str) -> String {
    eprintln!("bench: starting the Worker and the plain Worker in workerd");
    let worker = load::start(&[]);
    let plain = TestWorker::start_with(Options {
        config: Some("bench/plain-worker/wrangler.toml".into()),
        ..Options::default()
    });
    let mut rows = String::new();
    for kind in Kind::ALL {
        eprintln!("bench: {}", kind.name());
        let [(_, on_r2), (_, on_object)] = load::USERS;
        let (r2, object, baseline) = (
            growth(&worker, on_r2, kind),
            growth(&worker, on_object, kind),
            growth(&plain, "anyone", kind),
        );
        let _ = writeln!(
            rows,
            "| {} | {:+} KB / {:+} MB | {:+} KB / {:+} MB | {:+} KB / {:+} MB |",
            kind.name(),
            r2.0,
            r2.1,
            object.0,
            object.1,
            baseline.0,
            baseline.1
        );
    }
    format!(
        "# Benchmark: memory per request (BENCH_ONLY=memory)\n\n{date}, {machine}; workerd from \
         `wrangler dev`. Growth per 1,000 requests of each kind ({CLIENTS} clients at once, after \
         {WARM_UP} to warm up): the isolate's heap after a forced collection / the runtime's \
         resident memory (all workerd processes of that `wrangler dev`, which also hold the local \
         R2, KV and Durable Object storage it simulates).\n\n\
         | requests | R2 path | Durable Object path | plain JavaScript Worker |\n|---|---|---|---|\n{rows}"
    )
}
