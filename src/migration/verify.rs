//! The one place that decides "same data": per table, the row count and a checksum of every
//! value, plus SQLite's `quick_check`. Computed by the same code on both copies.
//!
//! Values are rendered by SQLite's own `quote()` before hashing, so that an engine's way of
//! handing values to us (a Durable Object returns a whole REAL as an integer) cannot make equal
//! data look different, nor different data look equal.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{Db, DbError};
use crate::migration::copy::{columns, data_tables, for_each_page, quote_ident};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDigest {
    pub name: String,
    pub rows: u64,
    /// SHA-256 (first 16 hex digits) of every row's quoted values, in rowid order.
    pub checksum: String,
}

/// The digest of every data table of `db`, by table name.
pub fn digests(db: &impl Db) -> Result<Vec<TableDigest>, DbError> {
    let mut out = Vec::new();
    for table in data_tables(db)? {
        let (names, _) = columns(db, &table)?;
        let rendered = names
            .iter()
            .map(|name| format!("quote({})", quote_ident(name)))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let mut hasher = Sha256::new();
        let mut rows = 0u64;
        for_each_page(db, &table, &rendered, |page| {
            for row in page {
                hasher.update(row.get::<String>(0)?.as_bytes());
                hasher.update(b"\n");
            }
            rows += page.len() as u64;
            Ok(())
        })?;
        let checksum = hasher
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(TableDigest {
            name: table.name,
            rows,
            checksum,
        });
    }
    Ok(out)
}

/// SQLite's `quick_check`: `Ok` when it says "ok".
pub fn quick_check(db: &impl Db) -> Result<(), DbError> {
    let verdict: Vec<String> = db
        .query("PRAGMA quick_check", &[])?
        .iter()
        .map(|row| row.get(0))
        .collect::<Result<_, _>>()?;
    if verdict == ["ok"] {
        Ok(())
    } else {
        Err(DbError(format!("quick_check: {}", verdict.join("; "))))
    }
}

/// `Ok` when both copies hold the same data, else what differs.
pub fn same_data(expected: &[TableDigest], actual: &[TableDigest]) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let differences: Vec<String> = expected
        .iter()
        .map(|e| (e, actual.iter().find(|a| a.name == e.name)))
        .filter(|(e, a)| Some(*e) != *a)
        .map(|(e, a)| match a {
            Some(a) => format!(
                "{}: {} rows/{} vs {} rows/{}",
                e.name, e.rows, e.checksum, a.rows, a.checksum
            ),
            None => format!("{}: missing", e.name),
        })
        .chain(
            actual
                .iter()
                .filter(|a| !expected.iter().any(|e| e.name == a.name))
                .map(|a| format!("{}: unexpected", a.name)),
        )
        .collect();
    Err(differences.join("; "))
}
