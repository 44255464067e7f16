//! `/admin/*`: the operators' API, behind `Authorization: Bearer <ADMIN_TOKEN>`.
//!
//! Without an `ADMIN_TOKEN` secret the whole surface answers 404 (it does not exist); a missing
//! or wrong token is 401. Moving a user is the user's object's work (an
//! [`admin_api::object_call::ObjectCall`] to its Durable Object); this module finds users, imports and exports files, scans a user's file
//! without waking their object, and prunes old copies.

use std::collections::HashMap;

use admin_api::in_chunks::{UploadStarted, UploadTarget, PART_BYTES};
use admin_api::object_call::{Fault, MoveStep, ObjectCall};
use admin_api::request::{ListUsers, Prune};
use admin_api::{ImportResult, PruneResult, R2Summary, ScanReport, UserPage, UserStatus};
use user_data_core::file_check;
use worker::{Env, Headers, Method, Request, RequestInit, Response};

use crate::auth;
use crate::bucket;
use crate::bucket::database::{R2Database, Saved, Snapshot};
use crate::bucket::layout::{self, R2State};
use crate::bucket::R2Error;
use crate::bucket::{listing, multipart, prune};
use crate::config::Config;
use crate::error::ApiError;
use crate::flag::Flags;
use crate::handlers::check_request_body_size;
use crate::headers;
use crate::http;
use crate::identity::UserId;
use crate::object;
use crate::r2_path;
use user_data_core::db::rusqlite_db::RusqliteDb;
use user_data_core::db::DbVersion;

/// Answers one admin request; never fails.
pub async fn handle(req: Request, env: &Env) -> Response {
    let user = named_user(&req);
    match run(req, env).await {
        Ok(response) => response,
        Err(err) => http::error(&err, user.as_ref()),
    }
}

/// The user of `/admin/users/{id}/...`, for the log line of a failure.
fn named_user(req: &Request) -> Option<UserId> {
    let path = req.path();
    let id = path.strip_prefix("/admin/users/")?.split('/').next()?;
    UserId::parse(id).ok()
}

async fn run(req: Request, env: &Env) -> Result<Response, ApiError> {
    auth::service::require_secret_bearer(&req, env, "ADMIN_TOKEN")?;
    let config = Config::from_env(env);
    let url = req
        .url()
        .map_err(|err| ApiError::BadRequest(format!("Invalid URL: {err}")))?;
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let path = url.path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let user = |raw: &str| UserId::parse(raw);
    let field = |name: &str| query.get(name).map(String::as_str);

    match (req.method(), segments.as_slice()) {
        (Method::Get, ["admin", "users"]) => list_users(env, &config, &query).await,
        (Method::Get, ["admin", "users", u]) => user_status(env, &user(u)?).await,
        (Method::Put, ["admin", "users", u, "database"]) => {
            // Bounded as it arrives, as every request body is: the file is then read whole.
            let bytes = http::read_body(&req, check_request_body_size)
                .await?
                .to_vec();
            import_database(env, &config, &user(u)?, bytes).await
        }
        (Method::Get, ["admin", "users", u, "database"]) => {
            let user = user(u)?;
            known_user(env, &user).await?;
            export_database(env, &config, &user).await
        }
        (Method::Post, ["admin", "users", u, "migrate"]) => {
            passed_on(env, &user(u)?, ObjectCall::Migrate).await
        }
        (Method::Post, ["admin", "users", u, "rollback"]) => {
            passed_on(env, &user(u)?, ObjectCall::Rollback).await
        }
        (Method::Get, ["admin", "users", u, "verify"]) => {
            passed_on(env, &user(u)?, ObjectCall::Verify).await
        }
        (Method::Get, ["admin", "users", u, "preflight"]) => {
            passed_on(env, &user(u)?, ObjectCall::Preflight).await
        }
        (Method::Get, ["admin", "users", u, "scan"]) => scan_user(env, &config, &user(u)?).await,
        (Method::Post, ["admin", "users", u, "fault"]) if config.fault_injection => {
            let fault = Fault::from_query(field).map_err(ApiError::Unprocessable)?;
            call_object(env, &user(u)?, ObjectCall::ArmFault(fault), None).await
        }
        (Method::Get, ["admin", "users", u, "move", "file"]) => {
            move_file(env, &config, &user(u)?, &query).await
        }
        (Method::Post, ["admin", "users", u, "move", "upload"]) => {
            start_upload(env, &user(u)?, &query).await
        }
        (Method::Post, ["admin", "users", u, "move", "upload", "part"]) => {
            upload_part(env, &user(u)?, &query, &req).await
        }
        (Method::Post, ["admin", "users", u, "move", step]) => {
            let user = user(u)?;
            let step = MoveStep::parse(step, field)
                .ok_or_else(|| ApiError::NotFound("Not Found".into()))?;
            if step == MoveStep::Begin {
                known_user(env, &user).await?;
            }
            // The body (a row batch, up to 4 MiB) passes through as the runtime's stream.
            let body = req.inner().body().map(wasm_bindgen::JsValue::from);
            call_object(env, &user, ObjectCall::Move(step), body).await
        }
        (Method::Post, ["admin", "prune"]) => prune(env, &query).await,
        _ => Err(ApiError::NotFound("Not Found".into())),
    }
}

