//! The Worker's admin API (`/admin/*`, behind `Authorization: Bearer <ADMIN_TOKEN>`) as types:
//! what each route answers ([this module](self)) and how each is called ([`request`]), and the
//! calls the admin API makes to a user's Durable Object ([`object_call`]).
//!
//! The Worker serializes these types and the migrator deserializes them, so the two cannot drift
//! apart. The serde attributes are the wire format: field names and their order, `snake_case`
//! enum values, and optional fields that are `null` (never left out), except in [`ErrorBody`],
//! which leaves out what does not apply.
//!
//! Only serde: no worker dependency, so the crate builds natively and to wasm32 alike.

pub mod in_chunks;
pub mod object_call;
pub mod request;

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a user's Durable Object stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectState {
    /// Never migrated: R2 is authoritative.
    New,
    /// Holds the user's data and serves it.
    Active,
    /// Exporting to R2. Seen at the start of a request only after a crash mid-rollback, and then
    /// resolved at once.
    RollingBack,
    /// A chunked migrate is copying the data in (R2 stays authoritative and serves).
    Importing,
    /// A chunked rollback or export is reading the data out: the object holds it but serves
    /// nothing (503 with `Retry-After`) until the move ends, or stops making progress.
    Exporting,
    /// R2 is authoritative again; what the object holds is stale.
    RolledBack,
}

impl ObjectState {
    pub const ALL: [ObjectState; 6] = [
        ObjectState::New,
        ObjectState::Active,
        ObjectState::RollingBack,
        ObjectState::Importing,
        ObjectState::Exporting,
        ObjectState::RolledBack,
    ];

    /// The wire name: `new`, `active`, `rolling_back`, ... (also what the object records).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectState::New => "new",
            ObjectState::Active => "active",
            ObjectState::RollingBack => "rolling_back",
            ObjectState::Importing => "importing",
            ObjectState::Exporting => "exporting",
            ObjectState::RolledBack => "rolled_back",
        }
    }

    /// The state of this wire name, if there is one.
    pub fn parse(name: &str) -> Option<ObjectState> {
        ObjectState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// Which copy is authoritative, as the R2 object's metadata says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum R2State {
    /// The R2 copy is the user's data; the R2 path serves and writes it.
    Active,
    /// The user's Durable Object holds the data; the R2 copy is a frozen snapshot (or a
    /// tombstone) and fences the R2 path.
    Migrated,
}

/// The two moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// From R2 into the user's Durable Object.
    Migrate,
    /// From the Durable Object back to R2.
    Rollback,
}

impl Action {
    /// The wire name: `migrate` or `rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Migrate => "migrate",
            Action::Rollback => "rollback",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The steps of a move, in order; a failure is recorded with the step it happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Reading the source and checking that the destination can hold it.
    Preflight,
    /// Copying the rows (import into the object, or export to a file).
    Copy,
    /// Comparing the digests of both copies.
    Verify,
    /// Keeping the R2 copy a rollback is about to replace.
    Backup,
    /// The conditional R2 put that hands authority to the other side.
    CutOver,
    /// Marking the object active (migrate) or rolled back (rollback).
    Activate,
    /// Setting or deleting the KV flag.
    Flag,
    /// A rollback cut short by a crash, found by the next request (not a step a move enters).
    Interrupted,
}

impl Step {
    /// Every step: those a move enters, in order, then [`Step::Interrupted`].
    pub const ALL: [Step; 8] = [
        Step::Preflight,
        Step::Copy,
        Step::Verify,
        Step::Backup,
        Step::CutOver,
        Step::Activate,
        Step::Flag,
        Step::Interrupted,
    ];

    /// The step of this wire name (`cut_over`), if there is one.
    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.as_str() == name)
    }

    /// The wire name: `preflight`, `copy`, ..., `cut_over`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Copy => "copy",
            Step::Verify => "verify",
            Step::Backup => "backup",
            Step::CutOver => "cut_over",
            Step::Activate => "activate",
            Step::Flag => "flag",
            Step::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a migrate or rollback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The data moved into the object.
    Migrated,
    /// The object already held it: nothing moved (the KV flag is set again).
    AlreadyMigrated,
    /// The data moved back to R2.
    RolledBack,
    /// R2 already held it: nothing moved (the KV flag is deleted again).
    AlreadyOnR2,
}

