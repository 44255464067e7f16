//! `/api/exports` (docs/api.md §9): durable export job records.
//!
//! Rendering is the video-processing service's work: jobs are recorded, listed, cancelled and
//! timed out here, with their staged input videos in R2; a `framing` or `overlay` job goes to
//! the service after the commit, which records its progress and result
//! ([`crate::handlers::job_results`]).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::handlers::files;
use crate::handlers::job_results;
use crate::handlers::projects::require_project;
use crate::handlers::request::{check_json, Names};
use crate::handlers::{ApiRequest, Reply};
use user_data_core::db::{Db, Row};

const JOB_COLUMNS: &str = "j.id, j.project_id, j.type, j.status, j.error, j.output_video_id, \
    j.output_filename, j.created_at, j.started_at, j.completed_at";

/// An ExportJob from [`JOB_COLUMNS`]; `project_name` from column 10 when the query has it.
fn export_job(row: &Row, with_project_name: bool) -> Result<Value, ApiError> {
    let project_name: Option<String> = if with_project_name {
        row.get(10)?
    } else {
        None
    };
    Ok(json!({
        "job_id": row.get::<String>(0)?,
        "project_id": row.get::<i64>(1)?,
        "project_name": project_name,
        "type": row.get::<String>(2)?,
        "status": row.get::<String>(3)?,
        "error": row.get::<Option<String>>(4)?,
        "output_video_id": row.get::<Option<i64>>(5)?,
        "output_filename": row.get::<Option<String>>(6)?,
        "created_at": row.get::<Option<String>>(7)?,
        "started_at": row.get::<Option<String>>(8)?,
        "completed_at": row.get::<Option<String>>(9)?,
    }))
}

