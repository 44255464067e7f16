//! The users' media files in R2 (keys: [`crate::bucket::layout`]): streaming them to the client
//! with `Range` support, storing uploads, and deleting what a request removed.
//!
//! Ordering keeps the database honest: uploads are stored before the request's database changes
//! commit, deletions happen after, so a committed row never names a file that is not there.

use wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{web_sys, R2Bucket};
use worker::{js_sys, Bucket, Headers, Range, Response, ResponseBuilder};

use crate::bucket::{layout, R2Error};
use crate::error::ApiError;
use crate::handlers::{files, ApiResponse, Deletion, FileResponse, Upload};
use crate::http;
use crate::identity::UserId;

/// Stores every upload under the user's folder.
pub async fn store(bucket: &Bucket, user: &UserId, uploads: &[Upload]) -> Result<(), R2Error> {
    for upload in uploads {
        let metadata = worker::HttpMetadata {
            content_type: Some(upload.content_type.clone()).filter(|ct| !ct.is_empty()),
            ..Default::default()
        };
        let key = layout::media_key(user, &upload.key);
        put(bucket, key.clone(), upload.bytes.to_js(), metadata)
            .await
            .map_err(R2Error::on(&key))?;
    }
    Ok(())
}

/// Stores a request body as the file `key` under the user's folder, streamed: its bytes never
/// enter wasm memory, whatever its size. The body must declare its length (R2 needs it).
pub async fn store_stream(
    bucket: &Bucket,
    user: &UserId,
    key: &str,
    body: web_sys::ReadableStream,
    content_type: Option<String>,
) -> Result<(), R2Error> {
    let metadata = worker::HttpMetadata {
        content_type: content_type.filter(|ct| !ct.is_empty()),
        ..Default::default()
    };
    let key = layout::media_key(user, key);
    put(bucket, key.clone(), body.into(), metadata)
        .await
        .map_err(R2Error::on(&key))
}

/// R2's own `put`, handed a `Blob` or a stream: workers-rs's `Bucket::put` takes only streams,
/// text or bytes, and bytes would be copied into wasm memory first.
async fn put(
    bucket: &Bucket,
    key: String,
    body: wasm_bindgen::JsValue,
    metadata: worker::HttpMetadata,
) -> worker::Result<()> {
    let options = js_sys::Object::new();
    js_sys::Reflect::set(
        &options,
        &"httpMetadata".into(),
        &js_sys::Object::from(metadata),
    )?;
    // workers-rs's `Bucket` wraps the binding itself.
    let bucket: &R2Bucket = bucket.as_ref().unchecked_ref();
    JsFuture::from(bucket.put(key, body, options.into())?).await?;
    Ok(())
}

/// Deletes what a committed request removed. Failures only leave orphan files, so they are
/// logged rather than failing a request whose data change already happened.
pub async fn delete(bucket: &Bucket, user: &UserId, deletions: &[Deletion]) {
    for deletion in deletions {
        let result = match deletion {
            Deletion::Object(key) => bucket.delete(layout::media_key(user, key)).await,
            Deletion::AllMedia => delete_all_media(bucket, user).await,
        };
        if let Err(err) = result {
            worker::console_warn!("Could not delete {deletion:?} of user {user}: {err}");
        }
    }
}

/// Every object under the user's folder except the database and its backups.
async fn delete_all_media(bucket: &Bucket, user: &UserId) -> worker::Result<()> {
    let mut cursor = None;
    loop {
        let mut list = bucket.list().prefix(layout::user_prefix(user));
        if let Some(cursor) = cursor.take() {
            list = list.cursor(cursor);
        }
        let page = list.execute().await?;
        let doomed: Vec<String> = page
            .objects()
            .iter()
            .map(|object| object.key())
            .filter(|key| layout::is_media(user, key))
            .collect();
        if !doomed.is_empty() {
            bucket.delete_multiple(doomed).await?;
        }
        match page.cursor().filter(|_| page.truncated()) {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

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

/// Streams `{user}/{file.key}`, honouring `Range` (206, or 416 when unsatisfiable), with the
/// type [`files::served_type`] decides, whatever type it was stored with.
async fn serve(
    bucket: &Bucket,
    user: &UserId,
    file: &FileResponse,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let key = layout::media_key(user, &file.key);
    let failed = R2Error::on(&key);
    let missing = || ApiError::NotFound(file.missing_detail.clone());
    let head = bucket
        .head(&key)
        .await
        .map_err(&failed)?
        .ok_or_else(missing)?;
    let size = head.size();
    let served = files::served_type(&file.key, head.http_metadata().content_type.as_deref());
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

    let (status, request) = match byte_range(range, size) {
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
            let range = Range::OffsetWithLength {
                offset: start,
                length: end - start + 1,
            };
            (206, bucket.get(&key).range(range))
        }
        Ok(None) => {
            headers.push(("Content-Length", size.to_string()));
            (200, bucket.get(&key))
        }
    };
    let object = request
        .execute()
        .await
        .map_err(&failed)?
        .ok_or_else(missing)?;
    let body = object
        .body()
        .ok_or_else(missing)?
        .response_body()
        .map_err(&failed)?;
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
