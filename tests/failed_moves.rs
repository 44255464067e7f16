//! Every step of both moves, made to fail on purpose (the admin API arms a fault in the user's
//! object when the Worker runs with `FAULT_INJECTION`): the user keeps being served, with every
//! acknowledged write, by the side that is still authoritative, and a later move succeeds.
//!
//! Each step is tried twice: with the KV flag changed by hand (the first request moves the user
//! and meets the fault) and by an operator's admin call (which reports the failure).

use serde_json::Value;
use test_support::{realistic_database, TestWorker};

/// A worker that can arm faults; flags changed by hand are honoured at once.
fn worker() -> TestWorker {
    TestWorker::start_with_admin(&[("FAULT_INJECTION", "1"), ("FLAG_PROPAGATION_SECONDS", "0")])
}

fn seed(worker: &TestWorker, user: &str) {
    let response = worker.admin(
        "PUT",
        &format!("/admin/users/{user}/database"),
        realistic_database(30),
    );
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

fn arm(worker: &TestWorker, user: &str, action: &str, step: &str, crash: bool) {
    let path = format!("/admin/users/{user}/fault?action={action}&step={step}&crash={crash}");
    let response = worker.admin("POST", &path, Vec::new());
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

fn status(worker: &TestWorker, user: &str) -> Value {
    worker
        .admin("GET", &format!("/admin/users/{user}"), Vec::new())
        .json()
}

/// The user's acknowledged writes so far, checked to be all there.
struct Writes<'a> {
    worker: &'a TestWorker,
    user: &'a str,
    acknowledged: Vec<String>,
}

impl<'a> Writes<'a> {
    fn new(worker: &'a TestWorker, user: &'a str) -> Self {
        Self {
            worker,
            user,
            acknowledged: Vec::new(),
        }
    }

    /// Writes a project; the answer must be a success.
    fn write(&mut self, name: &str) -> Option<String> {
        let response = self.worker.create_project(self.user, name);
        assert_eq!(
            response.status,
            200,
            "{} could not write {name}: {}",
            self.user,
            String::from_utf8_lossy(&response.body)
        );
        self.acknowledged.push(name.to_owned());
        response.header("X-Data-Path").map(str::to_owned)
    }

    fn assert_all_kept(&self) {
        let names = self.worker.project_names(self.user);
        let lost: Vec<_> = self
            .acknowledged
            .iter()
            .filter(|name| !names.contains(name))
            .collect();
        assert!(
            lost.is_empty(),
            "{}: acknowledged but lost: {lost:?}",
            self.user
        );
    }
}

/// A migrate that fails at `step`: R2 stays authoritative (or, past the cut-over, the object
/// finishes), every request is answered 2xx, nothing acknowledged is lost, and an operator's
/// migrate afterwards succeeds.
fn migrate_fails_at(step: &str) {
    let worker = worker();
    for by_hand in [true, false] {
        let user = if by_hand { "flagged" } else { "operated" };
        seed(&worker, user);
        let mut writes = Writes::new(&worker, user);
        writes.write("before");
        arm(&worker, user, "migrate", step, false);
        if by_hand {
            worker.put_kv(&test_support::flag_key(user), "1");
            writes.write("meets the failure");
        } else {
            let response = worker.admin("POST", &format!("/admin/users/{user}/migrate"), vec![]);
            assert!(response.status >= 400, "{step}: the failure is reported");
            assert!(response.json()["detail"].is_string());
        }
        // A request whose migrate failed after the cut-over finishes it in its next round:
        // then the record is already cleared by that success.
        if !(by_hand && step == "activate") {
            let failure = &status(&worker, user)["object"]["last_failure"];
            assert_eq!(failure["step"], step, "{user}: {failure}");
            assert_eq!(failure["action"], "migrate");
        }
        writes.write("after the failure");
        writes.assert_all_kept();

        let report = worker.admin("POST", &format!("/admin/users/{user}/migrate"), vec![]);
        assert_eq!(
            report.status,
            200,
            "{}",
            String::from_utf8_lossy(&report.body)
        );
        assert_eq!(writes.write("on the object").as_deref(), Some("do"));
        writes.assert_all_kept();
        assert!(status(&worker, user)["object"]["last_failure"].is_null());
    }
}

/// A rollback that fails at `step`: before the R2 put the object serves again; after it, R2
/// does. Every request is answered 2xx, nothing acknowledged is lost, and an operator's
/// rollback afterwards succeeds.
fn rollback_fails_at(step: &str) {
    let worker = worker();
    for by_hand in [true, false] {
        let user = if by_hand { "unflagged" } else { "operated" };
        seed(&worker, user);
        let migrated = worker.admin("POST", &format!("/admin/users/{user}/migrate"), vec![]);
        assert_eq!(migrated.status, 200);
        let mut writes = Writes::new(&worker, user);
        writes.write("on the object");
        arm(&worker, user, "rollback", step, false);
        if by_hand {
            worker.delete_kv(&test_support::flag_key(user));
            writes.write("meets the failure");
        } else {
            let response = worker.admin("POST", &format!("/admin/users/{user}/rollback"), vec![]);
            assert!(response.status >= 400, "{step}: the failure is reported");
        }
        let failure = &status(&worker, user)["object"]["last_failure"];
        assert_eq!(failure["action"], "rollback", "{user}: {failure}");
        writes.write("after the failure");
        writes.assert_all_kept();

        let report = worker.admin("POST", &format!("/admin/users/{user}/rollback"), vec![]);
        assert_eq!(
            report.status,
            200,
            "{}",
            String::from_utf8_lossy(&report.body)
        );
        worker.delete_kv(&test_support::flag_key(user));
        assert_eq!(writes.write("back on r2").as_deref(), Some("r2"));
        writes.assert_all_kept();
    }
}

macro_rules! failing_steps {
    ($run:ident: $($test:ident => $step:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $run($step);
            }
        )*
    };
}

