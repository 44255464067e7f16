//! Bodies the Worker answered (taken from a run of the admin API in workerd, some table lists
//! shortened) go through the types and come out byte for byte the same: field names, their
//! order, enum values and `null`s are the wire format.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::request::{
    encode, ArmFault, Call, ExportDatabase, GetUser, ImportDatabase, ListUsers, Migrate, Preflight,
    Prune, Rollback, Route, Scan, Verify,
};
use super::*;

/// Parses `body` as `T`, checks that it serializes back to exactly `body`, and returns it.
fn round_trip<T: Serialize + DeserializeOwned>(body: &str) -> T {
    let parsed: T =
        serde_json::from_str(body).unwrap_or_else(|err| panic!("{body}\ndoes not parse: {err}"));
    assert_eq!(serde_json::to_string(&parsed).unwrap(), body);
    parsed
}

const USER_PAGE: &str = r#"{"users":[{"exists":true,"version":1,"size":94208,"etag":"7b3a6ebc6f5ea6df636f0f88f9786b52","state":"active","migrated_at":null,"user_id":"big"},{"exists":true,"version":4,"size":72,"etag":"ae4b2271d0b8056bb3c81467c6e0f2cf","state":"migrated","migrated_at":1795336440284,"user_id":"cap"}],"flagged":["cap","hand-flagged"],"cursor":"{\"r2\":\"YmlnL2RhdGFiYXNlLnNxbGl0ZQ==\",\"kv\":null}","r2_max_bytes":12582912}"#;