/// Calls the user's object (with `body`, if any) and passes its answer on.
async fn call_object(
    env: &Env,
    user: &UserId,
    call: ObjectCall,
    body: Option<wasm_bindgen::JsValue>,
) -> Result<Response, ApiError> {
    let headers: Headers = [(headers::USER_ID, user.as_str())].iter().collect();
    let method = Method::from(call.method().to_owned());
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers)
        .with_body(body);
    let url = call.url();
    let request = Request::new_with_init(&url, &init)
        .map_err(|err| ApiError::Internal(format!("Could not call {url}: {err}")))?;
    object::call(env, user, request).await
}

/// A move or check of a user R2 or the flag knows, passed on to their object.
async fn passed_on(env: &Env, user: &UserId, call: ObjectCall) -> Result<Response, ApiError> {
    known_user(env, user).await?;
    call_object(env, user, call, None).await
}

/// What R2 and the flag say of a user, or 404 when neither knows them: the admin API creates
/// nothing for a user with no data (no object, no R2 file, no flag). A migrated user always has
/// an R2 file (the fence, or its tombstone), so the object alone never holds a user.
async fn known_user(env: &Env, user: &UserId) -> Result<(R2Summary, bool), ApiError> {
    let r2 = r2_summary(env, user).await?;
    let flag = Flags::new(env)?.is_set(user, None).await?;
    if !r2.exists && !flag {
        return Err(ApiError::NotFound(format!(
            "User {user} has no data: no database in R2 and no migrated flag"
        )));
    }
    Ok((r2, flag))
}

/// What R2 says of a user's database (one HEAD).
async fn r2_summary(env: &Env, user: &UserId) -> Result<R2Summary, ApiError> {
    let bucket = bucket::user_data(env)?;
    let config = Config::from_env(env);
    Ok(R2Database::of(&bucket, user, &config).summary().await?)
}

/// Where the next page of `GET /admin/users` starts in each store: the R2 list's cursor and
/// the KV list's, each `None` before its first page; a store that is done is `done`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ListCursor {
    r2: Option<String>,
    kv: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    r2_done: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    kv_done: bool,
}

