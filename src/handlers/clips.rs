//! `/api/clips/raw` (docs/api.md §5.1): the clip library.
//!
//! Cutting clips out of game videos is the video-processing service's job, not this Worker's:
//! a clip saved here is stored pending (`filename = ''`) and, once its game has a video, a cut
//! job goes out ([`job_results`]); a clip whose times change is pending again until its new cut
//! arrives. A 5-star clip gets its auto-project at once rather than after the cut.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::auto_projects;
use crate::handlers::derive::{clip_name, parse_tags, tags_json, NameVariant};
use crate::handlers::job_results;
use crate::handlers::{insert_returning_id, ApiRequest, ApiResponse, FileResponse, Reply};
use user_data_core::db::{Db, Row, SqlValue};

const RAW_CLIP_COLUMNS: &str = "id, filename, rating, tags, name, notes, start_time, end_time, \
    game_id, auto_project_id, created_at";

/// A RawClip from a row of [`RAW_CLIP_COLUMNS`].
fn raw_clip(row: &Row) -> Result<Value, ApiError> {
    let rating: i64 = row.get(2)?;
    let tags = parse_tags(row.get::<Option<String>>(3)?.as_deref());
    let name = clip_name(
        row.get::<Option<String>>(4)?.as_deref(),
        rating,
        &tags,
        NameVariant::Library,
    );
    Ok(json!({
        "id": row.get::<i64>(0)?,
        "filename": row.get::<String>(1)?,
        "file_url": null,
        "rating": rating,
        "tags": tags,
        "name": name,
        "notes": row.get::<Option<String>>(5)?,
        "start_time": row.get::<Option<f64>>(6)?,
        "end_time": row.get::<Option<f64>>(7)?,
        "game_id": row.get::<Option<i64>>(8)?,
        "auto_project_id": row.get::<Option<i64>>(9)?,
        "created_at": row.get::<Option<String>>(10)?,
    }))
}

fn find(db: &impl Db, clip_id: i64) -> Result<Row, ApiError> {
    db.query(
        &format!("SELECT {RAW_CLIP_COLUMNS} FROM raw_clips WHERE id = ?"),
        &[clip_id.into()],
    )?
    .into_iter()
    .next()
    .ok_or_else(|| ApiError::NotFound("Raw clip not found".into()))
}

/// C1 `GET /api/clips/raw?game_id=&min_rating=`, newest first.
pub fn list(db: &impl Db, request: &ApiRequest) -> Result<Reply, ApiError> {
    let mut sql = format!("SELECT {RAW_CLIP_COLUMNS} FROM raw_clips WHERE 1 = 1");
    let mut params: Vec<SqlValue> = Vec::new();
    if let Some(game_id) = request.query_int("game_id")? {
        sql.push_str(" AND game_id = ?");
        params.push(game_id.into());
    }
    if let Some(min_rating) = request.query_int("min_rating")? {
        sql.push_str(" AND rating >= ?");
        params.push(min_rating.into());
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC");
    let clips = db
        .query(&sql, &params)?
        .iter()
        .map(raw_clip)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(json!(clips)))
}

/// C2 `GET /api/clips/raw/{id}`.
pub fn get(db: &impl Db, clip_id: i64) -> Result<Reply, ApiError> {
    Ok(Reply::json(raw_clip(&find(db, clip_id)?)?))
}

/// C3 `GET /api/clips/raw/{id}/file`.
pub fn file(db: &impl Db, clip_id: i64) -> Result<Reply, ApiError> {
    let filename: String = find(db, clip_id)?.get(1)?;
    if filename.is_empty() {
        return Err(ApiError::NotFound(
            "Raw clip file not found (extraction pending)".into(),
        ));
    }
    Ok(Reply::from(ApiResponse::File(FileResponse {
        key: format!("raw_clips/{filename}"),
        missing_detail: "Raw clip file not found".into(),
        attachment_name: None,
        no_cache: false,
    })))
}

