//! The R2 path never serves or overwrites a damaged file, nor one whose app tables have another
//! shape: every downloaded database passes SQLite's `quick_check` and the app's shape check, or
//! every request on it is answered 503 and the R2 object stays byte for byte as it was.

use std::time::{Duration, Instant};

use test_support::{realistic_database, realistic_database_of_size, sqlite_file_with, TestWorker};
use user_data_core::db::check_integrity;
use user_data_core::db::rusqlite_db::RusqliteDb;
use user_data_core::db::{apply_migrations, check_shape};

/// The page size of a SQLite file (header bytes 16 and 17; 1 means 65536).
fn page_size(file: &[u8]) -> usize {
    match u16::from_be_bytes([file[16], file[17]]) {
        1 => 65536,
        size => usize::from(size),
    }
}

/// Every b-tree page of a SQLite file: (page number, the table or index it belongs to, whether
/// it belongs to an index), as SQLite's `dbstat` sees them.
fn btree_pages(file: &[u8]) -> Vec<(usize, String, bool)> {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, file, file.len(), true)
        .unwrap();
    let mut statement = conn
        .prepare(
            "SELECT d.pageno, d.name, m.type = 'index' FROM dbstat d \
             JOIN sqlite_master m ON m.name = d.name \
             WHERE d.pagetype IN ('internal', 'leaf') ORDER BY d.pageno",
        )
        .unwrap();
    let pages = statement
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)? as usize, row.get(1)?, row.get(2)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    pages
}

/// `count` items of `items`, spread evenly from the first to the last.
fn spread<T: Clone>(items: &[T], count: usize) -> Vec<T> {
    (0..count)
        .map(|i| items[i * (items.len() - 1) / (count - 1).max(1)].clone())
        .collect()
}

/// Whether SQLite's `quick_check` (or opening the file at all) reports the damage, natively.
fn quick_check_reports(file: &[u8]) -> bool {
    match RusqliteDb::from_bytes(file) {
        Err(_) => true,
        Ok(db) => check_integrity(&db).is_err(),
    }
}

/// The ways of damaging a file, each over every page it applies to.
const KINDS: [&str; 4] = [
    "bytes overwritten mid table page",
    "table page zeroed",
    "truncated before page",
    "bytes overwritten mid index page",
];

/// Damaged copies of a realistic database, by kind (see [`KINDS`]) and page: 64 bytes
/// overwritten in the middle of each table b-tree page, each table page zeroed, the file
/// truncated at every 8th page boundary, 64 bytes overwritten in the middle of each index page.
/// Every page is tried, none picked by hand.
fn damaged_copies(file: &[u8]) -> Vec<(&'static str, usize, Vec<u8>)> {
    let size = page_size(file);
    let pages = btree_pages(file);
    let of_tables = || pages.iter().filter(|(page, _, index)| !index && *page > 1);
    let of_indexes = || pages.iter().filter(|(_, _, index)| *index);
    let offset = |page: usize| (page - 1) * size;
    let scribbled = |page: usize| {
        let mut copy = file.to_vec();
        let middle = offset(page) + size / 2;
        for (i, byte) in copy[middle - 32..middle + 32].iter_mut().enumerate() {
            *byte = 0xA5 ^ (i as u8).wrapping_mul(37);
        }
        copy
    };
    let mut copies = Vec::new();
    for &(page, ..) in of_tables() {
        copies.push((KINDS[0], page, scribbled(page)));
        let mut zeroed = file.to_vec();
        zeroed[offset(page)..offset(page) + size].fill(0);
        copies.push((KINDS[1], page, zeroed));
    }
    for page in (2..file.len() / size).step_by(8) {
        copies.push((KINDS[2], page, file[..offset(page)].to_vec()));
    }
    for &(page, ..) in of_indexes() {
        copies.push((KINDS[3], page, scribbled(page)));
    }
    copies
}

/// Every kind of request on `user`'s database is answered 503 with `code`, and R2 still holds
/// exactly `file` afterwards.
fn refused_and_untouched(worker: &TestWorker, user: &str, file: &[u8], code: &str) -> String {
    let responses = [
        worker.get("/api/projects", Some(user)),
        worker.get("/api/games", Some(user)),
        worker.create_project(user, "never stored"),
        worker.request("DELETE", "/api/auth/user", Some(user), &[], vec![]),
        worker.get("/api/exports/active", Some(user)),
    ];
    for response in &responses {
        let body = response.json();
        assert_eq!(
            (response.status, body["code"].as_str()),
            (503, Some(code)),
            "{user}: {body}"
        );
    }
    assert!(
        worker.get_r2(&test_support::database_key(user)).unwrap() == file,
        "{user}: the object changed"
    );
    responses[0].json()["detail"].as_str().unwrap().to_owned()
}

