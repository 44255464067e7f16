//! The names of the Worker's own HTTP headers, each spelled once here.

/// Request: the user a request is for (`header` sign-in mode; the Worker's own calls).
pub const USER_ID: &str = "X-User-ID";
/// Request, from the router to a user's object: whether the router saw the KV flag
/// (`present` or `absent`), so the object can tell a flag that is still propagating.
pub const FLAG_SEEN: &str = "X-Migrated-Flag";
/// Response: which data path served it, `r2` or `do`.
pub const DATA_PATH: &str = "X-Data-Path";
/// Response: the user's data version the answer reflects.
pub const DB_VERSION: &str = "X-DB-Version";
/// Response of the R2 path: whether the isolate's copy of the database was used (`hit`/`miss`).
pub const DB_CACHE: &str = "X-DB-Cache";
/// Response of the R2 path: how its upload went (`conflict`, ...).
pub const SYNC_STATUS: &str = "X-Sync-Status";
/// Response: the id of the request's log lines.
pub const REQUEST_ID: &str = "X-Request-Id";
/// Response, with the var `REPORT_WASM_MEMORY` (tests and benchmarks): the wasm memory's size.
pub const WASM_MEMORY_BYTES: &str = "X-Wasm-Memory-Bytes";
