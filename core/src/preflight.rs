//! Before any move, a read-only pass that finds everything the destination cannot hold, so that
//! a move that would fail half way is refused before it starts, with a reason an operator can
//! act on, and the user stays where they are.
//!
//! Into the object ([`into_object`]): the platform's limits (integers beyond JavaScript's safe
//! range, values and rows over 2 MB, statements over 100 bound values or 100 KB, names it
//! reserves), what this copy cannot address (virtual tables, rowids shadowed by columns), text
//! that is not UTF-8, and damage. Into an R2 file ([`into_r2_file`]): what the R2 path cannot
//! open (a file over its size ceiling).

use crate::catalog::{for_each_page, Catalog, Cell, RowKey, Table};
use crate::copy::MAX_PARAMETERS;
use crate::db::{check_integrity, Db, DbError, MAX_SAFE_INTEGER};

/// One kind of thing the destination cannot hold (the admin API's type: preflight reports and
/// `not_migratable` errors list them).
pub use admin_api::Problem;

/// The object refuses a string, blob or row larger than this.
pub const MAX_VALUE_BYTES: usize = 2_000_000;
/// The object refuses statements longer than this (a `CREATE` copied verbatim is one).
const MAX_STATEMENT_BYTES: usize = 100_000;

/// Collects problems, one entry per (reason, table, column), keeping the first row seen.
#[derive(Default)]
struct Findings(Vec<Problem>);

impl Findings {
    fn add(
        &mut self,
        reason: &str,
        table: Option<&Table>,
        column: Option<&str>,
        row: Option<(Option<i64>, String)>,
    ) {
        let table_name = table.map(|t| t.name.clone());
        let column = column.map(str::to_owned);
        if let Some(problem) = self
            .0
            .iter_mut()
            .find(|p| p.reason == reason && p.table == table_name && p.column == column)
        {
            problem.count += 1;
            return;
        }
        let (rowid, row) = match row {
            Some((rowid, words)) => (rowid, Some(words)),
            None => (None, None),
        };
        self.0.push(Problem {
            reason: reason.to_owned(),
            table: table_name,
            column,
            rowid,
            row,
            count: 1,
        });
    }
}

/// What in a database (an R2 file about to move) the object cannot hold; empty when it can move.
pub fn into_object(db: &impl Db) -> Result<Vec<Problem>, DbError> {
    let mut found = Findings::default();
    if let Err(damage) = check_integrity(db) {
        found.add(&format!("the file is damaged ({damage})"), None, None, None);
        return Ok(found.0);
    }
    let encoding: Option<String> = db.query_value("PRAGMA encoding", &[])?;
    if encoding.as_deref() != Some("UTF-8") {
        let encoding = encoding.unwrap_or_default();
        found.add(
            &format!("text encoding {encoding}, not UTF-8"),
            None,
            None,
            None,
        );
    }
    let catalog = Catalog::read(db)?;
    for name in &catalog.runtime_tables {
        if !name.to_ascii_lowercase().starts_with("sqlite_") {
            let reason = format!("table {name} has a name the platform or the object reserves");
            found.add(&reason, None, None, None);
        }
    }
    let statements = catalog
        .tables
        .iter()
        .map(|t| (&t.name, &t.sql))
        .chain(catalog.others.iter().map(|o| (&o.name, &o.sql)));
    for (name, sql) in statements {
        if sql.len() > MAX_STATEMENT_BYTES {
            let reason = format!("the definition of {name} is over {MAX_STATEMENT_BYTES} bytes");
            found.add(&reason, None, None, None);
        }
    }
    for table in &catalog.tables {
        if table.is_virtual() {
            found.add(
                "a virtual table, whose rows this copy cannot address",
                Some(table),
                None,
                None,
            );
            continue;
        }
        if table.key == RowKey::Unreachable {
            found.add(
                "columns named rowid, _rowid_ and oid hide the rowid",
                Some(table),
                None,
                None,
            );
            continue;
        }
        // One row is one INSERT: its values, and the hidden rowid, must fit the bound values.
        if table.columns.len() + 1 > MAX_PARAMETERS {
            let reason = format!(
                "{} columns; at most {} can be copied",
                table.columns.len(),
                MAX_PARAMETERS - 1
            );
            found.add(&reason, Some(table), None, None);
            continue;
        }
        scan_values(db, table, &mut found)?;
    }
    Ok(found.0)
}