#[test]
fn a_damaged_database_is_answered_503_and_never_overwritten() {
    let original = realistic_database(300);
    assert!(!quick_check_reports(&original), "the original is sound");
    // Some damage is invisible to quick_check (bytes in free space, or inside a value): only
    // what it reports is asserted on, checked natively first. Of that, a few copies of each
    // kind, spread over the file, go through the Worker.
    let (reported, unseen): (Vec<_>, Vec<_>) = damaged_copies(&original)
        .into_iter()
        .partition(|(.., file)| quick_check_reports(file));
    let mut chosen = Vec::new();
    for kind in KINDS {
        let of_kind: Vec<_> = reported.iter().filter(|(k, ..)| *k == kind).collect();
        let missed = unseen.iter().filter(|(k, ..)| *k == kind).count();
        eprintln!(
            "{kind}: quick_check reports {} of {}",
            of_kind.len(),
            of_kind.len() + missed
        );
        assert!(!of_kind.is_empty(), "no damage '{kind}' was reported");
        chosen.extend(spread(&of_kind, 3));
    }

    let worker = TestWorker::start();
    for (i, (kind, page, file)) in chosen.into_iter().enumerate() {
        let user = format!("damaged-{i}");
        worker.put_r2(&test_support::database_key(&user), file);
        let detail = refused_and_untouched(&worker, &user, file, "corrupt_database");
        assert!(
            detail.contains("damaged") || detail.contains("not a valid"),
            "{kind} {page}: {detail}"
        );
    }
    // The undamaged original is served.
    worker.put_r2(&test_support::database_key("sound"), &original);
    assert_eq!(worker.get("/api/projects", Some("sound")).status, 200);
}

/// The existing app's file with `table`'s `CREATE` statement rewritten: `from` replaced by `to`.
fn file_with_table_changed(table: &str, from: &str, to: &str) -> Vec<u8> {
    let init = include_str!("../schema/0001_init.sql");
    let start = init
        .find(&format!("CREATE TABLE IF NOT EXISTS {table} ("))
        .unwrap();
    let end = start + init[start..].find(");").unwrap() + 2;
    let create = &init[start..end];
    assert!(create.contains(from), "{table} has no {from:?}");
    sqlite_file_with(&format!("DROP TABLE {table}; {}", create.replace(from, to)))
}

#[test]
fn a_database_whose_tables_have_another_shape_is_answered_503_and_never_overwritten() {
    let cases = [
        // A column of the app's first version: its upgrade never adds it (it adds
        // `opponent_name`, for instance, and the file is then served).
        (
            file_with_table_changed("games", "    video_filename TEXT,\n", ""),
            "table 'games', column 'video_filename': missing",
        ),
        (
            file_with_table_changed("raw_clips", "start_time REAL", "start_time TEXT"),
            "table 'raw_clips', column 'start_time': declared \"TEXT\"",
        ),
        (
            file_with_table_changed(
                "projects",
                "current_mode TEXT DEFAULT 'framing'",
                "current_mode TEXT DEFAULT 'framing', owner TEXT NOT NULL",
            ),
            "table 'projects', column 'owner': an extra column, NOT NULL without a default",
        ),
        (
            file_with_table_changed("raw_clips", "    filename TEXT NOT NULL,\n", ""),
            "table 'raw_clips', column 'filename': missing",
        ),
    ];
    let worker = TestWorker::start();
    for (i, (file, expected)) in cases.iter().enumerate() {
        let user = format!("shaped-{i}");
        worker.put_r2(&test_support::database_key(&user), file);
        let detail = refused_and_untouched(&worker, &user, file, "incompatible_schema");
        assert!(
            detail.contains(expected) && detail.contains("an operator has been told"),
            "{detail:?} should name {expected:?} and say an operator was told"
        );
        // The operator is told: a JSON line with the user and the reason.
        let logs = worker.logs();
        let told = logs.lines().any(|line| {
            line.contains(r#""event":"incompatible_schema""#)
                && line.contains(&format!(r#""user":"{user}""#))
                && line.contains(expected.split(':').next().unwrap())
        });
        assert!(told, "no incompatible_schema line for {user}:\n{logs}");
    }
}

/// What the R2 path does to every database it downloads, on a realistic 10 MB one natively:
/// open, `quick_check`, migrations, shape check. Run with
/// `cargo test --release --test r2_integrity -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn the_checks_of_a_download_cost_on_a_10_mb_database() {
    let file = realistic_database_of_size(10 << 20);
    let time = |step: &dyn Fn()| {
        let mut runs: Vec<Duration> = (0..7)
            .map(|_| {
                let started = Instant::now();
                step();
                started.elapsed()
            })
            .collect();
        runs.sort();
        runs[runs.len() / 2]
    };
    let open = time(&|| drop(RusqliteDb::from_bytes(&file).unwrap()));
    let db = RusqliteDb::from_bytes(&file).unwrap();
    let quick_check = time(&|| check_integrity(&db).unwrap());
    apply_migrations(&db).unwrap();
    let shape = time(&|| {
        let fresh = RusqliteDb::empty().unwrap();
        apply_migrations(&fresh).unwrap();
        check_shape(&db, &fresh).unwrap();
    });
    eprintln!(
        "{:.1} MB: open {open:?}, quick_check {quick_check:?}, fresh schema and shape check \
         {shape:?} (medians of 7)",
        file.len() as f64 / 1048576.0
    );
}
