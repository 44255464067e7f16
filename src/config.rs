//! `Config`: the binding names and vars the Worker reads from `Env`, in one place.

use worker::Env;

/// KV namespace holding the `migrated:<user_id>` flags.
pub const FLAGS_KV: &str = "FLAGS";
/// R2 bucket holding `{user_id}/database.sqlite` and the users' media files.
pub const USER_DATA_BUCKET: &str = "USER_DATA";
/// Durable Object namespace of `UserDataStore`.
pub const USER_DATA_DO: &str = "USER_DATA_DO";
/// Queue of jobs for the video-processing service (docs/processing.md §1).
pub const PROCESSING_QUEUE: &str = "PROCESSING_JOBS";

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

/// What the R2 path does when another request stored a newer database first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictStrategy {
    /// Run the request again on the newer database (`retry`, the default): no write is lost.
    #[default]
    Retry,
    /// Overwrite it (`last-write-wins`, the existing app's behaviour): the other write is lost.
    LastWriteWins,
}

/// How a user request says who it is for (`AUTH_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `header`: `X-User-ID` is trusted as sent. Only for local development, or behind a proxy
    /// that authenticates users and strips any `X-User-ID` the client sent.
    Header,
    /// `jwt` (the default when `AUTH_MODE` is unset): the user is a signed token's `sub`.
    Jwt,
}

/// Where tokens come from and which are accepted, in `jwt` mode (README, "Authentication").
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `AUTH_COOKIE`: the cookie that may carry the token (default `session`).
    pub cookie: String,
    /// `AUTH_HEADER`: a header that may carry the token, such as `Cf-Access-Jwt-Assertion`.
    pub header: Option<String>,
    /// `AUTH_ISSUER`: when set, the `iss` every token must have.
    pub issuer: Option<String>,
    /// `AUTH_AUDIENCE`: when set, a value the token's `aud` must be or contain.
    pub audience: Option<String>,
    /// The secret `AUTH_JWT_SECRET`: HS256 tokens are accepted only when it is set.
    pub hmac_secret: Option<String>,
    /// `AUTH_JWKS`: a JWK set, inline (RS256 and ES256 keys).
    pub jwks: Option<String>,
    /// `AUTH_JWKS_URL`: where to fetch the JWK set from (cached by the isolate).
    pub jwks_url: Option<String>,
}

/// Settings read from the Worker's vars.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AUTH_MODE`: `header` or `jwt` (the default).
    pub auth_mode: AuthMode,
    /// The token rules of `jwt` mode.
    pub auth: AuthSettings,
    /// User for requests without `X-User-ID` in `header` mode (the existing app's "a"). Set only
    /// in local development (wrangler.dev.toml): in production an anonymous request must not reach anyone's data.
    pub default_user_id: Option<String>,
    /// `CONFLICT_STRATEGY`: `retry` or `last-write-wins`.
    pub conflict_strategy: ConflictStrategy,
    /// `DB_SIZE_NOTICE_BYTES`: after an upload above this, an info log (default 512 KB).
    pub size_notice_bytes: u64,
    /// `DB_SIZE_WARNING_BYTES`: above this, a warning to migrate the user (default 1 MB).
    pub size_warning_bytes: u64,
    /// `R2_MAX_DATABASE_BYTES`: the largest database the R2 path opens; larger ones get 507
    /// instead of exhausting the isolate's 128 MB (see README, "Memory").
    pub max_database_bytes: u64,
    /// `R2_CACHE_BYTES`: how many bytes of databases an isolate keeps between requests.
    pub cache_bytes: u64,
    /// `FLAG_CACHE_TTL_SECONDS`: how long an edge location may cache a `migrated:` flag (KV's
    /// minimum, 60, by default). Staleness is safe: the storage paths fence it (see README).
    pub flag_cache_ttl_seconds: u64,
    /// `FLAG_PROPAGATION_SECONDS`: how long after a move a KV flag may still read the old way
    /// somewhere (default 120); within it, the records decide, not the flag.
    pub flag_propagation_ms: u64,
    /// `AUTO_MIGRATE_BYTES`: when set, an R2-path upload larger than this sets the user's
    /// `migrated:` flag, and their next request moves them to their Durable Object.
    pub auto_migrate_bytes: Option<u64>,
    /// `ROUTER_FLAG_OVERRIDE` (tests only): `ignore` routes as if no flag were set, `always` as
    /// if every flag were, to simulate stale KV at a location.
    pub router_flag_override: Option<bool>,
    /// `REPORT_WASM_MEMORY`: R2-path responses carry `X-Wasm-Memory-Bytes`, the size of the
    /// wasm linear memory (for measurements and benchmarks, not for production).
    pub report_wasm_memory: bool,
    /// `MOVE_RETRY_SECONDS`: after a move failed, how long requests do not try it again
    /// (default 300); an operator's migrate or rollback always tries.
    pub move_retry_ms: u64,
    /// `MOVE_LEASE_SECONDS`: how long a chunked rollback or export may go without a step
    /// before the object gives up on it and serves again (default 60).
    pub move_lease_ms: u64,
    /// `FAULT_INJECTION` (tests only): the admin API can arm a failure or crash at a step of
    /// the next move (`POST /admin/users/{id}/fault`).
    pub fault_injection: bool,
    /// `PROCESSING_URL`: the video-processing service (jobs go to `<url>/jobs`, the frontend's
    /// processing routes are forwarded to it). Unset: those routes answer 501, jobs wait.
    pub processing_url: Option<String>,
    /// `PROCESSING_RETRY_SECONDS`: the first pause before a job the service did not take is
    /// offered again (default 10); later pauses grow with the job's age, up to an hour.
    pub processing_retry_seconds: u32,
    /// `ALLOWED_ORIGINS`: origins other than the Worker's own (`https://app.example.com`,
    /// separated by commas or spaces) whose pages may write and read with the user's
    /// credentials ([`crate::origin`]). Empty: the Worker's own origin only.
    pub allowed_origins: Vec<String>,
}

