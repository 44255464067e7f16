//! R2 multipart uploads of a whole database file, for the moves in chunks: the migrator sends
//! the parts (each streamed to R2, never held in wasm memory) and the user's object completes
//! the upload at its cut-over. Nothing is stored until then.

use admin_api::in_chunks::Part;
use worker::worker_sys::web_sys::ReadableStream;
use worker::{Bucket, UploadedPart};

use crate::bucket::layout::{object_metadata, R2State};
use crate::bucket::R2Error;
use user_data_core::db::DbVersion;

/// Starts an upload to `key` of a database at `version` (stored as `active`); its id.
pub async fn start(bucket: &Bucket, key: &str, version: DbVersion) -> Result<String, R2Error> {
    let upload = bucket
        .create_multipart_upload(key)
        .custom_metadata(object_metadata(version, R2State::Active))
        .execute()
        .await
        .map_err(R2Error::on(key))?;
    Ok(upload.upload_id().await)
}

/// Uploads part `part` (1 to 10,000) of an upload, from a stream of a declared length;
/// uploading a part again replaces it.
pub async fn upload_part(
    bucket: &Bucket,
    key: &str,
    upload_id: &str,
    part: u16,
    body: ReadableStream,
) -> Result<Part, R2Error> {
    let uploaded = bucket
        .resume_multipart_upload(key, upload_id)
        .map_err(R2Error::on(key))?
        .upload_part(part, body)
        .await
        .map_err(R2Error::on(key))?;
    Ok(Part {
        part: uploaded.part_number(),
        etag: uploaded.etag(),
    })
}

/// Completes an upload from its parts: the object is stored; its size.
pub async fn complete(
    bucket: &Bucket,
    key: &str,
    upload_id: &str,
    parts: &[Part],
) -> Result<u64, R2Error> {
    let parts: Vec<UploadedPart> = parts
        .iter()
        .map(|part| UploadedPart::new(part.part, part.etag.clone()))
        .collect();
    let stored = bucket
        .resume_multipart_upload(key, upload_id)
        .map_err(R2Error::on(key))?
        .complete(parts)
        .await
        .map_err(R2Error::on(key))?;
    Ok(stored.size())
}
