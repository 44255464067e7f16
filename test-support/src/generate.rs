//! Adversarial SQLite databases for testing anything that copies one: a proptest generator
//! ([`database_spec`], [`build`]) and a reference reader ([`contents`]) that compares two files
//! value by value, typed and bit-exact.
//!
//! **What it covers.** Tables nobody chose: rowid tables without a key, with an `INTEGER PRIMARY
//! KEY` (inline, `AUTOINCREMENT` with deleted rows so that `sqlite_sequence` runs ahead of the
//! rows, or as a table constraint `PRIMARY KEY ("id" DESC)`, which is still the rowid), with
//! `INTEGER PRIMARY KEY DESC` (which is *not* the rowid) and with text or composite keys beside
//! a hidden rowid; `WITHOUT ROWID` tables with single and composite keys of any storage class,
//! some `DESC`, some `COLLATE NOCASE`. Columns untyped, `INTEGER`, `REAL`, `TEXT`, `BLOB`,
//! `NUMERIC` and odd declarations whose affinity surprises (`VARCHAR(10)`, `DOUBLE PRECISION`,
//! `BOOLEAN`, `DATETIME`, `STRING` is NUMERIC, `FLOATING POINT` is INTEGER); keyword, quoted,
//! spaced and non-ASCII names, columns named `rowid` and `oid`; `NOT NULL`, `DEFAULT`, `UNIQUE`
//! and `CHECK` constraints the rows satisfy; `REFERENCES` that the rows violate (declared, never
//! enforced, as in the app; some name a table that does not exist); unique, partial and
//! expression indexes; views; `AFTER INSERT` triggers that write to audit tables
//! ([`TriggerSpec`] names both, so a test can tell whether a copy fired them). Values of every
//! storage class wherever the column's affinity keeps them as they are: floats with 17
//! significant digits, subnormals, ±infinity, -0.0, whole floats in untyped and REAL columns,
//! integers up to ±(2^53−1), empty, NUL-laden, control-character, non-ASCII, number-like and long
//! texts, empty, zero and random blobs, NULLs (also in columns with a `DEFAULT`, where a copy that
//! leaves out NULLs gets the default). Page sizes from 512 to 65536 bytes.
//! [`database_spec_with_offenders`] adds what the Durable Object cannot hold, each recorded as an
//! [`Offender`] with its place.
//!
//! Everything is drawn by composed strategies, so a failing case shrinks: to fewer tables, rows
//! and columns and to smaller values (a column keeps its declared type, see
//! [`columns_with_values`]).
//!
//! **What it does not, and why.** Values are only those that keep their storage class in their
//! column: SQLite converts the rest on insert (5.0 in an INTEGER column is the integer 5; -0.0 in
//! a REAL column is +0.0; '05' in a NUMERIC column is 5), so a spec holding them would not be
//! what the file holds, and the file is all a copy ever sees. Ordinary specs stay within the
//! Durable Object's known limits, so that a test can expect a move to succeed: integers beyond
//! ±(2^53−1), values over 2 MB, invalid UTF-8 and virtual tables come only as offenders. Not
//! generated, because the existing app never creates them: `STRICT` tables, generated columns,
//! UTF-16 databases, `sqlite_stat1`. Nor the app's own tables (the Worker's migrations would
//! adopt a generated table of the same name; tests that need the app's data use the harness's
//! `realistic_database`), nor tables whose rowid no name reaches (columns named `rowid`, `oid`
//! *and* `_rowid_`): no copy can keep such rowids. [`DatabaseSpec::expected_contents`] leaves out
//! the shadow tables of virtual tables, whose rows belong to the module; the reader leaves out
//! automatic indexes (their table's `CREATE` decides them) and every `sqlite_*` table but
//! `sqlite_sequence`.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};
use proptest::strategy::Union;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

/// The largest integer a JavaScript number holds exactly: 2^53 − 1.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The Durable Object's limit on one value, and on one row: 2,000,000 bytes.
pub const DURABLE_OBJECT_VALUE_LIMIT: usize = 2_000_000;

// ---------------------------------------------------------------------------------------------
// Values

/// One value as SQLite stores it: its storage class and its exact bits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Null,
    Integer(i64),
    /// The bit pattern of the float, so that -0.0 ≠ 0.0 and equality is exact.
    Real(u64),
    /// The raw bytes, which need not be valid UTF-8.
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Value {
    pub fn real(x: f64) -> Self {
        Value::Real(x.to_bits())
    }

    pub fn text(text: &str) -> Self {
        Value::Text(text.as_bytes().to_vec())
    }

    pub fn class(&self) -> StorageClass {
        match self {
            Value::Null => StorageClass::Null,
            Value::Integer(_) => StorageClass::Integer,
            Value::Real(_) => StorageClass::Real,
            Value::Text(_) => StorageClass::Text,
            Value::Blob(_) => StorageClass::Blob,
        }
    }

    /// Bytes of text or blob; 0 for the others. What the Durable Object's size limits count.
    pub fn byte_len(&self) -> usize {
        match self {
            Value::Text(bytes) | Value::Blob(bytes) => bytes.len(),
            _ => 0,
        }
    }

    fn from_ref(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(x) => Value::real(x),
            ValueRef::Text(bytes) => Value::Text(bytes.to_vec()),
            ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
        }
    }

    /// The value as a literal in SQL text.
    fn literal(&self) -> String {
        match self {
            Value::Null => "NULL".to_owned(),
            Value::Integer(i) => i.to_string(),
            Value::Real(bits) => {
                let x = f64::from_bits(*bits);
                if x.is_infinite() {
                    // SQLite reads a literal beyond the largest double as infinity.
                    if x > 0.0 { "9e999" } else { "-9e999" }.to_owned()
                } else {
                    format!("{x:?}")
                }
            }
            // A NUL would end the statement's text: such texts are written as bytes.
            Value::Text(bytes) if bytes.contains(&0) => {
                format!("(CAST(X'{}' AS TEXT))", hex(bytes))
            }
            Value::Text(bytes) => quote_literal(&String::from_utf8_lossy(bytes)),
            Value::Blob(bytes) => format!("X'{}'", hex(bytes)),
        }
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        // Text is bound as bytes, unchecked: invalid UTF-8 is stored as it is.
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(bits) => ValueRef::Real(f64::from_bits(*bits)),
            Value::Text(bytes) => ValueRef::Text(bytes),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

/// Values longer than this are shown abbreviated, with their length and a hash.
const SHOWN_BYTES: usize = 48;

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "Null"),
            Value::Integer(i) => write!(f, "Integer({i})"),
            Value::Real(bits) => write!(f, "Real({:?})", f64::from_bits(*bits)),
            Value::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) if bytes.len() <= SHOWN_BYTES => write!(f, "Text({text:?})"),
                Ok(_) => {
                    let shown: String = String::from_utf8_lossy(&bytes[..SHOWN_BYTES]).into();
                    write!(
                        f,
                        "Text({shown:?}… {} bytes, {})",
                        bytes.len(),
                        digest(bytes)
                    )
                }
                Err(_) => write!(f, "Text(invalid UTF-8 {})", shown_bytes(bytes)),
            },
            Value::Blob(bytes) => write!(f, "Blob({})", shown_bytes(bytes)),
        }
    }
}

fn shown_bytes(bytes: &[u8]) -> String {
    if bytes.len() <= SHOWN_BYTES {
        format!("x'{}'", hex(bytes))
    } else {
        let start = hex(&bytes[..SHOWN_BYTES / 2]);
        format!("x'{start}…' {} bytes, {}", bytes.len(), digest(bytes))
    }
}

/// FNV-1a: tells two long values apart in a message, nothing more.
fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("fnv {hash:016x}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageClass {
    Null,
    Integer,
    Real,
    Text,
    Blob,
}

impl StorageClass {
    pub const ALL: [StorageClass; 5] = [
        StorageClass::Null,
        StorageClass::Integer,
        StorageClass::Real,
        StorageClass::Text,
        StorageClass::Blob,
    ];

    /// What SQL's `typeof()` answers.
    pub fn type_name(self) -> &'static str {
        match self {
            StorageClass::Null => "null",
            StorageClass::Integer => "integer",
            StorageClass::Real => "real",
            StorageClass::Text => "text",
            StorageClass::Blob => "blob",
        }
    }
}

/// A column's type affinity, decided by its declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