failing_steps!(migrate_fails_at:
    a_migrate_failing_in_preflight_keeps_the_user_served => "preflight",
    a_migrate_failing_in_copy_keeps_the_user_served => "copy",
    a_migrate_failing_in_verify_keeps_the_user_served => "verify",
    a_migrate_failing_at_the_cut_over_keeps_the_user_served => "cut_over",
    a_migrate_failing_at_activation_keeps_the_user_served => "activate",
    a_migrate_failing_to_set_the_flag_keeps_the_user_served => "flag",
);

failing_steps!(rollback_fails_at:
    a_rollback_failing_in_preflight_keeps_the_user_served => "preflight",
    a_rollback_failing_in_copy_keeps_the_user_served => "copy",
    a_rollback_failing_in_verify_keeps_the_user_served => "verify",
    a_rollback_failing_in_backup_keeps_the_user_served => "backup",
    a_rollback_failing_at_the_cut_over_keeps_the_user_served => "cut_over",
    a_rollback_failing_after_the_cut_over_keeps_the_user_served => "activate",
    a_rollback_failing_to_delete_the_flag_keeps_the_user_served => "flag",
);

/// A crash (the object reset mid-move, with no clean-up) at the riskiest points: the request
/// that met it may fail, but the next ones are served and nothing acknowledged is lost.
#[test]
fn a_move_cut_short_by_a_crash_leaves_the_user_served() {
    let worker = worker();
    for (action, step) in [
        ("migrate", "copy"),
        ("migrate", "cut_over"),
        ("rollback", "copy"),
        ("rollback", "cut_over"),
        ("rollback", "activate"),
    ] {
        let user = format!("crash_{action}_{step}");
        seed(&worker, &user);
        if action == "rollback" {
            let migrated = worker.admin("POST", &format!("/admin/users/{user}/migrate"), vec![]);
            assert_eq!(migrated.status, 200);
        }
        let mut writes = Writes::new(&worker, &user);
        writes.write("before");
        arm(&worker, &user, action, step, true);
        let crashed = worker.admin("POST", &format!("/admin/users/{user}/{action}"), vec![]);
        assert!(crashed.status >= 500, "{user}: the crash is not a success");
        writes.write("after the crash");
        writes.write("and again");
        writes.assert_all_kept();
        let state = status(&worker, &user)["object"]["state"].clone();
        assert_ne!(
            state, "rolling_back",
            "{user}: an interrupted rollback is settled"
        );
        let retried = worker.admin("POST", &format!("/admin/users/{user}/{action}"), vec![]);
        assert_eq!(
            retried.status,
            200,
            "{user}: {}",
            String::from_utf8_lossy(&retried.body)
        );
        writes.write("after the retry");
        writes.assert_all_kept();
    }
}
