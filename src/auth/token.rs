//! A JSON Web Token (RFC 7519, compact JWS) taken apart, and its claims checked.
//!
//! Pure: no I/O and no clock (the caller passes the time), so every rule here is tested
//! natively. Only the signature is checked elsewhere, by the runtime ([`super::webcrypto`]);
//! nothing a token says is trusted before that.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::AuthError;
use crate::identity::UserId;

/// Seconds of clock skew allowed on `exp` and `nbf`, between the issuer's clock and ours.
pub const LEEWAY_SECONDS: f64 = 60.0;

/// The signature algorithms accepted. Anything else, `none` above all, is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC with SHA-256, with the shared secret `AUTH_JWT_SECRET`.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, with an RSA key of the JWK set.
    Rs256,
    /// ECDSA on P-256 with SHA-256, with an EC key of the JWK set.
    Es256,
}

impl Algorithm {
    fn parse(name: &str) -> Result<Self, AuthError> {
        match name {
            "HS256" => Ok(Self::Hs256),
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            _ => Err(AuthError::Invalid(format!(
                "Token algorithm {name:?} is not accepted (HS256, RS256 or ES256)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Extensions the signer says must be understood; we understand none (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<Value>,
}

/// A token whose three parts decoded. Untrusted until its signature is verified.
#[derive(Debug)]
pub struct Token<'a> {
    pub algorithm: Algorithm,
    /// `kid`: which key of the set signed it, when the signer says.
    pub key_id: Option<String>,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    claims: Map<String, Value>,
}

/// What a token must say besides being signed by a trusted key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// `AUTH_ISSUER`: the `iss` it must have, when set.
    pub issuer: Option<&'a str>,
    /// `AUTH_AUDIENCE`: a value its `aud` must be or contain, when set.
    pub audience: Option<&'a str>,
}

impl<'a> Token<'a> {
    /// Splits and decodes a compact token; refuses any algorithm but the three accepted.
    pub fn parse(compact: &'a str) -> Result<Self, AuthError> {
        let mut parts = compact.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("it does not have three parts"));
        };
        let header_fields: Header = decode_json(header, "header")?;
        if header_fields.crit.is_some() {
            return Err(AuthError::Invalid(
                "Token header has critical extensions (crit) this service does not support".into(),
            ));
        }
        let algorithm = Algorithm::parse(&header_fields.alg)?;
        let claims = decode_json(payload, "payload")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| malformed("its signature is not base64url"))?;
        Ok(Self {
            algorithm,
            key_id: header_fields.kid,
            signing_input: &compact[..header.len() + 1 + payload.len()],
            signature,
            claims,
        })
    }

    /// The token's user, once its time window holds at `now` (Unix seconds) and its issuer and
    /// audience are the expected ones. A token without `exp` is refused: it would never expire.
    pub fn user(&self, expected: &Expected<'_>, now: f64) -> Result<UserId, AuthError> {
        let expires = self
            .number("exp")?
            .ok_or_else(|| AuthError::Invalid("Token has no expiry (exp)".into()))?;
        if now > expires + LEEWAY_SECONDS {
            return Err(AuthError::Invalid("Token has expired".into()));
        }
        if let Some(not_before) = self.number("nbf")? {
            if now + LEEWAY_SECONDS < not_before {
                return Err(AuthError::Invalid("Token is not valid yet (nbf)".into()));
            }
        }
        if let Some(issuer) = expected.issuer {
            if self.claims.get("iss").and_then(Value::as_str) != Some(issuer) {
                return Err(AuthError::Invalid(
                    "Token issuer (iss) is not accepted".into(),
                ));
            }
        }
        if let Some(audience) = expected.audience {
            let names_us = match self.claims.get("aud") {
                Some(Value::String(aud)) => aud == audience,
                Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(audience)),
                _ => false,
            };
            if !names_us {
                return Err(AuthError::Invalid(
                    "Token audience (aud) does not name this service".into(),
                ));
            }
        }
        let subject = self
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Invalid("Token has no subject (sub)".into()))?;
        UserId::parse(subject).map_err(|err| {
            AuthError::Invalid(format!("Token subject (sub) is not a user id: {err}"))
        })
    }

    /// A NumericDate claim (seconds, possibly fractional); another type is malformed.
    fn number(&self, claim: &str) -> Result<Option<f64>, AuthError> {
        match self.claims.get(claim) {
            None => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| malformed(&format!("its {claim} is not a number"))),
        }
    }
}

