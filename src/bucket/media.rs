//! The users' media files in R2 (keys: [`crate::bucket::layout`]): reading them (whole or a
//! range, as a stream), storing uploads, and deleting what a request removed. Turning a file
//! into an HTTP response is the edge's ([`crate::http::file`]).
//!
//! Ordering keeps the database honest: uploads are stored before the request's database changes
//! commit, deletions happen after, so a committed row never names a file that is not there.

use wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{web_sys, R2Bucket};
use worker::{js_sys, Bucket, Range, ResponseBody};

use crate::bucket::{layout, R2Error};
use crate::handlers::{Deletion, Upload};
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
            crate::log::warn(serde_json::json!({
                "event": "media_not_deleted",
                "user": user.as_str(),
                "what": format!("{deletion:?}"),
                "reason": err.to_string(),
            }));
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

/// What R2 says of a stored file.
pub struct StoredFile {
    pub size: u64,
    /// The type it was stored with, if any.
    pub content_type: Option<String>,
}

/// What R2 says of the file `key` under the user's folder; `None` when there is none.
pub async fn head(
    bucket: &Bucket,
    user: &UserId,
    key: &str,
) -> Result<Option<StoredFile>, R2Error> {
    let key = layout::media_key(user, key);
    let head = bucket.head(&key).await.map_err(R2Error::on(&key))?;
    Ok(head.map(|object| StoredFile {
        size: object.size(),
        content_type: object.http_metadata().content_type,
    }))
}

/// The bytes of the file `key` under the user's folder, or of `range` (offset and length) of
/// them, as R2's stream (never held here); `None` when there is no such file.
pub async fn read(
    bucket: &Bucket,
    user: &UserId,
    key: &str,
    range: Option<(u64, u64)>,
) -> Result<Option<ResponseBody>, R2Error> {
    let key = layout::media_key(user, key);
    let failed = R2Error::on(&key);
    let mut request = bucket.get(&key);
    if let Some((offset, length)) = range {
        request = request.range(Range::OffsetWithLength { offset, length });
    }
    let Some(object) = request.execute().await.map_err(&failed)? else {
        return Ok(None);
    };
    object
        .body()
        .map(|body| body.response_body().map_err(&failed))
        .transpose()
}
