//! The router Worker for per-user data of the video editor.
//!
//! Layout (one module per concern; each starts with a note on what it owns):
//! - [`router`]: the outer routes; picks the R2-SQLite path or the user's Durable Object from the
//!   KV flag.
//! - [`flag`]: the KV flag `migrated:<user_id>`: its key, reading, setting and clearing it.
//! - [`layout`]: where things live in R2: every key and metadata key, and [`layout::R2State`].
//! - [`identity`]: `X-User-ID` -> [`identity::UserId`], the only place a user id is made.
//! - [`config`]: vars and binding names, read from `Env` once per request.
//! - [`error`]: [`error::ApiError`] and its one mapping to an HTTP status and `{"detail": ...}`;
//!   the lower modules' typed errors (identity, flag, database) become it there.
//! - [`http`]: converts workers-rs requests and responses to and from the handlers' plain types.
//! - [`files`]: the users' media files in R2: streamed with `Range`, stored, deleted.
//! - [`db`]: the synchronous [`db::Db`] abstraction and its two backends (rusqlite, the object's
//!   SqlStorage), typed values and errors, [`db::DbVersion`], the schema migration runner and the
//!   check that a database's app tables have the app's shape.
//! - [`handlers`]: the API routes of `docs/api.md`, written once over `Db`; no I/O.
//! - [`r2`]: the R2-SQLite path: the user's SQLite file in R2 opened with rusqlite.
//! - [`durable`]: [`durable::UserDataStore`], the per-user Durable Object with SQLite storage.
//! - [`migration`]: moving a user R2 -> Durable Object and back; the fences against KV lag.
//! - [`admin`]: `/admin/*` behind the admin token: users, import/export, migrate, rollback, prune.
//!
//! Modules import only those below them: identity, config < error < db < handlers < http, files,
//! flag, layout < r2 < migration < durable < admin < router.

pub mod admin;
pub mod bucket;
pub mod config;
pub mod db;
pub mod durable;
pub mod error;
pub mod flag;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod lifecycle;
pub mod migration;
pub mod placement;
pub mod r2;
pub mod router;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    // The router answers every failure itself: an `Err` escaping here would become a bare 500.
    Ok(router::handle(req, env).await)
}
