//! The router Worker for per-user data of the video editor.
//!
//! Layout (one module per concern; each starts with a note on what it owns), from the bottom up:
//! - `user_data_core` (the crate in `core/`, shared with the migrator): the synchronous `Db`
//!   trait, typed values, `DbError`, `DbVersion`, the schema and its upgrade, the R2 path's
//!   backend (rusqlite), and the catalog, row batches, copy, digests and preflight of a move.
//! - [`headers`]: the names of the Worker's own HTTP headers.
//! - [`log`]: the Worker's log lines, one JSON object each, searchable by event and user.
//! - [`identity`]: `X-User-ID` -> [`identity::UserId`], the only place a user id is made.
//! - [`config`]: vars and binding names, read from `Env` once per request.
//! - [`object::sql_db`]: the object path's backend, `Db` over the Durable Object's SqlStorage.
//! - [`object::records`]: the object's own tables (its state, its last failed move, a chunked
//!   move's record), read and written only there.
//! - [`flag`]: the KV flag `migrated:<user_id>`: its key, reading, setting and clearing it.
//! - [`error`]: [`error::ApiError`] and its one mapping to an HTTP status and body; the lower
//!   modules' typed errors become it there, the higher ones' beside their type.
//! - [`auth`]: who a user request is for: a signed token's subject (`jwt` mode, verified by
//!   the runtime's WebCrypto) or `X-User-ID` as sent (`header` mode); and the bearer secrets of
//!   the Worker's own clients ([`auth::service`]).
//! - [`origin`]: which pages may change a user's data and read the answers (cross-site requests,
//!   CORS).
//! - [`handlers`]: the API routes of `docs/api.md`, written once over `Db`; no I/O.
//! - [`bucket`]: the `USER_DATA` bucket and every call to R2: keys and metadata
//!   ([`bucket::layout`]), a user's database object with the isolate's cache, backups and
//!   tombstones ([`bucket::database`]), media files ([`bucket::media`]), the fleet's listing,
//!   multipart uploads, pruning, and [`bucket::R2Error`]. No HTTP.
//! - [`http`]: converts workers-rs requests and responses to and from the handlers' plain
//!   types; builds every JSON, error and file response.
//! - [`placement`]: where a request is served: the flag, R2's state and the object's state give
//!   serve here, hand over, or move first. The router, the R2 path and the object all ask it.
//! - [`processing`]: the edges to the video-processing service: jobs onto the queue and the
//!   queue's consumer, the service's media routes, forwarding the frontend's processing routes.
//! - [`lifecycle`]: one API request on either backend: parse, one transaction committed once
//!   its files are stored, deletions after, the answer and its headers.
//! - [`r2_path`]: the R2-SQLite path: the user's SQLite file in R2 opened with rusqlite.
//! - [`migration`]: moving a user R2 -> Durable Object and back, in one step or in chunks, and
//!   [`migration::MigrationError`].
//! - [`object`]: the Durable Object path: [`object::UserDataStore`], the per-user Durable
//!   Object with SQLite storage, and the calls it answers ([`admin_api::object_call`]).
//! - [`admin`]: `/admin/*` behind the admin token: users, import/export, migrate, rollback, scan,
//!   prune.
//! - [`router`]: the outer routes; sends each API request to the R2 path or the user's object.
//!
//! Modules import only those above them in this list; none imports one below it
//! (`scripts/check-layers.sh` checks it).

pub mod admin;
pub mod auth;
pub mod bucket;
pub mod config;
pub mod error;
pub mod flag;
pub mod handlers;
pub mod headers;
pub mod http;
pub mod identity;
pub mod lifecycle;
pub mod log;
pub mod migration;
pub mod object;
pub mod origin;
pub mod placement;
pub mod processing;
pub mod r2_path;
pub mod router;

use worker::{event, Context, Env, MessageBatch, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    // The router answers every failure itself: an `Err` escaping here would become a bare 500.
    Ok(router::handle(req, env).await)
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    // Every message is acknowledged or retried by `deliver` itself.
    processing::deliver(batch, &env).await;
    Ok(())
}