/// `GET /admin/users?cursor=&limit=`: one R2 list (databases with their metadata) and one KV
/// list (flags) per page, never a request per user, so a fleet of any size lists page by page
/// within the Worker's subrequest limit. The page's `limit` bounds both lists; an R2 page also
/// holds the users' media, so it may name fewer users than `limit`.
async fn list_users(
    env: &Env,
    config: &Config,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let request = ListUsers::from_query(|field| query.get(field).map(String::as_str))
        .map_err(ApiError::Unprocessable)?;
    let mut cursor: ListCursor = match &request.cursor {
        Some(text) => serde_json::from_str(text).map_err(|_| {
            ApiError::Unprocessable("query field 'cursor': not a cursor of this listing".into())
        })?,
        None => ListCursor::default(),
    };
    let mut users = Vec::new();
    if !cursor.r2_done {
        let bucket = bucket::user_data(env)?;
        let page = listing::databases(&bucket, cursor.r2.take(), request.limit).await?;
        users = page.users;
        cursor.r2 = page.cursor;
        cursor.r2_done = cursor.r2.is_none();
    }
    let mut flagged = Vec::new();
    if !cursor.kv_done {
        let page = Flags::new(env)?
            .page(cursor.kv.take(), request.limit.into())
            .await?;
        flagged = page.users;
        cursor.kv = page.cursor;
        cursor.kv_done = cursor.kv.is_none();
    }
    let next = (!(cursor.r2_done && cursor.kv_done))
        .then(|| serde_json::to_string(&cursor).expect("a cursor serializes"));
    Ok(http::json(
        200,
        &UserPage {
            users,
            flagged,
            cursor: next,
            r2_max_bytes: Some(config.max_database_bytes),
        },
    ))
}

/// `GET /admin/users/{id}/scan`: the fleet check of one user ([`file_check`]): one R2 GET,
/// whose body is read only for a file the R2 path would open (a user R2 marks migrated, or one
/// above the ceiling, is judged from the object's metadata), and never the user's object, so a
/// whole fleet is scanned without waking one.
async fn scan_user(env: &Env, config: &Config, user: &UserId) -> Result<Response, ApiError> {
    let bucket = bucket::user_data(env)?;
    let database = R2Database::of(&bucket, user, config);
    let max_bytes = database.max_bytes;
    let unread = |snapshot: &Snapshot| {
        let migrated = snapshot.state != R2State::Active;
        file_check::without_reading(migrated, snapshot.size, max_bytes)
    };
    let Some(snapshot) = database
        .download_if(|snapshot| unread(snapshot).is_none())
        .await?
    else {
        return Err(ApiError::NotFound(format!(
            "User {user} has no database in R2: nothing to scan"
        )));
    };
    let verdict = match unread(&snapshot) {
        Some(verdict) => verdict,
        None => file_check::check_file(snapshot.bytes.as_deref().map_or(&[][..], Vec::as_slice))?,
    };
    Ok(http::json(
        200,
        &ScanReport {
            user_id: user.as_str().to_owned(),
            outcome: verdict.outcome,
            version: snapshot.version.0,
            size: snapshot.size,
            detail: verdict.detail,
            problems: verdict.problems,
        },
    ))
}

/// `GET /admin/users/{id}`: R2, the KV flag, and the object. An object that cannot report
/// itself answers for the whole request, with its own error.
async fn user_status(env: &Env, user: &UserId) -> Result<Response, ApiError> {
    let (r2, flag) = known_user(env, user).await?;
    let mut object = call_object(env, user, ObjectCall::Status, None).await?;
    if object.status_code() != 200 {
        return Ok(object);
    }
    let text = object.text().await.map_err(|err| {
        ApiError::Unavailable(format!(
            "The status of {user}'s object was cut short: {err}"
        ))
    })?;
    let object = serde_json::from_str(&text).map_err(|err| {
        ApiError::Internal(format!(
            "The status of {user}'s object did not parse: {err}"
        ))
    })?;
    Ok(http::json(
        200,
        &UserStatus {
            user_id: user.as_str().to_owned(),
            r2,
            flag,
            object,
        },
    ))
}

