//! The object's side of a chunked move (docs/chunked-moves.md): a database of any size moves
//! in steps that each hold at most one batch of rows ([`admin_api::in_chunks::MAX_BATCH_BYTES`])
//! and run in one short invocation. The migrator drives it through the admin API; the object
//! keeps the move's record, so that every step is checked against where the move stands:
//! - the move ([`records::MoveRecord`]): its action, the R2 object it started from, the version
//!   the destination gets, whether the digests were verified;
//! - per table ([`records::TableProgress`]): the key of the last row applied (migrate) or read in
//!   order (rollback, export), and the table's SHA-256 state so far
//!   ([`user_data_core::digest::TableHasher::save`]). A batch that does not follow its table's cursor is refused, so a
//!   replayed batch never applies twice, and a migrator that crashed resumes from the cursor.
//!
//! The digests are exactly those of a move in one step ([`digest::digests`]): each batch the
//! object stores is read back from its storage and fed to the table's hasher, so what is
//! compared at the end is what the object holds, not what it was sent.
//!
//! Who is authoritative, as in a move in one step: while `importing`, R2 (a file this large is
//! one the R2 path refuses to write, so nothing can race the move); while `exporting`, the
//! object, which serves nothing then (503 with `Retry-After`) and gives the move up when it
//! makes no step for `MOVE_LEASE_SECONDS`. The cut-overs are the same fences: a migrate's R2
//! copy becomes a tombstone marked `migrated`, only if R2 still holds the file that was moved
//! (whose bytes were kept under `backups/` first); a rollback's file is completed only while R2
//! still holds the copy it replaces.

use admin_api::in_chunks::{
    Applied, Begin, Begun, ChunkedAction, CutOver, Finish, Finished, SourceFile, MAX_BATCH_BYTES,
    MAX_BATCH_ROWS,
};

use super::{now_ms, Action, MigrationError, Move, ObjectState, Outcome, Report, Step};
use crate::bucket::database::{R2Database, Snapshot};
use crate::bucket::layout::{self, R2State};
use crate::bucket::multipart;
use crate::object::records::{self, MoveRecord, TableProgress};
use user_data_core::catalog::{self, read_batch_rows, read_page, Catalog, PageRow, Table};
use user_data_core::copy::{self, insert_rows};
use user_data_core::db::{apply_migrations, check_integrity, Db, DbError, DbVersion};
use user_data_core::digest::{self, TableDigest};
use user_data_core::row_batch::{encode_key, Batch};

/// The state an object is in while `action` moves it.
fn state_of(action: ChunkedAction) -> ObjectState {
    match action {
        ChunkedAction::Migrate => ObjectState::Importing,
        ChunkedAction::Rollback | ChunkedAction::Export => ObjectState::Exporting,
    }
}

/// The move a chunked action is recorded as, in failures and fault injection (an export reads
/// the object out as a rollback does).
fn move_of(action: ChunkedAction) -> Action {
    match action {
        ChunkedAction::Migrate => Action::Migrate,
        ChunkedAction::Rollback | ChunkedAction::Export => Action::Rollback,
    }
}

/// Whether a chunked rollback or export that made its last step `since_ms` ago is given up:
/// after the lease (`MOVE_LEASE_SECONDS`) while it reads, ten times that once its digests are
/// verified (the migrator is then uploading the file, which does not pass through the object).
pub fn export_stalled(db: &impl Db, since_ms: u64, lease_ms: u64) -> Result<bool, DbError> {
    let verified = records::move_record(db)?.is_some_and(|record| record.verified);
    Ok(since_ms >= lease_ms * if verified { 10 } else { 1 })
}

/// Why a move in one step does not start while a chunked rollback or export reads the object
/// out: it would replace what is being read (or hand over what is being moved).
pub(super) fn export_in_progress(user: &crate::identity::UserId) -> MigrationError {
    MigrationError::Refused(format!(
        "a chunked rollback or export of {user} is in progress; try again when it ends"
    ))
}

