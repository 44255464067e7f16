//! The generator of adversarial databases and its reference reader, tested natively: a
//! generated file must be a sound SQLite file holding exactly what its spec says, the reader
//! must tell apart values that SQL calls equal, offenders must be exactly where the spec puts
//! them, and a plain SQL copy must come out the same only when it is done right. Other tests
//! trust both on the strength of these.
//!
//! The seed is fixed, so CI sees the same databases every run; `PROPTEST_RNG_SEED=<n>` picks
//! other ones and `PROPTEST_CASES=<n>` runs more of them.

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{TestError, TestRunner};
use test_support::generate::{
    build, contents, database_spec, database_spec_with, database_spec_with_offenders,
    first_difference, one_row_database, proptest_config, with_one_bit_flipped, Contents,
    DatabaseSpec, Limits, Offender, OffenderKind, TableKind, Value, DURABLE_OBJECT_VALUE_LIMIT,
    MAX_SAFE_INTEGER,
};

fn sqlite(file: &[u8]) -> rusqlite::Connection {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, file, file.len(), true)
        .unwrap();
    conn
}

/// Compares what a file holds with what its spec says, readably.
fn holds_exactly(actual: &Contents, spec: &DatabaseSpec) -> Result<(), TestCaseError> {
    let expected = spec.expected_contents();
    match first_difference(&expected, actual) {
        None => Ok(()),
        Some(difference) => Err(TestCaseError::fail(format!(
            "the file does not hold its spec (first: the spec, second: the file): {difference}"
        ))),
    }
}

/// Everything in a file the Durable Object cannot hold, found by looking at every value.
fn offenders_in(contents: &Contents) -> HashSet<Offender> {
    let mut found = HashSet::new();
    for table in &contents.tables {
        let whole_table = |kind| Offender {
            kind,
            table: table.name.clone(),
            column: None,
            rowid: None,
        };
        if table.name.starts_with("_cf_") {
            found.insert(whole_table(OffenderKind::ReservedTableName));
        }
        if table.kind == TableKind::Virtual {
            found.insert(whole_table(OffenderKind::VirtualTable));
        }
        if table.columns.len() > 100 {
            found.insert(whole_table(OffenderKind::TooManyColumns));
        }
        for row in &table.rows {
            let rowid = table.rowid_of(row);
            let at = |kind, i: usize| Offender {
                kind,
                table: table.name.clone(),
                column: Some(table.value_name(i).to_owned()),
                rowid,
            };
            for (i, value) in row.iter().enumerate() {
                // One value may offend in more than one way.
                let oversized = value.byte_len() > DURABLE_OBJECT_VALUE_LIMIT;
                if matches!(value, Value::Integer(n) if n.unsigned_abs() > MAX_SAFE_INTEGER as u64)
                {
                    found.insert(at(OffenderKind::UnsafeInteger, i));
                }
                if matches!(value, Value::Text(_)) && oversized {
                    found.insert(at(OffenderKind::OversizedText, i));
                }
                if matches!(value, Value::Blob(_)) && oversized {
                    found.insert(at(OffenderKind::OversizedBlob, i));
                }
                if matches!(value, Value::Text(bytes) if std::str::from_utf8(bytes).is_err()) {
                    found.insert(at(OffenderKind::InvalidUtf8Text, i));
                }
            }
            let sizes = row.iter().map(Value::byte_len);
            let every_value_fits = sizes.clone().all(|n| n <= DURABLE_OBJECT_VALUE_LIMIT);
            if every_value_fits && sizes.sum::<usize>() > DURABLE_OBJECT_VALUE_LIMIT {
                found.insert(Offender {
                    kind: OffenderKind::OversizedRow,
                    table: table.name.clone(),
                    column: None,
                    rowid,
                });
            }
        }
    }
    found
}

