//! The fleet check in workerd: `GET /admin/users/{id}/scan` and `migrator scan` over users of
//! every kind an operator meets (our schema, both legacy lineages, each kind of refused file, a
//! moved user, one above the R2 path's ceiling), each judged with its reason, and no Durable
//! Object woken.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use test_support::legacy::{realistic, LegacyState};
use test_support::{realistic_database, realistic_database_of_size, TestWorker, ADMIN_TOKEN};

/// The R2 path's ceiling here: small, so that a user above it is cheap to make.
const CEILING: u64 = 512 * 1024;

fn migrator(worker: &TestWorker, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrator"))
        .args(args)
        .env("MIGRATOR_ENDPOINT", worker.base_url())
        .env("MIGRATOR_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .expect("the migrator runs")
}

/// The JSON lines a `--json` run printed.
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{line}: {err}")))
        .collect()
}

#[test]
fn the_fleet_check_judges_every_kind_of_user_and_wakes_no_object() {
    let ceiling = CEILING.to_string();
    let worker = TestWorker::start_with_admin(&[("R2_MAX_DATABASE_BYTES", &ceiling)]);
    // Imported through the admin API: stored in our schema, brought up to date.
    for (user, file) in [
        ("current", realistic_database(20)),
        ("moved", realistic_database(5)),
        (
            "unmovable",
            test_support::sqlite_file_with(
                "INSERT INTO games (id, name) VALUES (1, 'g');
                 INSERT INTO raw_clips (id, filename, rating, end_time, game_id)
                     VALUES (8, '', 9223372036854775807, 2.5, 1);",
            ),
        ),
    ] {
        worker.admin_ok("PUT", &format!("/admin/users/{user}/database"), file);
    }
    worker.admin_ok("POST", "/admin/users/moved/migrate", Vec::new());
    // As the existing app left them, or as nobody should have: put into R2 as they are.
    let large = realistic_database_of_size(CEILING as usize * 3 / 2);
    assert!(large.len() as u64 > CEILING);
    // The refused: text_duration, extra_not_null, not_sqlite, damaged.
    let files: Vec<(String, Vec<u8>)> = [
        ("era_fresh", realistic(LegacyState::ERA_FRESH, 20, 1)),
        ("december", realistic(LegacyState::december(), 20, 2)),
        ("large", large),
    ]
    .into_iter()
    .chain(test_support::refused_databases())
    .map(|(user, file)| (test_support::database_key(user), file))
    .collect();
    worker.put_r2_many(&files);
    let objects = worker.objects_with_storage();
    assert_eq!(
        objects.len(),
        1,
        "only the moved user has an object: {objects:?}"
    );

    // The route, user by user.
    let scan = |user: &str| worker.admin_ok("GET", &format!("/admin/users/{user}/scan"), vec![]);
    let outcome = |report: &Value| {
        (
            report["outcome"].as_str().unwrap().to_owned(),
            report["detail"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let current = scan("current");
    assert_eq!(outcome(&current), ("as_is".into(), String::new()));
    assert_eq!(
        (current["version"].clone(), current["problems"].clone()),
        (json!(1), json!([]))
    );
    let (era, what) = outcome(&scan("era_fresh"));
    assert_eq!(era, "upgraded");
    assert!(
        what.contains("0001_init") && !what.contains("adds the columns"),
        "{what}"
    );
    let (december, what) = outcome(&scan("december"));
    assert_eq!(december, "upgraded");
    assert!(
        what.contains("adds the columns") && what.contains("working_clips.exported_at"),
        "{what}"
    );
    let (refused, why) = outcome(&scan("text_duration"));
    assert_eq!(refused, "refused");
    assert!(
        why.starts_with("incompatible schema: ")
            && why.contains("'games'")
            && why.contains("'video_duration'"),
        "{why}"
    );
    let (refused, why) = outcome(&scan("extra_not_null"));
    assert_eq!(refused, "refused");
    assert!(why.contains("'games'") && why.contains("'owner'"), "{why}");
    let (refused, why) = outcome(&scan("not_sqlite"));
    assert_eq!(refused, "refused");
    assert!(why.starts_with("not SQLite: "), "{why}");
    let (refused, why) = outcome(&scan("damaged"));
    assert_eq!(refused, "refused");
    assert!(why.starts_with("damaged: "), "{why}");
    assert_eq!(outcome(&scan("moved")), ("moved".into(), String::new()));
    let large = scan("large");
    let (chunks, why) = outcome(&large);
    assert_eq!(chunks, "chunks_only");
    assert!(why.contains("only a move in chunks helps"), "{why}");
    assert!(large["size"].as_u64().unwrap() > CEILING);
    let unmovable = scan("unmovable");
    assert_eq!(unmovable["outcome"], "as_is");
    assert_eq!(
        (
            unmovable["problems"][0]["table"].clone(),
            unmovable["problems"][0]["column"].clone()
        ),
        (json!("raw_clips"), json!("rating")),
        "served by R2, but its move would be refused: {unmovable}"
    );
    let nobody = worker.admin("GET", "/admin/users/nobody/scan", vec![]);
    assert_eq!(nobody.status, 404);
    assert!(nobody.json()["detail"]
        .as_str()
        .unwrap()
        .contains("no database in R2"));
    assert_eq!(
        worker
            .admin("GET", "/admin/users/not.valid/scan", vec![])
            .status,
        400
    );

    // The migrator, over the whole fleet.
    let output = migrator(&worker, &["scan", "--all", "--json", "--concurrency", "3"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "refused users make the check fail: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = json_lines(&output);
    let (summary, users) = lines.split_last().unwrap();
    let seen: Vec<(String, String)> = users
        .iter()
        .map(|line| {
            (
                line["user"].as_str().unwrap().to_owned(),
                line["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        seen,
        [
            ("current", "as_is"),
            ("damaged", "refused"),
            ("december", "upgraded"),
            ("era_fresh", "upgraded"),
            ("extra_not_null", "refused"),
            ("large", "chunks_only"),
            ("moved", "moved"),
            ("not_sqlite", "refused"),
            ("text_duration", "refused"),
            ("unmovable", "as_is"),
        ]
        .map(|(u, o)| (u.to_owned(), o.to_owned()))
    );
    let summary = &summary["summary"];
    assert_eq!(
        summary["outcomes"],
        json!({"as_is": 2, "upgraded": 2, "refused": 4, "chunks_only": 1, "moved": 1, "failed": 0})
    );
    let refused: Vec<&str> = summary["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        ["damaged", "extra_not_null", "not_sqlite", "text_duration"]
    );
    assert!(summary["refused"][3]["reason"]
        .as_str()
        .unwrap()
        .contains("'video_duration'"));
    assert_eq!(summary["cannot_move"][0]["user"], "unmovable");
    // One page of listing; no scan for the users the listing shows moved or above the ceiling.
    assert_eq!(
        (
            summary["calls"]["list"].clone(),
            summary["calls"]["scan"].clone()
        ),
        (json!(1), json!(8))
    );
    assert_eq!(summary["users"], 10);

    // The same for a person: the summary names each refused user and why.
    let human = migrator(&worker, &["scan", "--all"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(human.status.code(), Some(1));
    assert!(
        text.lines()
            .any(|line| line.trim_start().starts_with("text_duration")
                && line.contains("incompatible schema")),
        "{text}"
    );
    assert!(text.contains("refused (the R2 path answers 503"), "{text}");

    // Named users, none refused: no listing, one scan each, success.
    let clean = migrator(&worker, &["scan", "current", "era_fresh", "--json"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    let summary = json_lines(&clean).pop().unwrap()["summary"].take();
    assert_eq!(
        (
            summary["calls"]["list"].clone(),
            summary["calls"]["scan"].clone()
        ),
        (json!(0), json!(2))
    );
    // A user with no database cannot be scanned, and the check says so.
    let unknown = migrator(&worker, &["scan", "nobody", "--json"]);
    assert_eq!(unknown.status.code(), Some(1));
    let summary = json_lines(&unknown).pop().unwrap()["summary"].take();
    assert_eq!(summary["failed"][0]["user"], "nobody");

    // Scanning woke no object: the moved user's is still the only one.
    assert_eq!(worker.objects_with_storage(), objects);
}
