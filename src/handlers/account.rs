//! `/api/auth` (docs/api.md §10). There is no authentication: the user id only selects data.

use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::handlers::{Deletion, Reply};
use crate::identity::UserId;
use user_data_core::db::Db;

/// The existing app's default user, which `DELETE /api/auth/user` refuses to wipe.
const DEFAULT_USER: &str = "a";

/// The app's tables, children before parents.
pub const DATA_TABLES: [&str; 8] = [
    "before_after_tracks",
    "export_jobs",
    "final_videos",
    "working_videos",
    "working_clips",
    "raw_clips",
    "projects",
    "games",
];

#[derive(Debug, Deserialize)]
pub struct Login {
    user_id: String,
}

/// A1 `POST /api/auth/login`: echoes the id it would use; blank is the default user. An id
/// that is not valid is refused, as in `X-User-ID`.
pub fn login(input: Login) -> Result<Reply, ApiError> {
    let user = match input.user_id.trim() {
        "" => UserId::parse(DEFAULT_USER)?,
        id => UserId::parse(id)?,
    };
    Ok(Reply::json(json!({
        "user_id": user.as_str(),
        "message": format!("Logged in as {user}"),
    })))
}

/// A2 `GET /api/auth/whoami`.
pub fn whoami(user: &UserId) -> Result<Reply, ApiError> {
    Ok(Reply::json(json!({ "user_id": user.as_str() })))
}

/// A3 `DELETE /api/auth/user`: every row of the caller's data, and their media files in R2.
pub fn delete_user(db: &impl Db, user: &UserId) -> Result<Reply, ApiError> {
    // Not a UNION: the Durable Object allows only a few terms in a compound SELECT.
    let any_row = DATA_TABLES
        .iter()
        .map(|table| format!("EXISTS (SELECT 1 FROM {table})"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let has_data = db
        .query_value::<bool>(&format!("SELECT {any_row}"), &[])?
        .unwrap_or(false);
    if !has_data {
        return Ok(Reply::json(json!({
            "message": format!("User {user} has no data to delete"),
            "deleted": false,
        })));
    }
    if user.as_str() == DEFAULT_USER {
        return Err(ApiError::Forbidden(
            "Cannot delete default user. Use a test user ID for cleanup.".into(),
        ));
    }
    for table in DATA_TABLES {
        db.execute(&format!("DELETE FROM {table}"), &[])?;
    }
    Ok(Reply::json(json!({
        "message": format!("Deleted all data for user {user}"),
        "deleted": true,
    }))
    .with_deletion(Deletion::AllMedia))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::handlers::tests::{json_body, ok, status, test_db};
    use crate::handlers::{handle, ApiRequest, Body, Method};
    use crate::identity::UserId;
    use user_data_core::db::Db;

    #[test]
    fn login_echoes_a_valid_id_and_defaults_blank_to_a() {
        let db = test_db();
        let login = |id: &str| json_body(json!({"user_id": id}));
        assert_eq!(
            ok(&db, Method::Post, "/api/auth/login", login("bob")),
            json!({"user_id": "bob", "message": "Logged in as bob"})
        );
        assert_eq!(
            ok(&db, Method::Post, "/api/auth/login", login("  "))["user_id"],
            "a"
        );
        assert_eq!(
            status(&db, Method::Post, "/api/auth/login", login("b$b")),
            400
        );
    }

    #[test]
    fn deleting_a_user_wipes_rows_and_media_but_never_user_a() {
        let db = test_db();
        assert_eq!(
            ok(&db, Method::Delete, "/api/auth/user", Body::Empty)["deleted"],
            false
        );
        db.execute("INSERT INTO games (name) VALUES ('g')", &[])
            .unwrap();
        let as_user = |name: &str| {
            let request = ApiRequest {
                method: Method::Delete,
                path: "/api/auth/user".into(),
                query: vec![],
                body: Body::Empty,
                entropy: 0,
            };
            handle(&db, &UserId::parse(name).unwrap(), &request)
        };
        assert_eq!(as_user("a").unwrap_err().status(), 403);
        let reply = as_user("tester").unwrap();
        assert_eq!(reply.deletions, vec![crate::handlers::Deletion::AllMedia]);
        assert_eq!(
            db.query_value::<i64>("SELECT COUNT(*) FROM games", &[])
                .unwrap(),
            Some(0)
        );
    }
}
