//! `/api/games` (docs/api.md §6): games, their annotations, aggregates and videos.
//!
//! Direct-to-R2 uploads with presigned URLs are not offered (`r2_enabled: false`), so the
//! frontend uploads videos through `PUT /api/games/{id}/video`, which stores them in R2.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::clips::delete_raw_clip;
use crate::handlers::derive::{
    clip_name, derived_clip_name, game_display_name, parse_tags, tags_json, GameNameParts,
    NameVariant,
};
use crate::handlers::files;
use crate::handlers::job_results::{self, ClipTimes};
use crate::handlers::request::{Effects, Names};
use crate::handlers::{
    insert_returning_id, ApiRequest, ApiResponse, Deletion, FileResponse, Reply,
};
use user_data_core::db::{Db, Row};

/// The display name of a game row whose columns `first..first + 4` are opponent_name,
/// game_date, game_type and tournament_name; the stored name when there is no opponent.
fn display_name(row: &Row, first: usize, stored_name: &str) -> Result<String, ApiError> {
    Ok(game_display_name(
        &GameNameParts {
            opponent_name: row.get::<Option<String>>(first)?.as_deref(),
            game_date: row.get::<Option<String>>(first + 1)?.as_deref(),
            game_type: row.get::<Option<String>>(first + 2)?.as_deref(),
            tournament_name: row.get::<Option<String>>(first + 3)?.as_deref(),
        },
        stored_name,
    ))
}

