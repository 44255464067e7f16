//! A file a handler names, as the HTTP response: streamed from R2 ([`crate::bucket::media`]),
//! with `Range` support (206, or 416 when unsatisfiable), the type [`files::served_type`]
//! decides whatever type it was stored with, and headers that keep it from running as a page.

use worker::{Bucket, Headers, Response, ResponseBuilder};

use crate::bucket::media;
use crate::error::ApiError;
use crate::handlers::{files, ApiResponse, FileResponse};
use crate::http;
use crate::identity::UserId;

/// The HTTP response for a handler's answer: JSON, or the file it names.
pub async fn respond(
    bucket: &Bucket,
    user: &UserId,
    response: ApiResponse,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    match response {
        ApiResponse::Json(body) => Ok(http::json(200, &body)),
        ApiResponse::File(file) => serve(bucket, user, &file, range).await,
    }
}

/// A parsed `Range: bytes=...` header, resolved against the object's size: `(start, end)`
/// inclusive; `Err(())` when it cannot be satisfied; `Ok(None)` when absent or not understood.
fn byte_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    // Several ranges in one request: serve the whole object, as a server may.
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => return Err(()),
            Ok(n) => (size.saturating_sub(n), size.saturating_sub(1)),
            Err(_) => return Ok(None),
        },
        (start, "") => match start.parse::<u64>() {
            Ok(start) => (start, size.saturating_sub(1)),
            Err(_) => return Ok(None),
        },
        (start, end) => match (start.parse::<u64>(), end.parse::<u64>()) {
            (Ok(start), Ok(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
            _ => return Ok(None),
        },
    };
    if size == 0 || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The headers of a file response. One the runtime refuses (a file name it cannot carry) is a
/// bug of ours, answered 500 rather than dropped.
fn to_headers(pairs: &[(&str, String)]) -> Result<Headers, ApiError> {
    let headers = Headers::new();
    for (name, value) in pairs {
        headers
            .set(name, value)
            .map_err(|err| ApiError::Internal(format!("The header {name}: {err}")))?;
    }
    Ok(headers)
}

/// The policy of every file response: nothing may load, run or navigate.
const FILE_CSP: &str = "default-src 'none'; sandbox";

/// Streams `{user}/{file.key}`, honouring `Range`.
async fn serve(
    bucket: &Bucket,
    user: &UserId,
    file: &FileResponse,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::NotFound(file.missing_detail.clone());
    let stored = media::head(bucket, user, &file.key)
        .await?
        .ok_or_else(missing)?;
    let size = stored.size;
    let served = files::served_type(&file.key, stored.content_type.as_deref());
    let mut headers = vec![
        ("Content-Type", served.content_type.to_owned()),
        ("Accept-Ranges", "bytes".to_owned()),
        // Files come from the API's origin: never sniffed into a page, and were a browser to
        // show one as a document, it runs no script, in an opaque origin of its own.
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("Content-Security-Policy", FILE_CSP.to_owned()),
    ];
    let attachment_name = file.attachment_name.clone().or_else(|| {
        served
            .download
            .then(|| file.key.rsplit('/').next().unwrap_or_default().to_owned())
    });
    if let Some(name) = attachment_name {
        // A legacy file's name may hold a quote: it must not end the quoted string early.
        let name = name.replace(['"', '\\'], "_");
        let disposition = format!("attachment; filename=\"{name}\"");
        headers.push(("Content-Disposition", disposition));
    }
    if file.no_cache {
        headers.push(("Cache-Control", "no-cache".to_owned()));
    }

    let (status, range) = match byte_range(range, size) {
        Err(()) => {
            headers.push(("Content-Range", format!("bytes */{size}")));
            return Ok(ResponseBuilder::new()
                .with_status(416)
                .with_headers(to_headers(&headers)?)
                .empty());
        }
        Ok(Some((start, end))) => {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
            headers.push(("Content-Length", (end - start + 1).to_string()));
            (206, Some((start, end - start + 1)))
        }
        Ok(None) => {
            headers.push(("Content-Length", size.to_string()));
            (200, None)
        }
    };
    let body = media::read(bucket, user, &file.key, range)
        .await?
        .ok_or_else(missing)?;
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_headers(to_headers(&headers)?)
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(byte_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(byte_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(byte_range(Some("items=1-2"), 100), Ok(None));
    }
}