/// `PUT /admin/users/{id}/database`: stores a SQLite file as the user's R2 database, brought up
/// to date, as the next version, after keeping the file it replaces under `backups/`. Refused
/// while the user's object holds the data.
async fn import_database(
    env: &Env,
    config: &Config,
    user: &UserId,
    bytes: Vec<u8>,
) -> Result<Response, ApiError> {
    if !bytes.starts_with(b"SQLite format 3\0") {
        return Err(ApiError::BadRequest(
            "The body is not a SQLite database file (no SQLite header)".into(),
        ));
    }
    let mut db = RusqliteDb::from_bytes(&bytes)
        .map_err(|err| ApiError::BadRequest(format!("The SQLite file cannot be opened: {err}")))?;
    drop(bytes);
    user_data_core::db::check_integrity(&db)
        .map_err(|err| ApiError::BadRequest(format!("The SQLite file is damaged: {err}")))?;
    let bucket = bucket::user_data(env)?;
    let database = R2Database::of(&bucket, user, config);
    // Brought up to date as the R2 path would on its first use; a file the R2 path would refuse
    // to serve is refused here, before it replaces anything.
    let upgrade = match r2_path::upgrade(
        user,
        &format!("the file imported for {}", database.key),
        &db,
    ) {
        Err(R2Error::Incompatible { reason, .. }) => {
            return Err(ApiError::BadRequest(format!(
                "The database does not have the tables the app needs ({reason}); nothing was \
                 imported"
            )))
        }
        other => other?,
    };
    let current = database.head().await?;
    if current.state != R2State::Active {
        return Err(ApiError::Conflict(format!(
            "User {user} is migrated to their Durable Object; roll back before importing"
        )));
    }
    let version = current.version.next();
    version.record_in(&db)?;
    let file = db.to_bytes()?;
    let size = file.len();
    // Nothing is replaced without a copy: the file R2 held is kept first.
    let backup = if current.etag.is_some() {
        database.back_up(user).await?
    } else {
        None
    };
    match database
        .put(version, R2State::Active, file, Some(current.unchanged()))
        .await?
    {
        Saved::Stored { .. } => {
            crate::log::info(serde_json::json!({
                "event": "database_imported",
                "user": user.as_str(),
                "version": version.0,
                "bytes": size,
                "upgrade": upgrade.to_string(),
                "backup": backup,
            }));
            Ok(http::json(
                200,
                &ImportResult {
                    user_id: user.as_str().to_owned(),
                    version: version.0,
                    bytes: size as u64,
                    upgrade: upgrade.to_string(),
                    backup,
                },
            ))
        }
        Saved::Conflict => Err(ApiError::Conflict(
            "The user's database changed during the import; try again".into(),
        )),
    }
}

/// `GET /admin/users/{id}/database`: the authoritative database, wherever it is.
async fn export_database(env: &Env, config: &Config, user: &UserId) -> Result<Response, ApiError> {
    let bucket = bucket::user_data(env)?;
    // Streamed: a file of any size passes through without entering the Worker's memory.
    match R2Database::of(&bucket, user, config).stream().await? {
        Some((snapshot, body)) if snapshot.state == R2State::Active => {
            Ok(http::sqlite_stream(snapshot.version, body))
        }
        Some(_) => call_object(env, user, ObjectCall::Export, None).await,
        None => Err(ApiError::NotFound(format!("User {user} has no database"))),
    }
}

/// A query field that must be a whole number.
fn number_field(query: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    query
        .get(name)
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| ApiError::Unprocessable(format!("query field '{name}': a whole number")))
}

/// A query field that must be there.
fn text_field<'q>(query: &'q HashMap<String, String>, name: &str) -> Result<&'q str, ApiError> {
    query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::Unprocessable(format!("query field '{name}': required")))
}

