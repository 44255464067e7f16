//! The one place that decides "same data": a digest of every user table, computed in Rust from
//! typed values (integers as 64 bits, reals by their exact bits, texts and blobs as bytes, NULL),
//! in key order, plus the user's schema and AUTOINCREMENT counters, and SQLite's `quick_check`.
//!
//! Nothing is rendered by SQLite: two SQLite versions print 0.1 + 0.2 differently (the object's
//! and the bundled one did), but they store the same bits, and the bits are what is hashed.

use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest, Sha256};

use crate::catalog::{for_each_page, sequences, Catalog, Cell, PageRow};
use crate::db::{Db, DbError};

/// A table's rows and checksum (the admin API's type: move reports list them).
pub use admin_api::TableDigest;

/// The pseudo-tables a digest adds to the user's tables.
const SCHEMA: &str = "(schema)";
const SEQUENCES: &str = "(sqlite_sequence)";

/// Feeds typed values into a hash, each tagged with its class and length, so that no two
/// different rows encode alike (integer 5, real 5.0 and text '5' differ; so do 0.0 and -0.0).
#[derive(Default)]
pub struct TableHasher {
    hasher: Sha256,
    rows: u64,
}

impl TableHasher {
    /// Rows as [`for_each_page`] reads them, in key order: the rowid (rowid tables), then the
    /// columns.
    pub fn page(&mut self, page: &[PageRow]) {
        for row in page {
            if let Some(rowid) = row.rowid {
                self.cell(&Cell::Integer(rowid));
            }
            row.cells.iter().for_each(|cell| self.cell(cell));
            self.end_row();
        }
    }

    fn cell(&mut self, cell: &Cell) {
        match cell {
            Cell::Null => self.hasher.update([0]),
            Cell::Integer(i) => {
                self.hasher.update([1]);
                self.hasher.update(i.to_be_bytes());
            }
            Cell::Real(f) => {
                self.hasher.update([2]);
                self.hasher.update(f.to_bits().to_be_bytes());
            }
            Cell::Text(bytes) => self.bytes(3, bytes),
            Cell::Blob(bytes) => self.bytes(4, bytes),
        }
    }

    /// The hasher's state as bytes (SHA-256's state, then the row count): a chunked move keeps
    /// it between invocations and [`Self::restore`]s it, so that the digest of a table moved in
    /// many batches is exactly the digest of the table read at once.
    pub fn save(&self) -> Vec<u8> {
        let mut bytes = self.hasher.serialize().to_vec();
        bytes.extend(self.rows.to_be_bytes());
        bytes
    }

    /// The hasher [`Self::save`] saved.
    pub fn restore(saved: &[u8]) -> Result<Self, DbError> {
        let damaged = || DbError::failed("a saved digest state is damaged");
        let (state, rows) = saved.split_last_chunk::<8>().ok_or_else(damaged)?;
        let state = SerializedState::<Sha256>::try_from(state).map_err(|_| damaged())?;
        Ok(TableHasher {
            hasher: Sha256::deserialize(&state).map_err(|_| damaged())?,
            rows: u64::from_be_bytes(*rows),
        })
    }

    fn bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.hasher.update([tag]);
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(bytes);
    }

    fn end_row(&mut self) {
        self.hasher.update([0xff]);
        self.rows += 1;
    }

    pub fn finish(self, name: impl Into<String>) -> TableDigest {
        TableDigest {
            name: name.into(),
            rows: self.rows,
            checksum: self
                .hasher
                .finalize()
                .iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }
}

/// The digest of every user table of `db` (by name), of its schema and of its counters.
pub fn digests(db: &impl Db) -> Result<Vec<TableDigest>, DbError> {
    let catalog = Catalog::read(db)?;
    let mut tables = Vec::new();
    for table in catalog.row_tables() {
        let mut hasher = TableHasher::default();
        for_each_page(db, table, |page| {
            hasher.page(page);
            Ok(())
        })?;
        tables.push(hasher.finish(&table.name));
    }
    with_schema(db, &catalog, tables)
}

/// The tables' digests (one per row table of `catalog`, read from `db`), sorted by name, with
/// the digests of the schema and the counters added.
pub fn with_schema(
    db: &impl Db,
    catalog: &Catalog,
    tables: Vec<TableDigest>,
) -> Result<Vec<TableDigest>, DbError> {
    let mut out = tables;
    out.sort_by(|a, b| a.name.cmp(&b.name));

    let mut schema = TableHasher::default();
    let mut entries: Vec<[String; 3]> = catalog
        .tables
        .iter()
        .map(|t| ["table".to_owned(), t.name.clone(), t.sql.clone()])
        .chain(
            catalog
                .others
                .iter()
                .map(|o| [o.kind.clone(), o.name.clone(), o.sql.clone()]),
        )
        .collect();
    entries.sort();
    for entry in &entries {
        entry
            .iter()
            .for_each(|text| schema.cell(&Cell::Text(text.clone().into_bytes())));
        schema.end_row();
    }
    out.push(schema.finish(SCHEMA));

    let mut counters = TableHasher::default();
    for (name, seq) in sequences(db)? {
        counters.cell(&Cell::Text(name.into_bytes()));
        counters.cell(&Cell::Integer(seq));
        counters.end_row();
    }
    out.push(counters.finish(SEQUENCES));
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rows(values: &[i64]) -> Vec<PageRow> {
        values
            .iter()
            .map(|&v| PageRow {
                rowid: Some(v),
                cells: vec![Cell::Integer(v), Cell::Text(v.to_string().into_bytes())],
            })
            .collect()
    }

    proptest! {
        /// A table moved in batches, its hasher saved and restored between them (as the object
        /// keeps it between invocations), digests exactly as the table read at once.
        #[test]
        fn a_digest_saved_and_restored_between_batches_equals_the_digest_at_once(
            values in proptest::collection::vec(any::<i64>(), 0..200),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut whole = TableHasher::default();
            whole.page(&rows(&values));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (values.len() + 1)).collect();
            cuts.push(values.len());
            cuts.sort_unstable();
            let mut saved = TableHasher::default().save();
            let mut start = 0;
            for cut in cuts {
                let mut hasher = TableHasher::restore(&saved).unwrap();
                hasher.page(&rows(&values[start..cut]));
                saved = hasher.save();
                start = cut;
            }
            prop_assert_eq!(TableHasher::restore(&saved).unwrap().finish("t"), whole.finish("t"));
        }
    }

    #[test]
    fn a_damaged_saved_state_is_an_error_not_a_wrong_digest() {
        let saved = TableHasher::default().save();
        assert!(TableHasher::restore(&saved[..saved.len() - 1]).is_err());
        assert!(TableHasher::restore(&[]).is_err());
    }
}