fn jobs(
    db: &impl Db,
    condition: &str,
    params: &[user_data_core::db::SqlValue],
) -> Result<Reply, ApiError> {
    let rows = db.query(
        &format!(
            "SELECT {JOB_COLUMNS} FROM export_jobs j WHERE {condition} \
             ORDER BY j.created_at DESC, j.rowid DESC"
        ),
        params,
    )?;
    let exports = rows
        .iter()
        .map(|row| export_job(row, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(json!({ "exports": exports })))
}

/// Inserts a pending job and returns its id (`export_` + 12 hex).
fn insert_job(
    db: &impl Db,
    names: &mut Names,
    project_id: i64,
    job_type: &str,
    input: &Value,
) -> Result<String, ApiError> {
    let job_id = format!("export_{}", names.hex(12));
    db.execute(
        "INSERT INTO export_jobs (id, project_id, type, status, input_data) VALUES (?, ?, ?, 'pending', ?)",
        &[job_id.as_str().into(), project_id.into(), job_type.into(), input.to_string().into()],
    )?;
    Ok(job_id)
}

#[derive(Debug, Deserialize)]
pub struct NewJob {
    project_id: i64,
    #[serde(rename = "type")]
    job_type: String,
    config: Map<String, Value>,
}

/// E1 `POST /api/exports`. Types no processor handles end as `error` at once.
pub fn create(db: &impl Db, input: NewJob, request: &ApiRequest) -> Result<Reply, ApiError> {
    require_project(db, input.project_id)?;
    let mut names = Names::new(request.entropy);
    let input_data = Value::Object(input.config);
    let job_id = insert_job(
        db,
        &mut names,
        input.project_id,
        &input.job_type,
        &input_data,
    )?;
    let mut reply = Reply::json(json!({
        "job_id": job_id,
        "status": "pending",
        "message": "Export job created",
    }));
    let failure = match input.job_type.as_str() {
        kind @ ("framing" | "overlay") => {
            let kind = if kind == "framing" {
                "framing"
            } else {
                "overlay"
            };
            reply.jobs.push(job_results::export_job(
                &job_id,
                kind,
                input.project_id,
                &input_data,
            ));
            None
        }
        "multi_clip" => Some("Multi-clip export is not implemented".to_owned()),
        other => Some(format!("Unknown export type: {other}")),
    };
    if let Some(error) = failure {
        db.execute(
            "UPDATE export_jobs SET status = 'error', error = ?, completed_at = CURRENT_TIMESTAMP WHERE id = ?",
            &[error.into(), job_id.as_str().into()],
        )?;
    }
    Ok(reply)
}

/// Parses a JSON form field, or 400 `<what>: <error>`; within the limits of a JSON body.
fn json_field(request: &ApiRequest, field: &str, what: &str) -> Result<Option<Value>, ApiError> {
    request
        .form_text(field)
        .map(|text| {
            let value = serde_json::from_str(text)
                .map_err(|err| ApiError::BadRequest(format!("{what}: {err}")))?;
            check_json(&value, field)?;
            Ok(value)
        })
        .transpose()
}

/// Stages the form's `video` in R2 and queues a job of `job_type` with `input` plus the
/// staged video's key as `video_path`.
fn queue_with_video(
    db: &impl Db,
    request: &ApiRequest,
    project_id: i64,
    job_type: &'static str,
    mut input: Map<String, Value>,
    message: &str,
) -> Result<Reply, ApiError> {
    let video = request.form_required_file("video")?;
    let mut names = Names::new(request.entropy);
    let upload = files::upload("exports", "video", &names.hex(32), video)?;
    let key = upload.key.clone();
    let mut job_input = Map::new();
    job_input.insert("video_path".into(), json!(key));
    job_input.append(&mut input);
    let job_input = Value::Object(job_input);
    let job_id = insert_job(db, &mut names, project_id, job_type, &job_input)?;
    let mut reply = Reply::json(json!({"job_id": job_id, "status": "pending", "message": message}))
        .with_upload(upload);
    reply.jobs.push(job_results::export_job(
        &job_id, job_type, project_id, &job_input,
    ));
    Ok(reply)
}

/// E2 `POST /api/exports/framing` (form).
pub fn create_framing(db: &impl Db, request: &ApiRequest) -> Result<Reply, ApiError> {
    let project_id: i64 = request
        .form_number("project_id")?
        .ok_or_else(|| ApiError::Unprocessable("body field 'project_id': field required".into()))?;
    request.form_required_text("keyframes_json")?;
    require_project(db, project_id)?;
    let keyframes = json_field(request, "keyframes_json", "Invalid keyframes JSON")?;
    if !matches!(&keyframes, Some(Value::Array(items)) if !items.is_empty()) {
        return Err(ApiError::BadRequest("No keyframes provided".into()));
    }
    let segment_data = json_field(request, "segment_data_json", "Invalid segment data JSON")?;
    let mut input = Map::new();
    input.insert("keyframes".into(), keyframes.unwrap_or_default());
    input.insert(
        "target_fps".into(),
        json!(request.form_number::<i64>("target_fps")?.unwrap_or(30)),
    );
    input.insert(
        "export_mode".into(),
        json!(request.form_text("export_mode").unwrap_or("quality")),
    );
    input.insert("segment_data".into(), segment_data.unwrap_or_default());
    input.insert(
        "include_audio".into(),
        json!(request
            .form_text("include_audio")
            .unwrap_or("true")
            .eq_ignore_ascii_case("true")),
    );
    queue_with_video(
        db,
        request,
        project_id,
        "framing",
        input,
        "Framing export started",
    )
}

/// E3 `POST /api/exports/overlay` (form).
pub fn create_overlay(db: &impl Db, request: &ApiRequest) -> Result<Reply, ApiError> {
    let project_id: i64 = request
        .form_number("project_id")?
        .ok_or_else(|| ApiError::Unprocessable("body field 'project_id': field required".into()))?;
    require_project(db, project_id)?;
    let field = if request.form_text("highlight_regions_json").is_some() {
        "highlight_regions_json"
    } else {
        "highlight_keyframes_json"
    };
    let regions = json_field(request, field, "Invalid highlight regions JSON")?;
    let mut input = Map::new();
    input.insert(
        "highlight_regions".into(),
        regions.unwrap_or_else(|| json!([])),
    );
    input.insert(
        "highlight_effect_type".into(),
        json!(request
            .form_text("highlight_effect_type")
            .unwrap_or("original")),
    );
    queue_with_video(
        db,
        request,
        project_id,
        "overlay",
        input,
        "Overlay export started",
    )
}

/// E4 `GET /api/exports/active`: times out stale jobs, then lists the running ones.
pub fn active(db: &impl Db) -> Result<Reply, ApiError> {
    db.execute(
        "UPDATE export_jobs SET status = 'error', error = 'Export timed out (stale)', \
             completed_at = CURRENT_TIMESTAMP \
         WHERE status IN ('pending', 'processing') AND created_at < datetime('now', '-15 minutes')",
        &[],
    )?;
    let rows = db.query(
        &format!(
            "SELECT {JOB_COLUMNS}, p.name FROM export_jobs j \
             LEFT JOIN projects p ON p.id = j.project_id \
             WHERE j.status IN ('pending', 'processing') \
             ORDER BY j.created_at DESC, j.rowid DESC"
        ),
        &[],
    )?;
    let exports = rows
        .iter()
        .map(|row| export_job(row, true))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(json!({ "exports": exports })))
}