impl Outcome {
    /// The wire name: `migrated`, `already_migrated`, `rolled_back` or `already_on_r2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Migrated => "migrated",
            Outcome::AlreadyMigrated => "already_migrated",
            Outcome::RolledBack => "rolled_back",
            Outcome::AlreadyOnR2 => "already_on_r2",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What R2 holds of a user's database, from one HEAD. Without an object: `exists: false`,
/// version 0, `active`, and `null` size, etag and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct R2Summary {
    pub exists: bool,
    /// The `db-version` in the object's metadata (0: none, a legacy object).
    pub version: u64,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub state: R2State,
    /// When the user moved into their object (epoch milliseconds), while `migrated`.
    pub migrated_at: Option<u64>,
}

impl R2Summary {
    /// The summary of a user with no database in R2.
    pub fn missing() -> Self {
        R2Summary {
            exists: false,
            version: 0,
            size: None,
            etag: None,
            state: R2State::Active,
            migrated_at: None,
        }
    }
}

/// One user with a database in R2, as a page of `GET /admin/users` lists it: what R2 holds
/// (its fields inline), then the id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedUser {
    #[serde(flatten)]
    pub r2: R2Summary,
    pub user_id: String,
}

/// `GET /admin/users?cursor=&limit=`: a page of the users' R2 databases and, side by side, a
/// page of the `migrated:` flags. Each page costs the Worker one R2 list (with the objects'
/// metadata) and one KV list, whatever it holds; the two stores list in different orders, so a
/// user's flag may come on another page than their database: [`join`] all pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPage {
    pub users: Vec<ListedUser>,
    /// Users whose KV flag `migrated:<user_id>` is set.
    pub flagged: Vec<String>,
    /// The `cursor` of the next page; `null` on the last.
    pub cursor: Option<String>,
    /// The R2 path's ceiling (`R2_MAX_DATABASE_BYTES`): a user whose database is larger gets 507
    /// there and moves only in chunks. Absent from a Worker older than the field.
    #[serde(default)]
    pub r2_max_bytes: Option<u64>,
}

/// A user of the whole listing: R2's summary (missing for a user with only a flag), and
/// whether the flag is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    #[serde(flatten)]
    pub r2: R2Summary,
    pub user_id: String,
    /// Whether the KV flag `migrated:<user_id>` is set.
    pub flag: bool,
}

/// The whole listing: every user of all its pages, and what the pages say of the Worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Every user, sorted by id ([`join`]).
    pub users: Vec<UserSummary>,
    /// The R2 path's ceiling, as the pages gave it.
    pub r2_max_bytes: Option<u64>,
    /// How many pages (calls to `GET /admin/users`) it took.
    pub pages: usize,
}

impl Listing {
    /// The listing of all `pages`.
    pub fn of(pages: Vec<UserPage>) -> Self {
        Listing {
            r2_max_bytes: pages.iter().find_map(|page| page.r2_max_bytes),
            pages: pages.len(),
            users: join(pages),
        }
    }
}

/// Every user of all `pages`, sorted by id: those with a database in R2, and those with only
/// a flag.
pub fn join(pages: impl IntoIterator<Item = UserPage>) -> Vec<UserSummary> {
    let mut users = std::collections::BTreeMap::new();
    let mut flagged = std::collections::BTreeSet::new();
    for page in pages {
        for listed in page.users {
            users.insert(listed.user_id.clone(), listed.r2);
        }
        flagged.extend(page.flagged);
    }
    for user in &flagged {
        users.entry(user.clone()).or_insert_with(R2Summary::missing);
    }
    users
        .into_iter()
        .map(|(user_id, r2)| UserSummary {
            flag: flagged.contains(&user_id),
            r2,
            user_id,
        })
        .collect()
}

/// `GET /admin/users/{id}`: R2, the KV flag, and the user's object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    pub user_id: String,
    pub r2: R2Summary,
    pub flag: bool,
    pub object: ObjectStatus,
}

/// The user's Durable Object, as it reports itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectStatus {
    pub state: ObjectState,
    /// The data version the object holds (0: never migrated).
    pub version: u64,
    /// Bytes of the object's storage.
    pub size: u64,
    /// Rows per user table.
    pub tables: TableRows,
    /// The last failed move; cleared by the next move that succeeds.
    pub last_failure: Option<Failure>,
}

