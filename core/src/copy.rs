//! Copies a user's database into another: every user table (rowid and WITHOUT ROWID, with their
//! rowids), then indexes, views and triggers (after the rows, so no trigger fires during the
//! copy), then the AUTOINCREMENT counters. The same code imports an R2 file into a Durable
//! Object and exports the object back to a file.
//!
//! Every value keeps its storage class and its exact bits ([`Cell::as_sql`]). Statements stay
//! within the Durable Object's limits: at most [`MAX_PARAMETERS`] bound values each.

use crate::catalog::{
    for_each_page, quote_ident, sequences, table_exists, Catalog, Cell, PageRow, RowKey, Table,
};
use crate::db::{Db, DbError, SqlValue};
use crate::digest::{self, TableDigest, TableHasher};

/// The Durable Object refuses statements with more bound parameters.
pub const MAX_PARAMETERS: usize = 100;

/// Replaces every user table, index, view and trigger of `to` with a copy of `from`'s; returns
/// the digests of what it read from `from` (the same as [`digest::digests`] of `from`, without
/// reading it a second time). Run it inside one transaction of `to`: a failure half way must
/// leave nothing behind.
pub fn copy_database(from: &impl Db, to: &impl Db) -> Result<Vec<TableDigest>, DbError> {
    clear(to)?;
    let catalog = Catalog::read(from)?;
    for table in &catalog.tables {
        to.execute_script(&table.sql)?;
    }
    let mut digests = Vec::new();
    for table in catalog.row_tables() {
        digests.push(copy_rows(from, to, table)?);
    }
    for object in &catalog.others {
        to.execute_script(&object.sql)?;
    }
    copy_sequences(from, to)?;
    digest::with_schema(from, &catalog, digests)
}

/// Drops the user's tables and views from `db` (their indexes and triggers go with them).
pub fn clear(db: &impl Db) -> Result<(), DbError> {
    let catalog = Catalog::read(db)?;
    for view in catalog.others.iter().filter(|object| object.kind == "view") {
        db.execute_script(&format!("DROP VIEW IF EXISTS {}", quote_ident(&view.name)))?;
    }
    for table in &catalog.tables {
        db.execute_script(&format!("DROP TABLE IF EXISTS {}", table.quoted()))?;
    }
    Ok(())
}

/// Copies one table's rows; returns the digest of the rows read.
fn copy_rows(from: &impl Db, to: &impl Db, table: &Table) -> Result<TableDigest, DbError> {
    let mut hasher = TableHasher::default();
    for_each_page(from, table, |page| {
        hasher.page(page);
        insert_rows(to, table, page)
    })?;
    Ok(hasher.finish(&table.name))
}

/// Inserts `rows` (as [`for_each_page`] reads them) into `table` of `to`, with their rowids,
/// in as few statements as the object's limit on bound values allows.
pub fn insert_rows(to: &impl Db, table: &Table, rows: &[PageRow]) -> Result<(), DbError> {
    let mut columns: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
    if let RowKey::Hidden(alias) = table.key {
        // Rowids survive the copy even where no column holds them: row identity is data.
        columns.insert(0, alias.to_owned());
    }
    let insert = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.quoted(),
        columns.join(", ")
    );
    let mut values: Vec<String> = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    for row in rows {
        if row.cells.len() != table.columns.len() {
            return Err(DbError::failed(format!(
                "a row of {} has {} values; the table has {} columns",
                table.name,
                row.cells.len(),
                table.columns.len()
            )));
        }
        let rowid = match table.key {
            RowKey::Hidden(_) => Some(Cell::Integer(row.rowid.unwrap_or(0))),
            _ => None,
        };
        let (row_values, row_params) = row_sql(rowid.iter().chain(&row.cells));
        if row_params.len() > MAX_PARAMETERS {
            return Err(DbError::failed(format!(
                "a row of {} needs {} bound values; at most {MAX_PARAMETERS} fit in a statement",
                table.name,
                row_params.len()
            )));
        }
        if params.len() + row_params.len() > MAX_PARAMETERS {
            to.execute(&format!("{insert}{}", values.join(", ")), &params)?;
            values.clear();
            params.clear();
        }
        values.push(row_values);
        params.extend(row_params);
    }
    if !values.is_empty() {
        to.execute(&format!("{insert}{}", values.join(", ")), &params)?;
    }
    Ok(())
}

/// `(expr, expr, ...)` for one row and the values it binds.
fn row_sql<'a>(cells: impl Iterator<Item = &'a Cell>) -> (String, Vec<SqlValue>) {
    let mut params = Vec::new();
    let expressions: Vec<&str> = cells
        .map(|cell| {
            let (expression, param) = cell.as_sql();
            params.extend(param);
            expression
        })
        .collect();
    (format!("({})", expressions.join(", ")), params)
}

/// AUTOINCREMENT counters: ids already handed out are never handed out again.
fn copy_sequences(from: &impl Db, to: &impl Db) -> Result<(), DbError> {
    set_sequences(to, &sequences(from)?)
}

