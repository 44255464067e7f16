//! The Worker's log lines, each one JSON object that names its `event` (and its `user`, when
//! there is one), so that an operator finds every line of a user, or of a kind of event, by
//! searching for it.
//!
//! Normal operation (requests, moves) is logged at level info: kept by Workers Logs, and shown by
//! `wrangler dev`, which hides `console.log`. What an operator must look at is logged at level
//! warn or error.

use serde_json::Value;
use worker::worker_sys::web_sys::console;

/// An event of normal operation.
pub fn info(event: Value) {
    console::info_1(&event.to_string().into());
}

/// Something went wrong, and was worked around (the user was served).
pub fn warn(event: Value) {
    console::warn_1(&event.to_string().into());
}

/// Something went wrong that an operator must look at.
pub fn error(event: Value) {
    console::error_1(&event.to_string().into());
}