/// Rows per table, in the object's schema order: a JSON object `{"games": 19, ...}` whose keys
/// keep their order both ways (a map type would sort them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableRows(pub Vec<(String, u64)>);

impl TableRows {
    /// The rows of `table`, if it is listed.
    pub fn get(&self, table: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|(name, _)| name == table)
            .map(|(_, rows)| *rows)
    }
}

impl Serialize for TableRows {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, rows) in &self.0 {
            map.serialize_entry(name, rows)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TableRows {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = TableRows;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of table names and row counts")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TableRows, A::Error> {
                let mut tables = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, u64>()? {
                    tables.push(entry);
                }
                Ok(TableRows(tables))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// The object's record of its last failed move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub action: Action,
    pub step: Step,
    pub reason: String,
    /// When it failed (epoch milliseconds).
    pub at_ms: u64,
}

/// The digest of one table (or of the pseudo-tables `(schema)` and `(sqlite_sequence)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    pub name: String,
    pub rows: u64,
    /// SHA-256 (first 32 hex digits) of every row's typed values, in key order.
    pub checksum: String,
}

/// `POST /admin/users/{id}/migrate` and `.../rollback`: what the move did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveReport {
    pub user_id: String,
    pub outcome: Outcome,
    /// The data version the authoritative copy holds afterwards.
    pub version: u64,
    /// Bytes moved (0 when nothing moved).
    pub bytes: u64,
    /// The digests of the data where it now is, by table name.
    pub tables: Vec<TableDigest>,
    pub milliseconds: u64,
}

/// `GET /admin/users/{id}/preflight`: what stands in the way of the user's next move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightReport {
    /// The move the object would make next.
    pub action: Action,
    /// Whether nothing stands in the way (`problems` is empty).
    pub movable: bool,
    pub problems: Vec<Problem>,
    /// The database is above the R2 path's ceiling: the migrator moves it in chunks, and its
    /// values are checked natively when it moves, not here.
    #[serde(default)]
    pub in_chunks: bool,
}

/// One kind of thing the destination cannot hold, where it first occurs, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub reason: String,
    pub table: Option<String>,
    pub column: Option<String>,
    /// The first offending row's rowid (rowid tables).
    pub rowid: Option<i64>,
    /// The first offending row as words: `rowid 17` or `key ('a', 2)`.
    pub row: Option<String>,
    pub count: u64,
}

impl Problem {
    /// A problem with the file as a whole, not with one table.
    pub fn about_file(reason: String) -> Self {
        Problem {
            reason,
            table: None,
            column: None,
            rowid: None,
            row: None,
            count: 1,
        }
    }
}

/// One line: `an integer outside ±(2^53 − 1) in t.c (rowid 7, and 1 more)`.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        match (&self.table, &self.column) {
            (Some(table), Some(column)) => write!(f, " in {table}.{column}")?,
            (Some(table), None) => write!(f, " in table {table}")?,
            _ => {}
        }
        if let Some(row) = &self.row {
            write!(f, " ({row}")?;
            if self.count > 1 {
                write!(f, ", and {} more", self.count - 1)?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// What a user's R2 database meets when the R2 path first serves it, as the fleet check
/// (`GET /admin/users/{id}/scan`) finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanOutcome {
    /// Served as it is.
    AsIs,
    /// Served after an upgrade on its first use (the existing app's missing columns, our
    /// migrations), stored with that request.
    Upgraded,
    /// Not served (503): not SQLite, damaged, or app tables of a shape the handlers cannot
    /// serve. An operator repairs the file.
    Refused,
    /// Larger than the R2 path's ceiling: answered 507 there, and only a move in chunks helps.
    ChunksOnly,
    /// R2 marks the user migrated: their Durable Object holds the data.
    Moved,
}

impl ScanOutcome {
    /// Every outcome, in the order a summary lists them.
    pub const ALL: [ScanOutcome; 5] = [
        ScanOutcome::AsIs,
        ScanOutcome::Upgraded,
        ScanOutcome::Refused,
        ScanOutcome::ChunksOnly,
        ScanOutcome::Moved,
    ];

    /// The wire name: `as_is`, `upgraded`, `refused`, `chunks_only` or `moved`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanOutcome::AsIs => "as_is",
            ScanOutcome::Upgraded => "upgraded",
            ScanOutcome::Refused => "refused",
            ScanOutcome::ChunksOnly => "chunks_only",
            ScanOutcome::Moved => "moved",
        }
    }

    /// What it means for the user, in words.
    pub fn meaning(self) -> &'static str {
        match self {
            ScanOutcome::AsIs => "served as is",
            ScanOutcome::Upgraded => "upgraded on first use",
            ScanOutcome::Refused => "refused",
            ScanOutcome::ChunksOnly => "moves only in chunks",
            ScanOutcome::Moved => "already in their Durable Object",
        }
    }
}

