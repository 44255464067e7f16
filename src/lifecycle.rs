//! One API request, the same on both backends: parse it, run the handler in one transaction that
//! commits only once every file it stores is in R2; after the commit, delete the files it
//! removed and send the processing jobs it asked for; answer (streaming a file it names,
//! honouring `Range`) with `X-DB-Version` (once the data was opened, success or failure) and
//! `X-Data-Path`. Failures are answered here too.
//!
//! A [`Backend`] says where one attempt's data comes from and how a committed change is made
//! durable: the object's transaction is durable by itself; the R2 path uploads the database,
//! conditionally on R2 still holding what it loaded, and asks for another attempt when it does
//! not.

use worker::{Bucket, Response};

use crate::bucket::media;
use crate::error::ApiError;
use crate::handlers::{self, ApiRequest, Reply, Upload};
use crate::headers;
use crate::http::{self, DataPath, RawRequest};
use crate::identity::UserId;
use crate::processing::JobQueue;
use user_data_core::db::{Db, DbError, DbVersion};

/// How often a request runs again after another writer got its change in first (the R2 path's
/// conditional upload; the object's commit cannot lose such a race).
const MAX_ATTEMPTS: u32 = 10;

/// How often one attempt may find new files to store before its commit. The second run names the
/// same files (the names come from the request), unless another request changed the data
/// meanwhile: on the object, requests run while the files are being stored.
const MAX_UPLOAD_ROUNDS: usize = 3;

/// Where the data of a request comes from, and how its changes are kept.
#[allow(async_fn_in_trait)] // used with concrete types only, on one thread
pub trait Backend {
    type Db: Db;
    /// Which path serves, for `X-Data-Path`.
    const PATH: DataPath;

    /// The data for one attempt, or `None` when the request belongs to the other side.
    async fn open(&mut self) -> Result<Option<Self::Db>, ApiError>;

    /// Inside the transaction of a run that changed a row: records the change's version in the
    /// data, so that every stored version differs; returns it.
    fn record_change(&self, db: &Self::Db) -> Result<DbVersion, DbError>;

    /// After the commit: keeps the attempt's data; `changed` is the version a run that changed
    /// a row recorded. `false` when another writer got there first and nothing was kept: run
    /// again.
    async fn save(&mut self, db: Self::Db, changed: Option<DbVersion>) -> Result<bool, ApiError>;

    /// The data version the answer reflects, once the data was opened.
    fn version(&self) -> Option<DbVersion>;

    /// Sets the backend's own headers on the answer, success or failure.
    fn annotate(&self, _response: &mut Response) {}
}

/// What became of a request.
pub enum Served {
    Response(Response),
    /// The backend found that the other side holds the data; nothing was read or written.
    Elsewhere,
}

/// Serves one API request for `user` from `backend`; media files live in `bucket`, and processing
/// jobs go to `jobs`.
pub async fn serve<B: Backend>(
    backend: &mut B,
    bucket: &Bucket,
    jobs: &JobQueue,
    user: &UserId,
    raw: &RawRequest,
) -> Served {
    let mut response = match attempts(backend, bucket, jobs, user, raw).await {
        Ok(Some(response)) => response,
        Ok(None) => return Served::Elsewhere,
        Err(err) => http::error(&err, Some(user)),
    };
    if let Some(version) = backend.version() {
        // Our own responses have mutable headers; setting one cannot fail.
        let _ = response
            .headers_mut()
            .set(headers::DB_VERSION, &version.to_string());
    }
    backend.annotate(&mut response);
    Served::Response(http::labelled(response, B::PATH))
}

async fn attempts<B: Backend>(
    backend: &mut B,
    bucket: &Bucket,
    jobs: &JobQueue,
    user: &UserId,
    raw: &RawRequest,
) -> Result<Option<Response>, ApiError> {
    let request = raw.to_api_request().await?;
    // Files already stored by an earlier run (names repeat: they come from the request).
    let mut stored: Vec<String> = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let Some(db) = backend.open().await? else {
            return Ok(None);
        };
        let (reply, changed) = run(&*backend, &db, bucket, user, &request, &mut stored).await?;
        if backend.save(db, changed).await? {
            // After the commit: a failure to delete leaves an orphan file, never a row that
            // names a missing one.
            media::delete(bucket, user, &reply.deletions).await;
            jobs.send(user, &reply.jobs).await;
            return http::file::respond(bucket, user, reply.response, raw.header("Range"))
                .await
                .map(Some);
        }
    }
    Err(ApiError::Conflict(format!(
        "The data changed under {MAX_ATTEMPTS} attempts in a row; nothing was saved, try again"
    )))
}

/// Why a run of the handler was rolled back.
enum Rollback {
    Failed(ApiError),
    /// The handler wants files stored that are not yet: store them, then run it again.
    StoreFirst(Vec<Upload>),
}

impl From<DbError> for Rollback {
    fn from(err: DbError) -> Self {
        Rollback::Failed(err.into())
    }
}

/// Runs the handler in a transaction and commits it once every file it names is stored; returns
/// the reply and, if it changed a row, the version it recorded. A run that needs new files is rolled back, the files
/// are stored (an await: on the object, other requests may run meanwhile), and the handler runs
/// again on the current data; names come from the request's entropy, so an unchanged run needs
/// nothing more.
async fn run<B: Backend>(
    backend: &B,
    db: &B::Db,
    bucket: &Bucket,
    user: &UserId,
    request: &ApiRequest,
    stored: &mut Vec<String>,
) -> Result<(Reply, Option<DbVersion>), ApiError> {
    for _ in 0..MAX_UPLOAD_ROUNDS {
        let outcome = db.transaction(|| {
            let changes_before = db.total_changes()?;
            let reply = handlers::handle(db, user, request).map_err(Rollback::Failed)?;
            let missing: Vec<Upload> = reply
                .uploads
                .iter()
                .filter(|upload| !stored.contains(&upload.key))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Rollback::StoreFirst(missing));
            }
            // By SQLite's count: an UPDATE that matched nothing (`/api/exports/active` with no
            // stale job) is no change, and stores nothing.
            let changed = db.total_changes()? > changes_before;
            let version = changed.then(|| backend.record_change(db)).transpose()?;
            Ok((reply, version))
        });
        match outcome {
            Ok(committed) => return Ok(committed),
            Err(Rollback::Failed(err)) => return Err(err),
            Err(Rollback::StoreFirst(uploads)) => {
                media::store(bucket, user, &uploads).await?;
                stored.extend(uploads.into_iter().map(|upload| upload.key));
            }
        }
    }
    Err(ApiError::Conflict(
        "The data changed while the request's files were being stored; try again".into(),
    ))
}
