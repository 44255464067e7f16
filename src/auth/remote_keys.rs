//! The JWK set behind `AUTH_JWKS_URL`, cached by the isolate.
//!
//! A cached set serves for [`MAX_AGE_MS`]. A token naming a key the set lacks (the issuer
//! rotated its keys) fetches it again at once, but at most once per [`REFETCH_INTERVAL_MS`]:
//! tokens with made-up key ids must not turn every request into a fetch. When a fetch fails,
//! a set fetched before keeps serving.

use std::cell::RefCell;
use std::rc::Rc;

use super::keys::KeySet;
use super::AuthError;

/// How long a fetched set is used without asking again.
const MAX_AGE_MS: f64 = 10.0 * 60.0 * 1000.0;
/// The least time between two fetches caused by unknown key ids.
const REFETCH_INTERVAL_MS: f64 = 30.0 * 1000.0;

struct Cached {
    url: String,
    keys: Rc<KeySet>,
    fetched_ms: f64,
    /// When a token with an unknown key id last made us fetch (`None`: never).
    refetched_ms: Option<f64>,
}

thread_local! {
    // Only touched between awaits, never borrowed across one.
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// The set at `url`: the cached one while it is fresh, else fetched.
pub async fn key_set(url: &str) -> Result<Rc<KeySet>, AuthError> {
    let now = now_ms();
    let fresh = CACHE.with_borrow(|cache| {
        cache
            .as_ref()
            .filter(|cached| cached.url == url && now - cached.fetched_ms < MAX_AGE_MS)
            .map(|cached| cached.keys.clone())
    });
    match fresh {
        Some(keys) => Ok(keys),
        None => fetch(url, false).await,
    }
}

/// The set at `url` fetched again because a token named a key it lacks; `None` when the last
/// such fetch was too recent.
pub async fn refetched_key_set(url: &str) -> Result<Option<Rc<KeySet>>, AuthError> {
    let now = now_ms();
    let too_soon = CACHE.with_borrow(|cache| {
        cache.as_ref().is_some_and(|cached| {
            cached.url == url
                && cached
                    .refetched_ms
                    .is_some_and(|at| now - at < REFETCH_INTERVAL_MS)
        })
    });
    if too_soon {
        return Ok(None);
    }
    fetch(url, true).await.map(Some)
}

async fn fetch(url: &str, for_unknown_key: bool) -> Result<Rc<KeySet>, AuthError> {
    let started = now_ms();
    match download(url).await {
        Ok(keys) => {
            let keys = Rc::new(keys);
            CACHE.with_borrow_mut(|cache| {
                let previous_refetch = cache
                    .as_ref()
                    .filter(|cached| cached.url == url)
                    .and_then(|cached| cached.refetched_ms);
                *cache = Some(Cached {
                    url: url.to_owned(),
                    keys: keys.clone(),
                    fetched_ms: started,
                    refetched_ms: if for_unknown_key {
                        Some(started)
                    } else {
                        previous_refetch
                    },
                });
            });
            Ok(keys)
        }
        Err(why) => {
            let stale = CACHE.with_borrow(|cache| {
                cache
                    .as_ref()
                    .filter(|cached| cached.url == url)
                    .map(|cached| cached.keys.clone())
            });
            crate::log::error(
                serde_json::json!({"event": "jwks_fetch_failed", "detail": why, "using_cached": stale.is_some()}),
            );
            stale.ok_or(AuthError::KeysUnavailable(why))
        }
    }
}

async fn download(url: &str) -> Result<KeySet, String> {
    let url =
        worker::Url::parse(url).map_err(|err| format!("AUTH_JWKS_URL is not a URL: {err}"))?;
    let mut response = worker::Fetch::Url(url)
        .send()
        .await
        .map_err(|err| format!("fetching the JWK set failed: {err}"))?;
    if response.status_code() != 200 {
        return Err(format!(
            "the JWK set URL answered {}",
            response.status_code()
        ));
    }
    let body = response
        .text()
        .await
        .map_err(|err| format!("reading the JWK set failed: {err}"))?;
    KeySet::parse(&body)
}

fn now_ms() -> f64 {
    worker::Date::now().as_millis() as f64
}
