//! The chunked move (docs/chunked-moves.md): how the migrator moves a database of any size
//! between R2 and a user's Durable Object in steps of bounded size, each one invocation.
//!
//! Migrate: the migrator reads the R2 file in ranges (`move/file`), opens it natively, and
//! sends [`Begin`], then the rows table by table (`move/rows`, binary batches the object
//! applies one transaction each, after a cursor it records), then [`Finish`] with the digests it
//! computed, uploads its backup of the file in parts (`move/upload`, `move/upload/part`), and
//! asks the object to [`CutOver`]. Rollback and export: [`Begin`], the rows read back
//! (`move/read`), [`Finish`], and for a rollback the new file uploaded in parts and [`CutOver`].

use serde::{Deserialize, Serialize};

use crate::TableDigest;

/// Which chunked move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkedAction {
    /// R2 -> the object.
    Migrate,
    /// The object -> R2.
    Rollback,
    /// The object's data read out to a file; nothing changes hands.
    Export,
}

impl ChunkedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkedAction::Migrate => "migrate",
            ChunkedAction::Rollback => "rollback",
            ChunkedAction::Export => "export",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Migrate, Self::Rollback, Self::Export]
            .into_iter()
            .find(|action| action.as_str() == name)
    }
}

/// The R2 file a migrate moves, as the migrator downloaded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub etag: String,
    /// Its `db-version`.
    pub version: u64,
    pub size: u64,
}

/// `POST /admin/users/{id}/move/begin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begin {
    pub action: ChunkedAction,
    /// Migrate only: the file being moved. A begin of the same file resumes the move.
    pub source: Option<SourceFile>,
    /// Migrate only: the `CREATE TABLE` statements of the file's tables, in the file's order.
    pub tables: Vec<String>,
    /// Migrate only: its `CREATE INDEX` statements (made before the rows; triggers and views
    /// come with [`Finish`], after them, so that no trigger fires during the move).
    pub indexes: Vec<String>,
}

/// Where a table's move stands: the key of the last row applied or read, as
/// `user_data_core::row_batch::encode_key` encodes it, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub table: String,
    pub after: String,
}

/// What a begin answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begun {
    pub action: ChunkedAction,
    /// The version the destination will hold.
    pub version: u64,
    /// Rollback and export: bytes of the object's storage.
    pub size: u64,
    /// The largest database the R2 path serves (a rollback above it leaves its user 507).
    pub r2_max_bytes: u64,
    /// Rollback and export: the object's `CREATE TABLE` statements, in order.
    pub tables: Vec<String>,
    /// Rollback and export: its indexes, views and triggers, in order.
    pub others: Vec<String>,
    /// Rollback and export: its AUTOINCREMENT counters.
    pub sequences: Vec<(String, i64)>,
    /// Migrate: where each table's rows resume (tables not listed start from their first row).
    pub cursors: Vec<Cursor>,
}

/// What `move/rows` answers: how many rows the batch applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub rows: u64,
}

/// `POST /admin/users/{id}/move/finish`: the digests the migrator computed from its file, and
/// for a migrate the rest of the file's schema and its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finish {
    pub others: Vec<String>,
    pub sequences: Vec<(String, i64)>,
    pub tables: Vec<TableDigest>,
}

/// What a finish answers: the object's digests, which equal the migrator's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub tables: Vec<TableDigest>,
}

/// Where an upload in parts goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadTarget {
    /// `{user}/backups/database.v<version>.sqlite`: a migrate's copy of the file it moved.
    Backup,
    /// `{user}/database.sqlite`: a rollback's new file (completed by the object's cut-over).
    Database,
}

impl UploadTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadTarget::Backup => "backup",
            UploadTarget::Database => "database",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Backup, Self::Database]
            .into_iter()
            .find(|target| target.as_str() == name)
    }
}

/// What `move/upload` answers: the R2 multipart upload the parts go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStarted {
    pub upload_id: String,
}

/// One uploaded part (what `move/upload/part` answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub part: u16,
    pub etag: String,
}

/// `POST /admin/users/{id}/move/cut-over`: the upload to complete (a migrate's backup, a
/// rollback's file); the object then hands authority over. Answers a `MoveReport`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutOver {
    pub upload_id: String,
    pub parts: Vec<Part>,
    /// The uploaded file's size: the completed upload must have it.
    pub size: u64,
}

/// What `move/abort` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aborted {
    pub aborted: bool,
}

/// The bytes of a batch or a file range per call: what one invocation holds at most.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// The rows of a batch at most, whatever their size.
pub const MAX_BATCH_ROWS: usize = 4096;
/// The size of each part of an upload, and of each range of a download (R2 wants equal parts
/// of at least 5 MiB, but for the last).
pub const PART_BYTES: u64 = 8 * 1024 * 1024;