/// A generic copy of every table through SQL, as a migration does: the schema's statements in
/// their order, then the rows (with their rowids), then `sqlite_sequence`. With
/// `triggers_first`, the triggers are created with the rest of the schema, before the rows: the
/// mistake the audit tables of generated databases are there to catch.
fn sql_copy(file: &[u8], triggers_first: bool) -> rusqlite::Result<Vec<u8>> {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let mut conn = rusqlite::Connection::open_in_memory()?;
    conn.execute_batch("PRAGMA foreign_keys = OFF; ATTACH ':memory:' AS source")?;
    conn.deserialize_read_exact("source", file, file.len(), true)?;
    let schema: Vec<(String, String)> = conn
        .prepare(
            "SELECT type, sql FROM source.sqlite_schema
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let (triggers, rest): (Vec<_>, Vec<_>) = schema
        .into_iter()
        .partition(|(kind, _)| kind == "trigger" && !triggers_first);
    for (_, sql) in &rest {
        conn.execute_batch(sql)?;
    }
    for table in contents(file).tables {
        let mut columns: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
        if table.hidden_rowid {
            columns.insert(0, "_rowid_".to_owned());
        }
        let (name, columns) = (quote(&table.name), columns.join(", "));
        conn.execute_batch(&format!(
            "INSERT INTO main.{name} ({columns}) SELECT {columns} FROM source.{name}"
        ))?;
    }
    let has_sequence: bool = conn.query_row(
        "SELECT count(*) > 0 FROM main.sqlite_schema WHERE name = 'sqlite_sequence'",
        [],
        |row| row.get(0),
    )?;
    if has_sequence {
        conn.execute_batch(
            "DELETE FROM main.sqlite_sequence;
             INSERT INTO main.sqlite_sequence SELECT name, seq FROM source.sqlite_sequence",
        )?;
    }
    for (_, sql) in &triggers {
        conn.execute_batch(sql)?;
    }
    conn.execute_batch("DETACH source")?;
    Ok(conn.serialize(rusqlite::MAIN_DB)?.to_vec())
}

proptest! {
    #![proptest_config(proptest_config(128))]

    #[test]
    fn every_generated_file_passes_integrity_check_at_its_page_size(spec in database_spec()) {
        let file = build(&spec);
        let check: String = sqlite(&file)
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        prop_assert_eq!(check, "ok");
        // The header's page size, big-endian at offset 16; 1 stands for 65536.
        let page_size = match u16::from_be_bytes([file[16], file[17]]) {
            1 => 65536,
            size => u32::from(size),
        };
        prop_assert_eq!(page_size, spec.page_size);
    }

    #[test]
    fn every_generated_file_reads_back_exactly_what_the_spec_put_in(spec in database_spec()) {
        holds_exactly(&contents(&build(&spec)), &spec)?;
    }

    #[test]
    fn ordinary_databases_hold_nothing_the_durable_object_refuses(spec in database_spec()) {
        prop_assert_eq!(offenders_in(&contents(&build(&spec))), HashSet::new());
    }

    #[test]
    fn a_copy_that_creates_triggers_after_the_rows_reads_back_the_same(spec in database_spec()) {
        // The control for the test below: this copy is right, and the reader agrees.
        let file = build(&spec);
        let copy = sql_copy(&file, false).expect("the copy runs");
        prop_assert_eq!(first_difference(&contents(&file), &contents(&copy)), None);
    }

    #[test]
    fn a_copy_that_creates_triggers_before_the_rows_fails_or_differs_in_an_audit_table(
        spec in database_spec(),
    ) {
        let fired = spec.triggers.iter().find(|trigger| {
            spec.tables.iter().any(|table| table.name == trigger.table && !table.rows.is_empty())
        });
        prop_assume!(fired.is_some());
        let file = build(&spec);
        // Copying an audit table after its trigger filled it clashes with the rows it wrote.
        if let Ok(copy) = sql_copy(&file, true) {
            let difference = first_difference(&contents(&file), &contents(&copy));
            let audits: Vec<String> =
                spec.triggers.iter().map(|trigger| format!("table {:?}", trigger.audit)).collect();
            prop_assert!(
                difference.as_ref().is_some_and(|d| audits.iter().any(|audit| d.starts_with(audit))),
                "{:?} names no audit table of {:?}", difference, spec.triggers
            );
        }
    }

    #[test]
    fn contents_tells_apart_files_that_differ_in_one_bit_of_one_value(
        spec in database_spec(),
        cell in any::<Index>(),
        bit in any::<Index>(),
    ) {
        let flipped = with_one_bit_flipped(&spec, cell, bit);
        prop_assume!(flipped.is_some());
        let (changed, (t, _, c)) = flipped.unwrap();
        let table = &spec.tables[t];

        let (before, after) = (contents(&build(&spec)), contents(&build(&changed)));
        // The second file holds the flipped bit, and nothing else changed...
        holds_exactly(&after, &changed)?;
        // ...and the reader says so, naming the place.
        let difference = first_difference(&before, &after);
        let name = format!("table {:?}", table.name);
        let column = format!("column {:?}", table.columns[c].name);
        prop_assert!(
            difference.as_ref().is_some_and(|d| d.contains(&name) && d.contains(&column)),
            "{:?} does not name {} and {}", difference, name, column
        );
    }

    #[test]
    fn contents_tells_apart_a_number_stored_as_integer_real_text_or_blob(
        n in -MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER,
        forms in proptest::sample::subsequence(vec![0, 1, 2, 3], 2),
    ) {
        // Integer 5, real 5.0, text '5', blob x'35': SQL's = finds 5 and 5.0 equal, and a
        // column's affinity turns one into another.
        let form = |i: usize| match i {
            0 => Value::Integer(n),
            1 => Value::real(n as f64),
            2 => Value::text(&n.to_string()),
            _ => Value::Blob(n.to_string().into_bytes()),
        };
        let specs = [one_row_database(vec![form(forms[0])]), one_row_database(vec![form(forms[1])])];
        let read: Vec<Contents> = specs.iter().map(|spec| contents(&build(spec))).collect();
        holds_exactly(&read[0], &specs[0])?;
        holds_exactly(&read[1], &specs[1])?;
        prop_assert!(first_difference(&read[0], &read[1]).is_some_and(|d| d.contains("c1")));
    }

    #[test]
    fn contents_tells_apart_a_float_from_its_negation_even_zero(
        x in prop_oneof![Just(0.0), Just(f64::INFINITY), proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL],
    ) {
        let specs = [one_row_database(vec![Value::real(x)]), one_row_database(vec![Value::real(-x)])];
        let read: Vec<Contents> = specs.iter().map(|spec| contents(&build(spec))).collect();
        holds_exactly(&read[0], &specs[0])?;
        holds_exactly(&read[1], &specs[1])?;
        prop_assert!(first_difference(&read[0], &read[1]).is_some_and(|d| d.contains("c1")));
    }
}

proptest! {
    // Each case builds values of over 2 MB.
    #![proptest_config(proptest_config(24))]

    #[test]
    fn offenders_are_exactly_where_the_spec_says(spec in database_spec_with_offenders(Limits::default())) {
        let mut read = contents(&build(&spec));
        let expected: HashSet<Offender> = spec.offenders.iter().cloned().collect();
        prop_assert_eq!(offenders_in(&read), expected);
        // Beside them, the file holds its spec as ever (but for the shadow tables of a virtual
        // table, whose rows are the module's).
        read.tables.retain(|table| table.kind != TableKind::Shadow);
        holds_exactly(&read, &spec)?;
    }
}

#[test]
fn a_failing_case_shrinks_to_one_table_with_one_row_holding_the_smallest_culprit() {
    // A stand-in for a copy that fails on texts over 100 bytes.
    let mut runner = TestRunner::new(proptest_config(256));
    let limits = Limits {
        max_value_bytes: 1000,
        ..Limits::default()
    };
    let result = runner.run(&database_spec_with(limits), |spec| {
        let longest = spec
            .tables
            .iter()
            .flat_map(|table| table.rows.iter().chain(&table.deleted))
            .flat_map(|row| &row.values)
            .filter(|value| matches!(value, Value::Text(_)))
            .map(Value::byte_len)
            .max();
        prop_assert!(longest.unwrap_or(0) <= 100);
        Ok(())
    });
    let Err(TestError::Fail(_, minimal)) = result else {
        panic!("no generated database held a text over 100 bytes: {result:?}");
    };
    let rows: usize = minimal
        .tables
        .iter()
        .map(|table| table.rows.len() + table.deleted.len())
        .sum();
    assert_eq!((minimal.tables.len(), rows), (1, 1), "{minimal:#?}");
    let texts: Vec<usize> = minimal.tables[0]
        .rows
        .iter()
        .chain(&minimal.tables[0].deleted)
        .flat_map(|row| &row.values)
        .filter(|value| matches!(value, Value::Text(_)))
        .map(Value::byte_len)
        .collect();
    // 101 bytes, or up to 104 when the repeated character is wider than one byte.
    assert!(
        texts.len() == 1 && texts[0] <= 104,
        "the culprit is not the smallest text over 100 bytes: {minimal:#?}"
    );
}
