//! The Worker's own clients (the operators' admin API, the processing service): each sends a
//! shared secret as `Authorization: Bearer`, checked here. Users sign in otherwise
//! ([`crate::auth`]).

use constant_time_eq::constant_time_eq;
use worker::{Env, Request};

use crate::config;
use crate::error::ApiError;

/// Lets in a request of one of the Worker's own clients (the operators' admin API, the
/// processing service), which carries the secret `secret_name` as `Authorization: Bearer`:
/// 404 when the secret is unset (then those routes do not exist), 401 when the token is missing
/// or wrong (compared in constant time, so timing reveals neither its length nor a prefix).
pub fn require_secret_bearer(req: &Request, env: &Env, secret_name: &str) -> Result<(), ApiError> {
    let secret =
        config::secret(env, secret_name).ok_or_else(|| ApiError::NotFound("Not Found".into()))?;
    let given = req
        .headers()
        .get("Authorization")
        .ok()
        .flatten()
        .unwrap_or_default();
    let given = given.strip_prefix("Bearer ").unwrap_or_default();
    if constant_time_eq(given.as_bytes(), secret.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(format!(
            "Missing or wrong {secret_name} (Authorization: Bearer ...)"
        )))
    }
}
