//! A user's SQLite database as both data paths and the migrator see it.
//!
//! The Worker (wasm32) and the migrator (native) build this crate alike, so both read, check,
//! copy and digest a database with the same code: a move in chunks computes the same digest of
//! the same rows at both ends. No I/O and no runtime here: only SQL over [`db::Db`].
//!
//! Layout, from the bottom up (each module imports only those above it):
//! - [`db`]: the synchronous [`db::Db`] trait, typed values and their rules, [`db::DbError`],
//!   [`db::DbVersion`], the schema and the upgrade of the existing app's files, and the R2
//!   path's backend [`db::rusqlite_db::RusqliteDb`] (the object's is the Worker's).
//! - [`catalog`]: what a database holds as a move sees it: tables, keys, typed cells, pages.
//! - [`row_batch`]: a page of rows on the wire between the migrator and the object.
//! - [`digest`]: per-table SHA-256 digests; the one place that decides "same data".
//! - [`copy`]: every table, row and sequence from one database into another.
//! - [`preflight`]: what the destination of a move cannot hold.
//! - [`file_check`]: what the R2 path and a move make of a downloaded file (the fleet check).

pub mod db;

pub mod catalog;
pub mod row_batch;

pub mod digest;

pub mod copy;
pub mod preflight;

pub mod file_check;

/// Bytes as megabytes (1 MB = 1,048,576 bytes), for the sentences that name a size.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