impl fmt::Display for ScanOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /admin/users/{id}/scan`: what the user's R2 database meets on the R2 path, and what
/// would stop its move into the object; found from one R2 read, without waking the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    pub user_id: String,
    pub outcome: ScanOutcome,
    /// The `db-version` in the object's metadata (0: a legacy object).
    pub version: u64,
    /// Bytes of the R2 object.
    pub size: u64,
    /// `upgraded`: what the upgrade does; `refused`: why; `chunks_only`: the size against the
    /// ceiling; otherwise `null`.
    pub detail: Option<String>,
    /// For a file the R2 path serves (`as_is`, `upgraded`): what would stop its move into the
    /// object in one step. Always empty for the other outcomes.
    pub problems: Vec<Problem>,
}

/// What SQLite's `quick_check` answers for a sound database.
pub const QUICK_CHECK_OK: &str = "ok";

/// `GET /admin/users/{id}/verify`: whether the object agrees with its R2 copy and passes its
/// integrity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    pub state: ObjectState,
    /// The object's data version.
    pub version: u64,
    /// The R2 copy's.
    pub r2_version: u64,
    /// Whether the versions differ: then `agrees_with_r2` compares with a stale copy and means
    /// nothing.
    pub written_since_migration: bool,
    /// SQLite's `quick_check` of the object: [`QUICK_CHECK_OK`], or what it found.
    pub quick_check: String,
    /// Whether both hold the same data; `null` when R2 holds no readable copy.
    pub agrees_with_r2: Option<bool>,
}

impl VerifyResult {
    pub fn passes_quick_check(&self) -> bool {
        self.quick_check == QUICK_CHECK_OK
    }
}

/// `PUT /admin/users/{id}/database`: the file stored as the user's R2 database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    pub user_id: String,
    /// The version it was stored as.
    pub version: u64,
    pub bytes: u64,
    /// What bringing the file up to date did to it before it was stored ("nothing to upgrade"
    /// for a file of the current shape).
    pub upgrade: String,
    /// Where the file it replaced is kept (`{user}/backups/database.v<N>.sqlite`); `None` when the
    /// user had none.
    pub backup: Option<String>,
}

/// `POST /admin/prune`: what was (or, in a dry run, would be) deleted and turned into tombstones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneResult {
    pub dry_run: bool,
    pub older_than_days: u64,
    /// The R2 keys of the backups deleted.
    pub deleted_backups: Vec<String>,
    /// The R2 keys of the copies replaced by a tombstone.
    pub tombstoned: Vec<String>,
}

/// `POST /admin/users/{id}/fault` (only with `FAULT_INJECTION`): the fault is armed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultArmed {
    pub armed: bool,
}

/// What kind of error an operator must look into, for clients to tell it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 503: the user's database in R2 is not readable SQLite, or fails its integrity check.
    CorruptDatabase,
    /// 503: sound SQLite, but its app tables do not have the shape the handlers need.
    IncompatibleSchema,
    /// 409: a move was refused by its preflight; nothing changed.
    NotMigratable,
    /// 409: the database is larger than a move in one step holds; the migrator moves it in
    /// chunks (docs/chunked-moves.md). Nothing changed.
    ChunkedMoveRequired,
}

/// The body of every error response (the admin API's and the user API's alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub detail: String,
    /// Left out, except for the errors an operator must look into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Left out, except with [`ErrorCode::NotMigratable`]: what the destination cannot hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<Problem>>,
    /// With a failure whose detail went to the log only: the id of its log line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests;
