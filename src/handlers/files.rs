//! What the users' media folders hold, and how a stored file is served: the one place that
//! decides a file's type.
//!
//! Files are served from the API's own origin, so a file a browser would render as a page (HTML,
//! SVG, XML) would run its script with the signed-in user's access to all their data. Hence:
//! - an upload is taken only with an extension and a declared type the folder is for (every
//!   folder holds videos), and stored under that extension with the type the extension names,
//!   never the type the uploader sent ([`upload_type`]);
//! - a stored file is served with the type of its extension when that is a known media type,
//!   else the type stored with it when that is one, else as `application/octet-stream` to be
//!   downloaded ([`served_type`]). Files stored before these rules (by the existing app, or
//!   before issue 26) are served by the same rules; `bucket::media` adds `nosniff` and a
//!   sandboxing CSP to every file response.

use crate::error::ApiError;
use crate::handlers::request::{Upload, UploadedFile};

/// A media type a folder may hold: the extension it is stored under and the type it is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType {
    /// Lowercase, without the dot.
    pub extension: &'static str,
    pub mime: &'static str,
}

/// The videos the editor takes: what browsers and phones record and the frontend plays.
const VIDEOS: &[MediaType] = &[
    MediaType {
        extension: "mp4",
        mime: "video/mp4",
    },
    MediaType {
        extension: "m4v",
        mime: "video/x-m4v",
    },
    MediaType {
        extension: "mov",
        mime: "video/quicktime",
    },
    MediaType {
        extension: "webm",
        mime: "video/webm",
    },
    MediaType {
        extension: "mkv",
        mime: "video/x-matroska",
    },
    MediaType {
        extension: "avi",
        mime: "video/x-msvideo",
    },
];

/// What a folder of the user's R2 folder (docs/schema.md §4.6) may hold. Every one holds videos
/// today; a folder of another kind gets its own list here.
fn accepted(folder: &str) -> &'static [MediaType] {
    match folder {
        "games" | "raw_clips" | "uploads" | "exports" | "working_videos" | "final_videos" => VIDEOS,
        _ => &[],
    }
}

/// A declared type without its parameters, lowercase: `video/webm;codecs=vp9` -> `video/webm`.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The lowercase extension of a file name, if it has one (`match.MOV` -> `mov`).
fn extension(filename: &str) -> Option<String> {
    match filename.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext.to_ascii_lowercase()),
        _ => None,
    }
}

/// The type a file named `filename`, declared as `content_type` (form field or path `field`), is
/// stored with in `folder`, or 415 when the folder is not for it. Its extension must be one the folder takes, and its declared type one
/// of the folder's types or none in particular (empty, `application/octet-stream`); a file
/// without an extension is named by its declared type (a `Blob` appended as `blob`).
pub fn upload_type(
    folder: &str,
    field: &str,
    filename: &str,
    content_type: &str,
) -> Result<MediaType, ApiError> {
    let types = accepted(folder);
    let declared = essence(content_type);
    let by_declared = types.iter().find(|media| media.mime == declared);
    let unspecific = declared.is_empty() || declared == "application/octet-stream";
    let chosen = match extension(filename) {
        Some(ext) => types
            .iter()
            .find(|media| media.extension == ext)
            .filter(|_| unspecific || by_declared.is_some()),
        None => by_declared,
    };
    chosen.copied().ok_or_else(|| {
        let names: Vec<&str> = types.iter().map(|media| media.extension).collect();
        ApiError::UnsupportedMediaType(format!(
            "body field '{field}': {:?} ({}) is not a file {folder}/ takes: one of .{}",
            filename,
            if declared.is_empty() {
                "no type"
            } else {
                &declared
            },
            names.join(", .")
        ))
    })
}

