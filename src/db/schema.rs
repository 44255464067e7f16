//! Applies the numbered migrations in `schema/` to a user's database, in order, once each.
//!
//! What is applied is recorded in [`MIGRATIONS_TABLE`], a table of our own: Durable Objects
//! refuse `PRAGMA user_version`, and `_cf_`-prefixed names are reserved. A database created by
//! the existing app has the tables but no record; `0001_init.sql` is written with
//! `IF NOT EXISTS` throughout, so running it there adopts the database without touching a row.

use crate::db::{Db, DbError, SqlValue};

/// The table that records which migrations have been applied.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

/// Every migration, in order. Files are never edited after they ship; new ones are appended.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_init", include_str!("../../schema/0001_init.sql")),
    (
        2,
        "0002_data_version",
        include_str!("../../schema/0002_data_version.sql"),
    ),
];

/// Brings `db` up to the latest schema, all pending migrations in one transaction. Returns how
/// many it applied, so that callers know whether the database changed (on the R2 path that is a
/// write to upload).
pub fn apply_migrations(db: &impl Db) -> Result<usize, DbError> {
    db.transaction(|| apply_pending(db))
}

fn apply_pending(db: &impl Db) -> Result<usize, DbError> {
    db.execute_script(&format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        )"
    ))?;
    let applied = db
        .query_value::<i64>(
            &format!("SELECT COALESCE(MAX(version), 0) FROM {MIGRATIONS_TABLE}"),
            &[],
        )?
        .unwrap_or(0);

    let pending: Vec<_> = MIGRATIONS.iter().filter(|(v, _, _)| *v > applied).collect();
    for (version, name, sql) in &pending {
        db.execute_script(sql)
            .map_err(|DbError(msg)| DbError(format!("migration {name}: {msg}")))?;
        db.execute(
            &format!("INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (?, ?)"),
            &[SqlValue::Integer(*version), SqlValue::from(*name)],
        )?;
    }
    Ok(pending.len())
}
