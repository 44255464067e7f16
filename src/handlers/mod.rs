//! The API routes of `docs/api.md`, written once over [`Db`] and served by both storage paths.
//!
//! Handlers are plain synchronous functions: typed input in, a [`Reply`] out. They know nothing
//! of R2, KV, Durable Objects or `worker::Env`; the storage paths hand them a database and an
//! [`ApiRequest`], run them as one unit of work, store or delete the files the reply names, and
//! turn it into an HTTP response.
//!
//! One module per resource: [`projects`], [`clips`] (the library), [`project_clips`], [`games`],
//! [`overlay`], [`downloads`], [`exports`], [`account`], and [`job_results`] (the jobs requests send
//! to the video-processing service and the results it records); [`derive`] holds the
//! derivations they share.

mod account;
mod auto_projects;
mod clips;
mod derive;
mod downloads;
mod exports;
pub mod files;
mod games;
mod job_results;
mod overlay;
mod project_clips;
mod projects;
mod request;

pub use account::DATA_TABLES;
pub use request::{
    check_request_body_size, ApiRequest, ApiResponse, Body, Deletion, Effects, FileBytes,
    FileResponse, FormValue, Job, Method, Reply, Upload, UploadedFile, MAX_JSON_BODY_BYTES,
};

use crate::error::ApiError;
use crate::identity::UserId;
use request::path_id;
use user_data_core::db::{Db, SqlValue};

