//! A typed client for the Worker's admin API. It asks; it decides nothing.

use std::time::Duration;

use admin_api::request::{
    Call, ExportDatabase, GetUser, ImportDatabase, ListUsers, Migrate, Preflight, Prune, Rollback,
    Route, Verify,
};
use admin_api::{
    ErrorBody, ImportResult, MoveReport, PreflightReport, PruneResult, UserStatus, UserSummary,
    VerifyResult,
};

/// Why a call failed, in words an operator can act on.
#[derive(Debug)]
pub enum ClientError {
    Unreachable(String),
    Unauthorized,
    /// The admin API does not exist there: no `ADMIN_TOKEN` secret, or not this Worker.
    NoAdminApi(String),
    /// The Worker answered with an error status and a detail.
    Failed {
        status: u16,
        detail: String,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable(why) => write!(f, "cannot reach the Worker: {why}"),
            ClientError::Unauthorized => write!(
                f,
                "the Worker refused the admin token (check --token / MIGRATOR_TOKEN)"
            ),
            ClientError::NoAdminApi(endpoint) => write!(
                f,
                "{endpoint} has no admin API (is the ADMIN_TOKEN secret set, and is this the right endpoint?)"
            ),
            ClientError::Failed { status, detail } => write!(f, "{detail} (HTTP {status})"),
        }
    }
}

pub struct AdminClient {
    endpoint: String,
    token: String,
    agent: ureq::Agent,
}

impl AdminClient {
    pub fn new(endpoint: &str, token: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            agent,
        }
    }

    /// Sends `route` (with `body`, if any); a 2xx answer's status, bytes and `X-DB-Version`.
    fn call<R: Route>(
        &self,
        route: &R,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>, Option<String>), ClientError> {
        let path = route.path();
        let request = ureq::http::Request::builder()
            .method(R::METHOD)
            .uri(format!("{}{path}", self.endpoint))
            .header("Authorization", format!("Bearer {}", self.token))
            .body(body.unwrap_or_default())
            .map_err(|err| ClientError::Unreachable(err.to_string()))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|err| ClientError::Unreachable(format!("{}: {err}", self.endpoint)))?;
        let status = response.status().as_u16();
        let version = response
            .headers()
            .get("X-DB-Version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|err| ClientError::Unreachable(err.to_string()))?;
        match status {
            200..=299 => Ok((status, bytes, version)),
            401 => Err(ClientError::Unauthorized),
            _ => {
                let detail = serde_json::from_slice::<ErrorBody>(&bytes)
                    .map(|body| body.detail)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
                Err(ClientError::Failed { status, detail })
            }
        }
    }

    /// Sends `call` (with `body`, if any) and reads its answer.
    fn json<C: Call>(&self, call: &C, body: Option<Vec<u8>>) -> Result<C::Response, ClientError> {
        let (status, bytes, _) = self.call(call, body)?;
        serde_json::from_slice(&bytes).map_err(|err| ClientError::Failed {
            status,
            detail: format!(
                "the Worker answered {} {} with something unexpected: {err}",
                C::METHOD,
                call.path()
            ),
        })
    }

    /// Every user the Worker finds in R2, all pages.
    pub fn users(&self) -> Result<Vec<UserSummary>, ClientError> {
        let mut users = Vec::new();
        let mut request = ListUsers {
            cursor: None,
            limit: ListUsers::MAX_LIMIT,
        };
        loop {
            // The listing always exists where the admin API does.
            let page = self.json(&request, None).map_err(|err| match err {
                ClientError::Failed { status: 404, .. } => {
                    ClientError::NoAdminApi(self.endpoint.clone())
                }
                other => other,
            })?;
            users.extend(page.users);
            match page.cursor {
                Some(next) => request.cursor = Some(next),
                None => return Ok(users),
            }
        }
    }

    pub fn user(&self, user: &str) -> Result<UserStatus, ClientError> {
        self.json(&GetUser::new(user), None)
    }

    pub fn migrate(&self, user: &str) -> Result<MoveReport, ClientError> {
        self.json(&Migrate::new(user), None)
    }

    pub fn rollback(&self, user: &str) -> Result<MoveReport, ClientError> {
        self.json(&Rollback::new(user), None)
    }

    /// What stands in the way of the user's next move, without moving.
    pub fn preflight(&self, user: &str) -> Result<PreflightReport, ClientError> {
        self.json(&Preflight::new(user), None)
    }

    pub fn verify(&self, user: &str) -> Result<VerifyResult, ClientError> {
        self.json(&Verify::new(user), None)
    }

    /// The user's authoritative database file and its version.
    pub fn export(&self, user: &str) -> Result<(Vec<u8>, Option<String>), ClientError> {
        let (_, bytes, version) = self.call(&ExportDatabase::new(user), None)?;
        Ok((bytes, version))
    }

    pub fn import(&self, user: &str, file: Vec<u8>) -> Result<ImportResult, ClientError> {
        self.json(&ImportDatabase::new(user), Some(file))
    }

    pub fn prune(&self, older_than_days: u64, dry_run: bool) -> Result<PruneResult, ClientError> {
        self.json(
            &Prune {
                older_than_days,
                dry_run,
            },
            None,
        )
    }
}
