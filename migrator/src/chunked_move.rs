//! The migrator's side of a chunked move (docs/chunked-moves.md): for a database too large to
//! move in one step inside the user's object, the migrator does the heavy work natively, on a
//! scratch copy on disk, and talks to the Worker in steps of bounded size.
//!
//! It reads and writes SQLite files with the code the Worker uses (the `user_data_core` crate:
//! the catalog, the row batches, the copy and the digests), so both ends compute the same
//! digest of the same rows. Every step is safe to repeat: a batch the object already applied
//! is refused (409) and the migrator resumes from the object's cursor; a move started again
//! after a crash resumes (migrate) or starts over (rollback, export).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use admin_api::in_chunks::{
    Begin, Begun, ChunkedAction, CutOver, Finish, Part, SourceFile, UploadTarget, MAX_BATCH_ROWS,
    PART_BYTES,
};
use admin_api::request::{
    MoveAbort, MoveBegin, MoveCutOver, MoveFile, MoveFinish, MoveRead, MoveRows, MoveUpload,
    MoveUploadPart,
};
use admin_api::{ErrorCode, MoveReport, TableDigest, UserStatus};
use user_data_core::catalog::{self, next_page_rows, read_batch_rows, Catalog, Cell};
use user_data_core::db::rusqlite_db::RusqliteDb;
use user_data_core::db::{check_integrity, upgrade, Db, DbError, DbVersion, UpgradeError};
use user_data_core::row_batch::{decode_key, unhex, Batch};
use user_data_core::{copy, digest, preflight};

use crate::client::{AdminClient, ClientError};

/// How a chunked move runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Roll back a user whose database is above the R2 path's ceiling (they get 507 there
    /// until they migrate again).
    pub force: bool,
    /// The bytes of rows a batch aims at (the object holds at most one batch at a time).
    pub batch_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            force: false,
            batch_bytes: 2 * 1024 * 1024,
        }
    }
}

/// How often a batch the object refused (its cursor moved on: a retried request that had
/// landed) is followed by a resume from the object's cursor before the move gives up.
const MAX_RESUMES: u32 = 5;

fn failed(detail: impl Into<String>) -> ClientError {
    ClientError::Failed {
        status: 0,
        detail: detail.into(),
        code: None,
    }
}

fn local(what: &str) -> impl Fn(DbError) -> ClientError + '_ {
    move |err| failed(format!("{what}: {err}"))
}

fn io(what: &str) -> impl Fn(std::io::Error) -> ClientError + '_ {
    move |err| failed(format!("{what}: {err}"))
}

/// Whether a move in one step refused the user because it is too large for it.
pub fn needs_chunks(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::Failed {
            code: Some(ErrorCode::ChunkedMoveRequired),
            ..
        }
    )
}

/// Migrates `user`: in one step inside their object, or in chunks when it is too large for
/// that.
pub fn migrate_user(
    client: &AdminClient,
    user: &str,
    options: &Options,
) -> Result<MoveReport, ClientError> {
    match client.migrate(user) {
        Err(err) if needs_chunks(&err) => migrate(client, user, options),
        other => other,
    }
}

/// Rolls `user` back: in one step, or in chunks when too large for that (with `force` only
/// when the R2 path cannot serve the result).
pub fn rollback_user(
    client: &AdminClient,
    user: &str,
    options: &Options,
) -> Result<MoveReport, ClientError> {
    match client.rollback(user) {
        Err(err) if needs_chunks(&err) => rollback(client, user, options),
        other => other,
    }
}

/// Downloads the user's R2 database to `path`, range by range, while R2 holds `etag`.
fn download(
    client: &AdminClient,
    status: &UserStatus,
    path: &Path,
) -> Result<SourceFile, ClientError> {
    let user = &status.user_id;
    let (Some(etag), Some(size)) = (status.r2.etag.clone(), status.r2.size) else {
        return Err(failed(format!("{user} has no database in R2")));
    };
    let mut file = File::create(path).map_err(io("the scratch file"))?;
    let mut offset = 0;
    while offset < size {
        let length = PART_BYTES.min(size - offset);
        let route = MoveFile {
            user_id: user.clone(),
            offset,
            length,
            etag: etag.clone(),
        };
        let bytes = client.move_read(&route, Vec::new())?;
        if bytes.len() as u64 != length {
            return Err(failed(format!(
                "R2 answered {} bytes at {offset}, not {length}",
                bytes.len()
            )));
        }
        file.write_all(&bytes).map_err(io("the scratch file"))?;
        offset += length;
    }
    file.sync_all().map_err(io("the scratch file"))?;
    Ok(SourceFile {
        etag,
        version: status.r2.version,
        size,
    })
}

