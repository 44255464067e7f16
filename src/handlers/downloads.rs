//! `/api/downloads` (shared/api.md §8): the gallery of final videos, latest version per
//! (project, game).

use serde_json::{json, Value};

use crate::db::{Db, Row};
use crate::error::ApiError;
use crate::handlers::derive::{games_by_project, month_and_year, GameList, GAME_LIST_COLUMNS};
use crate::handlers::{ApiRequest, ApiResponse, Deletion, FileResponse, Reply};

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
        .query(
            &format!("{LATEST_FINALS} SELECT COUNT(*) FROM latest_finals"),
            &[],
        )?
        .first()
        .map(|row| row.get(0))
        .transpose()?
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
        .query(
            "SELECT COUNT(*) FROM before_after_tracks WHERE final_video_id = ?",
            &[final_video_id.into()],
        )?
        .first()
        .map(|row| row.get(0))
        .transpose()?
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
