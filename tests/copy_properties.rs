//! The move's copy, digest and preflight, natively, on generated databases (the harness's
//! adversarial generator): a copy holds exactly what its source holds, typed and bit-exact, and
//! its digest agrees; the digest tells apart files that differ in one bit of one value; the
//! preflight finds every value the Durable Object cannot hold, where it is, and nothing else.
//! The same code runs inside the object (`tests/migration.rs` round-trips generated files through
//! workerd); here thousands of cases run in seconds and a failure shrinks to its smallest case.
//!
//! The seed is fixed, so CI sees the same databases every run; `PROPTEST_RNG_SEED=<n>` picks
//! other ones and `PROPTEST_CASES=<n>` runs more of them.

use proptest::prelude::*;
use proptest::sample::Index;
use test_support::generate::{
    build, contents, database_spec, database_spec_with_offenders, first_difference,
    proptest_config, with_one_bit_flipped, Limits, Offender, OffenderKind,
};
use user_data_core::db::rusqlite_db::RusqliteDb;
use user_data_core::db::{check_integrity, Db};
use user_data_core::preflight::Problem;
use user_data_core::{copy, digest as verify, preflight};

/// The move's copy of `file` into a new database, as the object's import and export make it.
/// The digests the copy computes of what it read are those of the file.
fn copy_of(file: &[u8]) -> RusqliteDb {
    let source = RusqliteDb::from_bytes(file).expect("a generated file opens");
    let target = RusqliteDb::empty().unwrap();
    let read = target
        .transaction(|| copy::copy_database(&source, &target))
        .expect("the copy runs");
    assert_eq!(read, verify::digests(&source).unwrap());
    target
}

fn digests_of(file: &[u8]) -> Vec<verify::TableDigest> {
    verify::digests(&RusqliteDb::from_bytes(file).unwrap()).unwrap()
}

/// Whether `problem` reports `offender`: the same table (or, for a reserved name, the name in
/// its reason), the same column where the offender is one value, and a reason of its kind.
fn reports(problem: &Problem, offender: &Offender) -> bool {
    let table = problem.table.as_deref() == Some(offender.table.as_str());
    let column = problem.column == offender.column;
    let says = |words: &str| problem.reason.contains(words);
    match offender.kind {
        OffenderKind::UnsafeInteger => {
            table && ((column && says("integer outside")) || says("rowid outside"))
        }
        OffenderKind::OversizedText | OffenderKind::OversizedBlob => {
            table && column && says("a value over")
        }
        OffenderKind::OversizedRow => table && says("a row over"),
        OffenderKind::InvalidUtf8Text => table && column && says("not valid UTF-8"),
        OffenderKind::ReservedTableName => says(&offender.table) && says("reserves"),
        OffenderKind::VirtualTable => table && says("virtual table"),
        OffenderKind::TooManyColumns => table && says("columns; at most"),
    }
}

proptest! {
    #![proptest_config(proptest_config(96))]

    #[test]
    fn a_copy_holds_exactly_what_its_source_holds_and_its_digest_agrees(spec in database_spec()) {
        let file = build(&spec);
        let copy = copy_of(&file).to_bytes().unwrap();
        let difference = first_difference(&contents(&file), &contents(&copy));
        prop_assert!(difference.is_none(), "the copy differs: {:?}", difference);
        prop_assert_eq!(
            verify::same_data(&digests_of(&file), &digests_of(&copy)),
            Ok(())
        );
        prop_assert!(check_integrity(&RusqliteDb::from_bytes(&copy).unwrap()).is_ok());
        // And a copy of the copy is the same again: nothing drifts over a migrate and rollback.
        let again = copy_of(&copy).to_bytes().unwrap();
        prop_assert!(first_difference(&contents(&file), &contents(&again)).is_none());
    }

    #[test]
    fn the_digest_tells_apart_files_that_differ_in_one_bit_of_one_value(
        spec in database_spec(),
        cell in any::<Index>(),
        bit in any::<Index>(),
    ) {
        let flipped = with_one_bit_flipped(&spec, cell, bit);
        prop_assume!(flipped.is_some());
        let (changed, (t, _, _)) = flipped.unwrap();
        let table = &spec.tables[t];

        let verdict = verify::same_data(&digests_of(&build(&spec)), &digests_of(&build(&changed)));
        prop_assert!(
            verdict.as_ref().is_err_and(|d| d.contains(&table.name)),
            "{:?} does not name table {:?}", verdict, table.name
        );
    }

    #[test]
    fn preflight_finds_nothing_in_a_file_the_object_can_hold(spec in database_spec()) {
        let problems = preflight::into_object(&RusqliteDb::from_bytes(&build(&spec)).unwrap()).unwrap();
        prop_assert!(problems.is_empty(), "{:?}", problems);
    }
}

proptest! {
    #![proptest_config(proptest_config(32))]

    #[test]
    fn preflight_reports_every_offender_where_it_is_and_nothing_else(
        spec in database_spec_with_offenders(Limits::default())
    ) {
        let problems = preflight::into_object(&RusqliteDb::from_bytes(&build(&spec)).unwrap()).unwrap();
        for offender in &spec.offenders {
            prop_assert!(
                problems.iter().any(|problem| reports(problem, offender)),
                "{:?} is not reported; the problems: {:?}", offender, problems
            );
        }
        for problem in &problems {
            prop_assert!(
                spec.offenders.iter().any(|offender| reports(problem, offender)),
                "{:?} reports no offender; the offenders: {:?}", problem, spec.offenders
            );
        }
    }
}
