//! The existing app's files answer every route as a file of our schema holding the same rows.
//!
//! A user's file, in any state the app left it ([`LegacyState`]) and with rows shaped like a
//! real user's ([`Contents`]), is brought up to date as its first use does; a file of our schema
//! then gets the same rows ([`fresh_with_rows_of`]). Every read route, then a round of writes
//! and the reads again, must answer the same on both: the columns the app no longer uses, the
//! other column order and the absent DEFAULT clauses change nothing a user sees. Runs on the
//! backend of this run of the suite (see [`super`]), so on both.

use proptest::prelude::*;
use serde_json::json;
use test_support::legacy::{fresh_with_rows_of, Contents, LegacyState};

use super::*;

/// Every read route, for ids that exist and one that does not.
fn reads(db: &TestDb) -> Vec<(Method, String, Body)> {
    let ids = |sql: &str| -> Vec<String> {
        db.query(sql, &[])
            .unwrap()
            .iter()
            .map(|row| match row.get::<i64>(0) {
                Ok(id) => id.to_string(),
                Err(_) => row.get::<String>(0).unwrap(),
            })
            .chain(["999999".to_owned()])
            .collect()
    };
    let mut paths = vec![
        "/api/projects".to_owned(),
        "/api/clips/raw".to_owned(),
        "/api/clips/raw?game_id=1".to_owned(),
        "/api/games".to_owned(),
        "/api/downloads".to_owned(),
        "/api/downloads/count".to_owned(),
        "/api/exports/recent".to_owned(),
    ];
    for project in ids("SELECT id FROM projects ORDER BY id LIMIT 4") {
        paths.push(format!("/api/projects/{project}"));
        paths.push(format!("/api/projects/{project}/working-video"));
        paths.push(format!("/api/clips/projects/{project}/clips"));
        paths.push(format!("/api/export/projects/{project}/overlay-data"));
        paths.push(format!("/api/exports/project/{project}"));
    }
    for clip in ids("SELECT id FROM raw_clips ORDER BY id LIMIT 4") {
        paths.push(format!("/api/clips/raw/{clip}"));
        paths.push(format!("/api/clips/raw/{clip}/file"));
    }
    for game in ids("SELECT id FROM games ORDER BY id LIMIT 3") {
        paths.push(format!("/api/games/{game}"));
        paths.push(format!("/api/games/{game}/video"));
    }
    for download in ids("SELECT id FROM final_videos ORDER BY id LIMIT 3") {
        paths.push(format!("/api/downloads/{download}/file"));
        paths.push(format!("/api/export/before-after/{download}/status"));
    }
    for job in ids("SELECT id FROM export_jobs ORDER BY rowid LIMIT 3") {
        paths.push(format!("/api/exports/{job}"));
    }
    paths
        .into_iter()
        .map(|path| (Method::Get, path, Body::Empty))
        .collect()
}

/// Writes a user makes on their first visit: each table touched.
fn writes() -> Vec<(Method, String, Body)> {
    vec![
        (
            Method::Post,
            "/api/projects".into(),
            json_body(json!({"name": "Nouveau ⚽", "aspect_ratio": "9:16"})),
        ),
        (
            Method::Put,
            "/api/projects/1".into(),
            json_body(json!({"name": "Renamed"})),
        ),
        (
            Method::Patch,
            "/api/projects/1/state".into(),
            json_body(json!({"current_mode": "overlay"})),
        ),
        (
            Method::Post,
            "/api/clips/raw/save".into(),
            json_body(
                json!({"game_id": 1, "start_time": 1.5, "end_time": 987654.25,
                             "rating": 4, "tags": ["Goals"], "name": "new", "notes": ""}),
            ),
        ),
        (
            Method::Put,
            "/api/clips/raw/1".into(),
            json_body(json!({"rating": 5, "name": "best"})),
        ),
        (
            Method::Put,
            "/api/games/1".into(),
            json_body(json!({"name": "Final"})),
        ),
        (
            Method::Put,
            "/api/clips/projects/1/clips/1".into(),
            json_body(json!({"crop_data": "[]"})),
        ),
        (Method::Delete, "/api/clips/raw/2".into(), Body::Empty),
        (Method::Delete, "/api/projects/2".into(), Body::Empty),
        (Method::Get, "/api/exports/active".into(), Body::Empty),
    ]
}