fn decode_json<T: DeserializeOwned>(part: &str, name: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(&format!("its {name} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| malformed(&format!("its {name} is not JSON")))
}

fn malformed(why: &str) -> AuthError {
    AuthError::Invalid(format!("Token is malformed: {why}"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn encode(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    fn compact(header: Value, claims: Value) -> String {
        format!("{}.{}.c2ln", encode(&header), encode(&claims))
    }

    const NOW: f64 = 1_800_000_000.0;

    fn valid_claims() -> Value {
        json!({"sub": "alice", "exp": NOW + 600.0, "nbf": NOW - 10.0, "iss": "idp", "aud": ["app", "other"]})
    }

    fn user_of(claims: Value, expected: Expected<'_>) -> Result<UserId, AuthError> {
        let token = compact(json!({"alg": "HS256"}), claims);
        Token::parse(&token)?.user(&expected, NOW)
    }

    #[test]
    fn a_valid_token_names_its_subject_and_exposes_what_its_signature_covers() {
        let token = compact(json!({"alg": "ES256", "kid": "k1"}), valid_claims());
        let parsed = Token::parse(&token).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Es256);
        assert_eq!(parsed.key_id.as_deref(), Some("k1"));
        assert_eq!(parsed.signature, b"sig");
        assert_eq!(parsed.signing_input, token.rsplit_once('.').unwrap().0);
        let expected = Expected {
            issuer: Some("idp"),
            audience: Some("app"),
        };
        assert_eq!(parsed.user(&expected, NOW).unwrap().as_str(), "alice");
    }

    #[test]
    fn none_and_every_other_algorithm_but_the_three_are_refused() {
        for alg in [
            "none", "None", "HS384", "RS512", "PS256", "EdDSA", "hs256", "",
        ] {
            let token = compact(json!({"alg": alg}), valid_claims());
            assert!(
                matches!(Token::parse(&token), Err(AuthError::Invalid(_))),
                "{alg} was accepted"
            );
        }
        let unsigned = format!(
            "{}.{}.",
            encode(&json!({"alg": "none"})),
            encode(&valid_claims())
        );
        assert!(Token::parse(&unsigned).is_err());
    }

    #[test]
    fn critical_extensions_are_refused() {
        let token = compact(
            json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
            valid_claims(),
        );
        assert!(Token::parse(&token).is_err());
    }

    #[test]
    fn expiry_and_not_before_hold_within_the_leeway_only() {
        let at = |exp: f64, nbf: f64| {
            user_of(
                json!({"sub": "alice", "exp": exp, "nbf": nbf}),
                Expected::default(),
            )
        };
        assert!(
            at(NOW - LEEWAY_SECONDS + 1.0, NOW).is_ok(),
            "just expired, within leeway"
        );
        assert!(at(NOW - LEEWAY_SECONDS - 1.0, NOW).is_err(), "expired");
        assert!(
            at(NOW + 600.0, NOW + LEEWAY_SECONDS - 1.0).is_ok(),
            "nbf within leeway"
        );
        assert!(
            at(NOW + 600.0, NOW + LEEWAY_SECONDS + 1.0).is_err(),
            "not yet valid"
        );
        assert!(
            user_of(json!({"sub": "alice"}), Expected::default()).is_err(),
            "a token without exp never expires: refused"
        );
        assert!(user_of(json!({"sub": "alice", "exp": "soon"}), Expected::default()).is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_only_when_configured() {
        let other = json!({"sub": "alice", "exp": NOW + 60.0, "iss": "evil", "aud": "elsewhere"});
        assert!(user_of(other.clone(), Expected::default()).is_ok());
        for expected in [
            Expected {
                issuer: Some("idp"),
                audience: None,
            },
            Expected {
                issuer: None,
                audience: Some("app"),
            },
        ] {
            assert!(user_of(other.clone(), expected).is_err(), "{expected:?}");
            assert!(user_of(valid_claims(), expected).is_ok(), "{expected:?}");
        }
        let single = json!({"sub": "alice", "exp": NOW + 60.0, "aud": "app"});
        let expected = Expected {
            issuer: None,
            audience: Some("app"),
        };
        assert!(user_of(single, expected).is_ok());
    }

    #[test]
    fn the_subject_must_be_a_user_id_as_sent() {
        for sub in [
            json!("a b"),
            json!(""),
            json!("x".repeat(65)),
            json!(42),
            json!(null),
        ] {
            let claims = json!({"sub": sub, "exp": NOW + 60.0});
            assert!(user_of(claims, Expected::default()).is_err(), "{sub}");
        }
    }

    proptest! {
        /// Whatever arrives as a token, parsing answers (never panics), and only a token of
        /// three dot-separated parts with an accepted algorithm gets through.
        #[test]
        fn arbitrary_input_is_answered_without_panicking(input in ".{0,300}") {
            if let Ok(token) = Token::parse(&input) {
                prop_assert_eq!(input.matches('.').count(), 2);
                prop_assert!(input.starts_with(token.signing_input));
            }
        }

        /// A well-formed header over arbitrary payload bytes parses only when the payload is a
        /// JSON object, and its claims then decide: no input makes `user` panic.
        #[test]
        fn arbitrary_payloads_are_refused_unless_json_claims(
            alg in prop::sample::select(vec!["HS256", "RS256", "ES256", "none", "HS512"]),
            payload in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let token = format!(
                "{}.{}.c2ln",
                encode(&json!({"alg": alg})),
                URL_SAFE_NO_PAD.encode(&payload)
            );
            match Token::parse(&token) {
                Ok(parsed) => {
                    prop_assert!(["HS256", "RS256", "ES256"].contains(&alg));
                    prop_assert!(serde_json::from_slice::<Map<String, Value>>(&payload).is_ok());
                    let _ = parsed.user(&Expected::default(), NOW);
                }
                Err(AuthError::Invalid(_)) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