/// The upload of `file` (form field `field`) as `{folder}/{base}.{ext}`, stored with the type
/// [`upload_type`] chose; 415 when the folder is not for it.
pub fn upload(
    folder: &str,
    field: &str,
    base: &str,
    file: &UploadedFile,
) -> Result<Upload, ApiError> {
    let media = upload_type(folder, field, &file.filename, &file.content_type)?;
    Ok(Upload {
        key: format!("{folder}/{base}.{}", media.extension),
        content_type: media.mime.to_owned(),
        bytes: file.bytes.clone(),
    })
}

/// How a stored file is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedType {
    pub content_type: &'static str,
    /// Not a known media type: the browser must download it, never show it.
    pub download: bool,
}

/// The type the file `key` (`games/0123456789ab.mp4`), stored with `stored_type`, is served as:
/// its extension's type when that is a known media type, else the stored type when that is one,
/// else `application/octet-stream` as a download.
pub fn served_type(key: &str, stored_type: Option<&str>) -> ServedType {
    let folder = key.split('/').next().unwrap_or_default();
    let types = accepted(folder);
    let by_extension = extension(key.rsplit('/').next().unwrap_or_default())
        .and_then(|ext| types.iter().find(|media| media.extension == ext));
    let by_stored = stored_type
        .map(essence)
        .and_then(|stored| types.iter().find(|media| media.mime == stored));
    match by_extension.or(by_stored) {
        Some(media) => ServedType {
            content_type: media.mime,
            download: false,
        },
        None => ServedType {
            content_type: "application/octet-stream",
            download: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_video_is_stored_with_the_type_its_extension_names() {
        let stored = |name, ct| upload_type("games", "video", name, ct).map(|m| m.mime);
        assert_eq!(stored("match.mp4", "video/mp4"), Ok("video/mp4"));
        assert_eq!(
            stored("match.MOV", "video/quicktime"),
            Ok("video/quicktime")
        );
        assert_eq!(stored("match.mkv", ""), Ok("video/x-matroska"));
        assert_eq!(
            stored("match.mp4", "application/octet-stream"),
            Ok("video/mp4")
        );
        // Declared as another video type: the extension decides the stored type.
        assert_eq!(stored("match.mov", "video/mp4"), Ok("video/quicktime"));
        assert_eq!(stored("blob", "video/webm;codecs=vp9"), Ok("video/webm"));
    }

    #[test]
    fn pages_scripts_and_images_are_refused_with_415_whatever_they_claim() {
        for (name, ct) in [
            ("x.html", "text/html"),
            ("x.html", "video/mp4"),
            ("x.mp4", "text/html"),
            ("x.svg", "image/svg+xml"),
            ("x.mp4", "image/svg+xml"),
            ("x.xhtml", ""),
            ("x", ""),
            ("x", "text/html"),
        ] {
            let err = upload_type("uploads", "file", name, ct).unwrap_err();
            assert_eq!(err.status(), 415, "{name} {ct}");
            assert!(err.detail().contains("body field 'file'"), "{err}");
        }
        assert!(upload_type("database.sqlite", "f", "x.mp4", "video/mp4").is_err());
    }

    #[test]
    fn a_stored_file_is_served_as_a_known_media_type_or_downloaded() {
        let video = |ct| ServedType {
            content_type: ct,
            download: false,
        };
        let download = ServedType {
            content_type: "application/octet-stream",
            download: true,
        };
        assert_eq!(
            served_type("games/a.mp4", Some("text/html")),
            video("video/mp4")
        );
        assert_eq!(served_type("games/a.mp4", None), video("video/mp4"));
        assert_eq!(
            served_type("raw_clips/a.MOV", None),
            video("video/quicktime")
        );
        // Stored before the rules: an unknown extension keeps a known stored type...
        assert_eq!(
            served_type("games/a", Some("video/webm")),
            video("video/webm")
        );
        // ...and anything else is a download.
        assert_eq!(served_type("games/a.html", Some("text/html")), download);
        assert_eq!(served_type("games/a.svg", Some("image/svg+xml")), download);
        assert_eq!(served_type("games/a.html", None), download);
        assert_eq!(served_type("games/a", None), download);
    }
}
