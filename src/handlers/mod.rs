//! The API routes of `shared/api.md`, written once over [`Db`] and served by both storage paths.
//!
//! Handlers are plain synchronous functions: typed input in, JSON out. They know nothing of R2,
//! KV, Durable Objects or `worker::Env`; the storage paths hand them a database and an
//! [`ApiRequest`], and turn the result into an HTTP response.

mod derive;
mod games;

use serde_json::Value;

use crate::db::Db;
use crate::error::ApiError;
use crate::identity::UserId;

/// The HTTP methods the API uses; anything else is answered 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Other,
}

/// A request as the handlers see it: no headers but the ones they need, the body as bytes.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// The URL path, e.g. `/api/games/3`.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A successful answer: always status 200 (the contract never uses 201).
#[derive(Debug, Clone, PartialEq)]
pub enum ApiResponse {
    Json(Value),
}

/// Serves one API request for `user` from `db`.
pub fn handle(db: &impl Db, user: &UserId, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method, segments.as_slice()) {
        (Method::Get, ["api", "auth", "whoami"]) => Ok(ApiResponse::Json(
            serde_json::json!({ "user_id": user.as_str() }),
        )),
        (Method::Get, ["api", "games"]) => games::list(db),
        (_, ["api", "auth", "whoami"] | ["api", "games"]) => {
            Err(ApiError::MethodNotAllowed("Method Not Allowed".to_owned()))
        }
        _ => Err(ApiError::NotFound("Not Found".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::apply_migrations;
    use crate::r2::rusqlite_db::RusqliteDb;

    pub(crate) fn test_db() -> RusqliteDb {
        let db = RusqliteDb::empty().unwrap();
        apply_migrations(&db).unwrap();
        db
    }

    pub(crate) fn get(path: &str) -> ApiRequest {
        ApiRequest {
            method: Method::Get,
            path: path.to_owned(),
            query: Vec::new(),
            content_type: None,
            body: Vec::new(),
        }
    }

    #[test]
    fn unknown_route_is_404_and_wrong_method_is_405() {
        let db = test_db();
        let user = UserId::parse("u").unwrap();
        assert_eq!(
            handle(&db, &user, &get("/api/nope")).unwrap_err().status(),
            404
        );
        let mut delete = get("/api/games");
        delete.method = Method::Delete;
        assert_eq!(handle(&db, &user, &delete).unwrap_err().status(), 405);
    }

    #[test]
    fn whoami_echoes_the_resolved_user() {
        let db = test_db();
        let user = UserId::parse("e2e_42").unwrap();
        let ApiResponse::Json(body) = handle(&db, &user, &get("/api/auth/whoami")).unwrap();
        assert_eq!(body, serde_json::json!({"user_id": "e2e_42"}));
    }
}