/// E5 `GET /api/exports/recent?hours=` (1 to 168).
pub fn recent(db: &impl Db, request: &ApiRequest) -> Result<Reply, ApiError> {
    let hours = request.query_int("hours")?.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(ApiError::Unprocessable(
            "query field 'hours': must be between 1 and 168".into(),
        ));
    }
    jobs(
        db,
        "j.created_at >= datetime('now', ?)",
        &[format!("-{hours} hours").into()],
    )
}

fn find(db: &impl Db, job_id: &str) -> Result<Row, ApiError> {
    db.query(
        &format!("SELECT {JOB_COLUMNS} FROM export_jobs j WHERE j.id = ?"),
        &[job_id.into()],
    )?
    .into_iter()
    .next()
    .ok_or_else(|| ApiError::NotFound("Export job not found".into()))
}

/// E6 `GET /api/exports/{job_id}`.
pub fn get(db: &impl Db, job_id: &str) -> Result<Reply, ApiError> {
    Ok(Reply::json(export_job(&find(db, job_id)?, false)?))
}

/// E7 `DELETE /api/exports/{job_id}`: cancels a job that has not finished.
pub fn cancel(db: &impl Db, job_id: &str) -> Result<Reply, ApiError> {
    let status: String = find(db, job_id)?.get(3)?;
    if status == "complete" || status == "error" {
        return Err(ApiError::BadRequest(format!(
            "Cannot cancel job with status '{status}'"
        )));
    }
    db.execute(
        "UPDATE export_jobs SET status = 'error', error = 'Cancelled by user', \
             completed_at = CURRENT_TIMESTAMP WHERE id = ?",
        &[job_id.into()],
    )?;
    Ok(Reply::json(json!({"message": "Export job cancelled"})))
}

