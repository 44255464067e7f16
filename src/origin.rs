//! The origin policy: which web pages may act with a user's credentials, and read the answers.
//!
//! A browser attaches the user's cookie to every request a page sends, whatever the page's
//! origin, and so does anything that signs users in from a cookie in front of the Worker
//! (Cloudflare Access turns its cookie into the `AUTH_HEADER` assertion; a proxy in `header`
//! mode sets `X-User-ID`). So a request that can change data, any method but GET, HEAD and
//! OPTIONS, and every WebSocket upgrade (a GET after which the page talks as the user), is
//! refused with 403 unless the browser says it comes from the Worker's own origin or one of
//! `ALLOWED_ORIGINS`. The rules are those of Go's `net/http.CrossOriginProtection`:
//! 1. `Sec-Fetch-Site: same-origin` or `none` (the user's own navigation) passes; any other
//!    value (`same-site`, `cross-site`) passes only with an allowed `Origin`.
//! 2. Without `Sec-Fetch-Site` (older browsers), `Origin` must be the Worker's own or allowed;
//!    `null` (a sandboxed page, a `data:` URL) is neither.
//! 3. With neither header the sender is not a browser (curl, a native app): no page chose to
//!    send it, and nothing ambient rides on it, so it passes.
//!
//! The check runs for every credential, not only cookies, before the user is authenticated and
//! before the body is read. GETs are not checked: no route changes data on a GET, and a page of
//! another origin cannot read their answers (below).
//!
//! CORS: only an allowed origin may read answers. Its preflight is answered with the methods and
//! headers the API uses, and every answer to it carries `Access-Control-Allow-Origin` naming it,
//! with credentials. Any other origin's preflight is 403 and its answers carry no CORS header, so
//! the browser keeps them from the page.

use std::fmt;

use worker::{Headers, Method, Request, Response, ResponseBuilder};

use crate::config::Config;
use crate::error::ApiError;
use crate::headers;

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE_SECONDS: &str = "600";
/// The methods the API's routes use (docs/api.md).
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// Response headers a page of an allowed origin may read besides the simple ones.
const EXPOSED_HEADERS: &str =
    "Content-Disposition, Content-Range, Retry-After, X-Data-Path, X-DB-Version, X-Request-Id";

/// A request a page of another origin sent to change data with the user's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSite {
    /// The page's origin as the browser named it (`Origin`), when it did.
    pub origin: Option<String>,
}

impl fmt::Display for CrossSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(
                f,
                "Cross-site request refused: origin {origin} may not change this user's data (ALLOWED_ORIGINS)"
            ),
            None => write!(
                f,
                "Cross-site request refused: a page of another site may not change this user's data"
            ),
        }
    }
}

impl From<CrossSite> for ApiError {
    fn from(err: CrossSite) -> Self {
        ApiError::Forbidden(err.to_string())
    }
}

/// What the browser said about where a request comes from, and what the request does.
#[derive(Debug, Clone, Copy)]
struct Sent<'a> {
    /// Whether the request can change data: an unsafe method or a WebSocket upgrade.
    changes_data: bool,
    sec_fetch_site: Option<&'a str>,
    origin: Option<&'a str>,
}

/// The origins whose pages act as the Worker's own: its own, and `ALLOWED_ORIGINS`.
struct Origins<'a> {
    own: String,
    allowed: &'a [String],
}

impl Origins<'_> {
    fn of<'a>(req: &Request, config: &'a Config) -> Origins<'a> {
        let own = req
            .url()
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default();
        Origins {
            own,
            allowed: &config.allowed_origins,
        }
    }

    /// An origin listed in `ALLOWED_ORIGINS` (the Worker's own needs no CORS).
    fn listed(&self, origin: &str) -> bool {
        self.allowed
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }

    fn trusted(&self, origin: &str) -> bool {
        origin.eq_ignore_ascii_case(&self.own) || self.listed(origin)
    }

    /// The verdict of the module's rules on one request.
    fn judge(&self, sent: Sent<'_>) -> Result<(), CrossSite> {
        if !sent.changes_data {
            return Ok(());
        }
        let refused = || CrossSite {
            origin: sent.origin.map(str::to_owned),
        };
        let origin_trusted = sent.origin.is_some_and(|origin| self.trusted(origin));
        match sent.sec_fetch_site.map(str::to_ascii_lowercase).as_deref() {
            Some("same-origin" | "none") => Ok(()),
            Some(_) if origin_trusted => Ok(()),
            Some(_) => Err(refused()),
            None if sent.origin.is_none() || origin_trusted => Ok(()),
            None => Err(refused()),
        }
    }
}

fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}

