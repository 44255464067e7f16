//! The two paths that serve a user's data, for tests that run once on each: the R2-SQLite path,
//! where every user starts, and the user's Durable Object. As litestream's
//! `RunWithReplicaClient` runs one test body against every replica client, [`for_each_path`]
//! runs one body on each path and says which path a failure was on; [`TestWorker::user_on`]
//! and [`TestWorker::move_to`] put a user on a path.

use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::keys::flag_key;
use crate::TestWorker;

/// Where a user's requests are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    /// The R2-SQLite path: the user's file in R2, no flag.
    R2,
    /// The user's Durable Object: the flag `migrated:<user>` is set.
    Object,
}

impl DataPath {
    /// Both paths, R2 first.
    pub const BOTH: [DataPath; 2] = [DataPath::R2, DataPath::Object];

    /// The `X-Data-Path` header of the answers this path gives: `r2` or `do`.
    pub fn header(self) -> &'static str {
        match self {
            DataPath::R2 => "r2",
            DataPath::Object => "do",
        }
    }
}

impl fmt::Display for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header())
    }
}

/// Runs `body` once on each path, R2 first. A failure fails the test, after a line that names
/// the path it happened on (as a subtest's name would).
pub fn for_each_path(mut body: impl FnMut(DataPath)) {
    for path in DataPath::BOTH {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(path))) {
            eprintln!("(the failure above was on the {path} path)");
            resume_unwind(panic);
        }
    }
}

/// Two users, one on each path, as most tests keep them: `on_r2` stays on R2, `on_object` is
/// (or will be) on their object. For a test's own users; it sets nothing up.
pub fn users_on_each_path<'a>(on_r2: &'a str, on_object: &'a str) -> [(&'a str, DataPath); 2] {
    [(on_r2, DataPath::R2), (on_object, DataPath::Object)]
}

impl TestWorker {
    /// A user with no data yet, named `<name>_<path>` (`big_r2`, `big_do`), set up on `path`: for
    /// the object, the flag is set, so their first request creates their data there.
    pub fn user_on(&self, name: &str, path: DataPath) -> String {
        let user = format!("{name}_{path}");
        if path == DataPath::Object {
            self.put_kv(&flag_key(&user), "1");
        }
        user
    }

    /// Moves `user`, whose data is on R2, to `path` as an operator does: nothing for R2, an
    /// admin migrate for the object (the Worker must run with the admin API).
    pub fn move_to(&self, user: &str, path: DataPath) {
        if path == DataPath::Object {
            self.admin_ok("POST", &format!("/admin/users/{user}/migrate"), Vec::new());
        }
    }
}
