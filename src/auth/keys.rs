//! The keys a token may be signed with, and the one rule that picks them.
//!
//! A token's algorithm decides the kind of key: HS256 only ever uses the shared secret, RS256
//! only RSA keys and ES256 only P-256 keys of the JWK set (RFC 7517). So no key is used with an
//! algorithm of another kind, which is what "algorithm confusion" attacks need (an RS256 public
//! key, which anyone may read, used as an HS256 secret). Pure: tested natively.

use serde::Deserialize;
use serde_json::json;

use super::token::Algorithm;
use super::AuthError;

/// One public key of a JWK set; other members (`key_ops`, `x5c`, ...) are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl Jwk {
    /// Whether this key may verify a token of `algorithm`: the right kind, curve and
    /// parameters, and no `alg` or `use` that says otherwise.
    fn fits(&self, algorithm: Algorithm) -> bool {
        let usable = self
            .alg
            .as_deref()
            .is_none_or(|alg| alg == algorithm.name())
            && self.usage.as_deref().is_none_or(|usage| usage == "sig");
        usable
            && match algorithm {
                Algorithm::Hs256 => false,
                Algorithm::Rs256 => self.kty == "RSA" && self.n.is_some() && self.e.is_some(),
                Algorithm::Es256 => {
                    self.kty == "EC"
                        && self.crv.as_deref() == Some("P-256")
                        && self.x.is_some()
                        && self.y.is_some()
                }
            }
    }

    /// The public key alone, as WebCrypto's `importKey("jwk", ...)` takes it: private members a
    /// careless set might carry are left out, so the key imports for verifying only.
    pub fn public_jwk(&self) -> serde_json::Value {
        match self.kty.as_str() {
            "RSA" => json!({"kty": "RSA", "n": self.n, "e": self.e}),
            _ => json!({"kty": "EC", "crv": self.crv, "x": self.x, "y": self.y}),
        }
    }
}

/// A JWK set: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|err| format!("not a JWK set: {err}"))
    }

    /// Both sets' keys.
    pub fn merged(&self, other: &KeySet) -> KeySet {
        KeySet {
            keys: self.keys.iter().chain(&other.keys).cloned().collect(),
        }
    }
}

/// A key that may have signed a token.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// The HS256 secret.
    Secret(&'a [u8]),
    /// A public key of the JWK set.
    Public(&'a Jwk),
}

/// The keys that may have signed a token of `algorithm` naming `key_id`. `UnknownKey` when
/// the token names a key the set does not hold (the set may have rotated: fetch it again).
pub fn candidates<'a>(
    algorithm: Algorithm,
    key_id: Option<&str>,
    secret: Option<&'a str>,
    set: &'a KeySet,
) -> Result<Vec<Key<'a>>, AuthError> {
    if algorithm == Algorithm::Hs256 {
        return secret
            .map(|secret| vec![Key::Secret(secret.as_bytes())])
            .ok_or_else(|| not_accepted(algorithm));
    }
    let named: Vec<&Jwk> = match key_id {
        Some(kid) => set
            .keys
            .iter()
            .filter(|key| key.kid.as_deref() == Some(kid))
            .collect(),
        None => set.keys.iter().collect(),
    };
    if key_id.is_some() && named.is_empty() {
        return Err(AuthError::UnknownKey);
    }
    let fitting: Vec<Key<'a>> = named
        .into_iter()
        .filter(|key| key.fits(algorithm))
        .map(Key::Public)
        .collect();
    if fitting.is_empty() {
        return Err(match key_id {
            Some(kid) => AuthError::Invalid(format!(
                "Token key {kid:?} is not a key for {}",
                algorithm.name()
            )),
            None => not_accepted(algorithm),
        });
    }
    Ok(fitting)
}

fn not_accepted(algorithm: Algorithm) -> AuthError {
    AuthError::Invalid(format!("{} tokens are not accepted here", algorithm.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> KeySet {
        KeySet::parse(
            r#"{"keys": [
                {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
                {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
                {"kty": "EC", "kid": "ec1", "crv": "P-256", "x": "AA", "y": "AA", "d": "secret"},
                {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
                {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}
            ]}"#,
        )
        .unwrap()
    }

    fn kids(keys: &[Key<'_>]) -> Vec<String> {
        keys.iter()
            .map(|key| match key {
                Key::Secret(_) => "secret".to_owned(),
                Key::Public(jwk) => jwk.kid.clone().unwrap_or_default(),
            })
            .collect()
    }

    #[test]
    fn each_algorithm_uses_only_keys_of_its_own_kind() {
        let set = set();
        let pick = |alg, kid| candidates(alg, kid, Some("hmac"), &set).map(|keys| kids(&keys));
        assert_eq!(pick(Algorithm::Hs256, None).unwrap(), ["secret"]);
        // A token naming an RSA or oct key of the set still gets the secret only.
        assert_eq!(pick(Algorithm::Hs256, Some("rsa1")).unwrap(), ["secret"]);
        assert_eq!(pick(Algorithm::Rs256, None).unwrap(), ["rsa1"]);
        assert_eq!(pick(Algorithm::Es256, None).unwrap(), ["ec1"]);
        assert_eq!(pick(Algorithm::Rs256, Some("rsa1")).unwrap(), ["rsa1"]);
        for (alg, kid) in [
            (Algorithm::Es256, "rsa1"),
            (Algorithm::Rs256, "ec1"),
            (Algorithm::Rs256, "enc"),
            (Algorithm::Es256, "p384"),
            (Algorithm::Rs256, "sym"),
        ] {
            assert!(
                matches!(pick(alg, Some(kid)), Err(AuthError::Invalid(_))),
                "{alg:?} with {kid}"
            );
        }
    }

    #[test]
    fn hs256_without_a_secret_is_refused_even_with_a_key_set() {
        let set = set();
        assert!(matches!(
            candidates(Algorithm::Hs256, Some("rsa1"), None, &set),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn an_unknown_key_id_asks_for_the_set_again() {
        let set = set();
        assert!(matches!(
            candidates(Algorithm::Rs256, Some("rotated"), None, &set),
            Err(AuthError::UnknownKey)
        ));
        assert!(matches!(
            candidates(Algorithm::Rs256, None, None, &KeySet::default()),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn private_members_never_reach_webcrypto() {
        let set = set();
        let keys = candidates(Algorithm::Es256, Some("ec1"), None, &set).unwrap();
        let Key::Public(jwk) = keys[0] else {
            panic!("a public key")
        };
        assert!(jwk.public_jwk().get("d").is_none());
        assert_eq!(jwk.public_jwk()["crv"], "P-256");
    }
}
