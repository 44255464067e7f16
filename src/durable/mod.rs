//! `UserDataStore`: one Durable Object per user (`id_from_name(user_id)`), holding that user's
//! database in its embedded SQLite storage and serving the API from the shared handlers.
//!
//! The schema is migrated in the constructor, before the first request is delivered. The object
//! trusts the router to have validated the user, but parses the id again: a request that names
//! no valid user never reaches the handlers.

mod sql_db;

pub use sql_db::SqlDb;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::db::apply_migrations;
use crate::error::ApiError;
use crate::handlers;
use crate::http::{self, DataPath};
use crate::identity::{UserId, USER_ID_HEADER};

#[durable_object(fetch)]
pub struct UserDataStore {
    db: SqlDb,
    /// Why the schema could not be brought up to date, if it could not: every request is then
    /// answered 503 rather than served from a half-migrated database.
    migration_error: Option<String>,
}

impl DurableObject for UserDataStore {
    fn new(state: State, _env: Env) -> Self {
        let db = SqlDb::new(state.storage().sql());
        let migration_error = apply_migrations(&db).err().map(|err| {
            worker::console_error!("UserDataStore schema migration failed: {err}");
            err.to_string()
        });
        Self {
            db,
            migration_error,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = self.serve(&mut req).await;
        Ok(http::respond(result, DataPath::DurableObject))
    }
}

impl UserDataStore {
    async fn serve(
        &self,
        req: &mut Request,
    ) -> std::result::Result<handlers::ApiResponse, ApiError> {
        if let Some(err) = &self.migration_error {
            return Err(ApiError::Unavailable(format!(
                "The user's database could not be migrated: {err}"
            )));
        }
        let header = req.headers().get(USER_ID_HEADER)?;
        let user = UserId::parse(header.as_deref().unwrap_or_default())?;
        let request = http::read_api_request(req).await?;
        handlers::handle(&self.db, &user, &request)
    }
}
