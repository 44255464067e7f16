//! The wire format of a chunked move's row batches (docs/chunked-moves.md): the rows of one
//! table that follow a key, as [`crate::catalog::read_page`] reads them, exactly
//! (integers as 64 bits, reals by their bits, texts and blobs as bytes, with their classes).
//!
//! Binary, not JSON: a blob travels as itself, not as base64 or an array of numbers, and
//! nothing on the way (JavaScript numbers, UTF-8 decoding) can change a value. The migrator
//! and the object both use this module, so the two ends cannot disagree.
//!
//! Layout, integers big-endian: the table name (`u32` length + UTF-8), the key the rows follow
//! (`u8` 0 = the start of the table, 1 = a key of `u32` cells), the `u32` row count, then each
//! row: `u8` 1 + `i64` rowid or `u8` 0, `u32` cells. A cell is a tag (0 null, 1 integer, 2
//! real, 3 text, 4 blob) and its payload (`i64`, the `f64` bits, or `u32` length + bytes).

use crate::catalog::{Cell, PageRow};
use crate::db::DbError;

/// Rows of one table, after a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub table: String,
    /// The key of the row before the first one (`None`: they start the table).
    pub after: Option<Vec<Cell>>,
    pub rows: Vec<PageRow>,
}

impl Batch {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.rows.iter().map(PageRow::size).sum::<usize>());
        put_bytes(&mut out, self.table.as_bytes());
        out.extend(encode_key(self.after.as_deref()));
        put_u32(&mut out, self.rows.len());
        for row in &self.rows {
            match row.rowid {
                Some(rowid) => {
                    out.push(1);
                    out.extend(rowid.to_be_bytes());
                }
                None => out.push(0),
            }
            put_cells(&mut out, &row.cells);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Batch, DbError> {
        let mut reader = Reader { bytes, at: 0 };
        let table = String::from_utf8(reader.bytes()?.to_vec())
            .map_err(|_| malformed("the table name is not UTF-8"))?;
        let after = reader.key()?;
        let count = reader.u32()?;
        let mut rows = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let rowid = match reader.u8()? {
                0 => None,
                1 => Some(i64::from_be_bytes(reader.array()?)),
                _ => return Err(malformed("a rowid flag is neither 0 nor 1")),
            };
            rows.push(PageRow {
                rowid,
                cells: reader.cells()?,
            });
        }
        if reader.at != bytes.len() {
            return Err(malformed("bytes follow the last row"));
        }
        Ok(Batch { table, after, rows })
    }
}

/// A key as the batch carries it: how a move's cursor is recorded and compared (the same key
/// encodes to the same bytes).
pub fn encode_key(key: Option<&[Cell]>) -> Vec<u8> {
    let mut out = Vec::new();
    match key {
        None => out.push(0),
        Some(cells) => {
            out.push(1);
            put_cells(&mut out, cells);
        }
    }
    out
}

/// The key [`encode_key`] encoded.
pub fn decode_key(bytes: &[u8]) -> Result<Option<Vec<Cell>>, DbError> {
    let mut reader = Reader { bytes, at: 0 };
    let key = reader.key()?;
    if reader.at != bytes.len() {
        return Err(malformed("bytes follow the key"));
    }
    Ok(key)
}

/// Bytes as lowercase hex: how a cursor's key travels in JSON.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of [`hex`]'s text; `None` when it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn malformed(what: &str) -> DbError {
    DbError::failed(format!("a malformed row batch: {what}"))
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend(u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend(bytes);
}