/// G1 `GET /api/games`: every game, newest first, with the stored aggregates.
pub fn list(db: &impl Db) -> Result<Reply, ApiError> {
    let rows = db.query(
        "SELECT id, name, video_filename, clip_count, brilliant_count, good_count, \
                interesting_count, mistake_count, blunder_count, aggregate_score, created_at, \
                opponent_name, game_date, game_type, tournament_name \
         FROM games ORDER BY created_at DESC, id DESC",
        &[],
    )?;
    let games = rows
        .iter()
        .map(|row| {
            let count = |i| row.get::<Option<i64>>(i).map(Option::unwrap_or_default);
            let raw_name: String = row.get(1)?;
            Ok(json!({
                "id": row.get::<i64>(0)?,
                "name": display_name(row, 11, &raw_name)?,
                "raw_name": raw_name,
                "video_filename": row.get::<Option<String>>(2)?,
                // The frontend falls back to GET /api/games/{id}/video, served from R2 by us.
                "video_url": null,
                "clip_count": count(3)?,
                "brilliant_count": count(4)?,
                "good_count": count(5)?,
                "interesting_count": count(6)?,
                "mistake_count": count(7)?,
                "blunder_count": count(8)?,
                "aggregate_score": count(9)?,
                "created_at": row.get::<Option<String>>(10)?,
                "opponent_name": row.get::<Option<String>>(11)?,
                "game_date": row.get::<Option<String>>(12)?,
                "game_type": row.get::<Option<String>>(13)?,
                "tournament_name": row.get::<Option<String>>(14)?,
            }))
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(Reply::json(json!({ "games": games })))
}

/// G2 `POST /api/games` (form). A video, when given, is stored as `games/<12 hex><ext>`.
pub fn create(db: &impl Db, request: &ApiRequest) -> Result<Reply, ApiError> {
    let name = request.form_required_text("name")?;
    let video_duration: Option<f64> = request.form_number("video_duration")?;
    let video_width: Option<i64> = request.form_number("video_width")?;
    let video_height: Option<i64> = request.form_number("video_height")?;
    let video_size: Option<i64> = request.form_number("video_size")?;
    let text = |field| request.form_text(field).map(str::to_owned);
    let (opponent, date, game_type, tournament) = (
        text("opponent_name"),
        text("game_date"),
        text("game_type"),
        text("tournament_name"),
    );
    let upload = request
        .form_file("video")
        .map(|video| {
            files::upload(
                "games",
                "video",
                &Names::new(request.entropy).hex(12),
                video,
            )
        })
        .transpose()?;
    let video_filename = upload.as_ref().map(|upload| upload.filename().to_owned());

    let id = insert_returning_id(
        db,
        "INSERT INTO games (name, video_filename, video_duration, video_width, video_height, \
             video_size, opponent_name, game_date, game_type, tournament_name) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        &[
            name.into(),
            video_filename.clone().into(),
            video_duration.into(),
            video_width.into(),
            video_height.into(),
            video_size.into(),
            opponent.clone().into(),
            date.clone().into(),
            game_type.clone().into(),
            tournament.clone().into(),
        ],
    )?;
    let display = game_display_name(
        &GameNameParts {
            opponent_name: opponent.as_deref(),
            game_date: date.as_deref(),
            game_type: game_type.as_deref(),
            tournament_name: tournament.as_deref(),
        },
        name,
    );
    let reply = Reply::json(json!({
        "success": true,
        "game": {
            "id": id,
            "name": display,
            "raw_name": name,
            "video_filename": video_filename,
            "video_url": null,
            "clip_count": 0,
            "has_video": video_filename.is_some(),
            "video_duration": video_duration,
            "video_width": video_width,
            "video_height": video_height,
            "video_size": video_size,
            "opponent_name": opponent,
            "game_date": date,
            "game_type": game_type,
            "tournament_name": tournament,
        }
    }));
    Ok(match upload {
        Some(upload) => reply.with_upload(upload),
        None => reply,
    })
}

const GAME_COLUMNS: &str = "id, name, video_filename, created_at, video_duration, video_width, \
    video_height, video_size, opponent_name, game_date, game_type, tournament_name";

fn find(db: &impl Db, game_id: i64) -> Result<Row, ApiError> {
    db.query(
        &format!("SELECT {GAME_COLUMNS} FROM games WHERE id = ?"),
        &[game_id.into()],
    )?
    .into_iter()
    .next()
    .ok_or_else(|| ApiError::NotFound("Game not found".into()))
}

/// G3 `GET /api/games/{id}`: the game with its annotations (raw clips by end time).
pub fn get(db: &impl Db, game_id: i64) -> Result<Reply, ApiError> {
    let game = find(db, game_id)?;
    let raw_name: String = game.get(1)?;
    let annotations = db
        .query(
            "SELECT id, start_time, end_time, name, rating, tags, notes FROM raw_clips \
             WHERE game_id = ? ORDER BY end_time ASC, id ASC",
            &[game_id.into()],
        )?
        .iter()
        .map(|row| {
            let id: i64 = row.get(0)?;
            let rating: i64 = row.get(4)?;
            let tags = parse_tags(row.get::<Option<String>>(5)?.as_deref());
            Ok(json!({
                "id": id,
                "raw_clip_id": id,
                "start_time": row.get::<Option<f64>>(1)?,
                "end_time": row.get::<Option<f64>>(2)?,
                "name": clip_name(row.get::<Option<String>>(3)?.as_deref(), rating, &tags, NameVariant::Annotation),
                "rating": rating,
                "tags": tags,
                "notes": row.get::<Option<String>>(6)?.unwrap_or_default(),
            }))
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(Reply::json(json!({
        "id": game.get::<i64>(0)?,
        "name": display_name(&game, 8, &raw_name)?,
        "raw_name": raw_name,
        "video_filename": game.get::<Option<String>>(2)?,
        "video_url": null,
        "clip_count": annotations.len(),
        "annotations": annotations,
        "created_at": game.get::<Option<String>>(3)?,
        "video_duration": game.get::<Option<f64>>(4)?,
        "video_width": game.get::<Option<i64>>(5)?,
        "video_height": game.get::<Option<i64>>(6)?,
        "video_size": game.get::<Option<i64>>(7)?,
        "opponent_name": game.get::<Option<String>>(8)?,
        "game_date": game.get::<Option<String>>(9)?,
        "game_type": game.get::<Option<String>>(10)?,
        "tournament_name": game.get::<Option<String>>(11)?,
    })))
}

/// G4 `PUT /api/games/{id}` (form `name`).
pub fn rename(db: &impl Db, game_id: i64, request: &ApiRequest) -> Result<Reply, ApiError> {
    find(db, game_id)?;
    let name = request
        .form_text("name")
        .ok_or_else(|| ApiError::BadRequest("No updates provided".into()))?;
    db.execute(
        "UPDATE games SET name = ? WHERE id = ?",
        &[name.into(), game_id.into()],
    )?;
    Ok(Reply::json(json!({"success": true})))
}

#[derive(Debug, Deserialize)]
pub struct Annotation {
    start_time: Option<f64>,
    end_time: Option<f64>,
    name: Option<String>,
    rating: Option<i64>,
    tags: Option<Vec<String>>,
    notes: Option<String>,
}

/// G5 `PUT /api/games/{id}/annotations`: syncs the game's clips to the list (matched by end
/// time; unmatched items are ignored, clips missing from the list are deleted) and recomputes
/// the game's aggregates from the list.
pub fn sync_annotations(
    db: &impl Db,
    game_id: i64,
    items: Vec<Annotation>,
) -> Result<Reply, ApiError> {
    find(db, game_id)?;
    // (id, (start, end), auto_project_id)
    let existing: Vec<(i64, ClipTimes, Option<i64>)> = db
        .query(
            "SELECT id, start_time, end_time, auto_project_id FROM raw_clips WHERE game_id = ?",
            &[game_id.into()],
        )?
        .iter()
        .map(|row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?), row.get(3)?)))
        .collect::<Result<_, ApiError>>()?;
    let mut effects = Effects::default();

    let mut requested_end_times = Vec::with_capacity(items.len());
    // [clip_count, brilliant, good, interesting, mistake, blunder]
    let mut counts = [0i64; 6];
    for item in &items {
        let start_time = item.start_time.unwrap_or(0.0);
        let end_time = item.end_time.unwrap_or(start_time);
        requested_end_times.push(end_time);
        let rating = item.rating.unwrap_or(3);
        counts[0] += 1;
        if (1..=5).contains(&rating) {
            counts[(6 - rating) as usize] += 1;
        }
        let tags = item.tags.clone().unwrap_or_default();
        let name = item.name.clone().unwrap_or_default();
        let name = if name == derived_clip_name(rating, &tags, NameVariant::Annotation) {
            String::new()
        } else {
            name
        };
        if let Some((clip_id, before, _)) = existing
            .iter()
            .find(|(_, (_, end), _)| *end == Some(end_time))
        {
            db.execute(
                "UPDATE raw_clips SET start_time = ?, name = ?, rating = ?, tags = ?, notes = ? WHERE id = ?",
                &[
                    start_time.into(),
                    name.into(),
                    rating.into(),
                    tags_json(&tags).into(),
                    item.notes.clone().unwrap_or_default().into(),
                    (*clip_id).into(),
                ],
            )?;
            // Only a moved start asks for a new cut: the frontend syncs after every edit.
            if before.0 != Some(start_time) {
                effects.add(job_results::after_times_change(db, *clip_id, *before)?);
            }
        }
    }
    for (clip_id, (_, end_time), auto_project_id) in &existing {
        let kept = end_time.is_some_and(|end| requested_end_times.contains(&end));
        if !kept {
            delete_raw_clip(db, *clip_id, *auto_project_id)?;
        }
    }
    let [clip_count, brilliant, good, interesting, mistake, blunder] = counts;
    let score = 10 * brilliant + 5 * good + 2 * interesting - 2 * mistake - 5 * blunder;
    db.execute(
        "UPDATE games SET clip_count = ?, brilliant_count = ?, good_count = ?, interesting_count = ?, \
             mistake_count = ?, blunder_count = ?, aggregate_score = ? WHERE id = ?",
        &[
            clip_count.into(),
            brilliant.into(),
            good.into(),
            interesting.into(),
            mistake.into(),
            blunder.into(),
            score.into(),
            game_id.into(),
        ],
    )?;
    Ok(Reply::json(json!({"success": true, "clip_count": items.len()})).with_effects(effects))
}

