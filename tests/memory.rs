//! Memory that does not grow with requests: thousands of requests of each kind (reads, writes,
//! invalid bodies, uploads, bad input of every sort, forwarded processing routes, admin calls)
//! on each path leave the isolate's heap, after a forced collection, where it was. An isolate
//! lives for many requests and has 128 MB: anything a request leaves behind kills it in time.
//!
//! The heap is read through the V8 inspector after `HeapProfiler.collectGarbage`
//! (`test_support::Inspector::heap_after_collection`), so what is measured is what is still
//! held, not the runtime process (whose resident memory also counts workerd's own buffers and
//! the local R2 and KV it simulates); the wasm linear memory is read beside it.

use test_support::load::{self, Kind};

/// Requests of each kind per path.
const REQUESTS: usize = 2000;
/// Clients at once.
const CLIENTS: usize = 8;
/// How far the heap may end from where it began.
const TOLERANCE: u64 = 10 << 20;

#[test]
fn thousands_of_requests_of_every_kind_leave_the_heap_where_it_was_on_both_paths() {
    let worker = load::start(&[("REPORT_WASM_MEMORY", "1")]);
    let mut inspector = worker.inspector();
    let mut report = Vec::new();
    for (path, user) in load::USERS {
        for kind in Kind::ALL {
            // The first requests fill what is meant to fill (the isolate's database cache, the
            // module's lazily built parts); what follows must not add to it.
            let mut failures = kind.send_many(&worker, user, REQUESTS / 10, CLIENTS);
            let (before, wasm_before) = (
                inspector.heap_after_collection(),
                worker.wasm_memory_bytes(),
            );
            failures.extend(kind.send_many(&worker, user, REQUESTS, CLIENTS));
            let (after, wasm_after) = (
                inspector.heap_after_collection(),
                worker.wasm_memory_bytes(),
            );
            // Every request answered, and as it should be.
            assert_eq!(failures, Vec::<String>::new(), "{path} {}", kind.name());
            // Live objects and the contents of ArrayBuffers (request bodies are held as those).
            let held = |heap: &test_support::HeapUsage| heap.used + heap.array_buffers;
            let growth = held(&after) as i64 - held(&before) as i64;
            report.push(format!(
                "{path} {}: heap {:.2} -> {:.2} MB ({:+} KB per 1,000 requests), wasm memory \
                 {:.1} -> {:.1} MB",
                kind.name(),
                held(&before) as f64 / 1048576.0,
                held(&after) as f64 / 1048576.0,
                growth / 1024 * 1000 / REQUESTS as i64,
                wasm_before as f64 / 1048576.0,
                wasm_after as f64 / 1048576.0,
            ));
            eprintln!("{}", report.last().unwrap());
            // Wasm memory never shrinks, but once warm it must not keep growing either.
            assert!(
                held(&after) < held(&before) + TOLERANCE && wasm_after < wasm_before + TOLERANCE,
                "{}",
                report.join("\n")
            );
        }
    }
}
