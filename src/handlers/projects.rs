//! `/api/projects` (shared/api.md §4).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::db::{Db, Row, SqlValue};
use crate::error::ApiError;
use crate::handlers::derive::{games_by_project, GameList};
use crate::handlers::project_clips::{filename_or_unknown, latest_working_clips};
use crate::handlers::{local_iso_now, ApiRequest, ApiResponse, FileResponse, Reply};

const ASPECT_RATIOS: [&str; 4] = ["16:9", "9:16", "4:3", "1:1"];
const MODES: [&str; 3] = ["annotate", "framing", "overlay"];

fn check_aspect_ratio(aspect_ratio: &str) -> Result<(), ApiError> {
    if ASPECT_RATIOS.contains(&aspect_ratio) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "Invalid aspect ratio: {aspect_ratio}"
        )))
    }
}

/// 404 `Project not found` unless the project exists.
pub fn require_project(db: &impl Db, project_id: i64) -> Result<(), ApiError> {
    let found = db.query("SELECT 1 FROM projects WHERE id = ?", &[project_id.into()])?;
    if found.is_empty() {
        Err(ApiError::NotFound("Project not found".into()))
    } else {
        Ok(())
    }
}

#[derive(Debug, Serialize)]
struct ProjectListItem {
    id: i64,
    name: String,
    aspect_ratio: String,
    clip_count: i64,
    clips_exported: i64,
    clips_in_progress: i64,
    has_working_video: bool,
    has_overlay_edits: bool,
    has_final_video: bool,
    is_auto_created: bool,
    created_at: Option<String>,
    current_mode: String,
    last_opened_at: Option<String>,
    #[serde(flatten)]
    games: GameList,
    group_key: Option<String>,
}