impl Affinity {
    /// SQLite's rules (datatype3.html §3.1), in their order: the first that matches decides, so
    /// `FLOATING POINT` is INTEGER ("INT") and `STRING` is NUMERIC.
    pub fn of(declared_type: Option<&str>) -> Self {
        let Some(declared) = declared_type else {
            return Affinity::Blob;
        };
        let upper = declared.to_ascii_uppercase();
        if upper.contains("INT") {
            Affinity::Integer
        } else if ["CHAR", "CLOB", "TEXT"].iter().any(|s| upper.contains(s)) {
            Affinity::Text
        } else if upper.contains("BLOB") || upper.is_empty() {
            Affinity::Blob
        } else if ["REAL", "FLOA", "DOUB"].iter().any(|s| upper.contains(s)) {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    /// The storage classes a value can keep in a column of this affinity.
    pub fn keeps(self, class: StorageClass) -> bool {
        match self {
            Affinity::Blob | Affinity::Integer | Affinity::Numeric => true,
            Affinity::Real => class != StorageClass::Integer,
            Affinity::Text => !matches!(class, StorageClass::Integer | StorageClass::Real),
        }
    }
}

/// Whether SQLite stores `value` in a column of this affinity exactly as it is, class and bits.
pub fn persists(affinity: Affinity, value: &Value) -> bool {
    if !affinity.keeps(value.class()) {
        return false;
    }
    match value {
        Value::Real(bits) => {
            let x = f64::from_bits(*bits);
            match affinity {
                _ if x.is_nan() => false,
                // A REAL column stores a whole float as an integer on disk and turns it back into
                // a float when read: -0.0 comes back as 0.0.
                Affinity::Real => *bits != (-0.0_f64).to_bits(),
                // INTEGER and NUMERIC columns keep a whole float within i64 as an integer.
                Affinity::Integer | Affinity::Numeric => !whole_within_i64(x),
                _ => true,
            }
        }
        Value::Text(bytes) => match affinity {
            Affinity::Integer | Affinity::Numeric | Affinity::Real => !looks_numeric(bytes),
            _ => true,
        },
        _ => true,
    }
}

/// 2^63 as a float: the first float beyond i64.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// SQLite's test for turning a float into an integer (`sqlite3VdbeIntegerAffinity`): whole, and
/// strictly between i64::MIN and i64::MAX.
fn whole_within_i64(x: f64) -> bool {
    x.fract() == 0.0 && x > -TWO_POW_63 && x < TWO_POW_63
}

/// Whether a column of NUMERIC, INTEGER or REAL affinity would read this text as a number: an
/// integer or decimal literal with an optional exponent, between SQLite's whitespace, up to the
/// first NUL ('5\0x' is stored as 5). Hexadecimal, 'Infinity', '1e' and '١' stay text.
pub fn looks_numeric(text: &[u8]) -> bool {
    let text = text.split(|byte| *byte == 0).next().unwrap_or_default();
    let space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = text.iter().position(|b| !space(b)).unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !space(b))
        .map_or(start, |i| i + 1);
    let text = &text[start..end];
    let mut i = 0;
    let digits = |i: &mut usize| {
        let from = *i;
        while text.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    if matches!(text.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut mantissa = digits(&mut i);
    if text.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == text.len()
}

/// A value as a UNIQUE constraint sees it: numbers by value (5 = 5.0, -0.0 = 0), text by the
/// column's collation, NULL never equal to anything (so it has no key).
#[derive(Clone, PartialEq, Eq, Hash)]
enum UniqueKey {
    Integer(i64),
    Real(u64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

fn unique_key(value: &Value, nocase: bool) -> Option<UniqueKey> {
    Some(match value {
        Value::Null => return None,
        Value::Integer(i) => UniqueKey::Integer(*i),
        Value::Real(bits) => {
            let x = f64::from_bits(*bits);
            if whole_within_i64(x) || x == -TWO_POW_63 {
                UniqueKey::Integer(x as i64)
            } else {
                UniqueKey::Real(*bits)
            }
        }
        Value::Text(bytes) if nocase => UniqueKey::Text(bytes.to_ascii_lowercase()),
        Value::Text(bytes) => UniqueKey::Text(bytes.clone()),
        Value::Blob(bytes) => UniqueKey::Blob(bytes.clone()),
    })
}

/// SQLite's order of values (datatype3.html §4.1): NULL, numbers by value, text by collation
/// (NOCASE folds ASCII only), blobs by bytes.
fn sqlite_order(a: &Value, b: &Value, nocase: bool) -> Ordering {
    fn rank(value: &Value) -> u8 {
        match value {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Real(x), Value::Real(y)) => float_order(f64::from_bits(*x), f64::from_bits(*y)),
        (Value::Integer(i), Value::Real(r)) => integer_float_order(*i, f64::from_bits(*r)),
        (Value::Real(r), Value::Integer(i)) => {
            integer_float_order(*i, f64::from_bits(*r)).reverse()
        }
        (Value::Text(x), Value::Text(y)) if nocase => {
            x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase())
        }
        (Value::Text(x), Value::Text(y)) | (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Floats by value: -0.0 equals 0.0 (never NaN here: SQLite stores NaN as NULL).
fn float_order(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).expect("no NaN in a SQLite value")
}

/// An integer against a float, exactly (as SQLite's `sqlite3IntFloatCompare`).
fn integer_float_order(i: i64, r: f64) -> Ordering {
    if r >= TWO_POW_63 {
        Ordering::Less
    } else if r < -TWO_POW_63 {
        Ordering::Greater
    } else {
        let whole = r.trunc();
        i.cmp(&(whole as i64))
            .then_with(|| float_order(0.0, r - whole))
    }
}

/// The seed every property test uses unless `PROPTEST_RNG_SEED` names another, so that CI sees
/// the same databases every run.
pub const SEED: u64 = 20261122;

/// A proptest configuration of `cases` cases (unless `PROPTEST_CASES` says otherwise) on the fixed
/// [`SEED`], persisting nothing.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, RngSeed};
    let defaults = Config::default(); // reads PROPTEST_CASES and PROPTEST_RNG_SEED
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            cases
        },
        rng_seed: match defaults.rng_seed {
            RngSeed::Random => RngSeed::Fixed(SEED),
            chosen => chosen,
        },
        failure_persistence: None,
        ..defaults
    }
}

/// `spec` with one bit flipped in one non-NULL value outside every key (so the changed row clashes
/// with no other), chosen by `cell` and `bit`; with the place changed (table, row, column).
/// `None` when there is no such value, or when the flipped value would not keep its storage class
/// in its column.
pub fn with_one_bit_flipped(
    spec: &DatabaseSpec,
    cell: Index,
    bit: Index,
) -> Option<(DatabaseSpec, (usize, usize, usize))> {
    let cells: Vec<(usize, usize, usize)> = spec
        .tables
        .iter()
        .enumerate()
        .flat_map(|(t, table)| {
            let columns = (0..table.columns.len()).filter(|&c| !table.is_key_column(c));
            columns.flat_map(move |c| (0..table.rows.len()).map(move |r| (t, r, c)))
        })
        .filter(|&(t, r, c)| spec.tables[t].rows[r].values[c] != Value::Null)
        .collect();
    if cells.is_empty() {
        return None;
    }
    let (t, r, c) = *cell.get(&cells);
    let table = &spec.tables[t];
    let flipped = flip_one_bit(&table.rows[r].values[c], bit)
        .filter(|value| persists(table.columns[c].affinity(), value))?;
    let mut changed = spec.clone();
    changed.tables[t].rows[r].values[c] = flipped;
    Some((changed, (t, r, c)))
}

/// The same value with one bit flipped, if it has bits to flip.
fn flip_one_bit(value: &Value, bit: Index) -> Option<Value> {
    let flip_bytes = |bytes: &[u8]| {
        let mut bytes = bytes.to_vec();
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        bytes
    };
    match value {
        Value::Null => None,
        Value::Integer(n) => Some(Value::Integer(n ^ (1_i64 << bit.index(64)))),
        Value::Real(bits) => Some(Value::Real(bits ^ (1_u64 << bit.index(64)))),
        Value::Text(bytes) | Value::Blob(bytes) if bytes.is_empty() => None,
        Value::Text(bytes) => Some(Value::Text(flip_bytes(bytes))),
        Value::Blob(bytes) => Some(Value::Blob(flip_bytes(bytes))),
    }
}

// ---------------------------------------------------------------------------------------------
// The spec

/// The size knob.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Generated tables, before the audit tables of triggers and the tables of offenders.
    pub max_tables: usize,
    /// Rows per table, counting the deleted ones.
    pub max_rows: usize,
    /// The longest text or blob.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tables: 4,
            max_rows: 20,
            max_value_bytes: 3000,
        }
    }
}

/// A whole database: [`build`] makes the file, [`DatabaseSpec::expected_contents`] says what
/// [`contents`] must read from it.
#[derive(Clone, Debug)]
pub struct DatabaseSpec {
    pub page_size: u32,
    /// In creation order; audit and offender tables included.
    pub tables: Vec<TableSpec>,
    pub views: Vec<ViewSpec>,
    pub triggers: Vec<TriggerSpec>,
    pub virtual_tables: Vec<VirtualTableSpec>,
    /// What the Durable Object cannot hold, and where it is. Empty unless made by
    /// [`database_spec_with_offenders`].
    pub offenders: Vec<Offender>,
}

#[derive(Clone, Debug)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
    pub key: TableKey,
    /// The rows the file holds, in the order [`contents`] reads them (by rowid, or by key).
    pub rows: Vec<Row>,
    /// Rows inserted and then deleted: they leave free space, and with AUTOINCREMENT a
    /// `sqlite_sequence` ahead of the rows.
    pub deleted: Vec<Row>,
    pub indexes: Vec<IndexSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// For rowid tables; equal to the alias column's value when there is one.
    pub rowid: Option<i64>,
    /// One per column.
    pub values: Vec<Value>,
}

#[derive(Clone, Debug)]
pub struct ColumnSpec {
    pub name: String,
    /// `None`: no declared type, so BLOB affinity, and every value keeps its own class.
    pub declared_type: Option<String>,
    /// The classes its values are drawn from, all of which the column keeps.
    pub classes: Vec<StorageClass>,
    pub not_null: bool,
    pub unique: bool,
    pub nocase: bool,
    /// `CHECK (typeof("c") IN (<classes>))`: a copy that changes a class breaks it.
    pub check_classes: bool,
    pub default: Option<ColumnDefault>,
    /// `REFERENCES "table"`: declared, never enforced, and the values reference nothing (the
    /// table may not even exist). A copy with foreign keys on fails.
    pub references: Option<String>,
}

impl ColumnSpec {
    pub fn affinity(&self) -> Affinity {
        Affinity::of(self.declared_type.as_deref())
    }
}

