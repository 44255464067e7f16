//! Who a user request is for, and whether it may say so: the only place the router gets a
//! request's [`UserId`] from.
//!
//! - `header` mode ([`AuthMode::Header`]): `X-User-ID` is trusted as sent (else
//!   `DEFAULT_USER_ID`). Only for local development, or behind a proxy that authenticates
//!   users and strips any `X-User-ID` the client sent.
//! - `jwt` mode ([`AuthMode::Jwt`], the default): the user is the `sub` of a signed token
//!   ([`token`]) from `Authorization: Bearer`, the header `AUTH_HEADER` or the cookie
//!   `AUTH_COOKIE`, in that order; checked against the key its algorithm allows ([`keys`]), by
//!   the runtime's WebCrypto ([`webcrypto`]). An `X-User-ID` that names another user is
//!   refused, never followed. With a JWK set, `AUTH_AUDIENCE` is required: without it no token
//!   is accepted (500, and the log names the var).
//!
//! The admin API and the processing service have tokens of their own, checked by [`service`].

pub mod keys;
pub mod remote_keys;
pub mod service;
pub mod token;
pub mod webcrypto;

use std::fmt;

use worker::Headers;

use crate::config::{AuthMode, AuthSettings, Config};
use crate::error::ApiError;
use crate::headers;
use crate::identity::{IdentityError, UserId};
use keys::{candidates, KeySet};
use token::{Expected, Token};

/// Why a request is not let through to a user's data.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthError {
    /// `header` mode: the header is missing or not a valid id.
    Identity(IdentityError),
    /// `jwt` mode: the request carries no token (401).
    Missing,
    /// The token is malformed, expired, not for us, or not signed by a trusted key (401).
    Invalid(String),
    /// The token names a key id the key set does not hold (401 once the set was fetched again).
    UnknownKey,
    /// `X-User-ID` names a user other than the token's (403).
    OtherUser,
    /// `AUTH_JWKS_URL` could not be fetched and no earlier copy is cached (503).
    KeysUnavailable(String),
    /// `jwt` mode without any key, or a key the runtime cannot use (500: ours to fix).
    NotConfigured(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Identity(err) => err.fmt(f),
            AuthError::Missing => write!(
                f,
                "Sign-in required: send a token in Authorization: Bearer <token>"
            ),
            AuthError::Invalid(why) => f.write_str(why),
            AuthError::UnknownKey => {
                write!(f, "Token is signed by a key this service does not know")
            }
            AuthError::OtherUser => write!(
                f,
                "{} names a user other than the signed-in one",
                headers::USER_ID
            ),
            AuthError::KeysUnavailable(why) => write!(f, "Sign-in keys unavailable: {why}"),
            AuthError::NotConfigured(why) => write!(f, "Sign-in is misconfigured: {why}"),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Identity(err) => err.into(),
            AuthError::Missing => ApiError::Unauthorized(err.to_string()),
            AuthError::Invalid(_) | AuthError::UnknownKey => {
                ApiError::InvalidToken(err.to_string())
            }
            AuthError::OtherUser => ApiError::Forbidden(err.to_string()),
            AuthError::KeysUnavailable(_) => ApiError::Unavailable(err.to_string()),
            AuthError::NotConfigured(_) => ApiError::Internal(err.to_string()),
        }
    }
}

/// The user a request is for, from its headers alone: nothing of its body is read first.
pub async fn authenticate(headers: &Headers, config: &Config) -> Result<UserId, AuthError> {
    let header = |name: &str| headers.get(name).ok().flatten();
    match config.auth_mode {
        AuthMode::Header => UserId::from_header(
            header(headers::USER_ID).as_deref(),
            config.default_user_id.as_deref(),
        )
        .map_err(AuthError::Identity),
        AuthMode::Jwt => {
            let settings = &config.auth;
            let token = bearer_token(header("Authorization").as_deref())
                .or_else(|| settings.header.as_deref().and_then(header))
                .or_else(|| cookie(header("Cookie").as_deref(), &settings.cookie))
                .ok_or(AuthError::Missing)?;
            let user = verified_user(&token, settings).await?;
            match header(headers::USER_ID) {
                Some(named) if named != user.as_str() => Err(AuthError::OtherUser),
                _ => Ok(user),
            }
        }
    }
}