/// Refuses a request that would change data for a page of another origin (the rules above).
pub fn check(req: &Request, config: &Config) -> Result<(), CrossSite> {
    let headers = req.headers();
    let upgrade = header(headers, "Upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let safe = matches!(req.method(), Method::Get | Method::Head | Method::Options);
    let (sec_fetch_site, origin) = (header(headers, "Sec-Fetch-Site"), header(headers, "Origin"));
    Origins::of(req, config).judge(Sent {
        changes_data: upgrade || !safe,
        sec_fetch_site: sec_fetch_site.as_deref(),
        origin: origin.as_deref(),
    })
}

/// The answer to a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`): 204 with the API's methods and headers for an allowed
/// origin, 403 for any other. `None` for any other request.
pub fn preflight(req: &Request, config: &Config) -> Option<Result<Response, CrossSite>> {
    let headers = req.headers();
    if req.method() != Method::Options || header(headers, "Access-Control-Request-Method").is_none()
    {
        return None;
    }
    let origin = header(headers, "Origin")?;
    if !Origins::of(req, config).trusted(&origin) {
        return Some(Err(CrossSite {
            origin: Some(origin),
        }));
    }
    let mut allowed_headers = format!("Content-Type, Authorization, Range, {}", headers::USER_ID);
    if let Some(name) = &config.auth.header {
        allowed_headers = format!("{allowed_headers}, {name}");
    }
    let answer: Headers = [
        ("Access-Control-Allow-Methods", ALLOWED_METHODS),
        ("Access-Control-Allow-Headers", allowed_headers.as_str()),
        ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_SECONDS),
    ]
    .iter()
    .collect();
    let response = ResponseBuilder::new()
        .with_status(204)
        .with_headers(answer)
        .empty();
    Some(Ok(readable_by(response, &origin)))
}

/// The origin of a request whose answer its page may read: one of `ALLOWED_ORIGINS`.
pub fn reader(req: &Request, config: &Config) -> Option<String> {
    let origin = header(req.headers(), "Origin")?;
    Origins::of(req, config).listed(&origin).then_some(origin)
}

/// Lets the page of `reader` ([`reader`]) read `response`, with credentials.
pub fn let_read(response: Response, reader: Option<&str>) -> Response {
    match reader {
        // A switched protocol has no body to read; its headers are the service's.
        Some(origin) if response.status_code() != 101 => readable_by(response, origin),
        _ => response,
    }
}

fn readable_by(response: Response, origin: &str) -> Response {
    // A fetched response's headers are immutable: answer with a copy.
    let headers: Headers = response.headers().entries().collect();
    for (name, value) in [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", EXPOSED_HEADERS),
    ] {
        // A Headers object of our own: setting a valid header cannot fail.
        let _ = headers.set(name, value);
    }
    let _ = headers.append("Vary", "Origin");
    response.with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "https://api.example.com";

    fn judge(allowed: &[&str], sent: Sent<'_>) -> Result<(), CrossSite> {
        let allowed: Vec<String> = allowed.iter().map(|o| o.to_string()).collect();
        Origins {
            own: OWN.to_owned(),
            allowed: &allowed,
        }
        .judge(sent)
    }

    fn write<'a>(sec_fetch_site: Option<&'a str>, origin: Option<&'a str>) -> Sent<'a> {
        Sent {
            changes_data: true,
            sec_fetch_site,
            origin,
        }
    }

    #[test]
    fn a_browser_that_says_same_origin_or_none_writes() {
        for site in ["same-origin", "none", "Same-Origin"] {
            assert!(judge(&[], write(Some(site), Some("https://evil.test"))).is_ok());
            assert!(judge(&[], write(Some(site), None)).is_ok());
        }
    }

    #[test]
    fn another_site_writes_only_from_an_allowed_origin() {
        let app = "https://app.example.com";
        for site in ["cross-site", "same-site"] {
            assert!(judge(&[app], write(Some(site), Some(app))).is_ok());
            assert!(judge(&[app], write(Some(site), Some("https://evil.test"))).is_err());
            assert!(judge(&[app], write(Some(site), None)).is_err());
            assert!(judge(&[app], write(Some(site), Some("null"))).is_err());
        }
    }

    #[test]
    fn without_sec_fetch_site_the_origin_decides_and_no_origin_is_no_browser() {
        assert!(judge(&[], write(None, Some(OWN))).is_ok());
        assert!(judge(
            &["https://app.example.com"],
            write(None, Some("https://app.example.com"))
        )
        .is_ok());
        assert!(judge(&[], write(None, Some("https://evil.test"))).is_err());
        assert!(judge(&[], write(None, Some("null"))).is_err());
        assert!(judge(&[], write(None, None)).is_ok());
    }

    #[test]
    fn reads_are_not_checked() {
        let read = Sent {
            changes_data: false,
            sec_fetch_site: Some("cross-site"),
            origin: Some("https://evil.test"),
        };
        assert!(judge(&[], read).is_ok());
    }

    #[test]
    fn a_refusal_is_403_and_names_the_origin() {
        let err: ApiError = CrossSite {
            origin: Some("https://evil.test".into()),
        }
        .into();
        assert_eq!(err.status(), 403);
        assert!(err.detail().contains("https://evil.test"), "{err}");
    }
}
