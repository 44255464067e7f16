//! A typed client for the Worker's admin API. It asks; it decides nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};

use admin_api::request::{
    Call, ExportDatabase, GetUser, ImportDatabase, ListUsers, Migrate, Preflight, Prune, Rollback,
    Route, Scan, Verify,
};
use admin_api::{
    ErrorBody, ErrorCode, ImportResult, Listing, MoveReport, PreflightReport, PruneResult,
    ScanReport, UserStatus, UserSummary, VerifyResult,
};

/// Why a call failed, in words an operator can act on.
#[derive(Debug)]
pub enum ClientError {
    Unreachable(String),
    Unauthorized,
    /// The admin API does not exist there: no `ADMIN_TOKEN` secret, or not this Worker.
    NoAdminApi(String),
    /// The Worker answered with an error status and a detail (and a code, for the errors an
    /// operator or the migrator itself tells apart).
    Failed {
        status: u16,
        detail: String,
        code: Option<ErrorCode>,
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
            ClientError::Failed { status, detail, .. } => write!(f, "{detail} (HTTP {status})"),
        }
    }
}

/// A 2xx answer: its status, body and `X-DB-Version`.
type Answer = (u16, Vec<u8>, Option<String>);

/// How the client talks to the Worker: whom it trusts, how long it waits, how often it tries.
#[derive(Debug, Clone)]
pub struct Transport {
    /// A PEM file of CA certificates trusted besides the system's (a private CA).
    pub cacert: Option<PathBuf>,
    /// How long to wait for a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// How long to wait for an answer once the request is sent (a move can take minutes).
    pub read_timeout: Duration,
    /// How many times an idempotent call is tried again after a connection error, 429 or 5xx.
    pub retries: u32,
}

/// The first wait before a retry; each next one doubles, up to [`MAX_BACKOFF`], with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct AdminClient {
    endpoint: String,
    token: String,
    agent: ureq::Agent,
    retries: u32,
}

impl AdminClient {
    pub fn new(endpoint: &str, token: &str, transport: &Transport) -> Result<Self, String> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(transport.connect_timeout))
            .timeout_recv_response(Some(transport.read_timeout))
            .timeout_recv_body(Some(transport.read_timeout))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(trusted_roots(transport.cacert.as_deref())?)
                    .build(),
            )
            .build()
            .into();
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            agent,
            retries: transport.retries,
        })
    }

    /// The Worker's base URL, as the journal keys it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `route` (with `body`, if any); a 2xx answer's status, bytes and `X-DB-Version`.
    /// Every admin call but an import is idempotent (a move asked twice moves once), so a
    /// connection error, 429 or 5xx is tried again after a jittered, growing wait (the
    /// `Retry-After` of a move in progress when the Worker gives one).
    fn call<R: Route>(&self, route: &R, body: Option<Vec<u8>>) -> Result<Answer, ClientError> {
        let idempotent = R::METHOD != "PUT";
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let mut retry_after = None;
            let result = self.send(route, body.clone(), &mut retry_after);
            let transient = match &result {
                Err(ClientError::Unreachable(_)) => true,
                Err(ClientError::Failed { status, .. }) => *status == 429 || *status >= 500,
                _ => false,
            };
            if !(idempotent && transient && attempt < self.retries) {
                return result;
            }
            attempt += 1;
            let wait = retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
            std::thread::sleep(jittered(wait));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One try of [`Self::call`]; sets `retry_after` when the Worker asks for a wait.
    fn send<R: Route>(
        &self,
        route: &R,
        body: Option<Vec<u8>>,
        retry_after: &mut Option<Duration>,
    ) -> Result<Answer, ClientError> {
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
        *retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
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
                let (detail, code) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                    Ok(body) => (body.detail, body.code),
                    Err(_) => (String::from_utf8_lossy(&bytes).into_owned(), None),
                };
                Err(ClientError::Failed {
                    status,
                    detail,
                    code,
                })
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
            code: None,
        })
    }

    /// `GET /api/health` (no token), through the same TLS settings as every call.
    pub fn health(&self) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/api/health", self.endpoint);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|err| ClientError::Unreachable(format!("{url}: {err}")))?;
        let status = response.status().as_u16();
        response
            .body_mut()
            .read_json()
            .map_err(|err| ClientError::Failed {
                status,
                detail: format!("{url} did not answer JSON: {err}"),
                code: None,
            })
    }

    /// Every user the Worker knows, from all pages: R2's databases joined with the flags.
    pub fn users(&self) -> Result<Vec<UserSummary>, ClientError> {
        Ok(self.listing()?.users)
    }

    /// The whole listing: every user, as [`Self::users`], and what its pages say of the
    /// Worker; one call per page.
    pub fn listing(&self) -> Result<Listing, ClientError> {
        let mut pages = Vec::new();
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
            request.cursor = page.cursor.clone();
            pages.push(page);
            if request.cursor.is_none() {
                return Ok(Listing::of(pages));
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

    /// What the user's R2 database meets on the R2 path, and what would stop its move, without
    /// waking their object.
    pub fn scan(&self, user: &str) -> Result<ScanReport, ClientError> {
        self.json(&Scan::new(user), None)
    }

    /// The user's authoritative database file and its version.
    pub fn export(&self, user: &str) -> Result<(Vec<u8>, Option<String>), ClientError> {
        let (_, bytes, version) = self.call(&ExportDatabase::new(user), None)?;
        Ok((bytes, version))
    }

    pub fn import(&self, user: &str, file: Vec<u8>) -> Result<ImportResult, ClientError> {
        self.json(&ImportDatabase::new(user), Some(file))
    }

    /// Sends a chunked move's JSON step and reads its answer.
    pub fn move_step<C: Call>(
        &self,
        call: &C,
        body: &impl serde::Serialize,
    ) -> Result<C::Response, ClientError> {
        let body = serde_json::to_vec(body).expect("a request serializes");
        self.json(call, Some(body))
    }

    /// Sends a chunked move's binary step (a row batch, a part) and reads its JSON answer.
    pub fn move_bytes<C: Call>(&self, call: &C, body: Vec<u8>) -> Result<C::Response, ClientError> {
        self.json(call, Some(body))
    }

    /// Sends a step that answers bytes (a range of the file, a batch of rows read out).
    pub fn move_read<R: Route>(&self, route: &R, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        Ok(self.call(route, Some(body))?.1)
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

/// The system's trusted roots, plus the CA certificates of `cacert`.
fn trusted_roots(cacert: Option<&Path>) -> Result<RootCerts, String> {
    let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .into_iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    if let Some(path) = cacert {
        let pem = std::fs::read(path)
            .map_err(|err| format!("cannot read --cacert {}: {err}", path.display()))?;
        let before = roots.len();
        for item in parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => roots.push(cert),
                Ok(_) => {}
                Err(err) => return Err(format!("--cacert {} is not PEM: {err}", path.display())),
            }
        }
        if roots.len() == before {
            return Err(format!("--cacert {} holds no certificate", path.display()));
        }
    }
    Ok(RootCerts::new_with_certs(&roots))
}

/// `wait` give or take a quarter, so that many clients retrying do not retry in step.
fn jittered(wait: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let factor = 0.75 + f64::from(nanos % 1000) / 2000.0;
    wait.mul_f64(factor)
}