/// The token's user once its signature verifies and its claims hold.
async fn verified_user(compact: &str, settings: &AuthSettings) -> Result<UserId, AuthError> {
    if settings.hmac_secret.is_none() && settings.jwks.is_none() && settings.jwks_url.is_none() {
        return Err(AuthError::NotConfigured(
            "AUTH_MODE is jwt but none of AUTH_JWT_SECRET, AUTH_JWKS, AUTH_JWKS_URL is set".into(),
        ));
    }
    // A JWK set is an identity provider's, which signs tokens for every application it serves:
    // without an audience, a token it made for another one would be taken as ours.
    if (settings.jwks.is_some() || settings.jwks_url.is_some()) && settings.audience.is_none() {
        return Err(AuthError::NotConfigured(
            "AUTH_JWKS or AUTH_JWKS_URL is set but AUTH_AUDIENCE is not: set AUTH_AUDIENCE to \
             this application's audience (Cloudflare Access: its AUD tag)"
                .into(),
        ));
    }
    let token = Token::parse(compact)?;
    let inline = match &settings.jwks {
        Some(json) => KeySet::parse(json)
            .map_err(|why| AuthError::NotConfigured(format!("AUTH_JWKS is {why}")))?,
        None => KeySet::default(),
    };
    let secret = settings.hmac_secret.as_deref();
    let key_id = token.key_id.as_deref();
    let mut set = match &settings.jwks_url {
        Some(url) => inline.merged(&*remote_keys::key_set(url).await?),
        None => inline.clone(),
    };
    if let (Err(AuthError::UnknownKey), Some(url)) = (
        candidates(token.algorithm, key_id, secret, &set),
        &settings.jwks_url,
    ) {
        if let Some(fetched) = remote_keys::refetched_key_set(url).await? {
            set = inline.merged(&fetched);
        }
    }
    let signed = token.signing_input.as_bytes();
    let mut verified = false;
    for key in candidates(token.algorithm, key_id, secret, &set)? {
        if webcrypto::verify(token.algorithm, key, signed, &token.signature).await? {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(AuthError::Invalid("Token signature does not verify".into()));
    }
    let expected = Expected {
        issuer: settings.issuer.as_deref(),
        audience: settings.audience.as_deref(),
    };
    token.user(&expected, worker::Date::now().as_millis() as f64 / 1000.0)
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer_token(authorization: Option<&str>) -> Option<String> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The value of cookie `name` in a `Cookie` header (quotes around it removed).
fn cookie(header: Option<&str>, name: &str) -> Option<String> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_taken_from_authorization_with_any_case_of_scheme() {
        assert_eq!(bearer_token(Some("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer_token(Some("Basic YTpi")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn the_named_cookie_is_found_among_others_and_no_other() {
        let header = Some(r#"theme=dark; session="t.o.k"; session_old=x"#);
        assert_eq!(cookie(header, "session").as_deref(), Some("t.o.k"));
        assert_eq!(cookie(header, "sess"), None);
        assert_eq!(cookie(Some("session="), "session"), None);
        assert_eq!(cookie(None, "session"), None);
    }

    #[test]
    fn each_failure_gets_its_status() {
        let status = |err: AuthError| ApiError::from(err).status();
        assert_eq!(status(AuthError::Missing), 401);
        assert_eq!(status(AuthError::Invalid("expired".into())), 401);
        assert_eq!(status(AuthError::UnknownKey), 401);
        assert_eq!(status(AuthError::OtherUser), 403);
        assert_eq!(status(AuthError::KeysUnavailable("down".into())), 503);
        assert_eq!(status(AuthError::NotConfigured("no key".into())), 500);
        assert_eq!(status(AuthError::Identity(IdentityError::Invalid)), 400);
    }
}