fn put_cells(out: &mut Vec<u8>, cells: &[Cell]) {
    put_u32(out, cells.len());
    for cell in cells {
        match cell {
            Cell::Null => out.push(0),
            Cell::Integer(i) => {
                out.push(1);
                out.extend(i.to_be_bytes());
            }
            Cell::Real(f) => {
                out.push(2);
                out.extend(f.to_bits().to_be_bytes());
            }
            Cell::Text(bytes) => {
                out.push(3);
                put_bytes(out, bytes);
            }
            Cell::Blob(bytes) => {
                out.push(4);
                put_bytes(out, bytes);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DbError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| malformed("it ends too soon"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DbError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DbError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, DbError> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DbError> {
        let n = self.u32()?;
        self.take(n)
    }

    fn key(&mut self) -> Result<Option<Vec<Cell>>, DbError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.cells()?)),
            _ => Err(malformed("a key flag is neither 0 nor 1")),
        }
    }

    fn cells(&mut self) -> Result<Vec<Cell>, DbError> {
        let count = self.u32()?;
        // Each cell takes at least its tag: a count beyond what is left is malformed, and
        // must not reserve memory for it.
        if count > self.bytes.len() - self.at {
            return Err(malformed("more cells than bytes"));
        }
        let mut cells = Vec::with_capacity(count);
        for _ in 0..count {
            cells.push(match self.u8()? {
                0 => Cell::Null,
                1 => Cell::Integer(i64::from_be_bytes(self.array()?)),
                2 => Cell::Real(f64::from_bits(u64::from_be_bytes(self.array()?))),
                3 => Cell::Text(self.bytes()?.to_vec()),
                4 => Cell::Blob(self.bytes()?.to_vec()),
                _ => return Err(malformed("an unknown cell tag")),
            });
        }
        Ok(cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cell() -> impl Strategy<Value = Cell> {
        prop_oneof![
            Just(Cell::Null),
            any::<i64>().prop_map(Cell::Integer),
            any::<u64>().prop_map(|bits| Cell::Real(f64::from_bits(bits))),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Cell::Text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Cell::Blob),
        ]
    }

    fn batch() -> impl Strategy<Value = Batch> {
        let row = (
            proptest::option::of(any::<i64>()),
            proptest::collection::vec(cell(), 0..6),
        )
            .prop_map(|(rowid, cells)| PageRow { rowid, cells });
        (
            "\\PC{0,12}",
            proptest::option::of(proptest::collection::vec(cell(), 0..3)),
            proptest::collection::vec(row, 0..8),
        )
            .prop_map(|(table, after, rows)| Batch { table, after, rows })
    }

    /// Cells compare by their bits: NaN payloads and -0.0 must survive, which `==` on f64 hides.
    fn bits(batch: &Batch) -> Vec<u8> {
        batch.encode()
    }

    proptest! {
        #[test]
        fn every_batch_decodes_to_itself_bit_for_bit(batch in batch()) {
            let decoded = Batch::decode(&batch.encode()).unwrap();
            prop_assert_eq!(bits(&decoded), bits(&batch));
            prop_assert_eq!(decoded.rows.len(), batch.rows.len());
            prop_assert_eq!(&decoded.table, &batch.table);
        }

        #[test]
        fn a_cut_or_extended_batch_is_refused_without_panicking(batch in batch(), cut in 0usize..64, extra in any::<u8>()) {
            let bytes = batch.encode();
            let cut = cut.min(bytes.len());
            if cut > 0 {
                prop_assert!(Batch::decode(&bytes[..bytes.len() - cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(extra);
            prop_assert!(Batch::decode(&longer).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Batch::decode(&bytes);
            let _ = decode_key(&bytes);
        }
    }

    #[test]
    fn equal_keys_encode_alike_and_different_ones_do_not() {
        let a = [Cell::Integer(5), Cell::Text(b"x".to_vec())];
        assert_eq!(encode_key(Some(&a)), encode_key(Some(&a.clone())));
        assert_ne!(encode_key(Some(&a)), encode_key(None));
        assert_ne!(
            encode_key(Some(&[Cell::Integer(5)])),
            encode_key(Some(&[Cell::Real(5.0)]))
        );
        assert_eq!(decode_key(&encode_key(Some(&a))).unwrap(), Some(a.to_vec()));
        let bytes = encode_key(Some(&a));
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
