//! `/api/downloads` (docs/api.md §8): the gallery of final videos, latest version per
//! (project, game).

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::derive::{games_by_project, month_and_year, GameList, GAME_LIST_COLUMNS};
use crate::handlers::{ApiRequest, ApiResponse, Deletion, FileResponse, Reply};
use user_data_core::db::{Db, Row};

/// A CTE named `latest_finals`: the latest row of every (project_id, game_id or 0).
const LATEST_FINALS: &str = "WITH latest_finals AS (SELECT * FROM ( \
    SELECT fv.*, ROW_NUMBER() OVER ( \
        PARTITION BY fv.project_id, COALESCE(fv.game_id, 0) \
        ORDER BY fv.version DESC, fv.id DESC) AS version_rank \
    FROM final_videos fv) WHERE version_rank = 1)";

const DOWNLOAD_COLUMNS: &str = "f.id, f.project_id, f.filename, f.created_at, f.source_type, \
    f.game_id, f.name, f.rating_counts, p.name";

/// `project_name`: the export's own name, else the live project name, else from the filename.
fn project_name(row: &Row) -> Result<String, ApiError> {
    let own: Option<String> = row.get(6)?;
    let project: Option<String> = row.get(8)?;
    let filename: String = row.get(2)?;
    Ok(own
        .filter(|name| !name.is_empty())
        .or(project)
        .unwrap_or_else(|| filename.replace("_final.mp4", "").replace('_', " ")))
}

/// The snapshot of an annotated export with its total and weighted average.
fn rating_counts(stored: Option<&str>) -> Value {
    let Some(counts) = stored.and_then(|text| serde_json::from_str::<Value>(text).ok()) else {
        return Value::Null;
    };
    let count = |key: &str| counts.get(key).and_then(Value::as_i64).unwrap_or(0);
    let [brilliant, good, interesting, mistake, blunder] =
        ["brilliant", "good", "interesting", "mistake", "blunder"].map(count);
    let total = brilliant + good + interesting + mistake + blunder;
    let weighted = (5 * brilliant + 4 * good + 3 * interesting + 2 * mistake + blunder) as f64;
    let weighted_average = (total > 0).then(|| (weighted / total as f64 * 100.0).round() / 100.0);
    json!({
        "brilliant": brilliant, "good": good, "interesting": interesting,
        "mistake": mistake, "blunder": blunder,
        "total": total, "weighted_average": weighted_average,
    })
}