/// Serves one API request for `user` from `db`. The caller runs it inside one transaction.
pub fn handle(db: &impl Db, user: &UserId, request: &ApiRequest) -> Result<Reply, ApiError> {
    use Method::{Delete, Get, Patch, Post, Put};
    let path = request.path.trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = |segment: &str, name: &str| path_id(segment, name);

    match (request.method, segments.as_slice()) {
        // Projects (§4)
        (Get, ["api", "projects"]) => projects::list(db),
        (Post, ["api", "projects"]) => projects::create(db, request.json()?),
        (Post, ["api", "projects", "preview-clips"]) => {
            projects::preview_clips(db, request.json()?)
        }
        (Post, ["api", "projects", "from-clips"]) => projects::from_clips(db, request.json()?),
        (Get, ["api", "projects", p]) => projects::get(db, id(p, "project_id")?),
        (Put, ["api", "projects", p]) => {
            projects::update(db, id(p, "project_id")?, request.json()?)
        }
        (Delete, ["api", "projects", p]) => projects::delete(db, id(p, "project_id")?),
        (Patch, ["api", "projects", p, "state"]) => {
            projects::update_state(db, id(p, "project_id")?, request)
        }
        (Post, ["api", "projects", p, "discard-uncommitted"]) => {
            projects::discard_uncommitted(db, id(p, "project_id")?)
        }
        (Get, ["api", "projects", p, "working-video"]) => {
            projects::working_video(db, id(p, "project_id")?)
        }

        // The clip library (§5.1)
        (Get, ["api", "clips", "raw"]) => clips::list(db, request),
        (Post, ["api", "clips", "raw", "save"]) => clips::save(db, request.json()?),
        (Post, ["api", "clips", "extract-pending"]) => Err(ApiError::NotImplemented(
            "Clip extraction runs in the video-processing service, not in this Worker".into(),
        )),
        (Get, ["api", "clips", "raw", c]) => clips::get(db, id(c, "clip_id")?),
        (Put, ["api", "clips", "raw", c]) => clips::update(db, id(c, "clip_id")?, request.json()?),
        (Delete, ["api", "clips", "raw", c]) => clips::delete(db, id(c, "clip_id")?),
        (Get, ["api", "clips", "raw", c, "file"]) => clips::file(db, id(c, "clip_id")?),

        // A project's clips (§5.2)
        (Get, ["api", "clips", "projects", p, "clips"]) => {
            project_clips::list(db, id(p, "project_id")?)
        }
        (Post, ["api", "clips", "projects", p, "clips"]) => {
            project_clips::add(db, id(p, "project_id")?, request)
        }
        (Post, ["api", "clips", "projects", p, "clips", "upload-with-metadata"]) => {
            project_clips::upload_with_metadata(db, id(p, "project_id")?, request)
        }
        (Put, ["api", "clips", "projects", p, "clips", "reorder"]) => {
            project_clips::reorder(db, id(p, "project_id")?, request)
        }
        (Put, ["api", "clips", "projects", p, "clips", c]) => {
            project_clips::save(db, id(p, "project_id")?, id(c, "clip_id")?, request.json()?)
        }
        (Delete, ["api", "clips", "projects", p, "clips", c]) => {
            project_clips::delete(db, id(p, "project_id")?, id(c, "clip_id")?)
        }
        (Get, ["api", "clips", "projects", p, "clips", c, "file"]) => {
            project_clips::file(db, id(p, "project_id")?, id(c, "clip_id")?, request)
        }

        // Games (§6)
        (Get, ["api", "games"]) => games::list(db),
        (Post, ["api", "games"]) => games::create(db, request),
        (Get, ["api", "games", g]) => games::get(db, id(g, "game_id")?),
        (Put, ["api", "games", g]) => games::rename(db, id(g, "game_id")?, request),
        (Delete, ["api", "games", g]) => games::delete(db, id(g, "game_id")?),
        (Put, ["api", "games", g, "annotations"]) => {
            games::sync_annotations(db, id(g, "game_id")?, request.json()?)
        }
        (Get, ["api", "games", g, "video"]) => games::video(db, id(g, "game_id")?),
        (Put, ["api", "games", g, "video"]) => games::upload_video(db, id(g, "game_id")?, request),
        (Get, ["api", "games", g, "upload-url"]) => {
            id(g, "game_id")?;
            games::upload_url()
        }
        (Post, ["api", "games", g, "confirm-video"]) => {
            id(g, "game_id")?;
            games::confirm_video()
        }

        // Overlay data (§7)
        (Get, ["api", "export", "projects", p, "overlay-data"]) => {
            overlay::get(db, id(p, "project_id")?)
        }
        (Put, ["api", "export", "projects", p, "overlay-data"]) => {
            overlay::save(db, id(p, "project_id")?, request)
        }

        // Downloads (§8)
        (Get, ["api", "downloads"]) => downloads::list(db, request),
        (Get, ["api", "downloads", "count"]) => downloads::count(db),
        (Get, ["api", "downloads", d, "file"]) => downloads::file(db, id(d, "download_id")?),
        (Delete, ["api", "downloads", d]) => downloads::delete(db, id(d, "download_id")?, request),
        (Get, ["api", "export", "before-after", f, "status"]) => {
            downloads::before_after_status(db, id(f, "final_video_id")?)
        }

        // Export jobs (§9)
        (Post, ["api", "exports"]) => exports::create(db, request.json()?, request),
        (Post, ["api", "exports", "framing"]) => exports::create_framing(db, request),
        (Post, ["api", "exports", "overlay"]) => exports::create_overlay(db, request),
        (Get, ["api", "exports", "active"]) => exports::active(db),
        (Get, ["api", "exports", "recent"]) => exports::recent(db, request),
        (Get, ["api", "exports", "project", p]) => exports::for_project(db, id(p, "project_id")?),
        (Get, ["api", "exports", job]) => exports::get(db, job),
        (Delete, ["api", "exports", job]) => exports::cancel(db, job),

        // Auth (§10)
        (Post, ["api", "auth", "login"]) => account::login(request.json()?),
        (Get, ["api", "auth", "whoami"]) => account::whoami(user),
        (Delete, ["api", "auth", "user"]) => account::delete_user(db, user),

        // The video-processing service's results (docs/processing.md §2); the router lets only
        // requests with the processing token reach these paths.
        (Post, ["processing", "clips", c, "cut"]) => {
            job_results::record_cut(db, id(c, "raw_clip_id")?, request.json()?)
        }
        (Post, ["processing", "exports", job, "framing"]) => {
            job_results::record_framing(db, job, request.json()?)
        }
        (Post, ["processing", "exports", job, "final"]) => {
            job_results::record_final(db, job, request.json()?)
        }
        (Post, ["processing", "exports", job, "status"]) => {
            job_results::record_status(db, job, request.json()?)
        }
        _ => Err(ApiError::NotFound("Not Found".into())),
    }
}

/// Inserts a row with `... RETURNING id` and returns the id.
fn insert_returning_id(db: &impl Db, sql: &str, params: &[SqlValue]) -> Result<i64, ApiError> {
    db.query_value(sql, params)?
        .ok_or_else(|| ApiError::Internal("INSERT ... RETURNING id returned no row".into()))
}

/// The server's local time (UTC in Workers) in the ISO form a few routes answer with:
/// `2026-01-24T10:11:12.123000`.
fn local_iso_now(db: &impl Db) -> Result<String, ApiError> {
    db.query_value("SELECT strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000'", &[])?
        .ok_or_else(|| ApiError::Internal("strftime returned no row".into()))
}

#[cfg(test)]
pub(crate) mod tests;
