//! Generated databases moved through workerd: R2 → object → R2, and every value comes back
//! bit-exact and of its storage class, with its schema, its AUTOINCREMENT counters and its
//! rowids, through the object's JavaScript boundary and the runtime's own SQLite. The same
//! properties hold natively (`tests/copy_properties.rs`, thousands of cases); here fewer cases
//! run, each through the real Worker, and the values at the object's limits are tried one by one.
//!
//! The seed is fixed; `PROPTEST_RNG_SEED=<n>` picks other databases.

use std::cell::Cell;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value as Json;
use test_support::generate::{
    build, contents, database_spec_with, first_difference, one_row_database, proptest_config,
    Limits, Value, DURABLE_OBJECT_VALUE_LIMIT, MAX_SAFE_INTEGER,
};
use test_support::TestWorker;

/// Seeds `user` with `file`, migrates, rolls back; after each move the authoritative copy must
/// hold the same generated data as `file`.
fn round_trip(worker: &TestWorker, user: &str, file: &[u8]) -> Result<(), String> {
    let original = contents(file);
    worker.admin_ok(
        "PUT",
        &format!("/admin/users/{user}/database"),
        file.to_vec(),
    );
    for (action, outcome) in [("migrate", "migrated"), ("rollback", "rolled_back")] {
        let response = worker.admin("POST", &format!("/admin/users/{user}/{action}"), vec![]);
        if response.status != 200 || response.json()["outcome"] != outcome {
            return Err(format!(
                "{action} answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ));
        }
        let moved = worker.admin("GET", &format!("/admin/users/{user}/database"), vec![]);
        let difference = first_difference(&original, &contents(&moved.body).part_of(&original));
        if let Some(difference) = difference {
            return Err(format!("after {action} (first: the seed): {difference}"));
        }
    }
    Ok(())
}

#[test]
fn generated_databases_migrate_and_roll_back_bit_exact_and_typed() {
    let worker = TestWorker::start_with_admin(&[]);
    let config = Config {
        // Each case is a seed, two moves and three downloads through wrangler dev.
        max_shrink_iters: 64,
        ..proptest_config(12)
    };
    let limits = Limits {
        max_tables: 5,
        max_rows: 40,
        max_value_bytes: 20_000,
    };
    let users = Cell::new(0);
    let result = TestRunner::new(config).run(&database_spec_with(limits), |spec| {
        users.set(users.get() + 1);
        round_trip(&worker, &format!("generated{}", users.get()), &build(&spec))
            .map_err(TestCaseError::fail)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn values_at_the_objects_limits_move_both_ways_unchanged() {
    let worker = TestWorker::start_with_admin(&[]);
    // The largest value a row beside its integer key can hold: the preflight counts the key's 8
    // bytes into the row's 2,000,000; a value over it is refused, below.
    let biggest = DURABLE_OBJECT_VALUE_LIMIT - 16;
    let cases: Vec<(&str, Vec<Value>)> = vec![
        (
            "zeros",
            vec![Value::real(-0.0), Value::real(0.0), Value::Integer(0)],
        ),
        (
            "extremes",
            vec![
                Value::Integer(MAX_SAFE_INTEGER),
                Value::Integer(-MAX_SAFE_INTEGER),
                Value::real(f64::MAX),
                Value::real(f64::MIN_POSITIVE),
                Value::real(f64::from_bits(1)),
                Value::real(f64::NEG_INFINITY),
                Value::real(9007199254740992.0),
            ],
        ),
        (
            "floats",
            vec![
                Value::real(1.0 / 3.0),
                Value::real(0.1 + 0.2),
                Value::real(83.416_666_666_666_67),
                Value::real(10718476.925999999),
                Value::real(5.0),
            ],
        ),
        (
            "texts",
            vec![
                Value::text("a\0b"),
                Value::text(""),
                Value::text("ünïcödé 🎬 \u{7f}\u{1}"),
                Value::Blob(Vec::new()),
                Value::Blob(vec![0; 3]),
                Value::text("5"),
                Value::Blob(b"5".to_vec()),
            ],
        ),
        ("big text", vec![Value::text(&"é".repeat(biggest / 2))]),
        ("big blob", vec![Value::Blob(vec![0xA5; biggest])]),
    ];
    for (n, (what, values)) in cases.into_iter().enumerate() {
        let file = build(&one_row_database(values));
        if let Err(failure) = round_trip(&worker, &format!("limits{n}"), &file) {
            panic!("{what}: {failure}");
        }
    }

    let over = build(&one_row_database(vec![Value::Blob(vec![
        1;
        DURABLE_OBJECT_VALUE_LIMIT
            + 1
    ])]));
    worker.admin_ok("PUT", "/admin/users/over/database", over);
    let refused = worker.admin("POST", "/admin/users/over/migrate", vec![]);
    assert_eq!(
        (refused.status, refused.json()["code"].clone()),
        (409, Json::from("not_migratable"))
    );
    assert_eq!(worker.get("/api/games", Some("over")).status, 200);
}
