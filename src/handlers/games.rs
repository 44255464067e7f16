//! `/api/games` (shared/api.md §6).

use serde::Serialize;

use crate::db::{Db, Row};
use crate::error::ApiError;
use crate::handlers::derive::{game_display_name, GameNameParts};
use crate::handlers::ApiResponse;

/// GameListItem, keys in contract order.
#[derive(Debug, Serialize)]
struct GameListItem {
    id: i64,
    name: String,
    raw_name: String,
    video_filename: Option<String>,
    video_url: Option<String>,
    clip_count: i64,
    brilliant_count: i64,
    good_count: i64,
    interesting_count: i64,
    mistake_count: i64,
    blunder_count: i64,
    aggregate_score: i64,
    created_at: Option<String>,
    opponent_name: Option<String>,
    game_date: Option<String>,
    game_type: Option<String>,
    tournament_name: Option<String>,
}

impl GameListItem {
    fn from_row(row: &Row) -> Result<Self, ApiError> {
        let count = |i| row.get::<Option<i64>>(i).map(Option::unwrap_or_default);
        let raw_name: String = row.get(1)?;
        let opponent_name: Option<String> = row.get(11)?;
        let game_date: Option<String> = row.get(12)?;
        let game_type: Option<String> = row.get(13)?;
        let tournament_name: Option<String> = row.get(14)?;
        let name = game_display_name(
            &GameNameParts {
                opponent_name: opponent_name.as_deref(),
                game_date: game_date.as_deref(),
                game_type: game_type.as_deref(),
                tournament_name: tournament_name.as_deref(),
            },
            &raw_name,
        );
        Ok(Self {
            id: row.get(0)?,
            name,
            raw_name,
            video_filename: row.get(2)?,
            // The frontend falls back to GET /api/games/{id}/video, served from R2 by us.
            video_url: None,
            clip_count: count(3)?,
            brilliant_count: count(4)?,
            good_count: count(5)?,
            interesting_count: count(6)?,
            mistake_count: count(7)?,
            blunder_count: count(8)?,
            aggregate_score: count(9)?,
            created_at: row.get(10)?,
            opponent_name,
            game_date,
            game_type,
            tournament_name,
        })
    }
}

/// G1 `GET /api/games`: every game, newest first.
pub fn list(db: &impl Db) -> Result<ApiResponse, ApiError> {
    let rows = db.query(
        "SELECT id, name, video_filename, clip_count, brilliant_count, good_count, \
                interesting_count, mistake_count, blunder_count, aggregate_score, created_at, \
                opponent_name, game_date, game_type, tournament_name \
         FROM games ORDER BY created_at DESC, id DESC",
        &[],
    )?;
    let games = rows
        .iter()
        .map(GameListItem::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiResponse::Json(serde_json::json!({ "games": games })))
}

#[cfg(test)]
mod tests {
    use crate::db::Db;
    use crate::handlers::tests::{get, test_db};
    use crate::handlers::{handle, ApiResponse};
    use crate::identity::UserId;

    #[test]
    fn list_games_newest_first_with_display_names_and_zero_counts() {
        let db = test_db();
        db.execute_script(
            "INSERT INTO games (name, created_at) VALUES ('old.mp4', '2026-01-01 10:00:00');
             INSERT INTO games (name, opponent_name, game_date, game_type, created_at, clip_count)
                 VALUES ('new.mp4', 'Rivals', '2025-10-04', 'away', '2026-01-02 10:00:00', NULL);",
        )
        .unwrap();
        let user = UserId::parse("u").unwrap();
        let ApiResponse::Json(body) = handle(&db, &user, &get("/api/games")).unwrap();
        let games = body["games"].as_array().unwrap();
        assert_eq!(games.len(), 2);
        assert_eq!(games[0]["name"], "at Rivals Oct 4");
        assert_eq!(games[0]["raw_name"], "new.mp4");
        assert_eq!(games[0]["clip_count"], 0);
        assert_eq!(games[0]["video_url"], serde_json::Value::Null);
        assert_eq!(games[1]["name"], "old.mp4");
        let keys: Vec<_> = games[0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[..3], ["id", "name", "raw_name"]);
    }
}