/// `GET /admin/users/{id}/move/file?offset=&length=&etag=`: a range of the user's R2 database,
/// streamed from R2 (never held here), only while R2 holds the object `etag`.
async fn move_file(
    env: &Env,
    config: &Config,
    user: &UserId,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let offset = number_field(query, "offset")?;
    let length = number_field(query, "length")?.min(PART_BYTES);
    let etag = text_field(query, "etag")?;
    let bucket = bucket::user_data(env)?;
    let database = R2Database::of(&bucket, user, config);
    match database.range(offset, length, etag).await? {
        Some((snapshot, body)) => Ok(http::sqlite_stream(snapshot.version, body)),
        None => Err(ApiError::Conflict(format!(
            "The R2 database of {user} is no longer the object {etag}; read it again"
        ))),
    }
}

/// Where an upload of `target` goes, and the metadata it gets.
fn upload_key(
    user: &UserId,
    query: &HashMap<String, String>,
) -> Result<(String, DbVersion), ApiError> {
    let version = DbVersion(number_field(query, "version")?);
    let target = query.get("target").and_then(|t| UploadTarget::parse(t));
    let key = match target {
        Some(UploadTarget::Backup) => layout::backup_key(user, version),
        Some(UploadTarget::Database) => layout::database_key(user),
        None => {
            return Err(ApiError::Unprocessable(
                "query field 'target': backup or database".into(),
            ))
        }
    };
    Ok((key, version))
}

/// `POST /admin/users/{id}/move/upload?target=&version=`: starts an R2 multipart upload of a
/// file at `version`. Nothing is stored until the object's cut-over completes it.
async fn start_upload(
    env: &Env,
    user: &UserId,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let (key, version) = upload_key(user, query)?;
    let upload_id = multipart::start(&bucket::user_data(env)?, &key, version).await?;
    Ok(http::json(200, &UploadStarted { upload_id }))
}

/// `POST /admin/users/{id}/move/upload/part?target=&version=&upload_id=&part=`: one part of
/// an upload (at most 8 MiB: the only bytes this invocation holds).
async fn upload_part(
    env: &Env,
    user: &UserId,
    query: &HashMap<String, String>,
    req: &Request,
) -> Result<Response, ApiError> {
    let (key, _) = upload_key(user, query)?;
    let upload_id = text_field(query, "upload_id")?;
    let part = u16::try_from(number_field(query, "part")?)
        .ok()
        .filter(|part| *part >= 1)
        .ok_or_else(|| ApiError::Unprocessable("query field 'part': 1 to 10000".into()))?;
    // The part goes to R2 as the request's stream, never into wasm memory; R2 takes a stream
    // of a declared length.
    let length: Option<u64> = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|length| length.trim().parse().ok());
    match length {
        Some(length) if length <= PART_BYTES => {}
        Some(_) => {
            return Err(ApiError::ContentTooLarge(format!(
                "A part is at most {PART_BYTES} bytes"
            )))
        }
        None => {
            return Err(ApiError::BadRequest(
                "A part must declare its Content-Length".into(),
            ))
        }
    }
    let body = req
        .inner()
        .body()
        .ok_or_else(|| ApiError::BadRequest("A part needs a body".into()))?;
    let bucket = bucket::user_data(env)?;
    let uploaded = multipart::upload_part(&bucket, &key, upload_id, part, body).await?;
    Ok(http::json(200, &uploaded))
}

/// `POST /admin/prune?older_than_days=30&dry_run=`: deletes backups older than that and turns
/// the R2 copies of users migrated longer ago into tombstones.
async fn prune(env: &Env, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let Prune {
        older_than_days: days,
        dry_run,
    } = Prune::from_query(|field| query.get(field).map(String::as_str))
        .map_err(ApiError::Unprocessable)?;
    let cutoff = worker::Date::now()
        .as_millis()
        .saturating_sub(days * 86_400_000);
    let pruned = prune::prune(&bucket::user_data(env)?, cutoff, dry_run).await?;
    Ok(http::json(
        200,
        &PruneResult {
            dry_run,
            older_than_days: days,
            deleted_backups: pruned.deleted_backups,
            tombstoned: pruned.tombstoned,
        },
    ))
}
