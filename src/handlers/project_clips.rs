//! `/api/clips/projects/{project_id}/clips` (docs/api.md §5.2): a project's clips, with
//! append-only versions (schema §4.1).
//!
//! A clip's identity within a project is its raw clip, else its uploaded file. The existing app
//! used the raw clip's `end_time`, which let clips of different games with equal end times hide
//! each other and collapsed every clip uploaded with metadata into one (docs/api.md §13.2).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::derive::{clip_name, parse_tags, tags_json, NameVariant};
use crate::handlers::files;
use crate::handlers::projects::require_project;
use crate::handlers::request::Names;
use crate::handlers::{insert_returning_id, ApiRequest, ApiResponse, FileResponse, Reply};
use user_data_core::db::{Db, Row, SqlValue};

/// A CTE named `latest`: the latest version of every clip (highest version, then highest id),
/// with all columns of `working_clips`. `filter` is an optional `WHERE` on `wc`.
pub fn latest_working_clips(filter: &str) -> String {
    format!(
        "WITH latest AS (SELECT * FROM ( \
             SELECT wc.*, ROW_NUMBER() OVER ( \
                 PARTITION BY wc.project_id, \
                     CASE WHEN wc.raw_clip_id IS NOT NULL THEN 'raw:' || wc.raw_clip_id \
                          WHEN wc.uploaded_filename IS NOT NULL THEN 'upload:' || wc.uploaded_filename \
                          ELSE 'row:' || wc.id END \
                 ORDER BY wc.version DESC, wc.id DESC) AS version_rank \
             FROM working_clips wc {filter}) WHERE version_rank = 1)"
    )
}

