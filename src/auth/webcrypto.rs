//! Signature checks by the runtime's WebCrypto (`crypto.subtle`), so that no RSA or elliptic
//! curve code is compiled into the Worker. Keys are imported for `verify` only.

use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{self, Array, Object, Uint8Array, JSON};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{CryptoKey, SubtleCrypto, WorkerGlobalScope};

use super::keys::Key;
use super::token::Algorithm;
use super::AuthError;

/// Whether `signature` is `key`'s signature of `signed` under `algorithm`. A key the runtime
/// cannot import is a configuration error, not the client's.
pub async fn verify(
    algorithm: Algorithm,
    key: Key<'_>,
    signed: &[u8],
    signature: &[u8],
) -> Result<bool, AuthError> {
    // ECDSA signatures in a JWS are r || s, 32 bytes each: WebCrypto's own format.
    if algorithm == Algorithm::Es256 && signature.len() != 64 {
        return Ok(false);
    }
    let subtle = subtle()?;
    let (import, verify) = match algorithm {
        Algorithm::Hs256 => (r#"{"name":"HMAC","hash":"SHA-256"}"#, r#"{"name":"HMAC"}"#),
        Algorithm::Rs256 => (
            r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
            r#"{"name":"RSASSA-PKCS1-v1_5"}"#,
        ),
        Algorithm::Es256 => (
            r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
            r#"{"name":"ECDSA","hash":"SHA-256"}"#,
        ),
    };
    let usages = Array::of1(&JsValue::from_str("verify"));
    let imported = match key {
        Key::Secret(secret) => subtle.import_key_with_object(
            "raw",
            &Uint8Array::from(secret),
            &object(import)?,
            false,
            &usages,
        ),
        Key::Public(jwk) => subtle.import_key_with_object(
            "jwk",
            &object(&jwk.public_jwk().to_string())?,
            &object(import)?,
            false,
            &usages,
        ),
    };
    let crypto_key: CryptoKey = settle(imported)
        .await
        .map_err(|err| AuthError::NotConfigured(format!("a signing key does not import: {err}")))?
        .unchecked_into();
    let verified = settle(subtle.verify_with_object_and_u8_array_and_u8_array(
        &object(verify)?,
        &crypto_key,
        signature,
        signed,
    ))
    .await
    .map_err(|err| AuthError::NotConfigured(format!("signature check failed: {err}")))?;
    Ok(verified.as_bool() == Some(true))
}

fn subtle() -> Result<SubtleCrypto, AuthError> {
    js_sys::global()
        .unchecked_into::<WorkerGlobalScope>()
        .crypto()
        .map(|crypto| crypto.subtle())
        .map_err(|err| AuthError::NotConfigured(format!("no WebCrypto: {err:?}")))
}

fn object(json: &str) -> Result<Object, AuthError> {
    JSON::parse(json)
        .map(JsCast::unchecked_into)
        .map_err(|err| AuthError::NotConfigured(format!("bad WebCrypto parameters: {err:?}")))
}

async fn settle(promise: Result<js_sys::Promise, JsValue>) -> Result<JsValue, String> {
    match promise {
        Ok(promise) => JsFuture::from(promise).await,
        Err(err) => Err(err),
    }
    .map_err(|err| format!("{err:?}"))
}
