//! `/api/projects` (docs/api.md §4).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::derive::{games_by_project, GameList};
use crate::handlers::project_clips::{filename_or_unknown, latest_working_clips};
use crate::handlers::{
    insert_returning_id, local_iso_now, ApiRequest, ApiResponse, FileResponse, Reply,
};
use user_data_core::db::{Db, Row, SqlValue};

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

/// P1 `GET /api/projects`, newest first. Every aggregate is computed once for all projects
/// (`counts`, `auto`): `raw_clips.auto_project_id` has no index, and an `EXISTS` per project
/// scanned every clip for every project (27 s for a 30 MB database).
pub fn list(db: &impl Db) -> Result<Reply, ApiError> {
    let rows = db.query(
        &format!(
            "{latest}, counts AS ( \
                 SELECT project_id, COUNT(*) AS clip_count, \
                        SUM(exported_at IS NOT NULL) AS exported, \
                        SUM(exported_at IS NULL AND (crop_data IS NOT NULL \
                            OR timing_data IS NOT NULL OR segments_data IS NOT NULL)) AS in_progress \
                 FROM latest GROUP BY project_id), \
             auto AS ( \
                 SELECT DISTINCT auto_project_id AS project_id FROM raw_clips \
                 WHERE auto_project_id IS NOT NULL) \
             SELECT p.id, p.name, p.aspect_ratio, \
                    COALESCE(c.clip_count, 0), COALESCE(c.exported, 0), COALESCE(c.in_progress, 0), \
                    wv.id IS NOT NULL, \
                    COALESCE(wv.highlights_data NOT IN ('', '[]'), 0) \
                        OR COALESCE(wv.text_overlays NOT IN ('', '[]'), 0), \
                    fv.id IS NOT NULL, \
                    auto.project_id IS NOT NULL, \
                    p.created_at, COALESCE(p.current_mode, 'framing'), p.last_opened_at \
             FROM projects p \
             LEFT JOIN counts c ON c.project_id = p.id \
             LEFT JOIN auto ON auto.project_id = p.id \
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
    let id = insert_returning_id(
        db,
        "INSERT INTO projects (name, aspect_ratio) VALUES (?, ?) RETURNING id",
        &[name.into(), aspect_ratio.into()],
    )?;
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
    let filename: Option<String> = db.query_value(
        "SELECT wv.filename FROM projects p \
             JOIN working_videos wv ON wv.id = p.working_video_id WHERE p.id = ?",
        &[project_id.into()],
    )?;
    let filename = filename.ok_or_else(|| ApiError::NotFound("Working video not found".into()))?;
    Ok(Reply::from(ApiResponse::File(FileResponse {
        key: format!("working_videos/{filename}"),
        missing_detail: "Working video not found".into(),
        attachment_name: None,
        no_cache: false,
    })))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::handlers::tests::{call, json_body, ok, status, test_db};
    use crate::handlers::{ApiResponse, Body, Method};
    use user_data_core::db::Db;

    /// Two games, three clips (one 5-star), and a project made from two of them.
    fn seeded() -> crate::handlers::tests::TestDb {
        let db = test_db();
        db.execute_script(
            "INSERT INTO games (id, name, opponent_name, game_date, game_type) VALUES
                 (1, 'g1.mp4', 'Rivals', '2025-10-04', 'away'),
                 (2, 'g2.mp4', 'Lions', '2025-12-01', 'home');
             INSERT INTO raw_clips (id, filename, rating, tags, name, start_time, end_time, game_id, created_at) VALUES
                 (1, 'a.mp4', 5, '[\"Goals\"]', '', 0, 10, 1, '2026-01-01 10:00:00'),
                 (2, 'b.mp4', 3, '[\"Goals\", \"Dribbling\"]', 'Mine', 5, 12, 2, '2026-01-01 11:00:00'),
                 (3, '', 1, '[]', NULL, 20, 25, 2, '2026-01-01 12:00:00');",
        )
        .unwrap();
        db
    }

    #[test]
    fn create_validates_the_aspect_ratio_and_answers_local_iso_time() {
        let db = test_db();
        let bad = json_body(json!({"name": "P", "aspect_ratio": "2:1"}));
        let err = call(&db, Method::Post, "/api/projects", bad).unwrap_err();
        assert_eq!(
            (err.status(), err.detail()),
            (400, "Invalid aspect ratio: 2:1")
        );
        assert_eq!(
            status(
                &db,
                Method::Post,
                "/api/projects",
                json_body(json!({"name": "P"}))
            ),
            422
        );

        let body = ok(
            &db,
            Method::Post,
            "/api/projects",
            json_body(json!({"name": "P", "aspect_ratio": "9:16"})),
        );
        let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "id",
                "name",
                "aspect_ratio",
                "working_video_id",
                "final_video_id",
                "created_at"
            ]
        );
        let created_at = body["created_at"].as_str().unwrap();
        assert_eq!((created_at.len(), &created_at[10..11]), (26, "T"));
    }

    #[test]
    fn from_clips_keeps_the_given_order_and_skips_unknown_ids() {
        let db = seeded();
        let body = json_body(json!({"name": "Mix", "clip_ids": [2, 99, 1]}));
        let project = ok(&db, Method::Post, "/api/projects/from-clips", body);
        let detail = ok(
            &db,
            Method::Get,
            &format!("/api/projects/{}", project["id"]),
            Body::Empty,
        );
        let clips = detail["clips"].as_array().unwrap();
        let order: Vec<_> = clips
            .iter()
            .map(|c| (c["raw_clip_id"].clone(), c["sort_order"].clone()))
            .collect();
        assert_eq!(order, [(json!(2), json!(0)), (json!(1), json!(1))]);
        assert_eq!(detail["aspect_ratio"], "16:9");
        // P5 answers stored names, not derived ones.
        assert_eq!(
            (clips[0]["name"].clone(), clips[1]["name"].clone()),
            (json!("Mine"), json!(""))
        );

        let none = json_body(json!({"name": "None", "min_rating": 6}));
        let err = call(&db, Method::Post, "/api/projects/from-clips", none).unwrap_err();
        assert_eq!(
            (err.status(), err.detail()),
            (400, "No clips match the specified filters")
        );
        assert_eq!(
            db.query_value::<i64>("SELECT COUNT(*) FROM projects", &[])
                .unwrap(),
            Some(1)
        );
    }

    #[test]
    fn preview_filters_by_rating_games_and_every_tag() {
        let db = seeded();
        let preview = |filter| {
            ok(
                &db,
                Method::Post,
                "/api/projects/preview-clips",
                json_body(filter),
            )
        };
        let all = preview(json!({"min_rating": 0}));
        assert_eq!(all["clip_count"], 3);
        assert_eq!(all["total_duration"], 22.0);
        assert_eq!(all["clips"][0]["name"], "Clip 3");
        assert_eq!(all["clips"][1]["name"], "Mine");
        let goals = preview(json!({"tags": ["Goals"]}));
        assert_eq!(goals["clip_count"], 2);
        let both = preview(json!({"tags": ["Goals", "Dribbling"], "game_ids": [2]}));
        assert_eq!(both["clips"][0]["id"], 2);
        assert_eq!(preview(json!({"min_rating": 4}))["clip_count"], 1);
    }

    #[test]
    fn list_counts_only_latest_versions_and_derives_flags_and_games() {
        let db = seeded();
        ok(
            &db,
            Method::Post,
            "/api/projects/from-clips",
            json_body(json!({"name": "Mix", "clip_ids": [1, 2]})),
        );
        db.execute_script(
            "UPDATE working_clips SET exported_at = '2026-01-02 00:00:00' WHERE raw_clip_id = 1;
             INSERT INTO working_clips (project_id, raw_clip_id, sort_order, version, crop_data)
                 VALUES (1, 2, 1, 2, '[{\"x\":1}]');
             INSERT INTO working_videos (id, project_id, filename, highlights_data) VALUES (7, 1, 'w.mp4', '[]');
             UPDATE projects SET working_video_id = 7, final_video_id = 99 WHERE id = 1;
             UPDATE raw_clips SET auto_project_id = 1 WHERE id = 3;",
        )
        .unwrap();
        let list = ok(&db, Method::Get, "/api/projects", Body::Empty);
        let project = &list[0];
        assert_eq!(project["clip_count"], 2);
        assert_eq!(project["clips_exported"], 1);
        assert_eq!(project["clips_in_progress"], 1);
        assert_eq!(project["has_working_video"], true);
        assert_eq!(project["has_overlay_edits"], false);
        assert_eq!(project["has_final_video"], false, "final_video_id dangles");
        assert_eq!(project["is_auto_created"], true);
        assert_eq!(project["current_mode"], "framing");
        assert_eq!(project["game_ids"], json!([1, 2]));
        assert_eq!(
            project["game_names"],
            json!(["at Rivals Oct 4", "Vs Lions Dec 1"])
        );
        assert_eq!(project["game_dates"], json!(["2025-10-04", "2025-12-01"]));
        assert_eq!(project["group_key"], "Fall 2025");

        db.execute("UPDATE working_videos SET highlights_data = '[{}]'", &[])
            .unwrap();
        let list = ok(&db, Method::Get, "/api/projects", Body::Empty);
        assert_eq!(list[0]["has_overlay_edits"], true);
    }

    #[test]
    fn get_update_and_delete_answer_404_for_unknown_projects() {
        let db = seeded();
        for (method, path) in [
            (Method::Get, "/api/projects/5"),
            (Method::Delete, "/api/projects/5"),
            (Method::Patch, "/api/projects/5/state"),
            (Method::Post, "/api/projects/5/discard-uncommitted"),
            (Method::Get, "/api/projects/5/working-video"),
        ] {
            let err = call(&db, method, path, Body::Empty).unwrap_err();
            assert_eq!(
                (err.status(), err.detail()),
                (404, "Project not found"),
                "{path}"
            );
        }
        let update = json_body(json!({"name": "X", "aspect_ratio": "weird"}));
        assert_eq!(
            status(&db, Method::Put, "/api/projects/5", update.clone()),
            404
        );
        ok(
            &db,
            Method::Post,
            "/api/projects",
            json_body(json!({"name": "P", "aspect_ratio": "1:1"})),
        );
        // P6 stores any aspect ratio (the contract does not validate it there).
        assert_eq!(
            ok(&db, Method::Put, "/api/projects/1", update),
            json!({"success": true, "id": 1})
        );
    }

    #[test]
    fn delete_removes_clips_and_videos_but_leaves_export_jobs() {
        let db = seeded();
        ok(
            &db,
            Method::Post,
            "/api/projects/from-clips",
            json_body(json!({"name": "Mix", "clip_ids": [1, 2]})),
        );
        db.execute_script(
            "INSERT INTO working_videos (project_id, filename) VALUES (1, 'w.mp4');
             INSERT INTO final_videos (project_id, filename) VALUES (1, 'f.mp4');
             INSERT INTO export_jobs (id, project_id, type, input_data) VALUES ('export_x', 1, 'framing', '{}');",
        )
        .unwrap();
        assert_eq!(
            ok(&db, Method::Delete, "/api/projects/1", Body::Empty),
            json!({"success": true, "deleted_id": 1})
        );
        for (table, left) in [
            ("working_clips", 0),
            ("working_videos", 0),
            ("final_videos", 0),
            ("export_jobs", 1),
        ] {
            let count = db
                .query_value::<i64>(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .unwrap();
            assert_eq!(count, Some(left), "{table}");
        }
    }

    #[test]
    fn state_validates_the_mode_and_reports_no_updates() {
        let db = test_db();
        ok(
            &db,
            Method::Post,
            "/api/projects",
            json_body(json!({"name": "P", "aspect_ratio": "1:1"})),
        );
        let err = call(
            &db,
            Method::Patch,
            "/api/projects/1/state?current_mode=edit",
            Body::Empty,
        )
        .unwrap_err();
        assert_eq!((err.status(), err.detail()), (400, "Invalid mode"));
        assert_eq!(
            ok(&db, Method::Patch, "/api/projects/1/state", Body::Empty),
            json!({"success": true, "message": "No updates requested"})
        );
        assert_eq!(
            status(
                &db,
                Method::Patch,
                "/api/projects/1/state?update_last_opened=maybe",
                Body::Empty
            ),
            422
        );
        let path = "/api/projects/1/state?current_mode=overlay&update_last_opened=yes";
        assert_eq!(
            ok(&db, Method::Patch, path, Body::Empty),
            json!({"success": true, "id": 1})
        );
        let list = ok(&db, Method::Get, "/api/projects", Body::Empty);
        assert_eq!(list[0]["current_mode"], "overlay");
        assert!(list[0]["last_opened_at"].is_string());
    }

    #[test]
    fn discard_uncommitted_deletes_unexported_later_versions() {
        let db = seeded();
        ok(
            &db,
            Method::Post,
            "/api/projects/from-clips",
            json_body(json!({"name": "Mix", "clip_ids": [1]})),
        );
        db.execute_script(
            "INSERT INTO working_clips (project_id, raw_clip_id, version) VALUES (1, 1, 2), (1, 1, 3);
             INSERT INTO working_clips (project_id, raw_clip_id, version, exported_at) VALUES (1, 1, 4, 'x');",
        )
        .unwrap();
        let body = ok(
            &db,
            Method::Post,
            "/api/projects/1/discard-uncommitted",
            Body::Empty,
        );
        assert_eq!(body, json!({"success": true, "discarded_count": 2}));
    }

    #[test]
    fn working_video_names_the_current_file_or_404() {
        let db = test_db();
        ok(
            &db,
            Method::Post,
            "/api/projects",
            json_body(json!({"name": "P", "aspect_ratio": "1:1"})),
        );
        let err = call(
            &db,
            Method::Get,
            "/api/projects/1/working-video",
            Body::Empty,
        )
        .unwrap_err();
        assert_eq!(err.detail(), "Working video not found");
        db.execute_script(
            "INSERT INTO working_videos (id, project_id, filename) VALUES (3, 1, 'working_1_ab.mp4');
             UPDATE projects SET working_video_id = 3;",
        )
        .unwrap();
        let reply = call(
            &db,
            Method::Get,
            "/api/projects/1/working-video",
            Body::Empty,
        )
        .unwrap();
        match reply.response {
            ApiResponse::File(file) => assert_eq!(file.key, "working_videos/working_1_ab.mp4"),
            other => panic!("{other:?}"),
        }
    }
}