/// Sets the AUTOINCREMENT counters of `to` to `sequences` (name, seq).
pub fn set_sequences(to: &impl Db, sequences: &[(String, i64)]) -> Result<(), DbError> {
    if !table_exists(to, "sqlite_sequence")? {
        return Ok(());
    }
    to.execute("DELETE FROM sqlite_sequence", &[])?;
    for (name, seq) in sequences {
        to.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
            &[name.as_str().into(), (*seq).into()],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::rusqlite_db::RusqliteDb;
    use crate::db::{apply_migrations, check_integrity};

    fn app_database() -> RusqliteDb {
        let db = RusqliteDb::empty().unwrap();
        apply_migrations(&db).unwrap();
        db
    }

    fn copied(source: &RusqliteDb) -> RusqliteDb {
        let target = app_database();
        target
            .execute("INSERT INTO games (name) VALUES ('stale')", &[])
            .unwrap();
        target
            .transaction(|| copy_database(source, &target))
            .unwrap();
        target
    }

    #[test]
    fn a_copy_keeps_every_table_row_and_sequence_and_verifies_equal() {
        let source = app_database();
        source
            .execute_script(
                "INSERT INTO games (name, video_size) VALUES ('héllo ⚽', 3), ('b', NULL), ('c', 1);
                 DELETE FROM games WHERE name = 'c';
                 INSERT INTO export_jobs (id, project_id, type, input_data) VALUES ('export_1', 1, 'x', '{}');
                 INSERT INTO raw_clips (filename, rating, start_time, end_time) VALUES ('', 3, 1.0, 2.5);
                 CREATE TABLE custom_notes (body TEXT, weight REAL, data BLOB);
                 INSERT INTO custom_notes VALUES ('n', 4.0, x'00ff');",
            )
            .unwrap();
        let target = copied(&source);
        assert_eq!(
            digest::digests(&source).unwrap(),
            digest::digests(&target).unwrap()
        );
        let next: i64 = target
            .query_value("INSERT INTO games (name) VALUES ('new') RETURNING id", &[])
            .unwrap()
            .unwrap();
        assert_eq!(next, 4, "the deleted id 3 is not handed out again");
        check_integrity(&target).unwrap();
    }

    #[test]
    fn odd_tables_copy_with_their_values_classes_and_schema() {
        let source = RusqliteDb::empty().unwrap();
        source
            .execute_script(
                r#"CREATE TABLE "order" ("select" PRIMARY KEY, "quote""d" NOT NULL, n) WITHOUT ROWID;
                   INSERT INTO "order" VALUES (5, 1, 5.0), ('5', x'', -0.0), (x'05', '', 0.1 + 0.2);
                   CREATE TABLE pair (a TEXT COLLATE NOCASE, b INTEGER, c, PRIMARY KEY (a, b DESC)) WITHOUT ROWID;
                   INSERT INTO pair VALUES ('x', 2, 1e308), ('Y', 1, 5e-324), ('y', 2, NULL);
                   CREATE TABLE shadow (rowid TEXT, _rowid_ TEXT, v);
                   INSERT INTO shadow (oid, rowid, _rowid_, v) VALUES (40, 'r', 'u', 9e15);
                   CREATE TABLE audit (what);
                   CREATE TRIGGER logged AFTER INSERT ON "order" BEGIN INSERT INTO audit VALUES (new."select"); END;
                   CREATE VIEW v AS SELECT "select" FROM "order";
                   CREATE INDEX partial ON "order" (n) WHERE n IS NOT NULL;
                   CREATE INDEX expression ON pair (lower(a));"#,
            )
            .unwrap();
        let target = copied(&source);
        assert_eq!(
            digest::digests(&source).unwrap(),
            digest::digests(&target).unwrap()
        );
        let audit: i64 = target
            .query_value("SELECT COUNT(*) FROM audit", &[])
            .unwrap()
            .unwrap();
        assert_eq!(audit, 0, "no trigger fired during the copy");
        let classes: Vec<String> = target
            .query("SELECT typeof(n) FROM \"order\" ORDER BY \"select\"", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0).unwrap())
            .collect();
        assert_eq!(classes, ["real", "real", "real"]);
        let shadowed: i64 = target
            .query_value("SELECT oid FROM shadow", &[])
            .unwrap()
            .unwrap();
        assert_eq!(shadowed, 40, "a hidden rowid survives");
        let negative_zero: f64 = target
            .query_value("SELECT n FROM \"order\" WHERE \"select\" = '5'", &[])
            .unwrap()
            .unwrap();
        assert!(negative_zero == 0.0 && negative_zero.is_sign_negative());
    }

    #[test]
    fn digests_tell_apart_values_that_render_alike() {
        let digest_of = |value: &str| {
            let db = RusqliteDb::empty().unwrap();
            db.execute_script(&format!(
                "CREATE TABLE t (v); INSERT INTO t VALUES ({value})"
            ))
            .unwrap();
            digest::digests(&db).unwrap()
        };
        let values = [
            "5",
            "5.0",
            "'5'",
            "x'35'",
            "0.0",
            "-0.0",
            "0.30000000000000004",
            "0.3",
            "NULL",
            "''",
            "x''",
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert_ne!(digest_of(a), digest_of(b), "{a} vs {b}");
            }
        }
        assert_eq!(digest_of("0.1 + 0.2"), digest_of("0.30000000000000004"));
    }
}
