//! A typed client for the Worker's admin API. It asks; it decides nothing.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

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

/// One user as `GET /admin/users` lists them.
#[derive(Debug, Clone, Deserialize)]
pub struct UserSummary {
    pub user_id: String,
    pub exists: bool,
    pub size: Option<u64>,
    pub version: u64,
    pub state: String,
    pub flag: bool,
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

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>, Option<String>), ClientError> {
        let request = ureq::http::Request::builder()
            .method(method)
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
            404 if path == "/admin/users" => Err(ClientError::NoAdminApi(self.endpoint.clone())),
            _ => {
                let detail = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|body| body["detail"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
                Err(ClientError::Failed { status, detail })
            }
        }
    }

    fn json(&self, method: &str, path: &str) -> Result<Value, ClientError> {
        let (status, bytes, _) = self.call(method, path, None)?;
        serde_json::from_slice(&bytes).map_err(|err| ClientError::Failed {
            status,
            detail: format!("the Worker answered something that is not JSON: {err}"),
        })
    }

    /// Every user the Worker finds in R2, all pages.
    pub fn users(&self) -> Result<Vec<UserSummary>, ClientError> {
        let mut users = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/admin/users?limit=1000&cursor={cursor}"),
                None => "/admin/users?limit=1000".to_owned(),
            };
            let page = self.json("GET", &path)?;
            let listed: Vec<UserSummary> =
                serde_json::from_value(page["users"].clone()).map_err(|err| {
                    ClientError::Failed {
                        status: 200,
                        detail: format!("unexpected user list: {err}"),
                    }
                })?;
            users.extend(listed);
            match page["cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(users),
            }
        }
    }

    pub fn user(&self, user: &str) -> Result<Value, ClientError> {
        self.json("GET", &format!("/admin/users/{user}"))
    }

    pub fn migrate(&self, user: &str) -> Result<Value, ClientError> {
        self.json("POST", &format!("/admin/users/{user}/migrate"))
    }

    pub fn rollback(&self, user: &str) -> Result<Value, ClientError> {
        self.json("POST", &format!("/admin/users/{user}/rollback"))
    }

    /// What stands in the way of the user's next move (`movable`, `problems`), without moving.
    pub fn preflight(&self, user: &str) -> Result<Value, ClientError> {
        self.json("GET", &format!("/admin/users/{user}/preflight"))
    }

    pub fn verify(&self, user: &str) -> Result<Value, ClientError> {
        self.json("GET", &format!("/admin/users/{user}/verify"))
    }

    /// The user's authoritative database file and its version.
    pub fn export(&self, user: &str) -> Result<(Vec<u8>, Option<String>), ClientError> {
        let (_, bytes, version) =
            self.call("GET", &format!("/admin/users/{user}/database"), None)?;
        Ok((bytes, version))
    }

    pub fn import(&self, user: &str, file: Vec<u8>) -> Result<Value, ClientError> {
        let (status, bytes, _) =
            self.call("PUT", &format!("/admin/users/{user}/database"), Some(file))?;
        serde_json::from_slice(&bytes).map_err(|err| ClientError::Failed {
            status,
            detail: err.to_string(),
        })
    }

    pub fn prune(&self, older_than_days: u64, dry_run: bool) -> Result<Value, ClientError> {
        self.json(
            "POST",
            &format!("/admin/prune?older_than_days={older_than_days}&dry_run={dry_run}"),
        )
    }
}