#[derive(Debug, Deserialize)]
pub struct SaveClip {
    game_id: i64,
    start_time: f64,
    end_time: f64,
    #[serde(default)]
    name: String,
    #[serde(default = "three")]
    rating: i64,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    notes: String,
}

fn three() -> i64 {
    3
}

/// Applies the auto-project rules of a rating change (§4.5) and returns
/// `(project_created, project_id for the response)`.
fn apply_rating_change(
    db: &impl Db,
    raw_clip_id: i64,
    old_rating: i64,
    new_rating: i64,
    auto_project_id: Option<i64>,
    clip_name: &str,
) -> Result<(bool, Option<i64>), ApiError> {
    match auto_project_id {
        Some(project_id) if old_rating == 5 && new_rating != 5 => {
            auto_projects::delete_if_unmodified(db, raw_clip_id, project_id)?;
            Ok((false, None))
        }
        None if old_rating != 5 && new_rating == 5 => Ok((
            true,
            Some(auto_projects::create(db, raw_clip_id, clip_name)?),
        )),
        current => Ok((false, current)),
    }
}

/// C4 `POST /api/clips/raw/save`: idempotent upsert on (game_id, end_time).
pub fn save(db: &impl Db, input: SaveClip) -> Result<Reply, ApiError> {
    let tags = tags_json(&input.tags);
    let existing = db
        .query(
            "SELECT id, rating, auto_project_id, start_time, end_time FROM raw_clips \
             WHERE game_id = ? AND end_time = ?",
            &[input.game_id.into(), input.end_time.into()],
        )?
        .into_iter()
        .next();
    if let Some(row) = existing {
        let raw_clip_id: i64 = row.get(0)?;
        db.execute(
            "UPDATE raw_clips SET name = ?, rating = ?, tags = ?, notes = ?, start_time = ? WHERE id = ?",
            &[
                input.name.as_str().into(),
                input.rating.into(),
                tags.into(),
                input.notes.into(),
                input.start_time.into(),
                raw_clip_id.into(),
            ],
        )?;
        // The existing app passed swapped arguments when a re-save dropped a clip from 5 stars
        // (docs/api.md §13.1); this applies the rule it meant, C5's.
        let (project_created, project_id) = apply_rating_change(
            db,
            raw_clip_id,
            row.get(1)?,
            input.rating,
            row.get(2)?,
            &input.name,
        )?;
        let effects = job_results::after_times_change(db, raw_clip_id, (row.get(3)?, row.get(4)?))?;
        let filename: String = db
            .query_value(
                "SELECT filename FROM raw_clips WHERE id = ?",
                &[raw_clip_id.into()],
            )?
            .unwrap_or_default();
        return Ok(Reply::json(json!({
            "raw_clip_id": raw_clip_id,
            "filename": filename,
            "project_created": project_created,
            "project_id": project_id,
        }))
        .with_effects(effects));
    }

    let game = db.query("SELECT 1 FROM games WHERE id = ?", &[input.game_id.into()])?;
    if game.is_empty() {
        return Err(ApiError::NotFound("Game not found".into()));
    }
    let raw_clip_id = insert_returning_id(
        db,
        "INSERT INTO raw_clips (filename, rating, tags, name, notes, start_time, end_time, game_id) \
         VALUES ('', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        &[
            input.rating.into(),
            tags.into(),
            input.name.as_str().into(),
            input.notes.into(),
            input.start_time.into(),
            input.end_time.into(),
            input.game_id.into(),
        ],
    )?;
    let (project_created, project_id) =
        apply_rating_change(db, raw_clip_id, 0, input.rating, None, &input.name)?;
    let mut reply = Reply::json(json!({
        "raw_clip_id": raw_clip_id,
        "filename": "",
        "project_created": project_created,
        "project_id": project_id,
    }));
    reply.jobs.extend(job_results::cut_job(db, raw_clip_id)?);
    Ok(reply)
}