/// P5's `filename`: the raw clip's file, else the uploaded file, else `unknown`.
pub fn filename_or_unknown(raw_filename: Option<&str>, uploaded: Option<&str>) -> String {
    [raw_filename, uploaded]
        .into_iter()
        .flatten()
        .find(|name| !name.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// Framing data as stored: empty values become NULL (schema §3).
fn normalize_framing(value: &str) -> Option<String> {
    match value {
        "" | "[]" | "{}" | "null" => None,
        other => Some(other.to_owned()),
    }
}

const WORKING_CLIP_COLUMNS: &str = "wc.id, wc.project_id, wc.raw_clip_id, wc.uploaded_filename, \
    rc.filename, rc.name, rc.rating, rc.tags, rc.notes, wc.exported_at, wc.sort_order, \
    wc.crop_data, wc.timing_data, wc.segments_data";

/// A WorkingClip from a row of [`WORKING_CLIP_COLUMNS`].
fn working_clip(row: &Row) -> Result<Value, ApiError> {
    let raw_clip_id: Option<i64> = row.get(2)?;
    let uploaded: Option<String> = row.get(3)?;
    let raw_filename: Option<String> = row.get(4)?;
    let has_raw_clip = raw_filename.is_some();
    let name = if has_raw_clip {
        let tags = parse_tags(row.get::<Option<String>>(7)?.as_deref());
        let rating = row.get::<Option<i64>>(6)?.unwrap_or(3);
        clip_name(
            row.get::<Option<String>>(5)?.as_deref(),
            rating,
            &tags,
            NameVariant::Library,
        )
    } else {
        String::new()
    };
    Ok(json!({
        "id": row.get::<i64>(0)?,
        "project_id": row.get::<i64>(1)?,
        "raw_clip_id": raw_clip_id,
        "uploaded_filename": uploaded,
        "filename": filename_or_unknown(raw_filename.as_deref(), uploaded.as_deref()),
        "file_url": null,
        "name": name,
        "notes": row.get::<Option<String>>(8)?,
        "exported_at": row.get::<Option<String>>(9)?,
        "sort_order": row.get::<Option<i64>>(10)?,
        "crop_data": row.get::<Option<String>>(11)?,
        "timing_data": row.get::<Option<String>>(12)?,
        "segments_data": row.get::<Option<String>>(13)?,
    }))
}

/// W1: the latest version of each clip, in order.
pub fn list(db: &impl Db, project_id: i64) -> Result<Reply, ApiError> {
    require_project(db, project_id)?;
    let rows = db.query(
        &format!(
            "{latest} SELECT {WORKING_CLIP_COLUMNS} FROM latest wc \
             LEFT JOIN raw_clips rc ON rc.id = wc.raw_clip_id \
             ORDER BY wc.sort_order ASC, wc.id ASC",
            latest = latest_working_clips("WHERE wc.project_id = ?")
        ),
        &[project_id.into()],
    )?;
    let clips = rows
        .iter()
        .map(working_clip)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(json!(clips)))
}

/// The next `sort_order` of a project: one past the highest of all its rows, else 0.
fn next_sort_order(db: &impl Db, project_id: i64) -> Result<i64, ApiError> {
    Ok(db
        .query_value(
            "SELECT COALESCE(MAX(sort_order) + 1, 0) FROM working_clips WHERE project_id = ?",
            &[project_id.into()],
        )?
        .unwrap_or(0))
}

/// W2: add a library clip (as a new version if it is already in the project) or an upload.
pub fn add(db: &impl Db, project_id: i64, request: &ApiRequest) -> Result<Reply, ApiError> {
    let raw_clip_id: Option<i64> = request.form_number("raw_clip_id")?;
    let file = request.form_file("file");
    match (raw_clip_id, file) {
        (None, None) => {
            return Err(ApiError::BadRequest(
                "Must provide either raw_clip_id or file".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "Cannot provide both raw_clip_id and file".into(),
            ))
        }
        _ => {}
    }
    require_project(db, project_id)?;
    let sort_order = next_sort_order(db, project_id)?;

    let (raw_clip_id, uploaded_filename, filename, version, upload) = match (raw_clip_id, file) {
        (Some(raw_clip_id), _) => {
            let filename: String = db
                .query_value(
                    "SELECT filename FROM raw_clips WHERE id = ?",
                    &[raw_clip_id.into()],
                )?
                .ok_or_else(|| ApiError::NotFound("Raw clip not found".into()))?;
            let version: i64 = db
                .query_value(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM working_clips \
                     WHERE project_id = ? AND raw_clip_id = ?",
                    &[project_id.into(), raw_clip_id.into()],
                )?
                .unwrap_or(1);
            (Some(raw_clip_id), None, filename, version, None)
        }
        (None, Some(file)) => {
            let upload = files::upload(
                "uploads",
                "file",
                &Names::new(request.entropy).hex(32),
                file,
            )?;
            let stored = upload.filename().to_owned();
            (None, Some(stored.clone()), stored, 1, Some(upload))
        }
        (None, None) => unreachable!("checked above"),
    };

    let id = insert_returning_id(
        db,
        "INSERT INTO working_clips (project_id, raw_clip_id, uploaded_filename, sort_order, version) \
         VALUES (?, ?, ?, ?, ?) RETURNING id",
        &[
            project_id.into(),
            raw_clip_id.into(),
            uploaded_filename.clone().into(),
            sort_order.into(),
            version.into(),
        ],
    )?;
    // A pending library clip (filename '') answers with an empty filename (docs/api.md §5.2).
    let reply = Reply::json(json!({
        "id": id,
        "project_id": project_id,
        "raw_clip_id": raw_clip_id,
        "uploaded_filename": uploaded_filename,
        "filename": filename,
        "file_url": null,
        "name": null,
        "notes": null,
        "exported_at": null,
        "sort_order": sort_order,
        "crop_data": null,
        "timing_data": null,
        "segments_data": null,
    }));
    Ok(match upload {
        Some(upload) => reply.with_upload(upload),
        None => reply,
    })
}

/// W3: upload a file as a new library clip with metadata, and add it to the project.
pub fn upload_with_metadata(
    db: &impl Db,
    project_id: i64,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let file = request.form_required_file("file")?;
    let requested_name = request.form_text("name").unwrap_or_default();
    let rating: i64 = request.form_number("rating")?.unwrap_or(3);
    let tags: Vec<String> = parse_tags(Some(request.form_text("tags").unwrap_or("[]")));
    let notes = request.form_text("notes").unwrap_or_default();
    require_project(db, project_id)?;

    let name = unique_upload_name(db, requested_name)?;
    let upload = files::upload(
        "raw_clips",
        "file",
        &Names::new(request.entropy).hex(32),
        file,
    )?;
    let stored = upload.filename().to_owned();
    let raw_clip_id = insert_returning_id(
        db,
        "INSERT INTO raw_clips (filename, rating, tags, name, notes) VALUES (?, ?, ?, ?, ?) RETURNING id",
        &[
            stored.as_str().into(),
            rating.into(),
            tags_json(&tags).into(),
            name.as_str().into(),
            notes.into(),
        ],
    )?;
    let sort_order = next_sort_order(db, project_id)?;
    let id = insert_returning_id(
        db,
        "INSERT INTO working_clips (project_id, raw_clip_id, sort_order, version) \
         VALUES (?, ?, ?, 1) RETURNING id",
        &[project_id.into(), raw_clip_id.into(), sort_order.into()],
    )?;
    Ok(Reply::json(json!({
        "id": id,
        "project_id": null,
        "raw_clip_id": raw_clip_id,
        "uploaded_filename": null,
        "filename": stored,
        "file_url": null,
        "name": clip_name(Some(&name), rating, &tags, NameVariant::Library),
        "notes": notes,
        "exported_at": null,
        "sort_order": null,
        "crop_data": null,
        "timing_data": null,
        "segments_data": null,
    }))
    .with_upload(upload))
}

/// `name`, or `name (2)`, `name (3)`, ... when an uploaded clip (no game) already has it.
fn unique_upload_name(db: &impl Db, name: &str) -> Result<String, ApiError> {
    if name.is_empty() {
        return Ok(String::new());
    }
    // A prefix comparison, not `LIKE '<name> (%'`: the Durable Object refuses LIKE patterns over
    // 50 bytes, and a name may be longer.
    let prefix = format!("{name} (");
    let taken: Vec<String> = db
        .query(
            "SELECT name FROM raw_clips WHERE game_id IS NULL AND (name = ? OR substr(name, 1, ?) = ?)",
            &[name.into(), (prefix.chars().count() as i64).into(), prefix.into()],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect::<Result<_, _>>()?;
    if !taken.iter().any(|existing| existing == name) {
        return Ok(name.to_owned());
    }
    Ok((2..)
        .map(|n| format!("{name} ({n})"))
        .find(|candidate| !taken.contains(candidate))
        .expect("an unbounded range always has a free number"))
}

/// W4: a bare array of working clip ids; each gets its index as `sort_order`.
pub fn reorder(db: &impl Db, project_id: i64, request: &ApiRequest) -> Result<Reply, ApiError> {
    let ids: Vec<i64> = request.json()?;
    for (position, id) in ids.iter().enumerate() {
        db.execute(
            "UPDATE working_clips SET sort_order = ? WHERE id = ? AND project_id = ?",
            &[(position as i64).into(), (*id).into(), project_id.into()],
        )?;
    }
    Ok(Reply::json(json!({"success": true})))
}

#[derive(Debug, Deserialize)]
pub struct ClipEdit {
    sort_order: Option<i64>,
    crop_data: Option<String>,
    timing_data: Option<String>,
    segments_data: Option<String>,
}

/// The row (id, project) of a working clip, or 404 `Working clip not found`.
fn working_clip_row(
    db: &impl Db,
    project_id: i64,
    clip_id: i64,
    columns: &str,
) -> Result<Row, ApiError> {
    db.query(
        &format!("SELECT {columns} FROM working_clips WHERE id = ? AND project_id = ?"),
        &[clip_id.into(), project_id.into()],
    )?
    .into_iter()
    .next()
    .ok_or_else(|| ApiError::NotFound("Working clip not found".into()))
}

/// W5: a framing change to an exported clip makes a new version; anything else edits in place.
pub fn save(
    db: &impl Db,
    project_id: i64,
    clip_id: i64,
    edit: ClipEdit,
) -> Result<Reply, ApiError> {
    let row = working_clip_row(
        db,
        project_id,
        clip_id,
        "raw_clip_id, uploaded_filename, exported_at, sort_order, version, \
         crop_data, timing_data, segments_data",
    )?;
    let requested = [&edit.crop_data, &edit.timing_data, &edit.segments_data];
    let stored: Vec<Option<String>> = (5..8).map(|i| row.get(i)).collect::<Result<_, _>>()?;
    let framing_change = requested
        .iter()
        .zip(&stored)
        .any(|(new, old)| matches!(new, Some(new) if Some(new) != old.as_ref()));
    let exported = row.get::<Option<String>>(2)?.is_some();

    if framing_change && exported {
        let version: i64 = row.get::<i64>(4)? + 1;
        let data: Vec<SqlValue> = requested
            .iter()
            .zip(stored)
            .map(|(new, old)| match new {
                Some(new) => normalize_framing(new).into(),
                None => old.into(),
            })
            .collect();
        let new_clip_id = insert_returning_id(
            db,
            "INSERT INTO working_clips (project_id, raw_clip_id, uploaded_filename, sort_order, \
                 version, crop_data, timing_data, segments_data) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                project_id.into(),
                row.get::<Option<i64>>(0)?.into(),
                row.get::<Option<String>>(1)?.into(),
                row.get::<Option<i64>>(3)?.into(),
                version.into(),
                data[0].clone(),
                data[1].clone(),
                data[2].clone(),
            ],
        )?;
        return Ok(Reply::json(json!({
            "success": true,
            "refresh_required": true,
            "new_clip_id": new_clip_id,
            "new_version": version,
        })));
    }

    if let Some(sort_order) = edit.sort_order {
        db.execute(
            "UPDATE working_clips SET sort_order = ? WHERE id = ?",
            &[sort_order.into(), clip_id.into()],
        )?;
    }
    for (column, value) in ["crop_data", "timing_data", "segments_data"]
        .iter()
        .zip(requested)
    {
        if let Some(value) = value {
            db.execute(
                &format!("UPDATE working_clips SET {column} = ? WHERE id = ?"),
                &[normalize_framing(value).into(), clip_id.into()],
            )?;
        }
    }
    Ok(Reply::json(
        json!({"success": true, "refresh_required": false}),
    ))
}

/// W6: deletes only this version; an older one becomes visible again.
pub fn delete(db: &impl Db, project_id: i64, clip_id: i64) -> Result<Reply, ApiError> {
    working_clip_row(db, project_id, clip_id, "id")?;
    db.execute("DELETE FROM working_clips WHERE id = ?", &[clip_id.into()])?;
    Ok(Reply::json(json!({"success": true})))
}

/// W7: the clip's source file (`uploads/` or `raw_clips/`); `stream=true` as an attachment.
pub fn file(
    db: &impl Db,
    project_id: i64,
    clip_id: i64,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let stream = request.query_bool("stream", false)?;
    let row = db
        .query(
            "SELECT wc.uploaded_filename, rc.filename FROM working_clips wc \
             LEFT JOIN raw_clips rc ON rc.id = wc.raw_clip_id \
             WHERE wc.id = ? AND wc.project_id = ?",
            &[clip_id.into(), project_id.into()],
        )?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound("Working clip not found".into()))?;
    let key = match (row.get::<Option<String>>(0)?, row.get::<Option<String>>(1)?) {
        (Some(uploaded), _) if !uploaded.is_empty() => format!("uploads/{uploaded}"),
        (_, Some(raw)) if !raw.is_empty() => format!("raw_clips/{raw}"),
        _ => return Err(ApiError::NotFound("Clip file not found".into())),
    };
    let filename = key.rsplit('/').next().unwrap_or_default().to_owned();
    Ok(Reply::from(ApiResponse::File(FileResponse {
        key,
        missing_detail: "Clip file not found".into(),
        attachment_name: stream.then_some(filename),
        no_cache: stream,
    })))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::handlers::tests::{call, form, json_body, ok, status, test_db, TestDb};
    use crate::handlers::{ApiResponse, Body, FormValue, Method, UploadedFile};
    use user_data_core::db::Db;

    /// A project (1) and two clips of different games with the same end time.
    fn seeded() -> TestDb {
        let db = test_db();
        db.execute_script(
            "INSERT INTO games (id, name) VALUES (1, 'g1'), (2, 'g2');
             INSERT INTO raw_clips (id, filename, rating, tags, end_time, game_id) VALUES
                 (1, 'a.mp4', 4, '[\"Goals\"]', 10, 1), (2, 'b.mp4', 3, '[]', 10, 2), (3, '', 3, '[]', 20, 1);
             INSERT INTO projects (id, name, aspect_ratio) VALUES (1, 'P', '16:9');",
        )
        .unwrap();
        db
    }

    fn add(db: &TestDb, raw_clip_id: &str) -> serde_json::Value {
        ok(
            db,
            Method::Post,
            "/api/clips/projects/1/clips",
            form(&[("raw_clip_id", raw_clip_id)]),
        )
    }

    fn listed(db: &TestDb) -> Vec<(i64, i64)> {
        ok(db, Method::Get, "/api/clips/projects/1/clips", Body::Empty)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_i64().unwrap(),
                    c["raw_clip_id"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    }

    #[test]
    fn add_checks_its_input_in_the_contract_order() {
        let db = seeded();
        let path = "/api/clips/projects/1/clips";
        let err = call(&db, Method::Post, path, form(&[])).unwrap_err();
        assert_eq!(
            (err.status(), err.detail()),
            (400, "Must provide either raw_clip_id or file")
        );
        let file = UploadedFile {
            filename: "x.mov".into(),
            content_type: "video/quicktime".into(),
            bytes: vec![1].into(),
        };
        let both = Body::Form(vec![
            ("raw_clip_id".into(), FormValue::Text("1".into())),
            ("file".into(), FormValue::File(file)),
        ]);
        assert_eq!(
            call(&db, Method::Post, path, both).unwrap_err().detail(),
            "Cannot provide both raw_clip_id and file"
        );
        let err = call(
            &db,
            Method::Post,
            "/api/clips/projects/9/clips",
            form(&[("raw_clip_id", "1")]),
        )
        .unwrap_err();
        assert_eq!(err.detail(), "Project not found");
        assert_eq!(
            call(&db, Method::Post, path, form(&[("raw_clip_id", "77")]))
                .unwrap_err()
                .detail(),
            "Raw clip not found"
        );
        assert_eq!(
            status(&db, Method::Post, path, form(&[("raw_clip_id", "one")])),
            422
        );
    }

    #[test]
    fn clips_of_different_games_with_equal_end_times_are_both_listed() {
        let db = seeded();
        let first = add(&db, "1");
        let second = add(&db, "2");
        assert_eq!(
            (first["sort_order"].clone(), second["sort_order"].clone()),
            (json!(0), json!(1))
        );
        assert_eq!(first["name"], json!(null));
        assert_eq!(listed(&db), [(1, 1), (2, 2)]);
        // A pending clip answers with an empty filename instead of failing (§5.2).
        assert_eq!(add(&db, "3")["filename"], "");
        let clips = ok(&db, Method::Get, "/api/clips/projects/1/clips", Body::Empty);
        assert_eq!(clips[0]["name"], "Good Goals");
        assert_eq!(clips[2]["filename"], "unknown");
    }

    #[test]
    fn re_adding_a_clip_makes_a_new_version_that_replaces_it() {
        let db = seeded();
        add(&db, "1");
        let again = add(&db, "1");
        assert_eq!(
            db.query_value::<i64>("SELECT version FROM working_clips WHERE id = 2", &[])
                .unwrap(),
            Some(2)
        );
        assert_eq!(listed(&db), [(again["id"].as_i64().unwrap(), 1)]);
        // Deleting the newer version brings the older one back.
        ok(
            &db,
            Method::Delete,
            "/api/clips/projects/1/clips/2",
            Body::Empty,
        );
        assert_eq!(listed(&db), [(1, 1)]);
        assert_eq!(
            status(
                &db,
                Method::Delete,
                "/api/clips/projects/1/clips/2",
                Body::Empty
            ),
            404
        );
    }

    #[test]
    fn a_framing_edit_of_an_exported_clip_makes_a_new_version() {
        let db = seeded();
        add(&db, "1");
        let path = "/api/clips/projects/1/clips/1";
        let edit =
            json_body(json!({"crop_data": "[{\"x\":1}]", "timing_data": "", "sort_order": 5}));
        assert_eq!(
            ok(&db, Method::Put, path, edit),
            json!({"success": true, "refresh_required": false})
        );
        let row = db
            .query_row(
                "SELECT crop_data, timing_data, sort_order FROM working_clips WHERE id = 1",
                &[],
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            row.get::<Option<String>>(0).unwrap().as_deref(),
            Some("[{\"x\":1}]")
        );
        assert_eq!(
            row.get::<Option<String>>(1).unwrap(),
            None,
            "'' is stored as NULL"
        );
        assert_eq!(row.get::<i64>(2).unwrap(), 5);

        db.execute(
            "UPDATE working_clips SET exported_at = '2026-01-01 00:00:00'",
            &[],
        )
        .unwrap();
        // The same data again is no framing change: edited in place.
        let same = json_body(json!({"crop_data": "[{\"x\":1}]"}));
        assert_eq!(ok(&db, Method::Put, path, same)["refresh_required"], false);
        let changed = json_body(json!({"segments_data": "{\"trim_start\":1}", "sort_order": 0}));
        let body = ok(&db, Method::Put, path, changed);
        assert_eq!(
            body,
            json!({"success": true, "refresh_required": true, "new_clip_id": 2, "new_version": 2})
        );
        let new = db.query_row("SELECT crop_data, segments_data, sort_order, exported_at FROM working_clips WHERE id = 2", &[]).unwrap().unwrap();
        assert_eq!(
            new.get::<Option<String>>(0).unwrap().as_deref(),
            Some("[{\"x\":1}]"),
            "carried over"
        );
        assert_eq!(
            new.get::<Option<String>>(1).unwrap().as_deref(),
            Some("{\"trim_start\":1}")
        );
        assert_eq!(
            new.get::<i64>(2).unwrap(),
            5,
            "the request's sort_order is ignored"
        );
        assert_eq!(new.get::<Option<String>>(3).unwrap(), None);
        assert_eq!(listed(&db), [(2, 1)]);
    }

    #[test]
    fn a_framing_value_that_is_not_a_string_is_422() {
        let db = seeded();
        add(&db, "1");
        let path = "/api/clips/projects/1/clips/1";
        assert_eq!(
            status(
                &db,
                Method::Put,
                path,
                json_body(json!({"crop_data": [1, 2]}))
            ),
            422
        );
        assert_eq!(
            status(
                &db,
                Method::Put,
                "/api/clips/projects/1/clips/9",
                json_body(json!({}))
            ),
            404
        );
        assert_eq!(
            ok(&db, Method::Put, path, json_body(json!({})))["refresh_required"],
            false
        );
    }

    #[test]
    fn reorder_sets_positions_only_for_this_projects_clips() {
        let db = seeded();
        add(&db, "1");
        add(&db, "2");
        db.execute(
            "INSERT INTO projects (id, name, aspect_ratio) VALUES (2, 'Q', '1:1')",
            &[],
        )
        .unwrap();
        db.execute("INSERT INTO working_clips (id, project_id, raw_clip_id, sort_order) VALUES (9, 2, 1, 7)", &[]).unwrap();
        let path = "/api/clips/projects/1/clips/reorder";
        assert_eq!(
            ok(&db, Method::Put, path, json_body(json!([2, 9, 1]))),
            json!({"success": true})
        );
        assert_eq!(listed(&db), [(2, 2), (1, 1)]);
        assert_eq!(
            db.query_value::<i64>("SELECT sort_order FROM working_clips WHERE id = 9", &[])
                .unwrap(),
            Some(7)
        );
        assert_eq!(
            status(&db, Method::Put, path, json_body(json!({"ids": [1]}))),
            422
        );
    }

    #[test]
    fn an_uploaded_clip_is_stored_before_its_row_and_versioned_alone() {
        let db = seeded();
        let file = UploadedFile {
            filename: "Clip.MOV".into(),
            content_type: "video/quicktime".into(),
            bytes: vec![7; 3].into(),
        };
        let body = Body::Form(vec![("file".into(), FormValue::File(file))]);
        let reply = call(&db, Method::Post, "/api/clips/projects/1/clips", body).unwrap();
        let ApiResponse::Json(clip) = &reply.response else {
            panic!()
        };
        let stored = clip["uploaded_filename"].as_str().unwrap();
        assert_eq!((stored.len(), &stored[32..]), (36, ".mov"));
        assert_eq!(reply.uploads.len(), 1);
        assert_eq!(reply.uploads[0].key, format!("uploads/{stored}"));
        assert_eq!(reply.uploads[0].bytes, vec![7; 3].into());
        assert_eq!(clip["filename"], stored);
    }

    /// Uploads a one-byte clip to project 1 with the given text fields.
    fn upload_with_metadata(db: &TestDb, fields: &[(&str, &str)]) -> crate::handlers::Reply {
        let file = UploadedFile {
            filename: "c.mp4".into(),
            content_type: "video/mp4".into(),
            bytes: vec![1].into(),
        };
        let mut form = vec![("file".to_owned(), FormValue::File(file))];
        form.extend(
            fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), FormValue::Text((*value).to_owned()))),
        );
        let path = "/api/clips/projects/1/clips/upload-with-metadata";
        call(db, Method::Post, path, Body::Form(form)).unwrap()
    }

    #[test]
    fn upload_with_metadata_makes_names_unique_among_uploaded_clips() {
        let db = seeded();
        let upload = |name: &str, tags: &str| {
            upload_with_metadata(&db, &[("name", name), ("rating", "5"), ("tags", tags)])
        };
        let first = upload("Skill", "[\"Goals\"]");
        let ApiResponse::Json(first_clip) = &first.response else {
            panic!()
        };
        assert_eq!(first_clip["name"], "Skill");
        assert!(first.uploads[0].key.starts_with("raw_clips/"));
        let second = upload("Skill", "not json");
        let ApiResponse::Json(second_clip) = &second.response else {
            panic!()
        };
        assert_eq!(second_clip["name"], "Skill (2)");
        let unnamed = upload("", "[\"Goals\", \"Assists\"]");
        let ApiResponse::Json(unnamed_clip) = &unnamed.response else {
            panic!()
        };
        assert_eq!(unnamed_clip["name"], "Brilliant Goals and Assists");
        // Each upload is its own clip: three listed, none hiding another (§13.2).
        assert_eq!(listed(&db).len(), 3);
    }

    #[test]
    fn upload_with_metadata_makes_long_names_unique_too() {
        let db = seeded();
        let name = "A long clip name from the cup final against the visiting team";
        assert!(
            name.len() > 50,
            "longer than a LIKE pattern may be on the object"
        );
        let upload = |name: &str| match upload_with_metadata(&db, &[("name", name)]).response {
            ApiResponse::Json(clip) => clip["name"].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(upload("Other"), "Other");
        assert_eq!(upload(name), name);
        assert_eq!(upload(name), format!("{name} (2)"));
        assert_eq!(upload(name), format!("{name} (3)"));
    }

    #[test]
    fn the_file_route_serves_the_source_as_an_attachment_on_request() {
        let db = seeded();
        add(&db, "1");
        let reply = call(
            &db,
            Method::Get,
            "/api/clips/projects/1/clips/1/file?stream=true",
            Body::Empty,
        )
        .unwrap();
        let ApiResponse::File(file) = reply.response else {
            panic!()
        };
        assert_eq!(file.key, "raw_clips/a.mp4");
        assert_eq!(file.attachment_name.as_deref(), Some("a.mp4"));
        assert!(file.no_cache);
        assert_eq!(
            status(
                &db,
                Method::Get,
                "/api/clips/projects/1/clips/5/file",
                Body::Empty
            ),
            404
        );
    }
}