/// G6 `DELETE /api/games/{id}`: only the game row; its clips, projects and exports stay.
pub fn delete(db: &impl Db, game_id: i64) -> Result<Reply, ApiError> {
    find(db, game_id)?;
    db.execute("DELETE FROM games WHERE id = ?", &[game_id.into()])?;
    Ok(Reply::json(json!({"success": true})))
}

/// G7 `GET /api/games/{id}/video` (the edge honours `Range`).
pub fn video(db: &impl Db, game_id: i64) -> Result<Reply, ApiError> {
    let filename: Option<String> = find(db, game_id)?.get(2)?;
    let filename = filename
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::NotFound("Video not yet uploaded".into()))?;
    Ok(Reply::from(ApiResponse::File(FileResponse {
        key: format!("games/{filename}"),
        missing_detail: "Video file not found".into(),
        attachment_name: None,
        no_cache: false,
    })))
}

/// G8 `PUT /api/games/{id}/video` (form `video`): stores the video, keeping the 12-character
/// base name of an earlier one. Clip extraction is the video service's, so nothing is extracted.
pub fn upload_video(db: &impl Db, game_id: i64, request: &ApiRequest) -> Result<Reply, ApiError> {
    let video = request.form_required_file("video")?;
    let previous: Option<String> = find(db, game_id)?.get(2)?;
    let base = previous
        .as_deref()
        .filter(|name| !name.is_empty())
        .map(|name| name.split('.').next().unwrap_or(name).to_owned())
        .unwrap_or_else(|| Names::new(request.entropy).hex(12));
    let upload = files::upload("games", "video", &base, video)?;
    let filename = upload.filename().to_owned();
    db.execute(
        "UPDATE games SET video_filename = ? WHERE id = ?",
        &[filename.as_str().into(), game_id.into()],
    )?;
    let size_mb = (video.bytes.len() as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0;
    let mut reply = Reply::json(json!({
        "success": true,
        "video_filename": filename,
        "video_url": null,
        "size_mb": size_mb,
        "pending_clips_extracted": 0,
        "pending_projects_created": 0,
    }))
    .with_upload(upload);
    // A new extension means a new object: the old one would be an orphan.
    if let Some(previous) =
        previous.filter(|previous| !previous.is_empty() && *previous != filename)
    {
        reply = reply.with_deletion(Deletion::Object(format!("games/{previous}")));
    }
    // The video is there: every clip still waiting for it can be cut now.
    reply.jobs = job_results::pending_cuts_of_game(db, game_id)?;
    Ok(reply)
}

/// G9 `GET /api/games/{id}/upload-url`: presigned uploads are not offered; the frontend then
/// uploads through G8.
pub fn upload_url() -> Result<Reply, ApiError> {
    Ok(Reply::json(json!({
        "r2_enabled": false,
        "upload_url": null,
        "video_filename": null,
        "message": "R2 not enabled, use traditional upload endpoint",
    })))
}

/// G10 `POST /api/games/{id}/confirm-video`: only for presigned uploads, which are not offered.
pub fn confirm_video() -> Result<Reply, ApiError> {
    Err(ApiError::BadRequest("R2 not enabled".into()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::handlers::tests::{call, form, json_body, ok, status, test_db};
    use crate::handlers::{ApiResponse, Body, Deletion, FormValue, Method, UploadedFile};
    use user_data_core::db::Db;

    #[test]
    fn create_from_a_form_answers_the_display_name() {
        let db = test_db();
        let body = form(&[
            ("name", "match.mp4"),
            ("opponent_name", "Rivals"),
            ("game_date", "2025-10-04"),
            ("game_type", "away"),
            ("video_width", "1920"),
            ("video_duration", ""),
        ]);
        let created = ok(&db, Method::Post, "/api/games", body);
        assert_eq!(created["game"]["name"], "at Rivals Oct 4");
        assert_eq!(created["game"]["raw_name"], "match.mp4");
        assert_eq!(created["game"]["has_video"], false);
        assert_eq!(created["game"]["video_width"], 1920);
        assert_eq!(created["game"]["video_duration"], json!(null));
        assert_eq!(
            status(
                &db,
                Method::Post,
                "/api/games",
                form(&[("video_width", "1920")])
            ),
            422
        );
        assert_eq!(
            status(
                &db,
                Method::Post,
                "/api/games",
                form(&[("name", "x"), ("video_size", "big")])
            ),
            422
        );
    }

    #[test]
    fn get_lists_annotations_by_end_time_with_short_tag_names() {
        let db = test_db();
        db.execute_script(
            "INSERT INTO games (id, name) VALUES (1, 'g.mp4');
             INSERT INTO raw_clips (filename, rating, tags, name, notes, start_time, end_time, game_id) VALUES
                 ('', 5, '[\"Goals\", \"Dribbling\"]', '', NULL, 8, 12, 1),
                 ('', 3, '[]', 'Named', 'n', 1, 3, 1);",
        )
        .unwrap();
        let game = ok(&db, Method::Get, "/api/games/1", Body::Empty);
        assert_eq!(game["clip_count"], 2);
        let names: Vec<_> = game["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].clone())
            .collect();
        assert_eq!(names, [json!("Named"), json!("Brilliant Goal and Dribble")]);
        assert_eq!(game["annotations"][1]["notes"], "");
        assert_eq!(
            game["annotations"][1]["raw_clip_id"],
            game["annotations"][1]["id"]
        );
        assert_eq!(status(&db, Method::Get, "/api/games/2", Body::Empty), 404);
    }

    #[test]
    fn rename_needs_the_game_then_a_name() {
        let db = test_db();
        db.execute("INSERT INTO games (id, name) VALUES (1, 'g')", &[])
            .unwrap();
        assert_eq!(status(&db, Method::Put, "/api/games/2", form(&[])), 404);
        let err = call(&db, Method::Put, "/api/games/1", form(&[])).unwrap_err();
        assert_eq!((err.status(), err.detail()), (400, "No updates provided"));
        ok(&db, Method::Put, "/api/games/1", form(&[("name", "Final")]));
        assert_eq!(
            ok(&db, Method::Get, "/api/games", Body::Empty)["games"][0]["name"],
            "Final"
        );
    }

    #[test]
    fn annotation_sync_updates_matches_deletes_the_missing_and_recounts() {
        let db = test_db();
        db.execute_script(
            "INSERT INTO games (id, name) VALUES (1, 'g');
             INSERT INTO raw_clips (id, filename, rating, tags, end_time, game_id) VALUES
                 (1, '', 3, '[]', 10, 1), (2, '', 3, '[]', 20, 1);
             INSERT INTO projects (id, name, aspect_ratio) VALUES (1, 'P', '1:1');
             INSERT INTO working_clips (project_id, raw_clip_id) VALUES (1, 2);",
        )
        .unwrap();
        let items = json!([
            {"start_time": 5, "end_time": 10, "name": "Brilliant Goal", "rating": 5, "tags": ["Goals"], "notes": "wow"},
            {"start_time": 30, "end_time": 31, "name": "New", "rating": 1, "tags": [], "notes": ""},
            {"start_time": 40, "end_time": 41, "rating": 2},
            {"start_time": 50, "end_time": 51, "rating": 9}
        ]);
        let body = ok(
            &db,
            Method::Put,
            "/api/games/1/annotations",
            json_body(items),
        );
        assert_eq!(body, json!({"success": true, "clip_count": 4}));
        let clip = db
            .query_row(
                "SELECT name, rating, notes, start_time FROM raw_clips WHERE id = 1",
                &[],
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            clip.get::<String>(0).unwrap(),
            "",
            "a name equal to the derived one is stored empty"
        );
        assert_eq!(
            (clip.get::<i64>(1).unwrap(), clip.get::<String>(2).unwrap()),
            (5, "wow".into())
        );
        // Clip 2 was not in the list: deleted with its working clips. Unmatched items are ignored.
        assert_eq!(
            db.query_value::<i64>("SELECT COUNT(*) FROM raw_clips", &[])
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            db.query_value::<i64>("SELECT COUNT(*) FROM working_clips", &[])
                .unwrap(),
            Some(0)
        );
        let game = &ok(&db, Method::Get, "/api/games", Body::Empty)["games"][0];
        assert_eq!(game["clip_count"], 4);
        assert_eq!(
            (
                game["brilliant_count"].clone(),
                game["blunder_count"].clone(),
                game["mistake_count"].clone()
            ),
            (json!(1), json!(1), json!(1))
        );
        assert_eq!(game["aggregate_score"], 10 - 5 - 2);
        assert_eq!(
            status(
                &db,
                Method::Put,
                "/api/games/1/annotations",
                json_body(json!({"items": []}))
            ),
            422
        );
    }

    #[test]
    fn delete_leaves_the_games_clips_in_place() {
        let db = test_db();
        db.execute_script(
            "INSERT INTO games (id, name) VALUES (1, 'g');
             INSERT INTO raw_clips (filename, rating, end_time, game_id) VALUES ('', 3, 1, 1);",
        )
        .unwrap();
        ok(&db, Method::Delete, "/api/games/1", Body::Empty);
        assert_eq!(
            db.query_value::<i64>("SELECT COUNT(*) FROM raw_clips", &[])
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            status(&db, Method::Delete, "/api/games/1", Body::Empty),
            404
        );
    }

    #[test]
    fn a_video_upload_keeps_the_base_name_and_replaces_the_old_object() {
        let db = test_db();
        db.execute("INSERT INTO games (id, name) VALUES (1, 'g')", &[])
            .unwrap();
        let err = call(&db, Method::Get, "/api/games/1/video", Body::Empty).unwrap_err();
        assert_eq!(err.detail(), "Video not yet uploaded");
        let upload = |filename: &str| {
            let file = UploadedFile {
                filename: filename.into(),
                content_type: "video/mp4".into(),
                bytes: vec![0; 1_100_000].into(),
            };
            call(
                &db,
                Method::Put,
                "/api/games/1/video",
                Body::Form(vec![("video".into(), FormValue::File(file))]),
            )
            .unwrap()
        };
        let first = upload("match.mp4");
        let ApiResponse::Json(body) = &first.response else {
            panic!()
        };
        let name = body["video_filename"].as_str().unwrap().to_owned();
        assert_eq!((name.len(), body["size_mb"].clone()), (16, json!(1.0)));
        assert_eq!(first.uploads[0].key, format!("games/{name}"));
        let second = upload("match.MOV");
        let ApiResponse::Json(body) = &second.response else {
            panic!()
        };
        assert_eq!(body["video_filename"], format!("{}.mov", &name[..12]));
        assert_eq!(
            second.deletions,
            vec![Deletion::Object(format!("games/{name}"))]
        );
        let reply = call(&db, Method::Get, "/api/games/1/video", Body::Empty).unwrap();
        assert!(matches!(reply.response, ApiResponse::File(ref f) if f.key.ends_with(".mov")));
    }

    #[test]
    fn presigned_uploads_are_not_offered() {
        let db = test_db();
        let url = ok(
            &db,
            Method::Get,
            "/api/games/1/upload-url?filename=a.mp4",
            Body::Empty,
        );
        assert_eq!(url["r2_enabled"], false);
        let err = call(&db, Method::Post, "/api/games/1/confirm-video", form(&[])).unwrap_err();
        assert_eq!((err.status(), err.detail()), (400, "R2 not enabled"));
    }
}