#[derive(Clone, Debug)]
pub enum ColumnDefault {
    Value(Value),
    CurrentTimestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPart {
    pub column: usize,
    pub descending: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableKey {
    /// No primary key: a hidden rowid.
    Rowid,
    /// The column is the rowid under another name.
    Alias {
        column: usize,
        form: AliasForm,
    },
    /// `INTEGER PRIMARY KEY DESC` on the column: by a documented quirk *not* the rowid, but a
    /// unique key (which, another quirk, allows NULLs) beside a hidden rowid.
    IntegerPrimaryKeyDesc {
        column: usize,
    },
    /// A primary key that is not the rowid (text, composite): a hidden rowid, NULLs allowed.
    PrimaryKey(Vec<KeyPart>),
    WithoutRowid(Vec<KeyPart>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AliasForm {
    /// `"id" INTEGER PRIMARY KEY`
    Inline,
    /// `"id" INTEGER PRIMARY KEY AUTOINCREMENT`
    Autoincrement,
    /// `"id" INTEGER, …, PRIMARY KEY ("id" [DESC])`: the rowid too, even with DESC.
    TableConstraint { descending: bool },
}

#[derive(Clone, Debug)]
pub struct IndexSpec {
    pub name: String,
    pub kind: IndexKind,
    pub columns: Vec<usize>,
    pub unique: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// On the columns; the first descending when `descending`.
    Columns { descending: bool },
    /// `… WHERE "c" IS NOT NULL`
    Partial,
    /// `(lower("c"))`, never unique.
    Lower,
}

#[derive(Clone, Debug)]
pub struct ViewSpec {
    pub name: String,
    pub table: String,
    pub columns: Vec<String>,
}

/// `AFTER INSERT ON table` writing one row to `audit` per insert. A copy that creates it before
/// copying the rows of `table` adds rows to `audit`.
#[derive(Clone, Debug)]
pub struct TriggerSpec {
    pub name: String,
    pub table: String,
    pub audit: String,
}

/// An FTS5 table: the platform's SQLite may lack the module, and its shadow tables are not data.
#[derive(Clone, Debug)]
pub struct VirtualTableSpec {
    pub name: String,
    pub rows: Vec<(i64, String, String)>,
}

/// Something the Durable Object cannot hold, where it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Offender {
    pub kind: OffenderKind,
    pub table: String,
    /// For values; `None` for a whole row or table.
    pub column: Option<String>,
    /// The row; `None` for a whole table.
    pub rowid: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffenderKind {
    /// An integer beyond ±(2^53 − 1): JavaScript would round it.
    UnsafeInteger,
    /// Over 2,000,000 bytes.
    OversizedText,
    OversizedBlob,
    /// Values each under 2,000,000 bytes, together over.
    OversizedRow,
    /// A text value whose bytes are not UTF-8.
    InvalidUtf8Text,
    /// A table whose name starts with `_cf_`, reserved by the platform.
    ReservedTableName,
    VirtualTable,
    /// More than 100 columns.
    TooManyColumns,
}

impl OffenderKind {
    pub const ALL: [OffenderKind; 8] = [
        OffenderKind::UnsafeInteger,
        OffenderKind::OversizedText,
        OffenderKind::OversizedBlob,
        OffenderKind::OversizedRow,
        OffenderKind::InvalidUtf8Text,
        OffenderKind::ReservedTableName,
        OffenderKind::VirtualTable,
        OffenderKind::TooManyColumns,
    ];
}

// ---------------------------------------------------------------------------------------------
// SQL text

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// SQLite's names for the rowid; the first no column shadows reaches it.
const ROWID_NAMES: [&str; 3] = ["_rowid_", "rowid", "oid"];

impl TableSpec {
    pub fn has_rowid(&self) -> bool {
        !matches!(self.key, TableKey::WithoutRowid(_))
    }

    /// The alias column of the rowid, if any.
    pub fn alias(&self) -> Option<usize> {
        match self.key {
            TableKey::Alias { column, .. } => Some(column),
            _ => None,
        }
    }

    /// Whether the rowid is no column, so [`contents`] reads it as a first value of each row.
    pub fn hidden_rowid(&self) -> bool {
        self.has_rowid() && self.alias().is_none()
    }

    pub fn is_autoincrement(&self) -> bool {
        matches!(
            self.key,
            TableKey::Alias {
                form: AliasForm::Autoincrement,
                ..
            }
        )
    }

    fn primary_key(&self) -> &[KeyPart] {
        match &self.key {
            TableKey::PrimaryKey(parts) | TableKey::WithoutRowid(parts) => parts,
            _ => &[],
        }
    }

    pub fn create_sql(&self) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| self.column_sql(i, column))
            .collect();
        let table_key = match &self.key {
            TableKey::PrimaryKey(key) | TableKey::WithoutRowid(key) => key.clone(),
            TableKey::Alias {
                column,
                form: AliasForm::TableConstraint { descending },
            } => vec![KeyPart {
                column: *column,
                descending: *descending,
            }],
            _ => Vec::new(),
        };
        if !table_key.is_empty() {
            let key: Vec<String> = table_key
                .iter()
                .map(|part| {
                    let name = quote_ident(&self.columns[part.column].name);
                    if part.descending {
                        format!("{name} DESC")
                    } else {
                        name
                    }
                })
                .collect();
            parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let without_rowid = if self.has_rowid() {
            ""
        } else {
            " WITHOUT ROWID"
        };
        format!(
            "CREATE TABLE {} ({}){without_rowid}",
            quote_ident(&self.name),
            parts.join(", ")
        )
    }

    fn column_sql(&self, index: usize, column: &ColumnSpec) -> String {
        let name = quote_ident(&column.name);
        let mut sql = name.clone();
        if let Some(declared) = &column.declared_type {
            sql += &format!(" {declared}");
        }
        match self.key {
            TableKey::Alias {
                column: alias,
                form: AliasForm::Inline,
            } if alias == index => sql += " PRIMARY KEY",
            TableKey::Alias {
                column: alias,
                form: AliasForm::Autoincrement,
            } if alias == index => sql += " PRIMARY KEY AUTOINCREMENT",
            TableKey::IntegerPrimaryKeyDesc { column: key } if key == index => {
                sql += " PRIMARY KEY DESC"
            }
            _ => {}
        }
        if column.not_null {
            sql += " NOT NULL";
        }
        if column.unique {
            sql += " UNIQUE";
        }
        match &column.default {
            Some(ColumnDefault::Value(value)) => sql += &format!(" DEFAULT {}", value.literal()),
            Some(ColumnDefault::CurrentTimestamp) => sql += " DEFAULT CURRENT_TIMESTAMP",
            None => {}
        }
        if column.nocase {
            sql += " COLLATE NOCASE";
        }
        if column.check_classes {
            let classes: Vec<String> = column
                .classes
                .iter()
                .map(|class| quote_literal(class.type_name()))
                .collect();
            sql += &format!(" CHECK (typeof({name}) IN ({}))", classes.join(", "));
        }
        if let Some(table) = &column.references {
            sql += &format!(" REFERENCES {}", quote_ident(table));
        }
        sql
    }

    /// The column sets that must be unique (beside the rowid): UNIQUE columns, the primary key,
    /// unique indexes.
    fn unique_column_sets(&self) -> Vec<Vec<usize>> {
        let mut sets: Vec<Vec<usize>> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, column)| column.unique)
            .map(|(i, _)| vec![i])
            .collect();
        if let TableKey::IntegerPrimaryKeyDesc { column } = self.key {
            sets.push(vec![column]);
        }
        if !self.primary_key().is_empty() {
            sets.push(self.primary_key().iter().map(|part| part.column).collect());
        }
        sets.extend(
            self.indexes
                .iter()
                .filter(|index| index.unique)
                .map(|index| index.columns.clone()),
        );
        sets
    }

    /// Whether a column is part of any key, primary or unique: changing one of its values can
    /// make two rows clash.
    pub fn is_key_column(&self, column: usize) -> bool {
        self.alias() == Some(column)
            || self
                .unique_column_sets()
                .iter()
                .any(|set| set.contains(&column))
    }

    fn insert_sql(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        if self.hidden_rowid() {
            names.push(ROWID_NAMES[0].to_owned());
        }
        names.extend(self.columns.iter().map(|column| quote_ident(&column.name)));
        let params: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote_ident(&self.name),
            names.join(", "),
            params.join(", ")
        )
    }

    /// The row as [`Self::insert_sql`] binds it and [`contents`] reads it: the hidden rowid
    /// first, then every column.
    fn row_values(&self, row: &Row) -> Vec<Value> {
        let rowid = row
            .rowid
            .filter(|_| self.hidden_rowid())
            .map(Value::Integer);
        rowid
            .into_iter()
            .chain(row.values.iter().cloned())
            .collect()
    }

    /// Where the key is in an expected row.
    fn expected_key(&self) -> Vec<usize> {
        let shift = usize::from(self.hidden_rowid());
        match (&self.key, self.alias()) {
            (_, Some(alias)) => vec![alias],
            (TableKey::WithoutRowid(parts), _) => {
                parts.iter().map(|part| part.column + shift).collect()
            }
            _ => vec![0],
        }
    }

    fn delete(&self, conn: &Connection, row: &Row) -> rusqlite::Result<usize> {
        let table = quote_ident(&self.name);
        match row.rowid {
            Some(rowid) => conn.execute(
                &format!("DELETE FROM {table} WHERE {} = ?1", ROWID_NAMES[0]),
                [rowid],
            ),
            None => {
                let key = self.primary_key();
                let condition: Vec<String> = key
                    .iter()
                    .enumerate()
                    .map(|(i, part)| {
                        format!(
                            "{} = ?{}",
                            quote_ident(&self.columns[part.column].name),
                            i + 1
                        )
                    })
                    .collect();
                let values: Vec<&Value> = key.iter().map(|part| &row.values[part.column]).collect();
                conn.execute(
                    &format!("DELETE FROM {table} WHERE {}", condition.join(" AND ")),
                    rusqlite::params_from_iter(values),
                )
            }
        }
    }

    /// What `sqlite_sequence` holds for this table: with AUTOINCREMENT, the largest rowid ever
    /// inserted, at least 0, once a row was.
    pub fn sequence(&self) -> Option<i64> {
        if !self.is_autoincrement() {
            return None;
        }
        let inserted = self.rows.iter().chain(&self.deleted);
        inserted
            .filter_map(|row| row.rowid)
            .max()
            .map(|max| max.max(0))
    }
}

impl IndexSpec {
    fn create_sql(&self, table: &TableSpec) -> String {
        let name = |i: usize| quote_ident(&table.columns[self.columns[i]].name);
        let on = match self.kind {
            IndexKind::Columns { descending } => {
                let mut columns: Vec<String> = (0..self.columns.len()).map(name).collect();
                if descending {
                    columns[0] += " DESC";
                }
                format!("({})", columns.join(", "))
            }
            IndexKind::Partial => format!("({0}) WHERE {0} IS NOT NULL", name(0)),
            IndexKind::Lower => format!("(lower({}))", name(0)),
        };
        let unique = if self.unique { "UNIQUE " } else { "" };
        format!(
            "CREATE {unique}INDEX {} ON {} {on}",
            quote_ident(&self.name),
            quote_ident(&table.name)
        )
    }
}

impl ViewSpec {
    fn create_sql(&self) -> String {
        let columns: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        format!(
            "CREATE VIEW {} AS SELECT {} FROM {}",
            quote_ident(&self.name),
            columns.join(", "),
            quote_ident(&self.table)
        )
    }
}

