//! `Config`: the binding names and vars the Worker reads from `Env`, in one place.

use worker::Env;

/// KV namespace holding the `migrated:<user_id>` flags.
pub const FLAGS_KV: &str = "FLAGS";
/// R2 bucket holding `{user_id}/database.sqlite` and the users' media files.
pub const USER_DATA_BUCKET: &str = "USER_DATA";
/// Durable Object namespace of `UserDataStore`.
pub const USER_DATA_DO: &str = "USER_DATA_DO";

/// Settings read from the Worker's vars.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// User for requests without `X-User-ID` (the existing app's "a"). Set only in the dev
    /// environment: in production an anonymous request must not reach anyone's data.
    pub default_user_id: Option<String>,
}

impl Config {
    pub fn from_env(env: &Env) -> Self {
        Self {
            default_user_id: var(env, "DEFAULT_USER_ID"),
        }
    }
}

/// A var's value, or `None` when it is unset or empty.
fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|value| value.to_string())
        .filter(|value| !value.is_empty())
}