fn scan_values(db: &impl Db, table: &Table, found: &mut Findings) -> Result<(), DbError> {
    for_each_page(db, table, |page| {
        for row in page {
            let at = || Some((row.rowid, table.describe_row(row)));
            if row.rowid.is_some_and(|id| id.abs() > MAX_SAFE_INTEGER) {
                found.add("a rowid outside ±(2^53 − 1)", Some(table), None, at());
            }
            for (cell, column) in row.cells.iter().zip(&table.columns) {
                let column = Some(column.as_str());
                match cell {
                    Cell::Integer(i) if i.checked_abs().is_none_or(|i| i > MAX_SAFE_INTEGER) => {
                        found.add("an integer outside ±(2^53 − 1)", Some(table), column, at());
                    }
                    Cell::Text(bytes) if std::str::from_utf8(bytes).is_err() => {
                        found.add("text that is not valid UTF-8", Some(table), column, at());
                    }
                    _ => {}
                }
                if cell.size() > MAX_VALUE_BYTES {
                    let reason = format!("a value over {MAX_VALUE_BYTES} bytes");
                    found.add(&reason, Some(table), column, at());
                }
            }
            if row.size() > MAX_VALUE_BYTES && row.cells.iter().all(|c| c.size() <= MAX_VALUE_BYTES)
            {
                let reason = format!("a row over {MAX_VALUE_BYTES} bytes");
                found.add(&reason, Some(table), None, at());
            }
        }
        Ok(())
    })
}

/// What keeps an export of `size` bytes from being served by the R2 path, which opens files up
/// to `max_bytes`; empty when it can move.
pub fn into_r2_file(size: u64, max_bytes: u64) -> Vec<Problem> {
    let mut found = Findings::default();
    if size > max_bytes {
        let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let reason = format!(
            "the database is {:.1} MB as a file, more than the {:.1} MB the R2 path opens",
            mb(size),
            mb(max_bytes)
        );
        found.add(&reason, None, None, None);
    }
    found.0
}

/// One sentence for a refused move: the first problem, and how many more kinds there are.
pub fn summary(problems: &[Problem]) -> String {
    match problems {
        [] => "nothing stands in the way".into(),
        [only] => only.to_string(),
        [first, rest @ ..] => format!("{first}; and {} more kinds of problem", rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::apply_migrations;
    use crate::db::rusqlite_db::RusqliteDb;
    use crate::preflight;

    fn app_database() -> RusqliteDb {
        let db = RusqliteDb::empty().unwrap();
        apply_migrations(&db).unwrap();
        db
    }

    #[test]
    fn preflight_names_what_the_object_cannot_hold_and_where() {
        let db = RusqliteDb::empty().unwrap();
        db.execute_script(
            "CREATE TABLE t (a, b);
             INSERT INTO t (rowid, a, b) VALUES (1, 1, 2), (7, 9007199254740992, 2), (8, -9223372036854775808, 2);
             INSERT INTO t (rowid, a, b) VALUES (9, CAST(x'ff00' AS TEXT), zeroblob(2000001));
             CREATE TABLE _cf_mine (x);",
        )
        .unwrap();
        let problems = preflight::into_object(&db).unwrap();
        let integers = problems
            .iter()
            .find(|p| p.reason.contains("integer"))
            .expect("the big integers");
        assert_eq!(
            (integers.column.as_deref(), integers.rowid, integers.count),
            (Some("a"), Some(7), 2)
        );
        assert!(problems
            .iter()
            .any(|p| p.reason.contains("UTF-8") && p.rowid == Some(9)));
        assert!(problems
            .iter()
            .any(|p| p.reason.contains("value over") && p.column.as_deref() == Some("b")));
        assert!(problems.iter().any(|p| p.reason.contains("_cf_mine")));

        let fine = app_database();
        fine.execute(
            "INSERT INTO games (name) VALUES (?)",
            &[(0.1 + 0.2).to_string().into()],
        )
        .unwrap();
        assert_eq!(preflight::into_object(&fine).unwrap(), Vec::new());
    }
}