impl Move {
    /// A verified move whose cut-over reached R2 although its answer did not (a crash, a lost
    /// answer, a retried call): finishes it, as the cut-over would have. `None` when R2 does not
    /// show the move's cut-over.
    async fn settle_landed(
        &self,
        record: &MoveRecord,
        started: u64,
    ) -> Result<Option<Report>, MigrationError> {
        if !record.verified {
            return Ok(None);
        }
        let current = R2Database::of(&self.bucket()?, &self.user, &self.config)
            .head()
            .await?;
        let landed = current.version == record.version;
        let tables = || self.chunked_digests(&Catalog::read(&self.db)?);
        match record.action {
            ChunkedAction::Migrate if landed && current.state != R2State::Active => {
                let tables = tables()?;
                apply_migrations(&self.db)?;
                self.activate().await?;
                self.end_chunked_move()?;
                self.report(Outcome::Migrated, record.source_size, started, tables)
                    .map(Some)
            }
            ChunkedAction::Rollback if landed && current.state == R2State::Active => {
                let tables = tables()?;
                self.db.transaction(|| {
                    self.end_chunked_move()?;
                    self.set_state(ObjectState::RolledBack)
                })?;
                self.set_flag(false).await?;
                self.report(Outcome::RolledBack, current.size, started, tables)
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The record of the move in progress, if it is one of `actions` and the object is in its
    /// state (`importing` for a migrate, `exporting` for the others); else why not.
    fn move_in(&self, actions: &[ChunkedAction]) -> Result<MoveRecord, MigrationError> {
        let (now, _) = self.state()?;
        match records::move_record(&self.db)? {
            Some(record) if now == state_of(record.action) && actions.contains(&record.action) => {
                Ok(record)
            }
            _ => Err(MigrationError::Refused(format!(
                "no chunked {} of {} is in progress (the object is {}); begin it again",
                actions[0].as_str(),
                self.user,
                now.as_str()
            ))),
        }
    }

    /// The digests of what the object holds, from the tables' hashers (a table no batch
    /// reached is empty), its schema and its counters: what [`digest::digests`] would compute
    /// reading everything at once.
    fn chunked_digests(&self, catalog: &Catalog) -> Result<Vec<TableDigest>, DbError> {
        let mut tables = Vec::new();
        for table in catalog.row_tables() {
            let hasher = records::progress(&self.db, &table.name)?
                .map(|progress| progress.hasher)
                .unwrap_or_default();
            tables.push(hasher.finish(&table.name));
        }
        digest::with_schema(&self.db, catalog, tables)
    }

    fn row_table<'c>(&self, catalog: &'c Catalog, name: &str) -> Result<&'c Table, MigrationError> {
        catalog
            .row_tables()
            .find(|table| table.name == name)
            .ok_or_else(|| MigrationError::Malformed(format!("the batch names no table: {name}")))
    }

    /// `move/begin`: starts a chunked move, or resumes the migrate of the same file.
    pub async fn begin_chunked(&self, begin: Begin) -> Result<Begun, MigrationError> {
        self.resolve_interrupted_rollback().await?;
        let (state, _) = self.state()?;
        let bucket = self.bucket()?;
        let r2 = R2Database::of(&bucket, &self.user, &self.config);
        let r2_max_bytes = self.config.max_database_bytes;
        match begin.action {
            ChunkedAction::Migrate => {
                let source = begin.source.clone().ok_or_else(|| {
                    MigrationError::Malformed("a chunked migrate names its source file".into())
                })?;
                if matches!(state, ObjectState::Active | ObjectState::Exporting) {
                    return Err(MigrationError::Refused(format!(
                        "{} is served by their object already; nothing to migrate",
                        self.user
                    )));
                }
                let resumed = records::move_record(&self.db)?.filter(|record| {
                    state == ObjectState::Importing
                        && record.action == ChunkedAction::Migrate
                        && record.source_etag.as_deref() == Some(source.etag.as_str())
                });
                match resumed {
                    None => self.begin_import(&begin, &source, &r2.head().await?)?,
                    Some(_) => crate::log::info(serde_json::json!({
                        "event": "move_resumed",
                        "user": self.user.as_str(),
                        "action": begin.action,
                        "tables_started": records::cursors(&self.db)?.len(),
                    })),
                }
                let version = records::move_record(&self.db)?.map_or(0, |record| record.version.0);
                Ok(Begun {
                    action: begin.action,
                    version,
                    size: source.size,
                    r2_max_bytes,
                    tables: Vec::new(),
                    others: Vec::new(),
                    sequences: Vec::new(),
                    cursors: records::cursors(&self.db)?,
                })
            }
            ChunkedAction::Rollback | ChunkedAction::Export => {
                if state != ObjectState::Active {
                    return Err(MigrationError::Refused(format!(
                        "the object of {} does not serve the data (it is {}); nothing to read out",
                        self.user,
                        state.as_str()
                    )));
                }
                let current = r2.head().await?;
                let version = match begin.action {
                    ChunkedAction::Rollback => current.version.max(self.version()?).next(),
                    _ => self.version()?,
                };
                let catalog = Catalog::read(&self.db)?;
                let record = MoveRecord {
                    action: begin.action,
                    source_etag: current.etag.clone(),
                    source_size: current.size,
                    source_version: current.version,
                    version,
                    verified: false,
                };
                self.db.transaction(|| {
                    records::start_move(&self.db, &record)?;
                    // From here on the object serves nothing until the move ends or stalls.
                    self.set_state(ObjectState::Exporting)
                })?;
                Ok(Begun {
                    action: begin.action,
                    version: version.0,
                    size: self.db.database_size() as u64,
                    r2_max_bytes,
                    tables: catalog.tables.iter().map(|t| t.sql.clone()).collect(),
                    others: catalog.others.iter().map(|o| o.sql.clone()).collect(),
                    sequences: catalog::sequences(&self.db)?,
                    cursors: Vec::new(),
                })
            }
        }
    }

    /// A fresh import: the user tables replaced by the file's, empty, with their indexes.
    fn begin_import(
        &self,
        begin: &Begin,
        source: &SourceFile,
        current: &Snapshot,
    ) -> Result<(), MigrationError> {
        self.enter(Action::Migrate, Step::Preflight)?;
        if current.etag.as_deref() != Some(source.etag.as_str()) {
            return Err(MigrationError::Refused(format!(
                "R2 no longer holds the file the migrator read for {}; read it again",
                self.user
            )));
        }
        // `CREATE TABLE ...`, `CREATE UNIQUE INDEX ...`: the kind is the second or third word.
        let statement = |sql: &String, kind: &str| {
            let words: Vec<String> = sql
                .split_whitespace()
                .take(3)
                .map(str::to_ascii_uppercase)
                .collect();
            let fits = words.first().map(String::as_str) == Some("CREATE")
                && words.iter().skip(1).any(|word| word == kind);
            if fits {
                Ok(())
            } else {
                Err(MigrationError::Malformed(format!(
                    "not a CREATE {kind} statement: {sql}"
                )))
            }
        };
        let record = MoveRecord {
            action: ChunkedAction::Migrate,
            source_etag: Some(source.etag.clone()),
            source_size: source.size,
            source_version: DbVersion(source.version),
            version: DbVersion(source.version).next(),
            verified: false,
        };
        self.db.transaction(|| {
            copy::clear(&self.db)?;
            for sql in &begin.tables {
                statement(sql, "TABLE")?;
                self.db.execute_script(sql)?;
            }
            for sql in &begin.indexes {
                statement(sql, "INDEX")?;
                self.db.execute_script(sql)?;
            }
            let catalog = Catalog::read(&self.db)?;
            // A table of a name the runtime owns would not count as the user's.
            if catalog.tables.len() != begin.tables.len() {
                return Err(MigrationError::Malformed(
                    "the tables to import are not all the user's".into(),
                ));
            }
            records::start_move(&self.db, &record)?;
            self.set_state(ObjectState::Importing)?;
            Ok(())
        })
    }

    /// `move/rows`: applies one batch of a migrate, if it follows its table's cursor, in one
    /// transaction with the new cursor and digest.
    pub fn apply_batch(&self, batch: Batch) -> Result<Applied, MigrationError> {
        let record = self.move_in(&[ChunkedAction::Migrate])?;
        if record.verified {
            return Err(MigrationError::Refused(
                "the import is finished; no more rows".into(),
            ));
        }
        self.enter(Action::Migrate, Step::Copy)?;
        let catalog = Catalog::read(&self.db)?;
        let table = self.row_table(&catalog, &batch.table)?;
        let progress = records::progress(&self.db, &table.name)?;
        let after = encode_key(batch.after.as_deref());
        let expected = progress
            .as_ref()
            .map_or_else(|| encode_key(None), |p| p.after.clone());
        if after != expected {
            return Err(MigrationError::Refused(format!(
                "the batch of {} does not follow the rows applied so far; begin again to resume",
                table.name
            )));
        }
        let bytes: usize = batch.rows.iter().map(PageRow::size).sum();
        if batch.rows.len() > MAX_BATCH_ROWS || (batch.rows.len() > 1 && bytes > MAX_BATCH_BYTES) {
            return Err(MigrationError::Malformed(format!(
                "a batch holds at most {MAX_BATCH_ROWS} rows and {MAX_BATCH_BYTES} bytes"
            )));
        }
        if let Some(row) = batch
            .rows
            .iter()
            .find(|row| row.cells.len() != table.columns.len())
        {
            return Err(MigrationError::Malformed(format!(
                "a row of {} has {} values; the table has {} columns",
                table.name,
                row.cells.len(),
                table.columns.len()
            )));
        }
        let Some(last) = batch.rows.last() else {
            return Ok(Applied { rows: 0 });
        };
        let last = table.key_of(last);
        let mut hasher = progress.map(|p| p.hasher).unwrap_or_default();
        self.db.transaction(|| {
            insert_rows(&self.db, table, &batch.rows)?;
            // What the object stores is what is digested: the rows read back from its storage.
            let stored = read_page(&self.db, table, batch.after.as_deref(), batch.rows.len())?;
            hasher.page(&stored);
            records::save_progress(
                &self.db,
                &table.name,
                &TableProgress {
                    after: encode_key(Some(&last)),
                    done: false,
                    hasher,
                },
            )?;
            self.set_state(ObjectState::Importing)
        })?;
        Ok(Applied {
            rows: batch.rows.len() as u64,
        })
    }

    /// `move/read`: up to `limit` rows of a table after a key, for a rollback or export. Rows
    /// read in order (after the table's cursor) are digested; a read again (a retry) is only
    /// answered.
    pub fn read_batch(&self, request: Batch, limit: usize) -> Result<Batch, MigrationError> {
        let record = self.move_in(&[ChunkedAction::Rollback, ChunkedAction::Export])?;
        if record.verified {
            return Err(MigrationError::Refused(
                "the export is finished; no more rows".into(),
            ));
        }
        self.enter(Action::Rollback, Step::Copy)?;
        let catalog = Catalog::read(&self.db)?;
        let table = self.row_table(&catalog, &request.table)?;
        let rows = read_batch_rows(&self.db, table, request.after.as_deref(), limit)?;
        let after = encode_key(request.after.as_deref());
        let progress = records::progress(&self.db, &table.name)?;
        let in_order = match &progress {
            None => after == encode_key(None),
            Some(progress) => !progress.done && progress.after == after,
        };
        if in_order {
            let mut hasher = progress.map(|p| p.hasher).unwrap_or_default();
            hasher.page(&rows);
            let next = match rows.last() {
                Some(last) => encode_key(Some(&table.key_of(last))),
                None => after,
            };
            self.db.transaction(|| {
                records::save_progress(
                    &self.db,
                    &table.name,
                    &TableProgress {
                        after: next,
                        done: rows.is_empty(),
                        hasher,
                    },
                )?;
                self.set_state(ObjectState::Exporting)
            })?;
        }
        Ok(Batch {
            table: table.name.clone(),
            after: request.after,
            rows,
        })
    }

    /// `move/finish`: the object's digests against the migrator's. A migrate's copy that
    /// differs is wiped (R2 still serves); a rollback or export that differs ends, and the
    /// object serves again.
    pub fn finish_chunked(&self, finish: Finish) -> Result<Finished, MigrationError> {
        let started = now_ms();
        let record = self.move_in(&[
            ChunkedAction::Migrate,
            ChunkedAction::Rollback,
            ChunkedAction::Export,
        ])?;
        let result = self.finish_steps(&record, &finish);
        match result {
            Ok(tables) => Ok(Finished { tables }),
            Err(err @ MigrationError::Crash(_)) => Err(err),
            Err(err) => {
                match record.action {
                    ChunkedAction::Migrate => {
                        self.wipe()?;
                        self.end_chunked_move()?;
                        self.set_state(ObjectState::New)?;
                    }
                    _ => {
                        self.end_chunked_move()?;
                        self.set_state(ObjectState::Active)?;
                    }
                }
                self.record_failure(move_of(record.action), Step::Verify, started, &err);
                Err(err)
            }
        }
    }

    fn finish_steps(
        &self,
        record: &MoveRecord,
        finish: &Finish,
    ) -> Result<Vec<TableDigest>, MigrationError> {
        self.enter(move_of(record.action), Step::Verify)?;
        if record.action == ChunkedAction::Migrate && !record.verified {
            self.db.transaction(|| {
                for sql in &finish.others {
                    self.db.execute_script(sql)?;
                }
                copy::set_sequences(&self.db, &finish.sequences)
            })?;
        }
        let catalog = Catalog::read(&self.db)?;
        if record.action != ChunkedAction::Migrate {
            for table in catalog.row_tables() {
                if !records::progress(&self.db, &table.name)?.is_some_and(|p| p.done) {
                    return Err(MigrationError::Verification(format!(
                        "the export did not read every row of {}",
                        table.name
                    )));
                }
            }
        }
        let ours = self.chunked_digests(&catalog)?;
        digest::same_data(&finish.tables, &ours)
            .and_then(|()| check_integrity(&self.db).map_err(|e| e.to_string()))
            .map_err(|difference| {
                MigrationError::Verification(format!(
                    "the object's data differs from the migrator's file: {difference}"
                ))
            })?;
        match record.action {
            // An export changes nothing: the object serves again at once.
            ChunkedAction::Export => {
                self.db.transaction(|| {
                    self.end_chunked_move()?;
                    self.set_state(ObjectState::Active)
                })?;
            }
            ChunkedAction::Migrate => records::mark_verified(&self.db)?,
            // Verified: the migrator uploads the file next (the lease starts again, longer).
            ChunkedAction::Rollback => self.db.transaction(|| {
                records::mark_verified(&self.db)?;
                self.set_state(ObjectState::Exporting)
            })?,
        }
        Ok(ours)
    }

    /// `move/cut-over`: hands authority over, once the digests were verified. A migrate keeps
    /// the file it moved (the upload is its backup) and fences R2; a rollback completes the
    /// upload of its file as the user's R2 database.
    pub async fn cut_over_chunked(&self, cut: CutOver) -> Result<Report, MigrationError> {
        let (state, _) = self.state()?;
        let action = match state {
            ObjectState::Importing => ChunkedAction::Migrate,
            _ => ChunkedAction::Rollback,
        };
        let started = self.log_start(move_of(action));
        let result = self.cut_over_steps(action, cut, started).await;
        self.conclude(move_of(action), started, result)
    }

    async fn cut_over_steps(
        &self,
        action: ChunkedAction,
        cut: CutOver,
        started: u64,
    ) -> Result<Report, MigrationError> {
        let record = self.move_in(&[action])?;
        if !record.verified {
            return Err(MigrationError::Refused(
                "the move's digests were not verified yet: finish it first".into(),
            ));
        }
        if let Some(report) = self.settle_landed(&record, started).await? {
            return Ok(report);
        }
        let bucket = self.bucket()?;
        let database = R2Database::of(&bucket, &self.user, &self.config);
        let catalog = Catalog::read(&self.db)?;
        let tables = self.chunked_digests(&catalog)?;
        if record.action == ChunkedAction::Migrate {
            self.enter(Action::Migrate, Step::Backup)?;
            let kept = database
                .backup_size(&self.user, record.source_version)
                .await?
                == Some(record.source_size);
            if !kept {
                let backup = layout::backup_key(&self.user, record.source_version);
                let stored =
                    multipart::complete(&bucket, &backup, &cut.upload_id, &cut.parts).await?;
                if stored != record.source_size {
                    return Err(MigrationError::Verification(format!(
                        "the backup of the file is {stored} bytes, the file {}",
                        record.source_size
                    )));
                }
            }
            self.enter(Action::Migrate, Step::CutOver)?;
            let fenced = database
                .put_tombstone(record.version, now_ms(), record.source_etag.clone())
                .await;
            match fenced {
                Ok(true) => {}
                Ok(false) => {
                    self.wipe()?;
                    self.end_chunked_move()?;
                    self.set_state(ObjectState::New)?;
                    return Err(MigrationError::Busy(format!(
                        "R2 changed during the move of {}; migrate again",
                        self.user
                    )));
                }
                Err(err) => {
                    // The put may have landed although its answer was lost.
                    let now = database.head().await?;
                    if !(now.version == record.version && now.state != R2State::Active) {
                        return Err(err.into());
                    }
                }
            }
            // A migrator older than this Worker moved an older schema: bring it up to date.
            apply_migrations(&self.db)?;
            self.activate().await?;
            self.end_chunked_move()?;
            return self.report(Outcome::Migrated, record.source_size, started, tables);
        }

        self.enter(Action::Rollback, Step::Backup)?;
        let current = database.head().await?;
        if current.etag != record.source_etag {
            self.end_chunked_move()?;
            self.set_state(ObjectState::Active)?;
            return Err(MigrationError::Busy(
                "R2 changed during the rollback; try again".into(),
            ));
        }
        if current.size <= self.config.max_database_bytes {
            self.back_up(&bucket, &current).await?;
        } else {
            crate::log::warn(serde_json::json!({
                "event": "rollback_not_backed_up",
                "user": self.user.as_str(),
                "bytes": current.size,
                "reason": "the R2 copy is too large to keep in memory",
            }));
        }
        self.enter(Action::Rollback, Step::CutOver)?;
        let completed =
            multipart::complete(&bucket, &database.key, &cut.upload_id, &cut.parts).await;
        if let Ok(stored) = completed {
            if stored != cut.size {
                // R2 holds a file that is not the one verified: the object stays authoritative,
                // and the R2 copy is fenced again as the object's.
                crate::log::info(serde_json::json!({
                    "event": "rollback_upload_differs",
                    "user": self.user.as_str(),
                    "stored_bytes": stored,
                    "verified_bytes": cut.size,
                }));
                database
                    .put_tombstone(record.version, now_ms(), None)
                    .await?;
                self.db.transaction(|| {
                    self.end_chunked_move()?;
                    self.set_state(ObjectState::Active)
                })?;
                return Err(MigrationError::Verification(
                    "the uploaded file is not the one verified; the object serves again".into(),
                ));
            }
        }
        let now = database.head().await?;
        let landed = now.state == R2State::Active && now.version == record.version;
        if let Err(err) = completed {
            // The upload may have completed although its answer was lost.
            if !landed {
                return Err(err.into());
            }
        }
        if !landed {
            return Err(MigrationError::Verification(format!(
                "the uploaded file is version {} in state {:?}, not version {}",
                now.version, now.state, record.version
            )));
        }
        // Past the point of no return: R2 is authoritative from here on.
        self.enter(Action::Rollback, Step::Activate)?;
        self.db.transaction(|| {
            self.end_chunked_move()?;
            self.set_state(ObjectState::RolledBack)
        })?;
        self.enter(Action::Rollback, Step::Flag)?;
        self.set_flag(false).await?;
        self.report(Outcome::RolledBack, now.size, started, tables)
    }

    /// A chunked migrate whose cut-over reached R2 but whose activation did not (a crash):
    /// finishes it. `None` when that is not what happened.
    pub(super) async fn finish_interrupted_cut_over(
        &self,
        started: u64,
    ) -> Result<Option<Report>, MigrationError> {
        match records::move_record(&self.db)? {
            Some(record) if record.action == ChunkedAction::Migrate => {
                self.settle_landed(&record, started).await
            }
            _ => Ok(None),
        }
    }

    /// `move/abort`: ends a chunked move that will not finish. The side that was
    /// authoritative stays so: an import is wiped (R2 serves), an export ends (the object
    /// serves again).
    pub async fn abort_chunked(&self) -> Result<bool, MigrationError> {
        let (state, _) = self.state()?;
        let Some(record) = records::move_record(&self.db)? else {
            return Ok(false);
        };
        // A cut-over that reached R2 cannot be taken back: it is finished instead.
        if self.settle_landed(&record, now_ms()).await?.is_some() {
            return Ok(true);
        }
        match state {
            ObjectState::Importing => {
                self.wipe()?;
                self.db.transaction(|| {
                    self.end_chunked_move()?;
                    self.set_state(ObjectState::New)
                })?;
            }
            ObjectState::Exporting => self.db.transaction(|| {
                self.end_chunked_move()?;
                self.set_state(ObjectState::Active)
            })?,
            _ => self.end_chunked_move()?,
        }
        Ok(true)
    }
}