/// Uploads the file at `path` as `target` at `version`, in parts; what the cut-over completes.
fn upload(
    client: &AdminClient,
    user: &str,
    path: &Path,
    target: UploadTarget,
    version: u64,
) -> Result<CutOver, ClientError> {
    let started = client.move_step(
        &MoveUpload {
            user_id: user.to_owned(),
            target,
            version,
        },
        &(),
    )?;
    let mut file = File::open(path).map_err(io("the file to upload"))?;
    let size = file.metadata().map_err(io("the file to upload"))?.len();
    let mut parts: Vec<Part> = Vec::new();
    let mut offset = 0;
    let mut number: u16 = 1;
    while offset < size || (size == 0 && parts.is_empty()) {
        let length = PART_BYTES.min(size - offset);
        let mut bytes = vec![0; length as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(io("the file to upload"))?;
        let route = MoveUploadPart {
            user_id: user.to_owned(),
            target,
            version,
            upload_id: started.upload_id.clone(),
            part: number,
        };
        parts.push(client.move_bytes(&route, bytes)?);
        offset += length;
        number += 1;
    }
    Ok(CutOver {
        upload_id: started.upload_id,
        parts,
        size,
    })
}

/// The digests the object reported equal the file's, or the move stops.
fn check_same(ours: &[TableDigest], theirs: &[TableDigest]) -> Result<(), ClientError> {
    digest::same_data(ours, theirs)
        .map_err(|difference| failed(format!("the object's digests differ: {difference}")))
}

/// Moves `user`'s R2 database into their object in chunks.
pub fn migrate(
    client: &AdminClient,
    user: &str,
    options: &Options,
) -> Result<MoveReport, ClientError> {
    let status = client.user(user)?;
    let scratch = tempfile::tempdir().map_err(io("a scratch folder"))?;
    let original = scratch.path().join("source.sqlite");
    let source = download(client, &status, &original)?;
    // The original is kept as it came (it becomes the backup); the copy is brought up to date.
    let work = scratch.path().join("work.sqlite");
    std::fs::copy(&original, &work).map_err(io("the scratch copy"))?;
    let db = RusqliteDb::open_file(&work).map_err(local("the downloaded file"))?;
    upgrade(&db).map_err(|err| match err {
        UpgradeError::Db(err) => failed(format!("the downloaded file: {err}")),
        UpgradeError::Incompatible(reason) => failed(format!(
            "the database does not have the tables the app needs ({reason}); nothing was changed"
        )),
    })?;
    let problems = preflight::into_object(&db).map_err(local("the preflight"))?;
    if !problems.is_empty() {
        return Err(ClientError::Failed {
            status: 409,
            detail: format!(
                "The user cannot move to their Durable Object: {}; nothing was changed",
                preflight::summary(&problems)
            ),
            code: Some(ErrorCode::NotMigratable),
        });
    }
    DbVersion(source.version)
        .next()
        .record_in(&db)
        .map_err(local("recording the version"))?;
    let expected = digest::digests(&db).map_err(local("the file's digests"))?;
    let catalog = Catalog::read(&db).map_err(local("the file's schema"))?;
    let (indexes, others): (Vec<_>, Vec<_>) = catalog
        .others
        .iter()
        .partition(|object| object.kind == "index");
    let begin = Begin {
        action: ChunkedAction::Migrate,
        source: Some(source.clone()),
        tables: catalog.tables.iter().map(|t| t.sql.clone()).collect(),
        indexes: indexes.iter().map(|o| o.sql.clone()).collect(),
    };
    let begin_call = MoveBegin::new(user);
    let mut begun = client.move_step(&begin_call, &begin)?;
    let mut resumes = 0;
    for table in catalog.row_tables() {
        let mut after = cursor_of(&begun, &table.name)?;
        let mut limit = 256;
        loop {
            // A batch never exceeds what the object takes in one step, however large a row.
            let rows = read_batch_rows(&db, table, after.as_deref(), limit)
                .map_err(local("reading the file"))?;
            let Some(last) = rows.last() else { break };
            let next = table.key_of(last);
            let bytes: usize = rows.iter().map(|row| row.size()).sum();
            let batch = Batch {
                table: table.name.clone(),
                after: after.clone(),
                rows,
            };
            match client.move_bytes(&MoveRows::new(user), batch.encode()) {
                Ok(_) => after = Some(next),
                Err(ClientError::Failed { status: 409, .. }) if resumes < MAX_RESUMES => {
                    // The object's cursor moved on (a retried batch had landed): resume there.
                    resumes += 1;
                    begun = client.move_step(&begin_call, &begin)?;
                    after = cursor_of(&begun, &table.name)?;
                    continue;
                }
                Err(err) => return Err(err),
            }
            limit = next_page_rows(limit, bytes, options.batch_bytes, MAX_BATCH_ROWS);
        }
    }
    let finished = client.move_step(
        &MoveFinish::new(user),
        &Finish {
            others: others.iter().map(|o| o.sql.clone()).collect(),
            sequences: catalog::sequences(&db).map_err(local("the file's counters"))?,
            tables: expected.clone(),
        },
    )?;
    check_same(&expected, &finished.tables)?;
    let cut = upload(
        client,
        user,
        &original,
        UploadTarget::Backup,
        source.version,
    )?;
    client.move_step(&MoveCutOver::new(user), &cut)
}

/// The key a table's rows resume after, from a begin's cursors.
fn cursor_of(begun: &Begun, table: &str) -> Result<Option<Vec<Cell>>, ClientError> {
    match begun.cursors.iter().find(|cursor| cursor.table == table) {
        None => Ok(None),
        Some(cursor) => {
            let bytes = unhex(&cursor.after)
                .ok_or_else(|| failed(format!("the cursor of {table} is not hex")))?;
            decode_key(&bytes).map_err(local("the object's cursor"))
        }
    }
}

/// Reads the object's data out into a new file at `path`, in chunks; the begin's answer and
/// the file's digests (verified by the object). A rollback above the R2 path's ceiling is
/// refused without `force`, and the object serves again.
fn read_out(
    client: &AdminClient,
    user: &str,
    action: ChunkedAction,
    path: &Path,
    options: &Options,
) -> Result<(Begun, RusqliteDb), ClientError> {
    let begun = client.move_step(
        &MoveBegin::new(user),
        &Begin {
            action,
            source: None,
            tables: Vec::new(),
            indexes: Vec::new(),
        },
    )?;
    let abort = |err: ClientError| {
        if let Err(abort) = client.move_step(&MoveAbort::new(user), &()) {
            eprintln!("migrator: could not end the move of {user}: {abort}");
        }
        err
    };
    if action == ChunkedAction::Rollback && begun.size > begun.r2_max_bytes && !options.force {
        return Err(abort(failed(format!(
            "{user}'s database is {} bytes, more than the {} the R2 path serves: rolled back, \
             they would get 507 until they migrate again. Pass --force to roll back anyway",
            begun.size, begun.r2_max_bytes
        ))));
    }
    build(client, user, &begun, path, options).map_err(abort)
}

/// Builds the file from the object's batches, then has the object compare digests.
fn build(
    client: &AdminClient,
    user: &str,
    begun: &Begun,
    path: &Path,
    options: &Options,
) -> Result<(Begun, RusqliteDb), ClientError> {
    let _ = std::fs::remove_file(path);
    let db = RusqliteDb::open_file(path).map_err(local("the new file"))?;
    for sql in &begun.tables {
        db.execute_script(sql).map_err(local("creating a table"))?;
    }
    let catalog = Catalog::read(&db).map_err(local("the new file's schema"))?;
    for table in catalog.row_tables() {
        let mut after: Option<Vec<Cell>> = None;
        let mut limit = 256;
        loop {
            let request = Batch {
                table: table.name.clone(),
                after: after.clone(),
                rows: Vec::new(),
            };
            let answer = client.move_read(
                &MoveRead {
                    user_id: user.to_owned(),
                    limit,
                },
                request.encode(),
            )?;
            let batch = Batch::decode(&answer).map_err(local("a batch from the object"))?;
            // The empty read tells the object the table is read to its end.
            let Some(last) = batch.rows.last() else { break };
            let next = table.key_of(last);
            db.transaction(|| copy::insert_rows(&db, table, &batch.rows))
                .map_err(local("writing the new file"))?;
            let bytes: usize = batch.rows.iter().map(|row| row.size()).sum();
            limit = next_page_rows(limit, bytes, options.batch_bytes, MAX_BATCH_ROWS);
            after = Some(next);
        }
    }
    for sql in &begun.others {
        db.execute_script(sql)
            .map_err(local("creating the schema"))?;
    }
    copy::set_sequences(&db, &begun.sequences).map_err(local("the counters"))?;
    check_integrity(&db).map_err(local("the new file"))?;
    let digests = digest::digests(&db).map_err(local("the new file's digests"))?;
    let finished = client.move_step(
        &MoveFinish::new(user),
        &Finish {
            others: Vec::new(),
            sequences: Vec::new(),
            tables: digests.clone(),
        },
    )?;
    check_same(&digests, &finished.tables)?;
    Ok((begun.clone(), db))
}

/// Moves `user`'s data from their object back to R2 in chunks.
pub fn rollback(
    client: &AdminClient,
    user: &str,
    options: &Options,
) -> Result<MoveReport, ClientError> {
    let scratch = tempfile::tempdir().map_err(io("a scratch folder"))?;
    let path = scratch.path().join("rollback.sqlite");
    let (begun, db) = read_out(client, user, ChunkedAction::Rollback, &path, options)?;
    let recorded = DbVersion(begun.version)
        .record_in(&db)
        .map_err(local("recording the version"));
    drop(db);
    let cut =
        recorded.and_then(|()| upload(client, user, &path, UploadTarget::Database, begun.version));
    match cut {
        Ok(cut) => client.move_step(&MoveCutOver::new(user), &cut),
        Err(err) => {
            let _ = client.move_step(&MoveAbort::new(user), &());
            Err(err)
        }
    }
}

/// Writes the object's data to `output` in chunks; its version.
pub fn export(client: &AdminClient, user: &str, output: &Path) -> Result<u64, ClientError> {
    let (begun, db) = read_out(
        client,
        user,
        ChunkedAction::Export,
        output,
        &Options::default(),
    )?;
    drop(db);
    Ok(begun.version)
}