impl Config {
    pub fn from_env(env: &Env) -> Self {
        let number = |name, default| {
            var(env, name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            auth_mode: match var(env, "AUTH_MODE").as_deref() {
                Some("header") => AuthMode::Header,
                _ => AuthMode::Jwt,
            },
            auth: AuthSettings {
                cookie: var(env, "AUTH_COOKIE").unwrap_or_else(|| "session".to_owned()),
                header: var(env, "AUTH_HEADER"),
                issuer: var(env, "AUTH_ISSUER"),
                audience: var(env, "AUTH_AUDIENCE"),
                hmac_secret: secret(env, "AUTH_JWT_SECRET"),
                jwks: var(env, "AUTH_JWKS"),
                jwks_url: var(env, "AUTH_JWKS_URL"),
            },
            default_user_id: var(env, "DEFAULT_USER_ID"),
            conflict_strategy: match var(env, "CONFLICT_STRATEGY").as_deref() {
                Some("last-write-wins") => ConflictStrategy::LastWriteWins,
                _ => ConflictStrategy::Retry,
            },
            size_notice_bytes: number("DB_SIZE_NOTICE_BYTES", 512 * KB),
            size_warning_bytes: number("DB_SIZE_WARNING_BYTES", MB),
            max_database_bytes: number("R2_MAX_DATABASE_BYTES", 12 * MB),
            cache_bytes: number("R2_CACHE_BYTES", 16 * MB),
            flag_cache_ttl_seconds: number("FLAG_CACHE_TTL_SECONDS", 60),
            flag_propagation_ms: 1000 * number("FLAG_PROPAGATION_SECONDS", 120),
            auto_migrate_bytes: var(env, "AUTO_MIGRATE_BYTES").and_then(|v| v.parse().ok()),
            router_flag_override: match var(env, "ROUTER_FLAG_OVERRIDE").as_deref() {
                Some("ignore") => Some(false),
                Some("always") => Some(true),
                _ => None,
            },
            report_wasm_memory: var(env, "REPORT_WASM_MEMORY").is_some(),
            move_retry_ms: 1000 * number("MOVE_RETRY_SECONDS", 300),
            move_lease_ms: 1000 * number("MOVE_LEASE_SECONDS", 60),
            fault_injection: var(env, "FAULT_INJECTION").is_some(),
            processing_url: var(env, "PROCESSING_URL")
                .map(|url| url.trim_end_matches('/').to_owned()),
            processing_retry_seconds: number("PROCESSING_RETRY_SECONDS", 10) as u32,
            allowed_origins: var(env, "ALLOWED_ORIGINS")
                .map(|list| origins(&list))
                .unwrap_or_default(),
        }
    }
}

/// The origins of `ALLOWED_ORIGINS`, as browsers write them in `Origin`: lowercase, without a
/// trailing slash, so that they compare as plain strings.
fn origins(list: &str) -> Vec<String> {
    list.split([',', ' '])
        .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|origin| !origin.is_empty())
        .collect()
}

/// A secret's value (`wrangler secret put`; locally `.dev.vars` or `--var`), or `None` when it
/// is unset or empty.
pub fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|secret| secret.to_string())
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(|| var(env, name))
}

/// A var's value, or `None` when it is unset or empty.
fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|value| value.to_string())
        .filter(|value| !value.is_empty())
}