#[test]
fn a_page_of_users() {
    let page: UserPage = round_trip(USER_PAGE);
    let cap = &page.users[1];
    assert_eq!(
        (cap.user_id.as_str(), cap.r2.state, cap.r2.migrated_at),
        ("cap", R2State::Migrated, Some(1795336440284))
    );
    assert_eq!(page.flagged, ["cap", "hand-flagged"]);
    assert!(page.cursor.is_some());
    assert_eq!(page.r2_max_bytes, Some(12 << 20));
    round_trip::<UserPage>(r#"{"users":[],"flagged":[],"cursor":null,"r2_max_bytes":4194304}"#);
    // A Worker older than the ceiling's field: the migrator then knows no ceiling.
    let older: UserPage =
        serde_json::from_str(r#"{"users":[],"flagged":[],"cursor":null}"#).unwrap();
    assert_eq!(older.r2_max_bytes, None);
}

#[test]
fn pages_join_into_users_with_their_flags_wherever_each_was_listed() {
    let first: UserPage = round_trip(USER_PAGE);
    let second = UserPage {
        users: vec![ListedUser {
            r2: R2Summary::missing(),
            user_id: "dan".into(),
        }],
        flagged: vec!["big".into()],
        cursor: None,
        r2_max_bytes: None,
    };
    let listing = Listing::of(vec![first, second]);
    assert_eq!((listing.pages, listing.r2_max_bytes), (2, Some(12 << 20)));
    let joined: Vec<(String, bool, bool)> = listing
        .users
        .into_iter()
        .map(|user| (user.user_id, user.r2.exists, user.flag))
        .collect();
    assert_eq!(
        joined,
        [
            ("big".to_owned(), true, true),
            ("cap".to_owned(), true, true),
            ("dan".to_owned(), false, false),
            ("hand-flagged".to_owned(), false, true),
        ]
    );
}

#[test]
fn a_user_without_a_database_in_r2() {
    let missing = r#"{"exists":false,"version":0,"size":null,"etag":null,"state":"active","migrated_at":null}"#;
    assert_eq!(round_trip::<R2Summary>(missing), R2Summary::missing());
}

const STATUS_MIGRATED: &str = r#"{"user_id":"cap","r2":{"exists":true,"version":2,"size":102400,"etag":"5806ad2cec4199a8b3347bfdbc537bdd","state":"migrated","migrated_at":1795336439440},"flag":true,"object":{"state":"active","version":2,"size":118784,"tables":{"raw_clips":5,"projects":0,"working_clips":5,"working_videos":1,"final_videos":2,"games":19,"export_jobs":1,"before_after_tracks":2,"schema_migrations":2,"data_version":1},"last_failure":{"action":"rollback","step":"copy","reason":"fault injected at copy","at_ms":1795336439871}}}"#;

#[test]
fn a_user_s_status_keeps_the_order_of_its_tables() {
    let status: UserStatus = round_trip(STATUS_MIGRATED);
    assert_eq!(status.object.state, ObjectState::Active);
    assert_eq!(status.object.tables.0[0], ("raw_clips".to_owned(), 5));
    assert_eq!(status.object.tables.get("games"), Some(19));
    assert_eq!(
        status.object.last_failure,
        Some(Failure {
            action: Action::Rollback,
            step: Step::Copy,
            reason: "fault injected at copy".into(),
            at_ms: 1795336439871,
        })
    );

    let never_moved = r#"{"user_id":"big","r2":{"exists":true,"version":1,"size":94208,"etag":"7b3a6ebc6f5ea6df636f0f88f9786b52","state":"active","migrated_at":null},"flag":false,"object":{"state":"new","version":0,"size":118784,"tables":{"schema_migrations":2,"raw_clips":0,"projects":0,"working_clips":0,"working_videos":0,"final_videos":0,"games":0,"export_jobs":0,"before_after_tracks":0,"data_version":1},"last_failure":{"action":"migrate","step":"preflight","reason":"an integer outside ±(2^53 − 1) in raw_clips.rating (rowid 8, and 1 more)","at_ms":1795336439768}}}"#;
    let status: UserStatus = round_trip(never_moved);
    assert_eq!(status.object.state, ObjectState::New);
    assert_eq!(status.object.tables.0[0].0, "schema_migrations");

    let rolled_back = r#"{"user_id":"cap","r2":{"exists":true,"version":3,"size":188416,"etag":"fec97cb48e72d18175942da814869fea","state":"active","migrated_at":null},"flag":false,"object":{"state":"rolled_back","version":2,"size":118784,"tables":{},"last_failure":null}}"#;
    let status: UserStatus = round_trip(rolled_back);
    assert_eq!(status.object.state, ObjectState::RolledBack);
    assert_eq!(status.object.last_failure, None);
}

#[test]
fn move_reports_of_every_outcome() {
    let tables = r#"[{"name":"games","rows":19,"checksum":"05e100863c12c149dd213ce51a2e26e7"},{"name":"projects","rows":0,"checksum":"e3b0c44298fc1c149afbf4c8996fb924"},{"name":"(schema)","rows":20,"checksum":"2e29966f207f7f48b0d35dd69a5afec3"},{"name":"(sqlite_sequence)","rows":7,"checksum":"e7c72f75625379bc1852c42052953222"}]"#;
    for (outcome, wire, bytes) in [
        (Outcome::Migrated, "migrated", 94208),
        (Outcome::AlreadyMigrated, "already_migrated", 0),
        (Outcome::RolledBack, "rolled_back", 188416),
        (Outcome::AlreadyOnR2, "already_on_r2", 0),
    ] {
        let body = format!(
            r#"{{"user_id":"cap","outcome":"{wire}","version":2,"bytes":{bytes},"tables":{tables},"milliseconds":148}}"#
        );
        let report: MoveReport = round_trip(&body);
        assert_eq!(report.outcome, outcome);
        assert_eq!(outcome.as_str(), wire);
        assert_eq!(report.tables[0].rows, 19);
    }
}

#[test]
fn preflight_reports() {
    let movable: PreflightReport =
        round_trip(r#"{"action":"rollback","movable":true,"problems":[],"in_chunks":false}"#);
    assert_eq!((movable.action, movable.movable), (Action::Rollback, true));
    let large: PreflightReport =
        round_trip(r#"{"action":"migrate","movable":true,"problems":[],"in_chunks":true}"#);
    assert!(
        large.in_chunks,
        "a database above the R2 ceiling moves in chunks"
    );

    let refused = r#"{"action":"migrate","movable":false,"problems":[{"reason":"an integer outside ±(2^53 − 1)","table":"raw_clips","column":"rating","rowid":8,"row":"rowid 8","count":2},{"reason":"text encoding UTF-16le, not UTF-8","table":null,"column":null,"rowid":null,"row":null,"count":1}],"in_chunks":false}"#;
    let refused: PreflightReport = round_trip(refused);
    assert_eq!(
        refused.problems[0].to_string(),
        "an integer outside ±(2^53 − 1) in raw_clips.rating (rowid 8, and 1 more)"
    );
    assert_eq!(
        refused.problems[1],
        Problem::about_file("text encoding UTF-16le, not UTF-8".into())
    );
}

#[test]
fn scan_reports_of_every_outcome() {
    let upgraded: ScanReport = round_trip(
        r#"{"user_id":"dec","outcome":"upgraded","version":0,"size":98304,"detail":"adds the columns working_clips.exported_at; applies 0001_init, 0002_data_version","problems":[]}"#,
    );
    assert_eq!(upgraded.outcome, ScanOutcome::Upgraded);
    let refused: ScanReport = round_trip(
        r#"{"user_id":"odd","outcome":"refused","version":3,"size":94208,"detail":"incompatible schema: table 'games', column 'video_duration': type TEXT, not REAL","problems":[]}"#,
    );
    assert!(refused.detail.unwrap().contains("video_duration"));
    let unmovable: ScanReport = round_trip(
        r#"{"user_id":"big","outcome":"as_is","version":1,"size":94208,"detail":null,"problems":[{"reason":"an integer outside ±(2^53 − 1)","table":"raw_clips","column":"rating","rowid":8,"row":"rowid 8","count":2}]}"#,
    );
    assert_eq!(unmovable.problems[0].count, 2);
    for outcome in ScanOutcome::ALL {
        let wire = serde_json::to_string(&outcome).unwrap();
        assert_eq!(wire, format!("\"{outcome}\""));
    }
}

#[test]
fn a_problem_reads_as_one_line() {
    let mut problem = Problem {
        reason: "a value over 2000000 bytes".into(),
        table: Some("t".into()),
        column: None,
        rowid: None,
        row: Some("key ('a', 2)".into()),
        count: 1,
    };
    assert_eq!(
        problem.to_string(),
        "a value over 2000000 bytes in table t (key ('a', 2))"
    );
    problem.row = None;
    assert_eq!(problem.to_string(), "a value over 2000000 bytes in table t");
}

#[test]
fn verify_results() {
    let agrees: VerifyResult = round_trip(
        r#"{"state":"active","version":2,"r2_version":2,"written_since_migration":false,"quick_check":"ok","agrees_with_r2":true}"#,
    );
    assert!(agrees.passes_quick_check() && agrees.agrees_with_r2 == Some(true));
    let never_moved: VerifyResult = round_trip(
        r#"{"state":"new","version":0,"r2_version":1,"written_since_migration":true,"quick_check":"ok","agrees_with_r2":false}"#,
    );
    assert_eq!(never_moved.state, ObjectState::New);
    let damaged: VerifyResult = round_trip(
        r#"{"state":"active","version":5,"r2_version":4,"written_since_migration":true,"quick_check":"*** in database main ***\nPage 3: btreeInitPage() returns error code 11","agrees_with_r2":null}"#,
    );
    assert!(!damaged.passes_quick_check());
    assert_eq!(damaged.agrees_with_r2, None);
}

#[test]
fn import_prune_and_fault_results() {
    let stored: ImportResult = round_trip(
        r#"{"user_id":"imported","version":1,"bytes":69632,"upgrade":"adds the columns working_clips.exported_at, games.clip_count; applies 0001_init, 0002_data_version","backup":"imported/backups/database.v0.sqlite"}"#,
    );
    assert_eq!(stored.version, 1);
    assert_eq!(
        stored.backup.as_deref(),
        Some("imported/backups/database.v0.sqlite")
    );
    round_trip::<ImportResult>(
        r#"{"user_id":"new","version":1,"bytes":4096,"upgrade":"nothing to upgrade","backup":null}"#,
    );
    let pruned: PruneResult = round_trip(
        r#"{"dry_run":true,"older_than_days":0,"deleted_backups":["cap/backups/database.v2.sqlite"],"tombstoned":["cap/database.sqlite"]}"#,
    );
    assert_eq!(pruned.tombstoned, ["cap/database.sqlite"]);
    round_trip::<PruneResult>(
        r#"{"dry_run":false,"older_than_days":30,"deleted_backups":[],"tombstoned":[]}"#,
    );
    assert!(round_trip::<FaultArmed>(r#"{"armed":true}"#).armed);
}

#[test]
fn error_bodies_leave_out_what_does_not_apply() {
    let plain: ErrorBody = round_trip(r#"{"detail":"query field 'limit': 1 to 1000"}"#);
    assert_eq!((plain.code, plain.problems), (None, None));
    let corrupt: ErrorBody = round_trip(
        r#"{"detail":"The user's database is damaged: file is not a database","code":"corrupt_database"}"#,
    );
    assert_eq!(corrupt.code, Some(ErrorCode::CorruptDatabase));
    round_trip::<ErrorBody>(
        r#"{"detail":"app tables of another shape","code":"incompatible_schema"}"#,
    );
    let refused: ErrorBody = round_trip(
        r#"{"detail":"The user cannot move to their Durable Object: an integer outside ±(2^53 − 1) in raw_clips.rating (rowid 8, and 1 more); nothing was changed","code":"not_migratable","problems":[{"reason":"an integer outside ±(2^53 − 1)","table":"raw_clips","column":"rating","rowid":8,"row":"rowid 8","count":2}]}"#,
    );
    assert_eq!(refused.code, Some(ErrorCode::NotMigratable));
    assert_eq!(refused.problems.unwrap()[0].rowid, Some(8));
}

#[test]
fn enum_names_are_their_wire_values() {
    fn wire<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap()
    }
    for step in Step::ALL {
        assert_eq!(wire(&step), format!("\"{}\"", step.as_str()));
        assert_eq!(Step::parse(step.as_str()), Some(step));
    }
    assert_eq!(Step::parse("cut_over"), Some(Step::CutOver));
    assert_eq!(Step::parse("nope"), None);
    for action in [Action::Migrate, Action::Rollback] {
        assert_eq!(wire(&action), format!("\"{action}\""));
    }
    assert_eq!(wire(&ObjectState::RollingBack), "\"rolling_back\"");
    for state in ObjectState::ALL {
        assert_eq!(wire(&state), format!("\"{}\"", state.as_str()));
        assert_eq!(ObjectState::parse(state.as_str()), Some(state));
    }
    assert_eq!(
        wire(&ErrorCode::ChunkedMoveRequired),
        "\"chunked_move_required\""
    );
    assert_eq!(wire(&R2State::Migrated), "\"migrated\"");
    assert_eq!(
        wire(&ErrorCode::IncompatibleSchema),
        "\"incompatible_schema\""
    );
}

#[test]
fn requests_name_their_method_path_and_answer() {
    fn route<C: Call>(call: &C) -> (&'static str, String) {
        (C::METHOD, call.path())
    }
    assert_eq!(
        route(&GetUser::new("ann")),
        ("GET", "/admin/users/ann".into())
    );
    assert_eq!(
        route(&Migrate::new("ann")),
        ("POST", "/admin/users/ann/migrate".into())
    );
    assert_eq!(
        route(&Rollback::new("ann")),
        ("POST", "/admin/users/ann/rollback".into())
    );
    assert_eq!(
        route(&Preflight::new("ann")),
        ("GET", "/admin/users/ann/preflight".into())
    );
    assert_eq!(
        route(&Verify::new("ann")),
        ("GET", "/admin/users/ann/verify".into())
    );
    assert_eq!(
        route(&Scan::new("ann")),
        ("GET", "/admin/users/ann/scan".into())
    );
    assert_eq!(
        route(&ImportDatabase::new("ann")),
        ("PUT", "/admin/users/ann/database".into())
    );
    let export = ExportDatabase::new("ann");
    assert_eq!(
        (ExportDatabase::METHOD, export.path()),
        ("GET", "/admin/users/ann/database".into())
    );
    let fault = ArmFault {
        user_id: "ann".into(),
        action: Action::Rollback,
        step: Step::CutOver,
        crash: true,
    };
    assert_eq!(
        route(&fault),
        (
            "POST",
            "/admin/users/ann/fault?action=rollback&step=cut_over&crash=true".into()
        )
    );
    let prune = Prune {
        older_than_days: 30,
        dry_run: false,
    };
    assert_eq!(
        route(&prune),
        (
            "POST",
            "/admin/prune?older_than_days=30&dry_run=false".into()
        )
    );
    let next = ListUsers {
        cursor: Some("a+b/c==".into()),
        limit: 1000,
    };
    assert_eq!(
        route(&next),
        (
            "GET",
            "/admin/users?limit=1000&cursor=a%2Bb%2Fc%3D%3D".into()
        )
    );
    assert_eq!(
        Migrate::new("a b").path(),
        "/admin/users/a%20b/migrate",
        "ids are encoded"
    );
    assert_eq!(encode("user_1-a.b~"), "user_1-a.b~");
    assert_eq!(encode("é /"), "%C3%A9%20%2F");
}

#[test]
fn query_fields_parse_as_the_worker_reads_them() {
    fn query<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
    assert_eq!(
        ListUsers::from_query(query(&[])),
        Ok(ListUsers {
            cursor: None,
            limit: 100
        })
    );
    assert_eq!(
        ListUsers::from_query(query(&[("limit", "2"), ("cursor", "abc")])),
        Ok(ListUsers {
            cursor: Some("abc".into()),
            limit: 2
        })
    );
    assert_eq!(
        ListUsers::from_query(query(&[("cursor", "")])).map(|l| l.cursor),
        Ok(None)
    );
    for wrong in ["0", "1001", "-1", "ten", ""] {
        assert_eq!(
            ListUsers::from_query(query(&[("limit", wrong)])),
            Err("query field 'limit': 1 to 1000".into()),
            "{wrong}"
        );
    }
    assert_eq!(
        Prune::from_query(query(&[])),
        Ok(Prune {
            older_than_days: 30,
            dry_run: false
        })
    );
    assert_eq!(
        Prune::from_query(query(&[("older_than_days", "0"), ("dry_run", "yes")])),
        Ok(Prune {
            older_than_days: 0,
            dry_run: true
        })
    );
    assert_eq!(
        Prune::from_query(query(&[("dry_run", "false")])).map(|p| p.dry_run),
        Ok(false)
    );
    assert_eq!(
        Prune::from_query(query(&[("older_than_days", "x")])),
        Err("query field 'older_than_days': a whole number".into())
    );
}
