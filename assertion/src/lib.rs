//! The assertion a forwarded request carries to the processing service (docs/processing.md §3)
//! instead of any credential: "this request, `METHOD target`, is user U's, until time T", signed
//! with a key derived from `PROCESSING_TOKEN` for this purpose alone.
//!
//! Why not the token itself: the token lets its holder record results and read files for any
//! user (`/processing/*`), and a forwarded request's headers end up in the service's logs and
//! proxies. An assertion names one user and one request and expires within
//! [`MAX_LIFETIME_SECONDS`]; replayed against the Worker it opens nothing.
//!
//! Wire form, sent as [`HEADER`]: `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`,
//! where payload is `v1 \n expires \n user \n METHOD \n target` (target: the path and query as
//! forwarded) and key is `HMAC-SHA256(PROCESSING_TOKEN, "reel-ballers processing assertion v1")`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use constant_time_eq::constant_time_eq;
use sha2::{Digest, Sha256};

/// The header that carries the assertion.
pub const HEADER: &str = "X-Processing-Assertion";
/// How long an assertion holds: a forwarded request reaches the service at once.
pub const MAX_LIFETIME_SECONDS: u64 = 60;

const VERSION: &str = "v1";
const PURPOSE: &[u8] = b"reel-ballers processing assertion v1";

/// Why an assertion is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not of the wire form, or a field that does not parse.
    Malformed,
    /// The signature is not the key's.
    BadSignature,
    /// Past its expiry, or valid for longer than an assertion may be.
    Expired,
    /// Signed for another method or target than the request's.
    OtherRequest,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Malformed => "the assertion is malformed",
            Refused::BadSignature => "the assertion's signature does not verify",
            Refused::Expired => "the assertion has expired",
            Refused::OtherRequest => "the assertion is for another request",
        })
    }
}

impl std::error::Error for Refused {}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|byte| byte ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|byte| byte ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The signing key: the shared secret is never used on an assertion directly.
fn key(secret: &str) -> [u8; 32] {
    hmac_sha256(secret.as_bytes(), PURPOSE)
}

/// The assertion that `user` sent `method target`, valid until `now + MAX_LIFETIME_SECONDS`.
pub fn sign(secret: &str, user: &str, method: &str, target: &str, now: u64) -> String {
    let payload = format!(
        "{VERSION}\n{}\n{user}\n{method}\n{target}",
        now + MAX_LIFETIME_SECONDS
    );
    let mac = hmac_sha256(&key(secret), payload.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(mac)
    )
}

/// The user of a request `method target` that carries `assertion`, once it verifies, holds at
/// `now` and names exactly this request.
pub fn verify(
    secret: &str,
    assertion: &str,
    method: &str,
    target: &str,
    now: u64,
) -> Result<String, Refused> {
    let (payload, mac) = assertion.trim().split_once('.').ok_or(Refused::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Refused::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| Refused::Malformed)?;
    if !constant_time_eq(&mac, &hmac_sha256(&key(secret), &payload)) {
        return Err(Refused::BadSignature);
    }
    let payload = String::from_utf8(payload).map_err(|_| Refused::Malformed)?;
    let fields: Vec<&str> = payload.splitn(5, '\n').collect();
    let [VERSION, expires, user, signed_method, signed_target] = fields[..] else {
        return Err(Refused::Malformed);
    };
    let expires: u64 = expires.parse().map_err(|_| Refused::Malformed)?;
    if expires < now || expires > now + MAX_LIFETIME_SECONDS {
        return Err(Refused::Expired);
    }
    if signed_method != method || signed_target != target {
        return Err(Refused::OtherRequest);
    }
    Ok(user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "the processing token";
    const NOW: u64 = 1_800_000_000;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block is hashed first.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(mac[..4], [0x60, 0xe4, 0x31, 0x59]);
    }

    #[test]
    fn an_assertion_names_its_user_for_its_own_request_only() {
        let target = "/api/export/upscale?quality=high";
        let assertion = sign(SECRET, "alice", "POST", target, NOW);
        assert!(!assertion.contains(SECRET));
        assert_eq!(
            verify(SECRET, &assertion, "POST", target, NOW + 59),
            Ok("alice".into())
        );
        assert_eq!(
            verify(SECRET, &assertion, "GET", target, NOW),
            Err(Refused::OtherRequest)
        );
        assert_eq!(
            verify(SECRET, &assertion, "POST", "/api/export/upscale", NOW),
            Err(Refused::OtherRequest)
        );
        assert_eq!(
            verify(SECRET, &assertion, "POST", target, NOW + 61),
            Err(Refused::Expired)
        );
        assert_eq!(
            verify("another secret", &assertion, "POST", target, NOW),
            Err(Refused::BadSignature)
        );
    }

    #[test]
    fn a_changed_or_malformed_assertion_is_refused() {
        let assertion = sign(SECRET, "alice", "GET", "/ws/export/1", NOW);
        let (payload, mac) = assertion.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(format!("v1\n{}\nbob\nGET\n/ws/export/1", NOW + 60));
        assert_eq!(
            verify(
                SECRET,
                &format!("{forged}.{mac}"),
                "GET",
                "/ws/export/1",
                NOW
            ),
            Err(Refused::BadSignature)
        );
        // Signed correctly, but valid for longer than an assertion may be.
        let long = format!("v1\n{}\nbob\nGET\n/ws/export/1", NOW + 3600);
        let long = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&long),
            URL_SAFE_NO_PAD.encode(hmac_sha256(&key(SECRET), long.as_bytes()))
        );
        assert_eq!(
            verify(SECRET, &long, "GET", "/ws/export/1", NOW),
            Err(Refused::Expired)
        );
        for malformed in ["", "abc", payload, "a.b.c", &format!("{payload}.")] {
            assert!(
                verify(SECRET, malformed, "GET", "/ws/export/1", NOW).is_err(),
                "{malformed:?}"
            );
        }
    }
}