impl TriggerSpec {
    fn create_sql(&self) -> String {
        let table = quote_ident(&self.table);
        format!(
            "CREATE TRIGGER {} AFTER INSERT ON {table} BEGIN INSERT INTO {} (\"table\", \"row count\") VALUES ({}, (SELECT count(*) FROM {table})); END",
            quote_ident(&self.name),
            quote_ident(&self.audit),
            quote_literal(&self.table),
        )
    }
}

impl VirtualTableSpec {
    fn create_sql(&self) -> String {
        format!(
            "CREATE VIRTUAL TABLE {} USING fts5(title, body)",
            quote_ident(&self.name)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Building the file

/// The bytes of a SQLite file holding `spec`: tables, then rows (the deleted ones inserted and
/// deleted), then indexes, views and triggers, as a copy would make them, so no trigger fires;
/// foreign keys declared, not enforced.
pub fn build(spec: &DatabaseSpec) -> Vec<u8> {
    let mut conn = Connection::open_in_memory().expect("an in-memory database");
    // rusqlite's bundled SQLite enforces foreign keys unless told not to; the app never did.
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF; PRAGMA page_size = {}",
        spec.page_size
    ))
    .expect("the pragmas apply");
    let tx = conn.transaction().expect("a transaction");
    for table in &spec.tables {
        let sql = table.create_sql();
        tx.execute_batch(&sql)
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
    for table in &spec.virtual_tables {
        tx.execute_batch(&table.create_sql())
            .expect("the virtual table is created");
    }
    for table in &spec.tables {
        let sql = table.insert_sql();
        let mut insert = tx.prepare(&sql).expect("the insert prepares");
        for row in table.rows.iter().chain(&table.deleted) {
            let values = table.row_values(row);
            insert
                .execute(rusqlite::params_from_iter(&values))
                .unwrap_or_else(|err| panic!("{sql} with {values:?}: {err}"));
        }
        for row in &table.deleted {
            let deleted = table.delete(&tx, row).expect("the delete runs");
            assert_eq!(deleted, 1, "deleting {row:?} from {}", table.name);
        }
    }
    for table in &spec.virtual_tables {
        let sql = format!(
            "INSERT INTO {} (rowid, title, body) VALUES (?1, ?2, ?3)",
            quote_ident(&table.name)
        );
        for (rowid, title, body) in &table.rows {
            tx.execute(&sql, rusqlite::params![rowid, title, body])
                .expect("a row of the virtual table");
        }
    }
    let mut schema: Vec<String> = Vec::new();
    for table in &spec.tables {
        schema.extend(table.indexes.iter().map(|index| index.create_sql(table)));
    }
    schema.extend(spec.views.iter().map(ViewSpec::create_sql));
    schema.extend(spec.triggers.iter().map(TriggerSpec::create_sql));
    for sql in schema {
        tx.execute_batch(&sql)
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
    tx.commit().expect("the database commits");
    conn.serialize(rusqlite::MAIN_DB)
        .expect("the database serialises")
        .to_vec()
}

impl DatabaseSpec {
    /// What [`contents`] must read from [`build`]'s file, except the shadow tables of virtual
    /// tables (their rows are the module's business).
    pub fn expected_contents(&self) -> Contents {
        let mut tables: Vec<TableContents> = self
            .tables
            .iter()
            .map(|table| TableContents {
                name: table.name.clone(),
                kind: TableKind::Ordinary,
                sql: table.create_sql(),
                columns: table.columns.iter().map(|c| c.name.clone()).collect(),
                without_rowid: !table.has_rowid(),
                hidden_rowid: table.hidden_rowid(),
                key: table.expected_key(),
                rows: table.rows.iter().map(|row| table.row_values(row)).collect(),
            })
            .collect();
        tables.extend(self.virtual_tables.iter().map(|table| {
            TableContents {
                name: table.name.clone(),
                kind: TableKind::Virtual,
                sql: table.create_sql(),
                columns: vec!["title".to_owned(), "body".to_owned()],
                without_rowid: false,
                hidden_rowid: true,
                key: vec![0],
                rows: table
                    .rows
                    .iter()
                    .map(|(rowid, title, body)| {
                        vec![
                            Value::Integer(*rowid),
                            Value::text(title),
                            Value::text(body),
                        ]
                    })
                    .collect(),
            }
        }));
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let mut sequences: Vec<(String, Value)> = self
            .tables
            .iter()
            .filter_map(|table| Some((table.name.clone(), Value::Integer(table.sequence()?))))
            .collect();
        sequences.sort_by(|a, b| a.0.cmp(&b.0));
        let mut schema: Vec<SchemaObject> = Vec::new();
        for table in &self.tables {
            schema.extend(table.indexes.iter().map(|index| SchemaObject {
                kind: "index".to_owned(),
                name: index.name.clone(),
                table: table.name.clone(),
                sql: index.create_sql(table),
            }));
        }
        schema.extend(self.views.iter().map(|view| SchemaObject {
            kind: "view".to_owned(),
            name: view.name.clone(),
            table: view.name.clone(),
            sql: view.create_sql(),
        }));
        schema.extend(self.triggers.iter().map(|trigger| SchemaObject {
            kind: "trigger".to_owned(),
            name: trigger.name.clone(),
            table: trigger.table.clone(),
            sql: trigger.create_sql(),
        }));
        schema.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        Contents {
            tables,
            sequences,
            schema,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Names SQL makes awkward: keywords, quotes, spaces, dots, non-ASCII, a leading digit.
const TABLE_NAMES: &[&str] = &[
    "order",
    "select",
    "with space",
    "quote\"inside",
    "größe",
    "group",
    "table",
    "where",
    "🎬 scènes",
    "a.b",
    "1st",
    "[brackets]",
    "`backticks`",
    "it's",
    "x-y",
    "Values",
    "without rowid",
    "plain",
];

/// As [`TABLE_NAMES`], plus the rowid's names and names that differ only in case.
const COLUMN_NAMES: &[&str] = &[
    "id",
    "name",
    "value",
    "rowid",
    "oid",
    "order",
    "select",
    "with space",
    "quote\"inside",
    "größe",
    "without rowid",
    "primary key",
    "from",
    "NULL",
    "a.b",
    "1st",
    "emoji 🎬",
    "tab\there",
    "\u{202e}rtl",
    "日付",
    "Value",
    "x",
];

const DECLARED_TYPES: &[&str] = &[
    "INTEGER",
    "INT",
    "BIGINT",
    "REAL",
    "TEXT",
    "BLOB",
    "NUMERIC",
    "VARCHAR(10)",
    "NVARCHAR(100)",
    "DOUBLE PRECISION",
    "FLOATING POINT",
    "BOOLEAN",
    "DATETIME",
    "TIMESTAMP",
    "DECIMAL(10,5)",
    "STRING",
    "integer",
    "Text",
];

/// Texts that have broken software: number-likes, NULs, control characters, scripts, marks.
const TEXTS: &[&str] = &[
    "05",
    "1e3",
    " 7",
    "7 ",
    "-0",
    "0.0",
    "+5",
    ".5",
    "5.",
    "1e",
    "0x1A",
    "Infinity",
    "NaN",
    "9007199254740993",
    "9223372036854775808",
    "5\0x",
    "\0",
    "a\0b",
    "\u{1}\u{1b}[31m\u{7f}",
    "\r\n\t",
    "🎬⚽👩‍👩‍👧",
    "e\u{301}",
    "שלום עולם",
    "مرحبا",
    "漢字かなカナ",
    "\u{200b}\u{feff}",
    "\u{202e}abc",
    "'",
    "''",
    "\"",
    "NULL",
    "null",
    "true",
    "[1, 2.5]",
    "{\"a\": null}",
    "2026-01-02 03:04:05",
    "A",
    "a",
    "ß",
    "İ",
];

fn floats() -> Vec<f64> {
    vec![
        0.0,
        -0.0,
        5.0,
        0.5,
        -1.5,
        0.1 + 0.2,
        1.0 / 3.0,
        83.416_666_666_666_67,
        10_718_476.925_999_999,
        f64::from_bits(1),                     // 5e-324, the smallest subnormal
        f64::from_bits(0x000f_ffff_ffff_ffff), // 2.2250738585072009e-308, the largest subnormal
        f64::MIN_POSITIVE,
        f64::MAX,
        -f64::MAX,
        f64::EPSILON,
        1e15,
        9_007_199_254_740_992.0, // 2^53
        9_007_199_254_740_994.0, // 2^53 + 2, whole and beyond 2^53
        1e300,
        -1e300,
        1e-300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        TWO_POW_63,
        -TWO_POW_63,
    ]
}

fn integers() -> BoxedStrategy<i64> {
    prop_oneof![
        3 => select(vec![
            0,
            1,
            -1,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::from(i32::MAX) + 1,
            i64::from(u32::MAX),
            MAX_SAFE_INTEGER,
            -MAX_SAFE_INTEGER,
            MAX_SAFE_INTEGER - 1,
            1_000_000_000_000_000,
        ]),
        3 => 0..1000_i64,
        4 => -MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER,
    ]
    .boxed()
}

fn reals() -> BoxedStrategy<f64> {
    use proptest::num::f64 as float;
    prop_oneof![
        4 => select(floats()),
        // Cents: decimal fractions that binary floats only approximate.
        2 => (-100_000_i64..100_000).prop_map(|cents| cents as f64 / 100.0),
        // Any float but NaN, which SQLite stores as NULL.
        4 => float::POSITIVE | float::NEGATIVE | float::NORMAL | float::SUBNORMAL | float::ZERO | float::INFINITE,
    ]
    .boxed()
}

/// `chunk` repeated while it fits in `len` bytes.
fn repeated(chunk: &[u8], len: usize) -> Vec<u8> {
    let times = len.checked_div(chunk.len()).unwrap_or(0);
    chunk.repeat(times)
}

fn texts(max_bytes: usize) -> BoxedStrategy<Vec<u8>> {
    let string = |chars: Vec<char>| chars.into_iter().collect::<String>().into_bytes();
    prop_oneof![
        1 => Just(Vec::new()),
        4 => select(TEXTS).prop_map(|text| text.as_bytes().to_vec()),
        // Few letters, both cases: texts that clash in a NOCASE key, and sort by it.
        3 => "[aAbB]{1,3}".prop_map(String::into_bytes),
        3 => vec(any::<char>(), 1..12).prop_map(string),
        2 => (vec(any::<char>(), 1..4), 0..=max_bytes)
            .prop_map(move |(chunk, len)| repeated(&string(chunk), len)),
    ]
    .boxed()
}

fn blobs(max_bytes: usize) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        1 => (1..=max_bytes.max(1)).prop_map(|len| vec![0; len]),
        3 => vec(any::<u8>(), 1..32),
        2 => (vec(any::<u8>(), 1..16), 0..=max_bytes).prop_map(|(chunk, len)| repeated(&chunk, len)),
    ]
    .boxed()
}

fn class_values(class: StorageClass, limits: Limits) -> BoxedStrategy<Value> {
    match class {
        StorageClass::Null => Just(Value::Null).boxed(),
        StorageClass::Integer => integers().prop_map(Value::Integer).boxed(),
        StorageClass::Real => reals().prop_map(Value::real).boxed(),
        StorageClass::Text => texts(limits.max_value_bytes).prop_map(Value::Text).boxed(),
        StorageClass::Blob => blobs(limits.max_value_bytes).prop_map(Value::Blob).boxed(),
    }
}

/// Values of the column's classes that it keeps as they are.
fn column_values(column: &ColumnSpec, limits: Limits) -> BoxedStrategy<Value> {
    let affinity = column.affinity();
    let classes = column
        .classes
        .iter()
        .map(|class| class_values(*class, limits));
    Union::new(classes)
        .prop_filter("SQLite would convert it", move |value| {
            persists(affinity, value)
        })
        .boxed()
}

fn defaults() -> BoxedStrategy<ColumnDefault> {
    prop_oneof![
        4 => prop_oneof![
            Just(Value::Null),
            integers().prop_map(Value::Integer),
            select(floats()).prop_map(Value::real),
            select(TEXTS).prop_map(Value::text),
            vec(any::<u8>(), 0..4).prop_map(Value::Blob),
        ]
        .prop_map(ColumnDefault::Value),
        1 => Just(ColumnDefault::CurrentTimestamp),
    ]
    .boxed()
}

/// A declared type and the classes a column of it draws values from: every class its affinity
/// keeps that the mask picks (all of them if none).
fn column_types() -> impl Strategy<Value = (Option<String>, Vec<StorageClass>)> {
    let declared = prop_oneof![
        2 => Just(None),
        3 => select(DECLARED_TYPES).prop_map(|declared| Some(declared.to_owned())),
    ];
    (declared, 1_u8..32).prop_map(|(declared_type, class_mask)| {
        let affinity = Affinity::of(declared_type.as_deref());
        let kept: Vec<StorageClass> = StorageClass::ALL
            .into_iter()
            .filter(|class| affinity.keeps(*class))
            .collect();
        let picked: Vec<StorageClass> = StorageClass::ALL
            .into_iter()
            .enumerate()
            .filter(|(bit, class)| class_mask & (1 << bit) != 0 && kept.contains(class))
            .map(|(_, class)| class)
            .collect();
        let classes = if picked.is_empty() { kept } else { picked };
        (declared_type, classes)
    })
}

/// A column, before its table places it (its name is a pick from [`COLUMN_NAMES`]), with values
/// for its first rows (rows beyond get [`filler`]), of any length, so that shrinking drops the
/// values of rows that are gone. The values depend on the column's type alone, and the type does
/// not shrink: a simpler type would mean new values (proptest draws them again, up to once per
/// case, for every step), and the type of a failing column is usually the point anyway.
fn columns_with_values(limits: Limits) -> impl Strategy<Value = (ColumnSpec, Vec<Value>)> {
    let typed_values = column_types()
        .no_shrink()
        .prop_flat_map(move |(declared_type, classes)| {
            let column = ColumnSpec {
                name: String::new(),
                declared_type,
                classes,
                not_null: false,
                unique: false,
                nocase: false,
                check_classes: false,
                default: None,
                references: None,
            };
            let values = vec(column_values(&column, limits), 0..=limits.max_rows);
            (Just(column), values)
        });
    (
        typed_values,
        any::<Index>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        option::weighted(0.3, defaults()),
    )
        .prop_map(
            |((column, values), name, not_null, unique, nocase, check_classes, default)| {
                let column = ColumnSpec {
                    name: name.get(COLUMN_NAMES).to_string(),
                    not_null: not_null && !column.classes.contains(&StorageClass::Null),
                    unique,
                    nocase,
                    check_classes,
                    default,
                    ..column
                };
                (column, values)
            },
        )
}

/// The key a table gets, before its columns are known: positions are picks.
#[derive(Clone, Debug)]
enum KeyChoice {
    Rowid,
    Alias { at: Index, form: AliasForm },
    IntegerPrimaryKeyDesc { at: Index },
    PrimaryKey(Vec<(Index, bool)>),
    WithoutRowid(Vec<(Index, bool)>),
}

fn key_choices() -> impl Strategy<Value = KeyChoice> {
    let form = prop_oneof![
        Just(AliasForm::Inline),
        Just(AliasForm::Autoincrement),
        any::<bool>().prop_map(|descending| AliasForm::TableConstraint { descending }),
    ];
    let parts = |max| vec((any::<Index>(), prop::bool::weighted(0.3)), 1..=max);
    prop_oneof![
        2 => Just(KeyChoice::Rowid),
        3 => (any::<Index>(), form).prop_map(|(at, form)| KeyChoice::Alias { at, form }),
        1 => any::<Index>().prop_map(|at| KeyChoice::IntegerPrimaryKeyDesc { at }),
        1 => parts(2).prop_map(KeyChoice::PrimaryKey),
        3 => parts(3).prop_map(KeyChoice::WithoutRowid),
    ]
}

#[derive(Clone, Debug)]
struct IndexChoice {
    kind: IndexKind,
    columns: Vec<Index>,
    unique: bool,
}

fn index_choices() -> impl Strategy<Value = IndexChoice> {
    let kind = prop_oneof![
        any::<bool>().prop_map(|descending| IndexKind::Columns { descending }),
        Just(IndexKind::Partial),
        Just(IndexKind::Lower),
    ];
    (kind, vec(any::<Index>(), 1..=2), prop::bool::weighted(0.4)).prop_map(
        |(kind, columns, unique)| IndexChoice {
            columns: match kind {
                IndexKind::Columns { .. } => columns,
                _ => columns[..1].to_vec(),
            },
            unique: unique && kind != IndexKind::Lower,
            kind,
        },
    )
}

/// `base`, or `base 2`, `base 3`…: the first not in `taken` (SQLite compares names ignoring
/// ASCII case).
fn unique_name(base: &str, taken: &mut Vec<String>) -> String {
    let free = |name: &str, taken: &[String]| !taken.iter().any(|t| t.eq_ignore_ascii_case(name));
    let name = std::iter::once(base.to_owned())
        .chain((2..).map(|n| format!("{base} {n}")))
        .find(|name| free(name, taken))
        .expect("an unused name");
    taken.push(name.clone());
    name
}

/// A plain value the column keeps for row `row`: NULL if it may, else one that differs from row
/// to row, so that a UNIQUE column does not lose the row.
fn filler(column: &ColumnSpec, row: usize) -> Value {
    match column.classes[..] {
        _ if column.classes.contains(&StorageClass::Null) => Value::Null,
        [StorageClass::Integer, ..] => Value::Integer(row as i64),
        // Never whole, which INTEGER and NUMERIC columns would turn into an integer.
        [StorageClass::Real, ..] => Value::real(row as f64 + 0.5),
        [StorageClass::Text, ..] => Value::Text(format!("row {row}").into_bytes()),
        _ => Value::Blob(row.to_be_bytes().to_vec()),
    }
}

/// Per row the table may have: an explicit rowid (else its position), a value for an
/// `INTEGER PRIMARY KEY DESC` column (else NULL), and whether it is deleted.
type RowChoice = (Option<i64>, Option<i64>, bool);

fn row_choices(limits: Limits) -> impl Strategy<Value = Vec<RowChoice>> {
    let rowids = prop_oneof![3 => 1..=1000_i64, 1 => integers()];
    let row = (
        option::weighted(0.3, rowids),
        option::weighted(0.9, integers()),
        prop::bool::weighted(0.15),
    );
    vec(row, 0..=limits.max_rows)
}

/// Everything a table is drawn from.
#[derive(Clone, Debug)]
struct TableChoices {
    name: Index,
    columns: Vec<(ColumnSpec, Vec<Value>)>,
    key: KeyChoice,
    indexes: Vec<IndexChoice>,
    rows: Vec<RowChoice>,
    delete_last: bool,
}

fn tables(limits: Limits) -> impl Strategy<Value = TableSpec> {
    // Shrinking goes through a tuple in order: the rows first, then the columns and their
    // values, then the rest.
    (
        row_choices(limits),
        vec(columns_with_values(limits), 1..=6),
        any::<Index>(),
        key_choices(),
        vec(index_choices(), 0..=2),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(rows, columns, name, key, indexes, delete_last)| {
            table(TableChoices {
                name,
                columns,
                key,
                indexes,
                rows,
                delete_last,
            })
        })
}

/// A column of the key kind SQLite makes of `INTEGER`: never unique, checked or defaulted by
/// itself.
fn integer_key_column(classes: Vec<StorageClass>) -> ColumnSpec {
    ColumnSpec {
        name: "id".to_owned(),
        declared_type: Some("INTEGER".to_owned()),
        classes,
        not_null: false,
        unique: false,
        nocase: false,
        check_classes: false,
        default: None,
        references: None,
    }
}

/// The columns at the picked positions among those `allowed`, each once.
fn key_parts(
    parts: &[(Index, bool)],
    columns: &[ColumnSpec],
    allowed: impl Fn(&ColumnSpec) -> bool,
) -> Vec<KeyPart> {
    let candidates: Vec<usize> = (0..columns.len())
        .filter(|&i| allowed(&columns[i]))
        .collect();
    let mut key: Vec<KeyPart> = Vec::new();
    if candidates.is_empty() {
        return key;
    }
    for (at, descending) in parts {
        let column = *at.get(&candidates);
        if !key.iter().any(|part| part.column == column) {
            key.push(KeyPart {
                column,
                descending: *descending,
            });
        }
    }
    key
}

fn table(choices: TableChoices) -> TableSpec {
    // As many rows as there are row choices and values in the longest column: the rows whose
    // values shrinking removed from every column are gone.
    let longest = choices.columns.iter().map(|(_, values)| values.len()).max();
    let rows = &choices.rows[..choices.rows.len().min(longest.unwrap_or(0))];
    let (mut columns, mut values): (Vec<ColumnSpec>, Vec<Vec<Value>>) = choices
        .columns
        .into_iter()
        .map(|(column, mut values)| {
            let given = values.len().min(rows.len());
            values.truncate(given);
            values.extend((given..rows.len()).map(|row| filler(&column, row)));
            (column, values)
        })
        .unzip();
    let mut insert_key_column = |at: &Index, column: ColumnSpec, column_values: Vec<Value>| {
        let at = at.index(columns.len() + 1);
        columns.insert(at, column);
        values.insert(at, column_values);
        at
    };
    let key = match &choices.key {
        KeyChoice::Rowid => TableKey::Rowid,
        KeyChoice::Alias { at, form } => {
            // Its values are the rowids, filled in below.
            let placeholder = vec![Value::Null; rows.len()];
            let column = integer_key_column(vec![StorageClass::Integer]);
            TableKey::Alias {
                column: insert_key_column(at, column, placeholder),
                form: *form,
            }
        }
        KeyChoice::IntegerPrimaryKeyDesc { at } => {
            let keys = rows
                .iter()
                .map(|row| row.1.map_or(Value::Null, Value::Integer));
            let column = integer_key_column(vec![StorageClass::Null, StorageClass::Integer]);
            TableKey::IntegerPrimaryKeyDesc {
                column: insert_key_column(at, column, keys.collect()),
            }
        }
        KeyChoice::PrimaryKey(parts) => {
            // One column declared exactly INTEGER would be the rowid.
            let key = key_parts(parts, &columns, |column| {
                !column
                    .declared_type
                    .as_deref()
                    .is_some_and(|declared| declared.eq_ignore_ascii_case("INTEGER"))
            });
            if key.is_empty() {
                TableKey::Rowid
            } else {
                TableKey::PrimaryKey(key)
            }
        }
        KeyChoice::WithoutRowid(parts) => {
            let non_null =
                |column: &ColumnSpec| column.classes.iter().any(|c| *c != StorageClass::Null);
            let key = key_parts(parts, &columns, non_null);
            if key.is_empty() {
                TableKey::Rowid
            } else {
                // WITHOUT ROWID keys are NOT NULL, declared or not: rows with a NULL there are
                // left out below.
                for part in &key {
                    columns[part.column]
                        .classes
                        .retain(|class| *class != StorageClass::Null);
                }
                TableKey::WithoutRowid(key)
            }
        }
    };
    let mut taken = Vec::new();
    for column in &mut columns {
        column.name = unique_name(&column.name, &mut taken);
    }
    let indexes = choices
        .indexes
        .into_iter()
        .map(|choice| {
            let mut picked: Vec<usize> = choice
                .columns
                .iter()
                .map(|at| at.index(columns.len()))
                .collect();
            picked.dedup();
            IndexSpec {
                name: String::new(), // named once the table's name is final
                kind: choice.kind,
                columns: picked,
                unique: choice.unique,
            }
        })
        .collect();
    let mut table = TableSpec {
        name: choices.name.get(TABLE_NAMES).to_string(),
        columns,
        key,
        rows: Vec::new(),
        deleted: Vec::new(),
        indexes,
    };
    let drafts = rows.iter().enumerate().map(|(i, (rowid, _, deleted))| {
        let row_values = values.iter().map(|column| column[i].clone()).collect();
        (rowid.unwrap_or(i as i64 + 1), row_values, *deleted)
    });
    table.add_rows(drafts.collect(), choices.delete_last);
    table
}

impl TableSpec {
    /// Adds the rows the table's keys allow (a later row that repeats a key, or has a NULL in a
    /// WITHOUT ROWID key, is left out), the deleted ones apart, the others sorted as
    /// [`contents`] reads them. With `delete_last`, the row with the largest rowid is deleted
    /// too, which puts an AUTOINCREMENT table's `sqlite_sequence` ahead of its rows.
    fn add_rows(&mut self, drafts: Vec<(i64, Vec<Value>, bool)>, delete_last: bool) {
        let unique_sets = self.unique_column_sets();
        let mut seen: Vec<HashSet<Vec<UniqueKey>>> = vec![HashSet::new(); unique_sets.len()];
        let mut rowids = HashSet::new();
        for (rowid, mut values, deleted) in drafts {
            let rowid = self.has_rowid().then_some(rowid);
            if let (Some(alias), Some(rowid)) = (self.alias(), rowid) {
                values[alias] = Value::Integer(rowid);
            }
            if rowid.is_some_and(|rowid| rowids.contains(&rowid)) {
                continue;
            }
            let null_in_key = self
                .primary_key()
                .iter()
                .any(|part| values[part.column] == Value::Null);
            if null_in_key && !self.has_rowid() {
                continue;
            }
            let keys: Vec<Option<Vec<UniqueKey>>> = unique_sets
                .iter()
                .map(|set| {
                    set.iter()
                        .map(|&c| unique_key(&values[c], self.columns[c].nocase))
                        .collect()
                })
                .collect();
            let repeats = keys
                .iter()
                .zip(&seen)
                .any(|(key, seen)| key.as_ref().is_some_and(|key| seen.contains(key)));
            if repeats {
                continue;
            }
            for (key, seen) in keys.into_iter().zip(&mut seen) {
                seen.extend(key);
            }
            rowids.extend(rowid);
            let row = Row { rowid, values };
            if deleted {
                self.deleted.push(row);
            } else {
                self.rows.push(row);
            }
        }
        self.sort_rows();
        if delete_last && self.has_rowid() {
            self.deleted.extend(self.rows.pop());
        }
    }

    fn sort_rows(&mut self) {
        let key = self.primary_key().to_vec();
        let nocase: Vec<bool> = self.columns.iter().map(|c| c.nocase).collect();
        let has_rowid = self.has_rowid();
        self.rows.sort_by(|a, b| {
            if has_rowid {
                a.rowid.cmp(&b.rowid)
            } else {
                key.iter().fold(Ordering::Equal, |order, part| {
                    order.then_with(|| {
                        let c = part.column;
                        sqlite_order(&a.values[c], &b.values[c], nocase[c])
                    })
                })
            }
        });
    }

    /// The table an AFTER INSERT trigger on `target` writes to, holding what it would have
    /// written had it been there while `target`'s rows were inserted.
    fn audit(name: String, target: &TableSpec) -> Self {
        let inserted = (target.rows.len() + target.deleted.len()) as i64;
        let column = |name: &str, declared: &str, class| ColumnSpec {
            name: name.to_owned(),
            declared_type: Some(declared.to_owned()),
            classes: vec![class],
            not_null: false,
            unique: false,
            nocase: false,
            check_classes: false,
            default: None,
            references: None,
        };
        TableSpec {
            name,
            columns: vec![
                column("id", "INTEGER", StorageClass::Integer),
                column("table", "TEXT", StorageClass::Text),
                column("row count", "INTEGER", StorageClass::Integer),
            ],
            key: TableKey::Alias {
                column: 0,
                form: AliasForm::Autoincrement,
            },
            rows: (1..=inserted)
                .map(|n| Row {
                    rowid: Some(n),
                    values: vec![
                        Value::Integer(n),
                        Value::text(&target.name),
                        Value::Integer(n),
                    ],
                })
                .collect(),
            deleted: Vec::new(),
            indexes: Vec::new(),
        }
    }
}

/// [`database_spec_with`] at the default [`Limits`].
pub fn database_spec() -> impl Strategy<Value = DatabaseSpec> {
    database_spec_with(Limits::default())
}

/// Databases of 1 to `max_tables` generated tables, plus an audit table per trigger.
pub fn database_spec_with(limits: Limits) -> impl Strategy<Value = DatabaseSpec> {
    let schema = (
        vec((any::<Index>(), any::<u8>()), 0..=2),
        vec(any::<Index>(), 0..=2),
        vec((any::<Index>(), any::<Index>(), any::<Index>()), 0..=2),
    )
        .prop_map(|(views, triggers, references)| SchemaChoices {
            views,
            triggers,
            references,
        });
    (
        vec(tables(limits), 1..=limits.max_tables.max(1)),
        schema,
        select(vec![4096_u32, 512, 1024, 65536]),
    )
        .prop_map(|(tables, schema, page_size)| assemble(tables, &schema, page_size))
}

/// What a database has beside its tables, before the tables are known: positions are picks.
#[derive(Clone, Debug)]
struct SchemaChoices {
    /// A table, and a mask of the columns the view selects.
    views: Vec<(Index, u8)>,
    /// The tables with an AFTER INSERT trigger.
    triggers: Vec<Index>,
    /// A table, its column, and the table that column references (one past the last: a table
    /// that does not exist).
    references: Vec<(Index, Index, Index)>,
}

/// The table a foreign key may name although it does not exist.
const MISSING_TABLE: &str = "gone";

/// Gives every table, index, view and trigger its own name, and adds the views, triggers and
/// foreign keys.
fn assemble(mut tables: Vec<TableSpec>, choices: &SchemaChoices, page_size: u32) -> DatabaseSpec {
    let (views, triggers) = (&choices.views, &choices.triggers);
    let mut taken = vec![MISSING_TABLE.to_owned()];
    for table in &mut tables {
        table.name = unique_name(&table.name, &mut taken);
    }
    for table in &mut tables {
        for (n, index) in table.indexes.iter_mut().enumerate() {
            index.name = unique_name(&format!("{} index {}", table.name, n + 1), &mut taken);
        }
    }
    let views = views
        .iter()
        .map(|(at, mask)| {
            let table = at.get(&tables);
            let mut columns: Vec<String> = table
                .columns
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << (i % 8)) != 0)
                .map(|(_, column)| column.name.clone())
                .collect();
            if columns.is_empty() {
                columns.push(table.columns[0].name.clone());
            }
            ViewSpec {
                name: unique_name(&format!("{} view", table.name), &mut taken),
                table: table.name.clone(),
                columns,
            }
        })
        .collect();
    for (table_at, column_at, target_at) in &choices.references {
        let target = target_at.index(tables.len() + 1);
        let target = tables
            .get(target)
            .map_or(MISSING_TABLE.to_owned(), |table| table.name.clone());
        let table = table_at.index(tables.len());
        let column = column_at.index(tables[table].columns.len());
        tables[table].columns[column].references = Some(target);
    }
    let targets: BTreeSet<usize> = triggers.iter().map(|at| at.index(tables.len())).collect();
    let mut trigger_specs = Vec::new();
    for target in targets {
        let audit_name = unique_name(&format!("{} audit", tables[target].name), &mut taken);
        let audit = TableSpec::audit(audit_name, &tables[target]);
        trigger_specs.push(TriggerSpec {
            name: unique_name(&format!("{} inserted", tables[target].name), &mut taken),
            table: tables[target].name.clone(),
            audit: audit.name.clone(),
        });
        tables.push(audit);
    }
    DatabaseSpec {
        page_size,
        tables,
        views,
        triggers: trigger_specs,
        virtual_tables: Vec::new(),
        offenders: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Offenders

fn unsafe_integers() -> impl Strategy<Value = i64> {
    prop_oneof![
        select(vec![
            i64::MAX,
            i64::MIN,
            MAX_SAFE_INTEGER + 1,
            -MAX_SAFE_INTEGER - 1
        ]),
        (MAX_SAFE_INTEGER + 1)..=i64::MAX,
        i64::MIN..=(-MAX_SAFE_INTEGER - 1),
    ]
}

/// Text bytes that are not UTF-8: a stray continuation byte, an overlong encoding, an encoded
/// surrogate, a truncated sequence, bytes that never occur, between valid text.
fn invalid_utf8() -> impl Strategy<Value = Vec<u8>> {
    let broken: Vec<&'static [u8]> = vec![
        &[0x80],
        &[0xc0, 0xaf],
        &[0xed, 0xa0, 0x80],
        &[0xf0, 0x9f, 0x8e],
        &[0xff, 0xfe],
        &[0xc3, 0x28],
    ];
    (select(TEXTS), select(broken), select(TEXTS))
        .prop_map(|(before, broken, after)| [before.as_bytes(), broken, after.as_bytes()].concat())
}

/// A text or blob of just over 2,000,000 bytes: a chunk repeated whole (text stays UTF-8).
fn oversized(chunk: &[u8], extra: usize) -> Vec<u8> {
    chunk.repeat((DURABLE_OBJECT_VALUE_LIMIT + extra) / chunk.len() + 1)
}

#[derive(Clone, Debug)]
struct OffenderChoices {
    kinds: Vec<OffenderKind>,
    /// Where each value offender goes: a (table, column) pair, a row.
    places: Vec<(Index, Index)>,
    unsafe_integer: i64,
    invalid_text: Vec<u8>,
    extra_bytes: usize,
    wide_columns: usize,
}

/// [`database_spec_with`], plus one or more [`Offender`]s. A value offender replaces a value in
/// a generated table whose column keeps it (not a key column); if none does, it gets a table of
/// its own.
pub fn database_spec_with_offenders(limits: Limits) -> impl Strategy<Value = DatabaseSpec> {
    let choices = (
        subsequence(OffenderKind::ALL.to_vec(), 1..=OffenderKind::ALL.len()),
        vec((any::<Index>(), any::<Index>()), OffenderKind::ALL.len()),
        unsafe_integers(),
        invalid_utf8(),
        0..1000_usize,
        101..=130_usize,
    )
        .prop_map(
            |(kinds, places, unsafe_integer, invalid_text, extra_bytes, wide_columns)| {
                OffenderChoices {
                    kinds,
                    places,
                    unsafe_integer,
                    invalid_text,
                    extra_bytes,
                    wide_columns,
                }
            },
        );
    (database_spec_with(limits), choices).prop_map(|(spec, choices)| with_offenders(spec, &choices))
}

fn with_offenders(mut spec: DatabaseSpec, choices: &OffenderChoices) -> DatabaseSpec {
    let mut taken: Vec<String> = spec.tables.iter().map(|t| t.name.clone()).collect();
    // Value offenders go into the generated tables, never into another offender's table.
    let generated = spec.tables.len();
    let mut filled: HashSet<(usize, usize)> = HashSet::new();
    for (kind, (place_at, row_at)) in choices.kinds.iter().zip(&choices.places) {
        let value = match kind {
            OffenderKind::UnsafeInteger => Value::Integer(choices.unsafe_integer),
            OffenderKind::OversizedText => {
                Value::Text(oversized("größe ✓ ".as_bytes(), choices.extra_bytes))
            }
            OffenderKind::OversizedBlob => {
                Value::Blob(oversized(&[0, 1, 0xff], choices.extra_bytes))
            }
            OffenderKind::InvalidUtf8Text => Value::Text(choices.invalid_text.clone()),
            OffenderKind::OversizedRow => {
                // Three values of 700,000 bytes: each allowed, together too many.
                let part = |chunk: &[u8]| chunk.repeat(700_000 / chunk.len());
                let values = vec![
                    Value::Blob(part(&[7])),
                    Value::Text(part(b"row ")),
                    Value::Blob(part(&[0, 9])),
                ];
                let table = one_row_table(unique_name("oversized row", &mut taken), values);
                spec.offenders.push(Offender {
                    kind: *kind,
                    table: table.name.clone(),
                    column: None,
                    rowid: Some(1),
                });
                spec.tables.push(table);
                continue;
            }
            OffenderKind::ReservedTableName => {
                let table = one_row_table(
                    unique_name("_cf_generated", &mut taken),
                    vec![Value::text("reserved")],
                );
                spec.offenders.push(Offender {
                    kind: *kind,
                    table: table.name.clone(),
                    column: None,
                    rowid: None,
                });
                spec.tables.push(table);
                continue;
            }
            OffenderKind::TooManyColumns => {
                let values = (0..choices.wide_columns as i64)
                    .map(Value::Integer)
                    .collect();
                let table = one_row_table(unique_name("wide", &mut taken), values);
                spec.offenders.push(Offender {
                    kind: *kind,
                    table: table.name.clone(),
                    column: None,
                    rowid: None,
                });
                spec.tables.push(table);
                continue;
            }
            OffenderKind::VirtualTable => {
                let name = unique_name("search", &mut taken);
                spec.virtual_tables.push(VirtualTableSpec {
                    name: name.clone(),
                    rows: vec![
                        (1, "Spiel 1".to_owned(), "ein Tor ⚽".to_owned()),
                        (7, "中文".to_owned(), String::new()),
                    ],
                });
                spec.offenders.push(Offender {
                    kind: *kind,
                    table: name,
                    column: None,
                    rowid: None,
                });
                continue;
            }
        };
        let places = value_places(&spec.tables[..generated], &value, &filled);
        let offender = if places.is_empty() {
            let table = one_row_table(unique_name(&format!("{kind:?}"), &mut taken), vec![value]);
            let offender = Offender {
                kind: *kind,
                table: table.name.clone(),
                column: Some(table.columns[1].name.clone()),
                rowid: Some(1),
            };
            spec.tables.push(table);
            offender
        } else {
            let (t, c) = *place_at.get(&places);
            let r = row_at.index(spec.tables[t].rows.len());
            filled.insert((t, c));
            let table = &mut spec.tables[t];
            table.rows[r].values[c] = value;
            Offender {
                kind: *kind,
                table: table.name.clone(),
                column: Some(table.columns[c].name.clone()),
                rowid: table.rows[r].rowid,
            }
        };
        spec.offenders.push(offender);
    }
    spec
}

/// (table, column) pairs of rowid tables with rows where `value` can replace a value: the column
/// keeps it, draws values of its class (so a CHECK allows it), belongs to no key, and holds no
/// other offender.
fn value_places(
    tables: &[TableSpec],
    value: &Value,
    filled: &HashSet<(usize, usize)>,
) -> Vec<(usize, usize)> {
    let mut places = Vec::new();
    for (t, table) in tables.iter().enumerate() {
        if !table.has_rowid() || table.rows.is_empty() {
            continue;
        }
        for (c, column) in table.columns.iter().enumerate() {
            let fits = column.classes.contains(&value.class())
                && persists(column.affinity(), value)
                && !table.is_key_column(c)
                && !filled.contains(&(t, c));
            if fits {
                places.push((t, c));
            }
        }
    }
    places
}

/// A database of one table `"values"` holding `values` in row 1 (see [`one_row_table`]).
pub fn one_row_database(values: Vec<Value>) -> DatabaseSpec {
    DatabaseSpec {
        page_size: 4096,
        tables: vec![one_row_table("values".to_owned(), values)],
        views: Vec::new(),
        triggers: Vec::new(),
        virtual_tables: Vec::new(),
        offenders: Vec::new(),
    }
}

/// A table of `"id" INTEGER PRIMARY KEY` and untyped columns `c1`, `c2`… (every value keeps
/// its class) holding `values` in row 1.
fn one_row_table(name: String, values: Vec<Value>) -> TableSpec {
    let untyped = |name: String| ColumnSpec {
        name,
        declared_type: None,
        classes: StorageClass::ALL.to_vec(),
        not_null: false,
        unique: false,
        nocase: false,
        check_classes: false,
        default: None,
        references: None,
    };
    let mut columns = vec![ColumnSpec {
        declared_type: Some("INTEGER".to_owned()),
        classes: vec![StorageClass::Integer],
        ..untyped("id".to_owned())
    }];
    columns.extend((1..=values.len()).map(|n| untyped(format!("c{n}"))));
    TableSpec {
        name,
        columns,
        key: TableKey::Alias {
            column: 0,
            form: AliasForm::Inline,
        },
        rows: vec![Row {
            rowid: Some(1),
            values: std::iter::once(Value::Integer(1)).chain(values).collect(),
        }],
        deleted: Vec::new(),
        indexes: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The reference reader

/// Everything a copy must keep, read without the project's code.
#[derive(Clone, Debug, PartialEq)]
pub struct Contents {
    /// Every table but SQLite's own, by name.
    pub tables: Vec<TableContents>,
    /// `sqlite_sequence`: (table, seq), by name.
    pub sequences: Vec<(String, Value)>,
    /// Indexes, views and triggers that have SQL (not automatic indexes), by type and name.
    pub schema: Vec<SchemaObject>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableContents {
    pub name: String,
    pub kind: TableKind,
    pub sql: String,
    /// The columns, not counting a hidden rowid or a virtual table's hidden columns.
    pub columns: Vec<String>,
    pub without_rowid: bool,
    /// Whether each row starts with the rowid, which is no column.
    pub hidden_rowid: bool,
    /// Where each row's key is: the rowid, or the primary key of a WITHOUT ROWID table.
    pub key: Vec<usize>,
    /// By rowid, or by primary key.
    pub rows: Vec<Vec<Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    Ordinary,
    Virtual,
    /// A virtual table's storage.
    Shadow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaObject {
    /// `index`, `view` or `trigger`.
    pub kind: String,
    pub name: String,
    pub table: String,
    pub sql: String,
}

impl Contents {
    pub fn table(&self, name: &str) -> Option<&TableContents> {
        self.tables.iter().find(|table| table.name == name)
    }

    /// What this file holds of the tables, indexes, views, triggers and counters `original`
    /// has: a move adds the app's own tables beside them, which are not the user's generated
    /// data.
    pub fn part_of(mut self, original: &Contents) -> Contents {
        let has_table = |name: &str| original.tables.iter().any(|t| t.name == name);
        self.tables.retain(|table| has_table(&table.name));
        self.sequences.retain(|(table, _)| has_table(table));
        self.schema
            .retain(|object| original.schema.iter().any(|o| o.name == object.name));
        self
    }
}

impl TableContents {
    /// The name of the `i`th value of a row.
    pub fn value_name(&self, i: usize) -> &str {
        match (self.hidden_rowid, i) {
            (true, 0) => "rowid",
            (true, i) => &self.columns[i - 1],
            (false, i) => &self.columns[i],
        }
    }

    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.key.iter().map(|&i| row[i].clone()).collect()
    }

    /// The row's rowid, if the table has rowids.
    pub fn rowid_of(&self, row: &[Value]) -> Option<i64> {
        match (self.without_rowid, &row[self.key[0]]) {
            (false, Value::Integer(rowid)) => Some(*rowid),
            _ => None,
        }
    }
}

fn is_sqlite_internal(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_"))
}

/// Reads a SQLite file into typed values: text as its bytes, floats as their bits.
pub fn contents(file: &[u8]) -> Contents {
    let mut conn = Connection::open_in_memory().expect("an in-memory database");
    conn.deserialize_read_exact(rusqlite::MAIN_DB, file, file.len(), true)
        .expect("a SQLite file");
    let listed: Vec<(String, String, bool)> = query(
        &conn,
        "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' AND type <> 'view'",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    );
    let mut tables: Vec<TableContents> = listed
        .into_iter()
        .filter(|(name, _, _)| !is_sqlite_internal(name))
        .map(|(name, kind, without_rowid)| read_table(&conn, name, &kind, without_rowid))
        .collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let has_sequence: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'sqlite_sequence'",
            [],
            |row| row.get(0),
        )
        .expect("sqlite_schema reads");
    let sequences = if has_sequence {
        query(
            &conn,
            "SELECT name, seq FROM sqlite_sequence ORDER BY name",
            [],
            |row| Ok((row.get(0)?, Value::from_ref(row.get_ref(1)?))),
        )
    } else {
        Vec::new()
    };
    let schema = query(
        &conn,
        "SELECT type, name, tbl_name, sql FROM sqlite_schema
         WHERE type IN ('index', 'view', 'trigger') AND sql IS NOT NULL ORDER BY type, name",
        [],
        |row| {
            Ok(SchemaObject {
                kind: row.get(0)?,
                name: row.get(1)?,
                table: row.get(2)?,
                sql: row.get(3)?,
            })
        },
    );
    Contents {
        tables,
        sequences,
        schema,
    }
}

fn query<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    let mut statement = conn
        .prepare(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    let rows = statement
        .query_map(params, map)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    rows.map(|row| row.unwrap_or_else(|err| panic!("{sql}: {err}")))
        .collect()
}

fn read_table(conn: &Connection, name: String, kind: &str, without_rowid: bool) -> TableContents {
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [&name],
            |row| row.get(0),
        )
        .unwrap_or_else(|err| panic!("the CREATE of {name}: {err}"));
    // (name, position in the primary key or 0, hidden: 1 is a virtual table's hidden column)
    let all_columns: Vec<(String, i64, i64)> = query(
        conn,
        "SELECT name, pk, hidden FROM pragma_table_xinfo(?1)",
        [&name],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    );
    let columns: Vec<&(String, i64, i64)> = all_columns.iter().filter(|c| c.2 != 1).collect();
    let mut primary_key: Vec<(i64, usize)> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.1 > 0)
        .map(|(i, c)| (c.1, i))
        .collect();
    primary_key.sort();
    // A rowid table's single-column key is the rowid unless SQLite made an index for it (as for
    // `INTEGER PRIMARY KEY DESC`, or a key that is not an integer).
    let key_index: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM pragma_index_list(?1) WHERE origin = 'pk'",
            [&name],
            |row| row.get(0),
        )
        .expect("the index list reads");
    let alias = (!without_rowid && primary_key.len() == 1 && !key_index).then(|| primary_key[0].1);
    let hidden_rowid = !without_rowid && alias.is_none();
    let rowid_name = (!without_rowid).then(|| {
        *ROWID_NAMES
            .iter()
            .find(|rowid| !all_columns.iter().any(|c| c.0.eq_ignore_ascii_case(rowid)))
            .unwrap_or_else(|| panic!("no name reaches the rowid of {name}"))
    });
    let mut selected: Vec<String> = Vec::new();
    if hidden_rowid {
        selected.extend(rowid_name.map(str::to_owned));
    }
    selected.extend(columns.iter().map(|c| quote_ident(&c.0)));
    let order: Vec<String> = match rowid_name {
        Some(rowid) => vec![rowid.to_owned()],
        None => primary_key
            .iter()
            .map(|(_, i)| quote_ident(&columns[*i].0))
            .collect(),
    };
    let shift = usize::from(hidden_rowid);
    let key = match (hidden_rowid, alias) {
        (true, _) => vec![0],
        (false, Some(alias)) => vec![alias],
        (false, None) => primary_key.iter().map(|(_, i)| i + shift).collect(),
    };
    let select = format!(
        "SELECT {} FROM {} ORDER BY {}",
        selected.join(", "),
        quote_ident(&name),
        order.join(", ")
    );
    let width = selected.len();
    let rows = query(conn, &select, [], |row| {
        (0..width)
            .map(|i| Ok(Value::from_ref(row.get_ref(i)?)))
            .collect()
    });
    TableContents {
        kind: match kind {
            "virtual" => TableKind::Virtual,
            "shadow" => TableKind::Shadow,
            _ => TableKind::Ordinary,
        },
        columns: columns.iter().map(|c| c.0.clone()).collect(),
        name,
        sql,
        without_rowid,
        hidden_rowid,
        key,
        rows,
    }
}

/// Where two contents first differ, in words: the table, the row's key and the column. `None`
/// when they are equal.
pub fn first_difference(a: &Contents, b: &Contents) -> Option<String> {
    if a == b {
        return None;
    }
    let names: BTreeSet<&str> = a
        .tables
        .iter()
        .chain(&b.tables)
        .map(|table| table.name.as_str())
        .collect();
    for name in names {
        match (a.table(name), b.table(name)) {
            (Some(_), None) => return Some(format!("table {name:?} is only in the first")),
            (None, Some(_)) => return Some(format!("table {name:?} is only in the second")),
            (Some(x), Some(y)) => {
                if let Some(difference) = table_difference(x, y) {
                    return Some(difference);
                }
            }
            (None, None) => unreachable!("the name came from one of them"),
        }
    }
    if a.sequences != b.sequences {
        return Some(format!(
            "sqlite_sequence: {:?} in the first, {:?} in the second",
            a.sequences, b.sequences
        ));
    }
    let first = a.schema.iter().find(|object| !b.schema.contains(object));
    let second = b.schema.iter().find(|object| !a.schema.contains(object));
    Some(match (first, second) {
        (Some(object), _) => format!("{object:?} is only in the first"),
        (_, Some(object)) => format!("{object:?} is only in the second"),
        _ => "the schema objects are in a different order".to_owned(),
    })
}

fn table_difference(a: &TableContents, b: &TableContents) -> Option<String> {
    let name = &a.name;
    if a.sql != b.sql {
        return Some(format!(
            "table {name:?} is created differently:\n  {}\n  {}",
            a.sql, b.sql
        ));
    }
    // (kind, columns, WITHOUT ROWID, hidden rowid, key), which the CREATE decides.
    let shape = |t: &TableContents| {
        let shape = (&t.kind, &t.columns, t.without_rowid, t.hidden_rowid, &t.key);
        format!("{shape:?}")
    };
    if shape(a) != shape(b) {
        return Some(format!(
            "table {name:?} is read differently: {} in the first, {} in the second",
            shape(a),
            shape(b)
        ));
    }
    let by_key = |table: &TableContents| -> HashMap<Vec<Value>, Vec<Value>> {
        table
            .rows
            .iter()
            .map(|row| (table.key_of(row), row.clone()))
            .collect()
    };
    let (rows_a, rows_b) = (by_key(a), by_key(b));
    for row in &a.rows {
        let key = a.key_of(row);
        let Some(other) = rows_b.get(&key) else {
            return Some(format!(
                "table {name:?}: the row {key:?} is only in the first"
            ));
        };
        if let Some(i) = (0..row.len()).find(|&i| row[i] != other[i]) {
            return Some(format!(
                "table {name:?}, row {key:?}, column {:?}: {:?} in the first, {:?} in the second",
                a.value_name(i),
                row[i],
                other[i]
            ));
        }
    }
    if let Some(row) = b
        .rows
        .iter()
        .find(|row| !rows_a.contains_key(&b.key_of(row)))
    {
        return Some(format!(
            "table {name:?}: the row {:?} is only in the second",
            b.key_of(row)
        ));
    }
    (a.rows != b.rows).then(|| format!("table {name:?}: the same rows in another order"))
}