/// What `request` answers on `db`, in one transaction as the storage paths run it: the whole
/// reply (body, files, jobs) or the error, with today's times (of rows written now, a few
/// milliseconds apart on the two files) masked.
fn answer(db: &TestDb, request: &ApiRequest) -> String {
    let user = UserId::parse("tester").unwrap();
    let answer = format!("{:?}", db.transaction(|| handle(db, &user, request)));
    let today: String = db.query_value("SELECT date('now')", &[]).unwrap().unwrap();
    let mut masked = String::new();
    let mut rest = answer.as_str();
    while let Some(at) = rest.find(&today) {
        masked.push_str(&rest[..at]);
        masked.push_str("<now>");
        let end = rest[at..].find('\\').map_or(rest.len(), |end| at + end);
        rest = &rest[end..];
    }
    masked.push_str(rest);
    masked
}

proptest! {
    #![proptest_config(test_support::generate::proptest_config(6))]

    #[test]
    fn every_route_answers_on_a_file_the_app_left_as_on_our_schema_with_the_same_rows(
        seed in any::<u64>(),
        clips in 2usize..24,
    ) {
        let contents = Contents::generate(seed, clips);
        let states = [
            LegacyState::ERA_FRESH,
            LegacyState::december(),
            LegacyState::oldest_upgraded(),
        ];
        for state in states {
            // Brought up to date once, so that both hold the same stamps of the data step.
            let upgraded = RusqliteDb::from_bytes(&state.file(&contents)).unwrap();
            user_data_core::db::upgrade(&upgraded).unwrap();
            let mut upgraded = upgraded;
            let file = upgraded.to_bytes().unwrap();
            let legacy = test_db_of_file(&file);
            let ours = test_db_of_file(&fresh_with_rows_of(&file));
            let mut requests = reads(&ours);
            requests.extend(writes());
            requests.extend(reads(&ours));
            let (total, mut answered) = (requests.len(), 0);
            for (method, path, body) in requests {
                // One request for both: the same entropy, so the same generated names.
                let request = request(method, &path, body);
                let on_legacy = answer(&legacy, &request);
                answered += usize::from(on_legacy.starts_with("Ok("));
                prop_assert_eq!(
                    on_legacy,
                    answer(&ours, &request),
                    "{:?} {} on {}", method, path, state.name()
                );
            }
            // Alike because they serve the user, not because they fail alike.
            prop_assert!(answered * 3 > total * 2, "{answered} of {total} answered");
        }
    }
}

#[test]
fn a_legacy_file_keeps_its_obsolete_columns_through_every_write() {
    let contents = Contents::generate(5, 40);
    let db = test_db_of_file(&LegacyState::december().file(&contents));
    let obsolete = |db: &TestDb| -> Vec<(i64, String)> {
        db.query(
            "SELECT id, quote(progress) || quote(transform_data) FROM working_clips ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0).unwrap(), row.get(1).unwrap()))
        .collect()
    };
    let annotations = |db: &TestDb| -> Vec<String> {
        db.query(
            "SELECT quote(annotations_filename) FROM games ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0).unwrap())
        .collect()
    };
    let (before, annotations_before) = (obsolete(&db), annotations(&db));
    assert!(annotations_before.iter().any(|value| value != "NULL"));
    for (method, path, body) in writes() {
        let _ = call(&db, method, &path, body);
    }
    // Rows the writes deleted are gone, new versions have the defaults; every other row keeps
    // its values.
    let after = obsolete(&db);
    let kept: Vec<_> = after
        .iter()
        .filter(|(id, _)| before.iter().any(|(old, _)| old == id))
        .collect();
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|row| before.contains(row)), "{after:?}");
    assert_eq!(annotations(&db), annotations_before);
}