/// P1 `GET /api/projects`, newest first.
pub fn list(db: &impl Db) -> Result<Reply, ApiError> {
    let rows = db.query(
        &format!(
            "{latest}, counts AS ( \
                 SELECT project_id, COUNT(*) AS clip_count, \
                        SUM(exported_at IS NOT NULL) AS exported, \
                        SUM(exported_at IS NULL AND (crop_data IS NOT NULL \
                            OR timing_data IS NOT NULL OR segments_data IS NOT NULL)) AS in_progress \
                 FROM latest GROUP BY project_id) \
             SELECT p.id, p.name, p.aspect_ratio, \
                    COALESCE(c.clip_count, 0), COALESCE(c.exported, 0), COALESCE(c.in_progress, 0), \
                    wv.id IS NOT NULL, \
                    COALESCE(wv.highlights_data NOT IN ('', '[]'), 0) \
                        OR COALESCE(wv.text_overlays NOT IN ('', '[]'), 0), \
                    fv.id IS NOT NULL, \
                    EXISTS (SELECT 1 FROM raw_clips rc WHERE rc.auto_project_id = p.id), \
                    p.created_at, COALESCE(p.current_mode, 'framing'), p.last_opened_at \
             FROM projects p \
             LEFT JOIN counts c ON c.project_id = p.id \
             LEFT JOIN working_videos wv ON wv.id = p.working_video_id \
             LEFT JOIN final_videos fv ON fv.id = p.final_video_id \
             ORDER BY p.created_at DESC, p.id DESC",
            latest = latest_working_clips("")
        ),
        &[],
    )?;
    let mut games = games_by_project(db)?;
    let items = rows
        .iter()
        .map(|row| {
            let id: i64 = row.get(0)?;
            let games = games.remove(&id).unwrap_or_default();
            Ok(ProjectListItem {
                id,
                name: row.get(1)?,
                aspect_ratio: row.get(2)?,
                clip_count: row.get(3)?,
                clips_exported: row.get(4)?,
                clips_in_progress: row.get(5)?,
                has_working_video: row.get(6)?,
                has_overlay_edits: row.get(7)?,
                has_final_video: row.get(8)?,
                is_auto_created: row.get(9)?,
                created_at: row.get(10)?,
                current_mode: row.get(11)?,
                last_opened_at: row.get(12)?,
                group_key: games.group_key(),
                games,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Reply::json(json!(items)))
}

#[derive(Debug, Deserialize)]
pub struct NewProject {
    name: String,
    aspect_ratio: String,
}

/// Inserts a project and answers the ProjectResponse of P2 and P4.
fn insert_project(db: &impl Db, name: &str, aspect_ratio: &str) -> Result<(i64, Value), ApiError> {
    let id: i64 = db
        .query(
            "INSERT INTO projects (name, aspect_ratio) VALUES (?, ?) RETURNING id",
            &[name.into(), aspect_ratio.into()],
        )?
        .first()
        .ok_or_else(|| ApiError::Internal("INSERT returned no id".into()))?
        .get(0)?;
    let response = json!({
        "id": id,
        "name": name,
        "aspect_ratio": aspect_ratio,
        "working_video_id": null,
        "final_video_id": null,
        "created_at": local_iso_now(db)?,
    });
    Ok((id, response))
}

/// P2 `POST /api/projects`.
pub fn create(db: &impl Db, input: NewProject) -> Result<Reply, ApiError> {
    check_aspect_ratio(&input.aspect_ratio)?;
    let (_, response) = insert_project(db, &input.name, &input.aspect_ratio)?;
    Ok(Reply::json(response))
}

#[derive(Debug, Deserialize)]
pub struct ClipFilter {
    #[serde(default)]
    game_ids: Vec<i64>,
    #[serde(default = "one")]
    min_rating: i64,
    #[serde(default)]
    tags: Vec<String>,
}

fn one() -> i64 {
    1
}

/// The clip filter of P3 and P4: rating, games, every tag; newest first.
fn filtered_clips(db: &impl Db, filter: &ClipFilter) -> Result<Vec<Row>, ApiError> {
    let mut sql = String::from(
        "SELECT id, name, rating, tags, start_time, end_time, game_id FROM raw_clips WHERE 1 = 1",
    );
    let mut params: Vec<SqlValue> = Vec::new();
    if filter.min_rating > 0 {
        sql.push_str(" AND rating >= ?");
        params.push(filter.min_rating.into());
    }
    if !filter.game_ids.is_empty() {
        // One JSON parameter instead of one per id: the Durable Object allows 100 parameters.
        sql.push_str(" AND game_id IN (SELECT value FROM json_each(?))");
        params.push(json!(filter.game_ids).to_string().into());
    }
    for tag in &filter.tags {
        sql.push_str(" AND instr(COALESCE(tags, ''), ?) > 0");
        params.push(crate::handlers::derive::python_json_string(tag).into());
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC");
    Ok(db.query(&sql, &params)?)
}

/// P3 `POST /api/projects/preview-clips`.
pub fn preview_clips(db: &impl Db, filter: ClipFilter) -> Result<Reply, ApiError> {
    let rows = filtered_clips(db, &filter)?;
    let mut total_duration = 0.0;
    let clips = rows
        .iter()
        .map(|row| {
            let id: i64 = row.get(0)?;
            let start = row.get::<Option<f64>>(4)?.unwrap_or(0.0);
            let end = row.get::<Option<f64>>(5)?.unwrap_or(0.0);
            let duration = (end - start).max(0.0);
            total_duration += duration;
            let name = row
                .get::<Option<String>>(1)?
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| format!("Clip {id}"));
            Ok(json!({
                "id": id,
                "name": name,
                "rating": row.get::<i64>(2)?,
                "tags": crate::handlers::derive::parse_tags(row.get::<Option<String>>(3)?.as_deref()),
                "duration": duration,
                "game_id": row.get::<Option<i64>>(6)?,
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Reply::json(json!({
        "clip_count": clips.len(),
        "total_duration": total_duration,
        "clips": clips,
    })))
}

#[derive(Debug, Deserialize)]
pub struct FromClips {
    name: String,
    #[serde(default = "default_aspect_ratio")]
    aspect_ratio: String,
    #[serde(flatten)]
    filter: ClipFilter,
    #[serde(default)]
    clip_ids: Option<Vec<i64>>,
}

fn default_aspect_ratio() -> String {
    "16:9".into()
}

/// P4 `POST /api/projects/from-clips`: the given clips in the given order, else the filter's.
pub fn from_clips(db: &impl Db, input: FromClips) -> Result<Reply, ApiError> {
    check_aspect_ratio(&input.aspect_ratio)?;
    let raw_clip_ids: Vec<i64> = match input.clip_ids.as_deref() {
        Some(ids) if !ids.is_empty() => {
            let known: Vec<i64> = db
                .query(
                    "SELECT id FROM raw_clips WHERE id IN (SELECT value FROM json_each(?))",
                    &[json!(ids).to_string().into()],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect::<Result<_, _>>()?;
            ids.iter()
                .copied()
                .filter(|id| known.contains(id))
                .collect()
        }
        _ => filtered_clips(db, &input.filter)?
            .iter()
            .map(|row| row.get(0))
            .collect::<Result<_, _>>()?,
    };
    if raw_clip_ids.is_empty() {
        return Err(ApiError::BadRequest(
            "No clips match the specified filters".into(),
        ));
    }
    let (project_id, response) = insert_project(db, &input.name, &input.aspect_ratio)?;
    for (sort_order, raw_clip_id) in raw_clip_ids.iter().enumerate() {
        db.execute(
            "INSERT INTO working_clips (project_id, raw_clip_id, sort_order, version) \
             VALUES (?, ?, ?, 1)",
            &[
                project_id.into(),
                (*raw_clip_id).into(),
                (sort_order as i64).into(),
            ],
        )?;
    }
    Ok(Reply::json(response))
}

/// P5 `GET /api/projects/{id}`: the project with its latest clips in order.
pub fn get(db: &impl Db, project_id: i64) -> Result<Reply, ApiError> {
    let project = db
        .query(
            "SELECT id, name, aspect_ratio, working_video_id, final_video_id, created_at \
             FROM projects WHERE id = ?",
            &[project_id.into()],
        )?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound("Project not found".into()))?;
    let clips = db
        .query(
            &format!(
                "{latest} SELECT l.id, l.raw_clip_id, l.uploaded_filename, rc.filename, rc.name, \
                        rc.notes, l.exported_at, l.sort_order \
                 FROM latest l LEFT JOIN raw_clips rc ON rc.id = l.raw_clip_id \
                 ORDER BY l.sort_order ASC, l.id ASC",
                latest = latest_working_clips("WHERE wc.project_id = ?")
            ),
            &[project_id.into()],
        )?
        .iter()
        .map(|row| {
            let uploaded: Option<String> = row.get(2)?;
            let raw_filename: Option<String> = row.get(3)?;
            Ok(json!({
                "id": row.get::<i64>(0)?,
                "raw_clip_id": row.get::<Option<i64>>(1)?,
                "uploaded_filename": uploaded,
                "filename": filename_or_unknown(raw_filename.as_deref(), uploaded.as_deref()),
                "name": row.get::<Option<String>>(4)?,
                "notes": row.get::<Option<String>>(5)?,
                "exported_at": row.get::<Option<String>>(6)?,
                "sort_order": row.get::<Option<i64>>(7)?,
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Reply::json(json!({
        "id": project.get::<i64>(0)?,
        "name": project.get::<String>(1)?,
        "aspect_ratio": project.get::<String>(2)?,
        "working_video_id": project.get::<Option<i64>>(3)?,
        "final_video_id": project.get::<Option<i64>>(4)?,
        "clips": clips,
        "created_at": project.get::<Option<String>>(5)?,
    })))
}

/// P6 `PUT /api/projects/{id}`: the aspect ratio is not validated here (as in the contract).
pub fn update(db: &impl Db, project_id: i64, input: NewProject) -> Result<Reply, ApiError> {
    require_project(db, project_id)?;
    db.execute(
        "UPDATE projects SET name = ?, aspect_ratio = ? WHERE id = ?",
        &[
            input.name.into(),
            input.aspect_ratio.into(),
            project_id.into(),
        ],
    )?;
    Ok(Reply::json(json!({"success": true, "id": project_id})))
}

/// Deletes a project and its working clips, working videos and final videos (schema §4.8).
pub fn delete_project_rows(db: &impl Db, project_id: i64) -> Result<(), ApiError> {
    for table in ["working_clips", "working_videos", "final_videos"] {
        db.execute(
            &format!("DELETE FROM {table} WHERE project_id = ?"),
            &[project_id.into()],
        )?;
    }
    db.execute("DELETE FROM projects WHERE id = ?", &[project_id.into()])?;
    Ok(())
}

/// P7 `DELETE /api/projects/{id}`.
pub fn delete(db: &impl Db, project_id: i64) -> Result<Reply, ApiError> {
    require_project(db, project_id)?;
    delete_project_rows(db, project_id)?;
    Ok(Reply::json(
        json!({"success": true, "deleted_id": project_id}),
    ))
}

/// P8 `PATCH /api/projects/{id}/state?current_mode=&update_last_opened=`.
pub fn update_state(
    db: &impl Db,
    project_id: i64,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let mode = request.query_param("current_mode");
    let update_last_opened = request.query_bool("update_last_opened", false)?;
    require_project(db, project_id)?;
    if let Some(mode) = mode {
        if !MODES.contains(&mode) {
            return Err(ApiError::BadRequest("Invalid mode".into()));
        }
        db.execute(
            "UPDATE projects SET current_mode = ? WHERE id = ?",
            &[mode.into(), project_id.into()],
        )?;
    }
    if update_last_opened {
        db.execute(
            "UPDATE projects SET last_opened_at = CURRENT_TIMESTAMP WHERE id = ?",
            &[project_id.into()],
        )?;
    }
    if mode.is_none() && !update_last_opened {
        return Ok(Reply::json(
            json!({"success": true, "message": "No updates requested"}),
        ));
    }
    Ok(Reply::json(json!({"success": true, "id": project_id})))
}

/// P9 `POST /api/projects/{id}/discard-uncommitted`.
pub fn discard_uncommitted(db: &impl Db, project_id: i64) -> Result<Reply, ApiError> {
    require_project(db, project_id)?;
    let discarded = db.execute(
        "DELETE FROM working_clips WHERE project_id = ? AND exported_at IS NULL AND version > 1",
        &[project_id.into()],
    )?;
    Ok(Reply::json(
        json!({"success": true, "discarded_count": discarded}),
    ))
}

/// P10 `GET /api/projects/{id}/working-video`: the file of `projects.working_video_id`.
pub fn working_video(db: &impl Db, project_id: i64) -> Result<Reply, ApiError> {
    require_project(db, project_id)?;
    let filename: Option<String> = db
        .query(
            "SELECT wv.filename FROM projects p \
             JOIN working_videos wv ON wv.id = p.working_video_id WHERE p.id = ?",
            &[project_id.into()],
        )?
        .first()
        .map(|row| row.get(0))
        .transpose()?;
    let filename = filename.ok_or_else(|| ApiError::NotFound("Working video not found".into()))?;
    Ok(Reply::from(ApiResponse::File(FileResponse {
        key: format!("working_videos/{filename}"),
        missing_detail: "Working video not found".into(),
        attachment_name: None,
        no_cache: false,
    })))
}
