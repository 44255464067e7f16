//! Watching a Worker while something runs: the isolate's memory (its JavaScript heap and
//! buffers, from the V8 inspector, and its wasm memory), workerd's resident set, and how long
//! another user waits for an answer. The chunked-move test and the benchmark both use it.
//!
//! The Worker must run with `REPORT_WASM_MEMORY` (its `/api/health` then reports the wasm
//! memory), and `other` must be a user with one project.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Inspector, TestWorker};

/// What a watcher saw while a move ran.
#[derive(Debug, Default)]
pub struct Watched {
    /// The isolate's largest footprint: its JavaScript heap, the buffers it holds, and its wasm
    /// memory (what the platform's 128 MB limit counts).
    pub peak_isolate: u64,
    /// The largest resident set of the workerd processes, for the record: it also holds
    /// workerd's own memory and the local R2, KV and SQLite it simulates.
    pub peak_resident: u64,
    pub slowest: Duration,
    pub answers: u32,
    pub failures: Vec<String>,
}

/// The isolate's footprint now: its JavaScript heap and buffers (from the inspector) and its
/// wasm memory (which `/api/health` reports with `REPORT_WASM_MEMORY`).
pub fn isolate_bytes(worker: &TestWorker, inspector: &mut Inspector) -> u64 {
    let heap = inspector.heap_usage();
    let wasm: u64 = worker
        .get("/api/health", None)
        .header("X-Wasm-Memory-Bytes")
        .and_then(|bytes| bytes.parse().ok())
        .expect("the Worker reports its wasm memory");
    heap.used + heap.array_buffers + wasm
}

/// Runs `work` while one thread samples the isolate's memory (and the runtime's resident set)
/// and another asks for another user's projects over and over.
pub fn watching<T>(worker: &TestWorker, other: &str, work: impl FnOnce() -> T) -> (T, Watched) {
    let done = AtomicBool::new(false);
    let watched = Mutex::new(Watched::default());
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut inspector = worker.inspector();
            while !done.load(Ordering::SeqCst) {
                let isolate = isolate_bytes(worker, &mut inspector);
                let resident = worker.runtime_memory_bytes();
                let mut seen = watched.lock().unwrap();
                seen.peak_isolate = seen.peak_isolate.max(isolate);
                seen.peak_resident = seen.peak_resident.max(resident);
                drop(seen);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let asked = Instant::now();
                let response = worker.get("/api/projects", Some(other));
                let took = asked.elapsed();
                let mut seen = watched.lock().unwrap();
                seen.slowest = seen.slowest.max(took);
                seen.answers += 1;
                if response.status != 200 || response.json().as_array().map(Vec::len) != Some(1) {
                    seen.failures
                        .push(format!("{} {:?}", response.status, response.body));
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        // The watchers stop however `work` ends: a panic in it must not leave them looping.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = Stop(&done);
        work()
    });
    (result, watched.into_inner().unwrap())
}

/// The isolate's footprint and the runtime's resident set now: what a move is measured against.
pub fn baseline(worker: &TestWorker) -> (u64, u64) {
    let mut inspector = worker.inspector();
    (
        isolate_bytes(worker, &mut inspector),
        worker.runtime_memory_bytes(),
    )
}