#[derive(Debug, Deserialize)]
pub struct ClipUpdate {
    name: Option<String>,
    rating: Option<i64>,
    tags: Option<Vec<String>>,
    notes: Option<String>,
    start_time: Option<f64>,
    end_time: Option<f64>,
}

/// C5 `PUT /api/clips/raw/{id}`: updates the given fields, applying the 5-star rules.
pub fn update(db: &impl Db, clip_id: i64, input: ClipUpdate) -> Result<Reply, ApiError> {
    let row = find(db, clip_id)?;
    let old_rating: i64 = row.get(2)?;
    let stored_name: String = row.get::<Option<String>>(4)?.unwrap_or_default();
    let name = input.name.clone().unwrap_or(stored_name);
    let (project_created, project_id) = apply_rating_change(
        db,
        clip_id,
        old_rating,
        input.rating.unwrap_or(old_rating),
        row.get(9)?,
        &name,
    )?;

    let changes: [(&str, Option<SqlValue>); 6] = [
        ("name", input.name.map(SqlValue::from)),
        ("rating", input.rating.map(SqlValue::from)),
        ("tags", input.tags.map(|tags| tags_json(&tags).into())),
        ("notes", input.notes.map(SqlValue::from)),
        ("start_time", input.start_time.map(SqlValue::from)),
        ("end_time", input.end_time.map(SqlValue::from)),
    ];
    for (column, value) in changes {
        if let Some(value) = value {
            db.execute(
                &format!("UPDATE raw_clips SET {column} = ? WHERE id = ?"),
                &[value, clip_id.into()],
            )?;
        }
    }
    let effects = job_results::after_times_change(db, clip_id, (row.get(6)?, row.get(7)?))?;
    Ok(Reply::json(json!({
        "success": true,
        "project_created": project_created,
        "project_id": project_id,
    }))
    .with_effects(effects))
}

/// Deletes a raw clip, its unmodified auto-project, and every working clip that uses it (in all
/// projects, all versions). Shared by C6 and the annotation sync (G5).
pub fn delete_raw_clip(
    db: &impl Db,
    clip_id: i64,
    auto_project_id: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(project_id) = auto_project_id {
        auto_projects::delete_if_unmodified(db, clip_id, project_id)?;
    }
    db.execute(
        "DELETE FROM working_clips WHERE raw_clip_id = ?",
        &[clip_id.into()],
    )?;
    db.execute("DELETE FROM raw_clips WHERE id = ?", &[clip_id.into()])?;
    Ok(())
}