/// E8 `GET /api/exports/project/{project_id}`: no 404 for an unknown project.
pub fn for_project(db: &impl Db, project_id: i64) -> Result<Reply, ApiError> {
    jobs(db, "j.project_id = ?", &[project_id.into()])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::handlers::tests::{call, json_body, ok, status, test_db};
    use crate::handlers::{ApiResponse, Body, FormValue, Method, UploadedFile};
    use user_data_core::db::Db;

    fn with_project() -> crate::handlers::tests::TestDb {
        let db = test_db();
        db.execute(
            "INSERT INTO projects (id, name, aspect_ratio) VALUES (1, 'P', '1:1')",
            &[],
        )
        .unwrap();
        db
    }

    #[test]
    fn a_job_is_recorded_pending_and_unknown_types_end_as_errors() {
        let db = with_project();
        let missing = json_body(json!({"project_id": 9, "type": "framing", "config": {}}));
        assert_eq!(status(&db, Method::Post, "/api/exports", missing), 404);
        assert_eq!(
            status(
                &db,
                Method::Post,
                "/api/exports",
                json_body(json!({"project_id": 1, "type": "framing"}))
            ),
            422
        );
        let created = ok(
            &db,
            Method::Post,
            "/api/exports",
            json_body(json!({"project_id": 1, "type": "framing", "config": {"a": 1}})),
        );
        let job_id = created["job_id"].as_str().unwrap().to_owned();
        assert_eq!(
            (job_id.len(), created["status"].clone()),
            (19, json!("pending"))
        );
        let job = ok(
            &db,
            Method::Get,
            &format!("/api/exports/{job_id}"),
            Body::Empty,
        );
        assert_eq!(
            (job["status"].clone(), job["project_name"].clone()),
            (json!("pending"), json!(null))
        );

        let weird = ok(
            &db,
            Method::Post,
            "/api/exports",
            json_body(json!({"project_id": 1, "type": "gif", "config": {}})),
        );
        let job = ok(
            &db,
            Method::Get,
            &format!("/api/exports/{}", weird["job_id"].as_str().unwrap()),
            Body::Empty,
        );
        assert_eq!(
            (job["status"].clone(), job["error"].clone()),
            (json!("error"), json!("Unknown export type: gif"))
        );
        assert_eq!(
            status(&db, Method::Get, "/api/exports/export_nope", Body::Empty),
            404
        );
    }

    #[test]
    fn active_times_out_stale_jobs_and_names_their_projects() {
        let db = with_project();
        db.execute_script(
            "INSERT INTO export_jobs (id, project_id, type, status, input_data, created_at) VALUES
                 ('export_old', 1, 'framing', 'processing', '{}', datetime('now', '-20 minutes')),
                 ('export_new', 1, 'overlay', 'pending', '{}', datetime('now', '-1 minutes'));",
        )
        .unwrap();
        let active = ok(&db, Method::Get, "/api/exports/active", Body::Empty);
        assert_eq!(active["exports"].as_array().unwrap().len(), 1);
        assert_eq!(active["exports"][0]["project_name"], "P");
        let old = ok(&db, Method::Get, "/api/exports/export_old", Body::Empty);
        assert_eq!(
            (old["status"].clone(), old["error"].clone()),
            (json!("error"), json!("Export timed out (stale)"))
        );
        assert!(old["completed_at"].is_string());
        assert_eq!(
            ok(&db, Method::Get, "/api/exports/project/1", Body::Empty)["exports"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            ok(&db, Method::Get, "/api/exports/project/5", Body::Empty),
            json!({"exports": []})
        );
    }

    #[test]
    fn cancel_only_unfinished_jobs_and_recent_validates_hours() {
        let db = with_project();
        db.execute_script(
            "INSERT INTO export_jobs (id, project_id, type, status, input_data) VALUES
                 ('export_a', 1, 'framing', 'pending', '{}'), ('export_b', 1, 'framing', 'complete', '{}');",
        )
        .unwrap();
        assert_eq!(
            ok(&db, Method::Delete, "/api/exports/export_a", Body::Empty),
            json!({"message": "Export job cancelled"})
        );
        assert_eq!(
            ok(&db, Method::Get, "/api/exports/export_a", Body::Empty)["error"],
            "Cancelled by user"
        );
        let err = call(&db, Method::Delete, "/api/exports/export_b", Body::Empty).unwrap_err();
        assert_eq!(
            (err.status(), err.detail()),
            (400, "Cannot cancel job with status 'complete'")
        );
        assert_eq!(
            ok(&db, Method::Get, "/api/exports/recent?hours=1", Body::Empty)["exports"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            status(&db, Method::Get, "/api/exports/recent?hours=0", Body::Empty),
            422
        );
        assert_eq!(
            status(
                &db,
                Method::Get,
                "/api/exports/recent?hours=169",
                Body::Empty
            ),
            422
        );
    }

    #[test]
    fn a_framing_export_stages_its_video_and_checks_keyframes() {
        let db = with_project();
        let video = || {
            (
                "video".to_owned(),
                FormValue::File(UploadedFile {
                    filename: "v.mp4".into(),
                    content_type: "video/mp4".into(),
                    bytes: vec![1, 2].into(),
                }),
            )
        };
        let text = |k: &str, v: &str| (k.to_owned(), FormValue::Text(v.to_owned()));
        let send = |fields: Vec<(String, FormValue)>| {
            call(
                &db,
                Method::Post,
                "/api/exports/framing",
                Body::Form(fields),
            )
        };
        let err = send(vec![
            video(),
            text("project_id", "1"),
            text("keyframes_json", "["),
        ])
        .unwrap_err();
        assert!(
            err.detail().starts_with("Invalid keyframes JSON"),
            "{}",
            err.detail()
        );
        let err = send(vec![
            video(),
            text("project_id", "1"),
            text("keyframes_json", "[]"),
        ])
        .unwrap_err();
        assert_eq!(err.detail(), "No keyframes provided");
        // JSON in a form field has the limits of a JSON body.
        let too_many = json!(vec![0; 10_001]).to_string();
        let err = send(vec![
            video(),
            text("project_id", "1"),
            text("keyframes_json", &too_many),
        ])
        .unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(err.detail().starts_with("body field 'keyframes_json': "));
        let err = send(vec![
            video(),
            text("project_id", "1"),
            text("keyframes_json", "[{\"frame\": 9007199254740992}]"),
        ])
        .unwrap_err();
        assert_eq!(err.status(), 422);
        assert!(err
            .detail()
            .starts_with("body field 'keyframes_json[0].frame': "));
        assert_eq!(
            send(vec![
                video(),
                text("project_id", "4"),
                text("keyframes_json", "[1]")
            ])
            .unwrap_err()
            .status(),
            404
        );
        let reply = send(vec![
            video(),
            text("project_id", "1"),
            text("keyframes_json", "[{\"t\":0}]"),
            text("include_audio", "false"),
        ])
        .unwrap();
        let ApiResponse::Json(body) = &reply.response else {
            panic!()
        };
        assert_eq!(body["message"], "Framing export started");
        let input: String = db
            .query_value("SELECT input_data FROM export_jobs", &[])
            .unwrap()
            .unwrap();
        let input: serde_json::Value = serde_json::from_str(&input).unwrap();
        assert_eq!(input["video_path"], reply.uploads[0].key);
        assert_eq!(
            (input["target_fps"].clone(), input["include_audio"].clone()),
            (json!(30), json!(false))
        );
    }
}