/// D1 `GET /api/downloads?source_type=`.
pub fn list(db: &impl Db, request: &ApiRequest) -> Result<Reply, ApiError> {
    let source_type = request.query_param("source_type");
    let rows = db.query(
        &format!(
            "{LATEST_FINALS} SELECT {DOWNLOAD_COLUMNS}, {GAME_LIST_COLUMNS} \
             FROM latest_finals f \
             LEFT JOIN projects p ON p.id = f.project_id \
             LEFT JOIN games g ON g.id = f.game_id \
             WHERE ?1 IS NULL OR f.source_type = ?1 \
             ORDER BY f.created_at DESC, f.id DESC"
        ),
        &[source_type.into()],
    )?;
    let project_games = games_by_project(db)?;
    let downloads = rows
        .iter()
        .map(|row| {
            let project_id: i64 = row.get(1)?;
            let source_type: Option<String> = row.get(4)?;
            let annotated = source_type.as_deref() == Some("annotated_game");
            let games = if annotated {
                let mut games = GameList::default();
                if row.get::<Option<i64>>(9)?.is_some() {
                    games.push_row(row, 9)?;
                }
                games
            } else {
                project_games.get(&project_id).cloned().unwrap_or_default()
            };
            let created_at: Option<String> = row.get(3)?;
            let group_key = games.group_key().unwrap_or_else(|| {
                created_at
                    .as_deref()
                    .and_then(month_and_year)
                    .unwrap_or_else(|| "Other".into())
            });
            let counts: Option<String> = row.get(7)?;
            Ok(json!({
                "id": row.get::<i64>(0)?,
                "project_id": project_id,
                "project_name": project_name(row)?,
                "filename": row.get::<String>(2)?,
                "file_url": null,
                "created_at": created_at,
                "file_size": null,
                "source_type": source_type,
                "game_id": row.get::<Option<i64>>(5)?,
                "rating_counts": if annotated { rating_counts(counts.as_deref()) } else { Value::Null },
                "game_ids": games.game_ids,
                "game_names": games.game_names,
                "game_dates": games.game_dates,
                "group_key": group_key,
            }))
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    let total_count = downloads.len();
    Ok(Reply::json(
        json!({"downloads": downloads, "total_count": total_count}),
    ))
}

/// D2 `GET /api/downloads/count`: the number of latest rows, whatever their source type.
pub fn count(db: &impl Db) -> Result<Reply, ApiError> {
    let count: i64 = db
        .query_value(
            &format!("{LATEST_FINALS} SELECT COUNT(*) FROM latest_finals"),
            &[],
        )?
        .unwrap_or(0);
    Ok(Reply::json(json!({"count": count})))
}

fn find(db: &impl Db, download_id: i64) -> Result<Row, ApiError> {
    db.query(
        &format!(
            "SELECT {DOWNLOAD_COLUMNS} FROM final_videos f \
             LEFT JOIN projects p ON p.id = f.project_id WHERE f.id = ?"
        ),
        &[download_id.into()],
    )?
    .into_iter()
    .next()
    .ok_or_else(|| ApiError::NotFound("Download not found".into()))
}

/// `<project name>_final.mp4` with only word characters, spaces and `-` kept.
fn attachment_name(project_name: &str) -> String {
    let kept: String = project_name
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || c.is_whitespace())
        .collect();
    let joined = kept.split_whitespace().collect::<Vec<_>>().join("_");
    let base = if joined.is_empty() {
        "video".to_owned()
    } else {
        joined
    };
    format!("{base}_final.mp4")
}

/// D3 `GET /api/downloads/{id}/file`: the final video as an attachment.
pub fn file(db: &impl Db, download_id: i64) -> Result<Reply, ApiError> {
    let row = find(db, download_id)?;
    let filename: String = row.get(2)?;
    Ok(Reply::from(ApiResponse::File(FileResponse {
        key: format!("final_videos/{filename}"),
        missing_detail: "Video file not found in storage".into(),
        attachment_name: Some(attachment_name(&project_name(&row)?)),
        no_cache: false,
    })))
}

/// D4 `DELETE /api/downloads/{id}?remove_file=`: only this row; the previous version resurfaces.
pub fn delete(db: &impl Db, download_id: i64, request: &ApiRequest) -> Result<Reply, ApiError> {
    let remove_file = request.query_bool("remove_file", false)?;
    let filename: String = find(db, download_id)?.get(2)?;
    db.execute(
        "DELETE FROM final_videos WHERE id = ?",
        &[download_id.into()],
    )?;
    db.execute(
        "UPDATE projects SET final_video_id = NULL WHERE final_video_id = ?",
        &[download_id.into()],
    )?;
    let reply = Reply::json(json!({"success": true, "deleted_id": download_id}));
    Ok(if remove_file {
        reply.with_deletion(Deletion::Object(format!("final_videos/{filename}")))
    } else {
        reply
    })
}

/// D5 `GET /api/export/before-after/{id}/status`. A final video row counts as its file: files
/// are only ever stored before their rows commit.
pub fn before_after_status(db: &impl Db, final_video_id: i64) -> Result<Reply, ApiError> {
    let exists = !db
        .query(
            "SELECT 1 FROM final_videos WHERE id = ?",
            &[final_video_id.into()],
        )?
        .is_empty();
    let clip_count: i64 = db
        .query_value(
            "SELECT COUNT(*) FROM before_after_tracks WHERE final_video_id = ?",
            &[final_video_id.into()],
        )?
        .unwrap_or(0);
    let mut body = json!({
        "available": exists && clip_count > 0,
        "clip_count": clip_count,
        "final_video_exists": exists,
    });
    if !exists {
        body["error"] = json!("Final video not found");
    }
    Ok(Reply::json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::tests::{call, ok, status, test_db};
    use crate::handlers::{Body, Method};

    /// A project with two versions of its final video, and an annotated export of game 1.
    fn seeded() -> crate::handlers::tests::TestDb {
        let db = test_db();
        db.execute_script(
            "INSERT INTO games (id, name, opponent_name, game_date) VALUES (1, 'g', 'Lions', '2025-03-09');
             INSERT INTO projects (id, name, aspect_ratio, final_video_id) VALUES (1, 'My Cup', '9:16', 2);
             INSERT INTO final_videos (id, project_id, filename, version, created_at, source_type) VALUES
                 (1, 1, 'old_final.mp4', 1, '2026-01-01 10:00:00', 'custom_project'),
                 (2, 1, 'new_final.mp4', 2, '2026-01-02 10:00:00', 'custom_project');
             INSERT INTO final_videos (id, project_id, filename, version, created_at, source_type, game_id, name, rating_counts)
                 VALUES (3, 0, 'ann.mp4', 1, '2026-01-03 10:00:00', 'annotated_game', 1, 'g (Annotated)',
                         '{\"brilliant\": 2, \"good\": 0, \"interesting\": 0, \"mistake\": 0, \"blunder\": 1}');",
        )
        .unwrap();
        db
    }

    #[test]
    fn the_gallery_lists_the_latest_version_per_project_and_game() {
        let db = seeded();
        let body = ok(&db, Method::Get, "/api/downloads", Body::Empty);
        assert_eq!(body["total_count"], 2);
        let annotated = &body["downloads"][0];
        assert_eq!(annotated["project_name"], "g (Annotated)");
        assert_eq!(annotated["rating_counts"]["total"], 3);
        assert_eq!(annotated["rating_counts"]["weighted_average"], 3.67);
        assert_eq!(annotated["game_names"], json!(["Vs Lions Mar 9"]));
        assert_eq!(annotated["group_key"], "Vs Lions Mar 9");
        let project = &body["downloads"][1];
        assert_eq!(
            (project["id"].clone(), project["project_name"].clone()),
            (json!(2), json!("My Cup"))
        );
        assert_eq!(project["rating_counts"], Value::Null);
        assert_eq!(
            project["group_key"], "January 2026",
            "no games: the month of creation"
        );
        let only = ok(
            &db,
            Method::Get,
            "/api/downloads?source_type=annotated_game",
            Body::Empty,
        );
        assert_eq!(only["total_count"], 1);
        assert_eq!(
            ok(&db, Method::Get, "/api/downloads/count", Body::Empty),
            json!({"count": 2})
        );
    }

    #[test]
    fn deleting_the_latest_brings_the_previous_version_back() {
        let db = seeded();
        let reply = call(
            &db,
            Method::Delete,
            "/api/downloads/2?remove_file=true",
            Body::Empty,
        )
        .unwrap();
        assert_eq!(
            reply.deletions,
            vec![Deletion::Object("final_videos/new_final.mp4".into())]
        );
        assert_eq!(
            db.query_value::<Option<i64>>("SELECT final_video_id FROM projects", &[])
                .unwrap(),
            Some(None)
        );
        let body = ok(&db, Method::Get, "/api/downloads", Body::Empty);
        assert_eq!(body["downloads"][1]["id"], 1);
        let kept = call(&db, Method::Delete, "/api/downloads/1", Body::Empty).unwrap();
        assert!(kept.deletions.is_empty());
        assert_eq!(
            status(&db, Method::Delete, "/api/downloads/1", Body::Empty),
            404
        );
    }

    #[test]
    fn the_file_route_names_an_attachment_after_the_project() {
        let db = seeded();
        let reply = call(&db, Method::Get, "/api/downloads/2/file", Body::Empty).unwrap();
        let ApiResponse::File(file) = reply.response else {
            panic!()
        };
        assert_eq!(file.key, "final_videos/new_final.mp4");
        assert_eq!(file.attachment_name.as_deref(), Some("My_Cup_final.mp4"));
        assert_eq!(
            status(&db, Method::Get, "/api/downloads/9/file", Body::Empty),
            404
        );
    }

    #[test]
    fn before_after_status_reports_tracks_or_an_error() {
        let db = seeded();
        db.execute(
            "INSERT INTO before_after_tracks (final_video_id, source_path, start_frame, end_frame) VALUES (2, '/x', 0, 30)",
            &[],
        )
        .unwrap();
        let found = ok(
            &db,
            Method::Get,
            "/api/export/before-after/2/status",
            Body::Empty,
        );
        assert_eq!(
            found,
            json!({"available": true, "clip_count": 1, "final_video_exists": true})
        );
        let missing = ok(
            &db,
            Method::Get,
            "/api/export/before-after/9/status",
            Body::Empty,
        );
        assert_eq!(missing["error"], "Final video not found");
        assert_eq!(missing["available"], false);
    }

    #[test]
    fn attachment_names_keep_word_characters_and_join_spaces() {
        assert_eq!(attachment_name("My  Cup: Final!"), "My_Cup_Final_final.mp4");
        assert_eq!(attachment_name("?!"), "video_final.mp4");
    }

    #[test]
    fn rating_counts_add_total_and_rounded_average() {
        let counts = rating_counts(Some(
            r#"{"brilliant": 1, "good": 1, "interesting": 1, "mistake": 0, "blunder": 0}"#,
        ));
        assert_eq!(counts["total"], 3);
        assert_eq!(counts["weighted_average"], 4.0);
        let none = rating_counts(Some(r#"{"brilliant": 0}"#));
        assert_eq!(none["weighted_average"], Value::Null);
        assert_eq!(rating_counts(None), Value::Null);
    }
}