/// C6 `DELETE /api/clips/raw/{id}`. Like the existing app with its object store, the clip's
/// file stays in R2.
pub fn delete(db: &impl Db, clip_id: i64) -> Result<Reply, ApiError> {
    let row = find(db, clip_id)?;
    delete_raw_clip(db, clip_id, row.get(9)?)?;
    Ok(Reply::json(json!({"success": true})))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::handlers::tests::{call, json_body, ok, status, test_db};
    use crate::handlers::{Body, Method};
    use user_data_core::db::Db;

    fn with_game() -> crate::handlers::tests::TestDb {
        let db = test_db();
        db.execute("INSERT INTO games (id, name) VALUES (1, 'g.mp4')", &[])
            .unwrap();
        db
    }

    fn save(db: &crate::handlers::tests::TestDb, clip: serde_json::Value) -> serde_json::Value {
        ok(db, Method::Post, "/api/clips/raw/save", json_body(clip))
    }

    fn count(db: &crate::handlers::tests::TestDb, sql: &str) -> i64 {
        db.query_value(sql, &[]).unwrap().unwrap()
    }

    #[test]
    fn save_requires_the_game_and_stores_a_pending_clip() {
        let db = with_game();
        let orphan = json_body(json!({"game_id": 9, "start_time": 0, "end_time": 1}));
        let err = call(&db, Method::Post, "/api/clips/raw/save", orphan).unwrap_err();
        assert_eq!((err.status(), err.detail()), (404, "Game not found"));
        assert_eq!(
            status(
                &db,
                Method::Post,
                "/api/clips/raw/save",
                json_body(json!({"game_id": 1}))
            ),
            422
        );

        let saved = save(
            &db,
            json!({"game_id": 1, "start_time": 1.5, "end_time": 4.0, "tags": ["Goals", "Défense"]}),
        );
        assert_eq!(
            saved,
            json!({"raw_clip_id": 1, "filename": "", "project_created": false, "project_id": null})
        );
        let tags: String = db
            .query_value("SELECT tags FROM raw_clips", &[])
            .unwrap()
            .unwrap();
        assert_eq!(tags, r#"["Goals", "D\u00e9fense"]"#);
        let clip = ok(&db, Method::Get, "/api/clips/raw/1", Body::Empty);
        assert_eq!(clip["name"], "Interesting Goals and Défense");
        assert_eq!(clip["rating"], 3);
    }

    #[test]
    fn save_is_an_upsert_on_game_and_end_time() {
        let db = with_game();
        save(
            &db,
            json!({"game_id": 1, "start_time": 1, "end_time": 4, "name": "First"}),
        );
        let again = save(
            &db,
            json!({"game_id": 1, "start_time": 2, "end_time": 4, "name": "Second", "notes": "n"}),
        );
        assert_eq!(again["raw_clip_id"], 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM raw_clips"), 1);
        let clip = ok(&db, Method::Get, "/api/clips/raw/1", Body::Empty);
        assert_eq!(
            (
                clip["name"].clone(),
                clip["start_time"].clone(),
                clip["notes"].clone()
            ),
            (json!("Second"), json!(2.0), json!("n"))
        );
    }

    #[test]
    fn five_stars_create_an_auto_project_and_dropping_them_removes_it_if_unmodified() {
        let db = with_game();
        let saved = save(
            &db,
            json!({"game_id": 1, "start_time": 0, "end_time": 4, "rating": 5, "name": "Worldie"}),
        );
        assert_eq!(
            (
                saved["project_created"].clone(),
                saved["project_id"].clone()
            ),
            (json!(true), json!(1))
        );
        let project = ok(&db, Method::Get, "/api/projects/1", Body::Empty);
        assert_eq!(
            (project["name"].clone(), project["aspect_ratio"].clone()),
            (json!("Worldie"), json!("9:16"))
        );

        // Re-saving at 3 stars deletes the untouched project (the existing app kept it: §13.1).
        let dropped = save(
            &db,
            json!({"game_id": 1, "start_time": 0, "end_time": 4, "rating": 3}),
        );
        assert_eq!(dropped["project_id"], json!(null));
        assert_eq!(count(&db, "SELECT COUNT(*) FROM projects"), 0);
        assert_eq!(
            count(&db, "SELECT COUNT(auto_project_id) FROM raw_clips"),
            0
        );
    }

    #[test]
    fn a_modified_auto_project_is_kept_when_the_clip_leaves_five_stars() {
        let db = with_game();
        save(
            &db,
            json!({"game_id": 1, "start_time": 0, "end_time": 4, "rating": 5}),
        );
        db.execute(
            "INSERT INTO working_videos (project_id, filename) VALUES (1, 'w.mp4')",
            &[],
        )
        .unwrap();
        let body = json_body(json!({"rating": 4}));
        let updated = ok(&db, Method::Put, "/api/clips/raw/1", body);
        assert_eq!(
            updated,
            json!({"success": true, "project_created": false, "project_id": null})
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM projects"), 1);
        assert_eq!(
            count(&db, "SELECT auto_project_id FROM raw_clips"),
            1,
            "the link stays"
        );

        let renamed = ok(
            &db,
            Method::Put,
            "/api/clips/raw/1",
            json_body(json!({"rating": 5})),
        );
        assert_eq!(renamed["project_id"], 1, "still linked: no second project");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM projects"), 1);
    }

    #[test]
    fn update_reaching_five_stars_names_the_project_after_the_clip() {
        let db = with_game();
        save(&db, json!({"game_id": 1, "start_time": 0, "end_time": 4}));
        let updated = ok(
            &db,
            Method::Put,
            "/api/clips/raw/1",
            json_body(json!({"rating": 5})),
        );
        assert_eq!(
            (
                updated["project_created"].clone(),
                updated["project_id"].clone()
            ),
            (json!(true), json!(1))
        );
        assert_eq!(
            ok(&db, Method::Get, "/api/projects/1", Body::Empty)["name"],
            "Clip 1"
        );
        assert_eq!(
            status(&db, Method::Put, "/api/clips/raw/7", json_body(json!({}))),
            404
        );
        assert_eq!(
            status(
                &db,
                Method::Put,
                "/api/clips/raw/1",
                json_body(json!({"rating": "high"}))
            ),
            422
        );
    }

    #[test]
    fn an_update_that_fails_after_its_first_write_changes_nothing() {
        let db = with_game();
        save(
            &db,
            json!({"game_id": 1, "start_time": 0, "end_time": 4, "rating": 5}),
        );
        save(&db, json!({"game_id": 1, "start_time": 5, "end_time": 8}));
        // Leaving 5 stars deletes the auto-project first; then the new end time collides with
        // the other clip's (game, end_time) key. The whole request must roll back.
        let err = call(
            &db,
            Method::Put,
            "/api/clips/raw/1",
            json_body(json!({"rating": 2, "end_time": 8})),
        )
        .unwrap_err();
        assert_eq!(err.status(), 409);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM projects"), 1);
        assert_eq!(count(&db, "SELECT rating FROM raw_clips WHERE id = 1"), 5);
    }

    #[test]
    fn delete_removes_the_clip_from_every_project() {
        let db = with_game();
        save(
            &db,
            json!({"game_id": 1, "start_time": 0, "end_time": 4, "rating": 5}),
        );
        ok(
            &db,
            Method::Post,
            "/api/projects/from-clips",
            json_body(json!({"name": "Other", "clip_ids": [1]})),
        );
        assert_eq!(
            ok(&db, Method::Delete, "/api/clips/raw/1", Body::Empty),
            json!({"success": true})
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM working_clips"), 0);
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM projects"),
            1,
            "the auto-project went, the other stays"
        );
        assert_eq!(
            status(&db, Method::Delete, "/api/clips/raw/1", Body::Empty),
            404
        );
    }

    #[test]
    fn list_filters_by_game_and_rating_newest_first() {
        let db = with_game();
        db.execute_script(
            "INSERT INTO raw_clips (filename, rating, game_id, end_time, created_at) VALUES
                 ('a', 2, 1, 1, '2026-01-01'), ('b', 4, 1, 2, '2026-01-02'), ('c', 5, NULL, NULL, '2026-01-03');",
        )
        .unwrap();
        let ids = |path: &str| -> Vec<i64> {
            ok(&db, Method::Get, path, Body::Empty)
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(ids("/api/clips/raw"), [3, 2, 1]);
        assert_eq!(ids("/api/clips/raw?game_id=1"), [2, 1]);
        assert_eq!(ids("/api/clips/raw?game_id=1&min_rating=3"), [2]);
        assert_eq!(
            status(&db, Method::Get, "/api/clips/raw?game_id=x", Body::Empty),
            422
        );
        assert_eq!(
            status(&db, Method::Post, "/api/clips/extract-pending", Body::Empty),
            501
        );
    }

    #[test]
    fn the_file_route_names_the_clip_file_unless_pending() {
        let db = with_game();
        db.execute(
            "INSERT INTO raw_clips (filename, rating) VALUES ('abc.mp4', 3), ('', 3)",
            &[],
        )
        .unwrap();
        let reply = call(&db, Method::Get, "/api/clips/raw/1/file", Body::Empty).unwrap();
        assert!(
            matches!(reply.response, crate::handlers::ApiResponse::File(ref f) if f.key == "raw_clips/abc.mp4")
        );
        assert_eq!(
            status(&db, Method::Get, "/api/clips/raw/2/file", Body::Empty),
            404
        );
    }
}
