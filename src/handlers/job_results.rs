//! The data side of video processing (docs/processing.md): which clip cuts and exports a request
//! asks the processing service for ([`Job`]s, sent after the commit), and the service's results,
//! recorded by the `/processing/*` routes as the existing app's server wrote them
//! (docs/schema.md §4.7).
//!
//! Every result is idempotent: it applies only while the row is still waiting for it (a pending
//! clip with the same times, a job that is not finished), so a replayed delivery finds its effect
//! there and changes nothing, and a stale one (times changed since) is ignored.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::auto_projects;
use crate::handlers::project_clips::latest_working_clips;
use crate::handlers::request::{Deletion, Effects, Job};
use crate::handlers::{insert_returning_id, Reply};
use user_data_core::db::{Db, SqlValue};

/// The frame rate before/after tracks count in (docs/schema.md §1.8).
const TRACK_FPS: f64 = 30.0;

/// A clip's times as stored, to see whether a change moved them.
pub type ClipTimes = (Option<f64>, Option<f64>);

/// The job that cuts a raw clip out of its game's video, when the clip is pending, has a valid
/// range and its game has a video; otherwise none (a later trigger sends it).
pub fn cut_job(db: &impl Db, raw_clip_id: i64) -> Result<Option<Job>, ApiError> {
    let Some(row) = db
        .query(
            "SELECT c.filename, c.start_time, c.end_time, c.game_id, g.video_filename \
             FROM raw_clips c JOIN games g ON g.id = c.game_id WHERE c.id = ?",
            &[raw_clip_id.into()],
        )?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let filename: String = row.get::<Option<String>>(0)?.unwrap_or_default();
    let (start, end): ClipTimes = (row.get(1)?, row.get(2)?);
    let video: String = row.get::<Option<String>>(4)?.unwrap_or_default();
    let (Some(start), Some(end)) = (start, end) else {
        return Ok(None);
    };
    if !filename.is_empty() || video.is_empty() || start < 0.0 || end <= start {
        return Ok(None);
    }
    Ok(Some(Job {
        kind: "cut_clip",
        ids: json!({ "raw_clip_id": raw_clip_id, "game_id": row.get::<i64>(3)? }),
        source: json!({ "game_video": video }),
        params: json!({ "start_time": start, "end_time": end }),
    }))
}

/// After a change that may have moved a clip's times (C4, C5, G5): a clip whose times moved
/// loses its cut (the file is deleted after the commit) and becomes pending again; a pending clip
/// gets its cut job.
pub fn after_times_change(
    db: &impl Db,
    raw_clip_id: i64,
    before: ClipTimes,
) -> Result<Effects, ApiError> {
    let mut effects = Effects::default();
    let Some(row) = db
        .query(
            "SELECT filename, start_time, end_time, game_id FROM raw_clips WHERE id = ?",
            &[raw_clip_id.into()],
        )?
        .into_iter()
        .next()
    else {
        return Ok(effects);
    };
    let filename: String = row.get::<Option<String>>(0)?.unwrap_or_default();
    let after: ClipTimes = (row.get(1)?, row.get(2)?);
    let from_a_game = row.get::<Option<i64>>(3)?.is_some();
    if from_a_game && after != before && !filename.is_empty() {
        db.execute(
            "UPDATE raw_clips SET filename = '' WHERE id = ?",
            &[raw_clip_id.into()],
        )?;
        effects
            .deletions
            .push(Deletion::Object(format!("raw_clips/{filename}")));
    }
    effects.jobs.extend(cut_job(db, raw_clip_id)?);
    Ok(effects)
}

/// The cut jobs of every pending clip of a game (its video just arrived: G8).
pub fn pending_cuts_of_game(db: &impl Db, game_id: i64) -> Result<Vec<Job>, ApiError> {
    let ids = db.query(
        "SELECT id FROM raw_clips WHERE game_id = ? AND filename = '' ORDER BY id",
        &[game_id.into()],
    )?;
    let mut jobs = Vec::new();
    for row in ids {
        jobs.extend(cut_job(db, row.get(0)?)?);
    }
    Ok(jobs)
}

/// The rendering job of an export job just recorded as pending (E1 to E3).
pub fn export_job(job_id: &str, kind: &'static str, project_id: i64, input: &Value) -> Job {
    Job {
        kind,
        ids: json!({ "job_id": job_id, "project_id": project_id }),
        source: json!({ "video_path": input.get("video_path").cloned().unwrap_or(Value::Null) }),
        params: input.clone(),
    }
}

/// A file name the service may give a produced file: one path segment of safe characters.
fn checked_filename(filename: &str) -> Result<&str, ApiError> {
    let safe = !filename.is_empty()
        && filename.len() <= 128
        && !filename.starts_with('.')
        && filename
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if safe {
        Ok(filename)
    } else {
        Err(ApiError::Unprocessable(
            "body field 'filename': 1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.'".into(),
        ))
    }
}

#[derive(Debug, Deserialize)]
pub struct CutResult {
    filename: String,
    start_time: f64,
    end_time: f64,
}

/// `POST /processing/clips/{id}/cut`: records the cut file of a pending clip whose times are
/// still the cut's; a 5-star clip without an auto-project gets one (docs/schema.md §4.5).
pub fn record_cut(db: &impl Db, raw_clip_id: i64, cut: CutResult) -> Result<Reply, ApiError> {
    let filename = checked_filename(&cut.filename)?;
    let changes_before = db.total_changes()?;
    db.execute(
        "UPDATE raw_clips SET filename = ? \
         WHERE id = ? AND filename = '' AND start_time = ? AND end_time = ?",
        &[
            filename.into(),
            raw_clip_id.into(),
            cut.start_time.into(),
            cut.end_time.into(),
        ],
    )?;
    let applied = db.total_changes()? > changes_before;
    if applied {
        let row = db
            .query(
                "SELECT rating, auto_project_id, COALESCE(name, '') FROM raw_clips WHERE id = ?",
                &[raw_clip_id.into()],
            )?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::Internal("the cut clip vanished".into()))?;
        if row.get::<i64>(0)? == 5 && row.get::<Option<i64>>(1)?.is_none() {
            auto_projects::create(db, raw_clip_id, &row.get::<String>(2)?)?;
        }
    }
    Ok(Reply::json(json!({ "applied": applied })))
}

#[derive(Debug, Deserialize)]
pub struct RenderResult {
    filename: String,
}

/// An export job waiting for its result: its project, or `None` when it is finished already
/// (complete, failed or cancelled), so a replay changes nothing.
fn waiting_job(db: &impl Db, job_id: &str, kind: &str) -> Result<Option<i64>, ApiError> {
    let row = db
        .query(
            "SELECT project_id, type, status FROM export_jobs WHERE id = ?",
            &[job_id.into()],
        )?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound("Export job not found".into()))?;
    let job_type: String = row.get(1)?;
    if job_type != kind {
        return Err(ApiError::BadRequest(format!(
            "Export job {job_id} is a {job_type} job, not {kind}"
        )));
    }
    let status: String = row.get(2)?;
    let project_id: i64 = row.get(0)?;
    let waiting = matches!(status.as_str(), "pending" | "processing");
    Ok((waiting && project_exists(db, project_id)?).then_some(project_id))
}

fn project_exists(db: &impl Db, project_id: i64) -> Result<bool, ApiError> {
    Ok(!db
        .query("SELECT 1 FROM projects WHERE id = ?", &[project_id.into()])?
        .is_empty())
}

/// Marks a job complete with its output row.
fn complete(db: &impl Db, job_id: &str, output_id: i64, filename: &str) -> Result<(), ApiError> {
    db.execute(
        "UPDATE export_jobs SET status = 'complete', error = NULL, output_video_id = ?, \
         output_filename = ?, started_at = COALESCE(started_at, CURRENT_TIMESTAMP), \
         completed_at = CURRENT_TIMESTAMP WHERE id = ?",
        &[output_id.into(), filename.into(), job_id.into()],
    )?;
    Ok(())
}

/// `POST /processing/exports/{job_id}/framing`: a framing export's working video. Inserts the
/// next `working_videos` version, points the project at it (and away from its final video),
/// stamps `exported_at` on the latest working clips, and completes the job.
pub fn record_framing(db: &impl Db, job_id: &str, result: RenderResult) -> Result<Reply, ApiError> {
    let filename = checked_filename(&result.filename)?;
    let Some(project_id) = waiting_job(db, job_id, "framing")? else {
        return Ok(Reply::json(json!({ "applied": false })));
    };
    let video_id = insert_returning_id(
        db,
        "INSERT INTO working_videos (project_id, filename, version) VALUES (?1, ?2, \
         (SELECT COALESCE(MAX(version), 0) + 1 FROM working_videos WHERE project_id = ?1)) \
         RETURNING id",
        &[project_id.into(), filename.into()],
    )?;
    db.execute(
        "UPDATE projects SET working_video_id = ?, final_video_id = NULL WHERE id = ?",
        &[video_id.into(), project_id.into()],
    )?;
    db.execute(
        &format!(
            "{latest} UPDATE working_clips SET exported_at = CURRENT_TIMESTAMP \
             WHERE id IN (SELECT id FROM latest)",
            latest = latest_working_clips("WHERE wc.project_id = ?")
        ),
        &[project_id.into()],
    )?;
    complete(db, job_id, video_id, filename)?;
    Ok(Reply::json(
        json!({ "applied": true, "working_video_id": video_id }),
    ))
}

/// `POST /processing/exports/{job_id}/final`: an overlay export's final video. Inserts the next
/// `final_videos` version (`source_type` per docs/schema.md §4.5), points the project at it,
/// records one before/after track per working clip with a source file, and completes the job.
pub fn record_final(db: &impl Db, job_id: &str, result: RenderResult) -> Result<Reply, ApiError> {
    let filename = checked_filename(&result.filename)?;
    let Some(project_id) = waiting_job(db, job_id, "overlay")? else {
        return Ok(Reply::json(json!({ "applied": false })));
    };
    let video_id = insert_returning_id(
        db,
        "INSERT INTO final_videos (project_id, filename, version, source_type) VALUES (?1, ?2, \
         (SELECT COALESCE(MAX(version), 0) + 1 FROM final_videos WHERE project_id = ?1), \
         CASE WHEN EXISTS (SELECT 1 FROM raw_clips WHERE auto_project_id = ?1) \
              THEN 'brilliant_clip' ELSE 'custom_project' END) \
         RETURNING id",
        &[project_id.into(), filename.into()],
    )?;
    db.execute(
        "UPDATE projects SET final_video_id = ? WHERE id = ?",
        &[video_id.into(), project_id.into()],
    )?;
    let clips = db.query(
        "SELECT wc.raw_clip_id, COALESCE(NULLIF(rc.filename, ''), ''), wc.uploaded_filename, \
                wc.timing_data, wc.segments_data \
         FROM working_clips wc LEFT JOIN raw_clips rc ON rc.id = wc.raw_clip_id \
         WHERE wc.project_id = ? ORDER BY wc.sort_order, wc.id",
        &[project_id.into()],
    )?;
    for (clip_index, clip) in clips.iter().enumerate() {
        let raw_clip_id: Option<i64> = clip.get(0)?;
        let raw_file: String = clip.get(1)?;
        let uploaded: Option<String> = clip.get(2)?;
        let source_path = match (raw_file.is_empty(), uploaded) {
            (false, _) => format!("raw_clips/{raw_file}"),
            (true, Some(uploaded)) if !uploaded.is_empty() => format!("uploads/{uploaded}"),
            _ => continue,
        };
        let (start_frame, end_frame) = track_frames(
            clip.get::<Option<String>>(3)?.as_deref(),
            clip.get::<Option<String>>(4)?.as_deref(),
        );
        db.execute(
            "INSERT INTO before_after_tracks \
             (final_video_id, raw_clip_id, source_path, start_frame, end_frame, clip_index) \
             VALUES (?, ?, ?, ?, ?, ?)",
            &[
                video_id.into(),
                raw_clip_id.map_or(SqlValue::Null, SqlValue::from),
                source_path.into(),
                start_frame.into(),
                end_frame.into(),
                i64::try_from(clip_index).unwrap_or(i64::MAX).into(),
            ],
        )?;
    }
    complete(db, job_id, video_id, filename)?;
    Ok(Reply::json(
        json!({ "applied": true, "final_video_id": video_id }),
    ))
}

/// A clip's before/after frames (docs/schema.md §1.8): its trim range × 30 fps, else 0 to the
/// last segment boundary × 30, else 0 to 0. Both stored shapes of the framing data are read.
fn track_frames(timing_data: Option<&str>, segments_data: Option<&str>) -> (i64, i64) {
    let parse = |text: Option<&str>| text.and_then(|text| serde_json::from_str::<Value>(text).ok());
    let timing = parse(timing_data).unwrap_or(Value::Null);
    let segments = parse(segments_data).unwrap_or(Value::Null);
    let number = |value: &Value| value.as_f64().filter(|n| n.is_finite() && *n >= 0.0);
    let trim = [&timing["trimRange"], &segments["trimRange"]]
        .into_iter()
        .find_map(|range| Some((number(&range["start"])?, number(&range["end"])?)))
        .or_else(|| {
            Some((
                number(&segments["trim_start"])?,
                number(&segments["trim_end"])?,
            ))
        });
    let frames = |seconds: f64| (seconds * TRACK_FPS).round() as i64;
    if let Some((start, end)) = trim {
        return (frames(start), frames(end));
    }
    let last_boundary = segments["boundaries"]
        .as_array()
        .and_then(|boundaries| boundaries.iter().filter_map(number).reduce(f64::max))
        .or_else(|| {
            segments["segments"].as_array().and_then(|list| {
                list.iter()
                    .filter_map(|s| number(&s["end"]))
                    .reduce(f64::max)
            })
        });
    (0, last_boundary.map_or(0, frames))
}

/// A status report; a `progress` field may come along and is not stored (docs/schema.md §1.7).
#[derive(Debug, Deserialize)]
pub struct StatusChange {
    status: String,
    #[serde(default)]
    error: Option<String>,
}

/// `POST /processing/exports/{job_id}/status`: moves a job forward only: pending → processing,
/// pending or processing → error. A finished job is left as it is.
pub fn record_status(db: &impl Db, job_id: &str, change: StatusChange) -> Result<Reply, ApiError> {
    if db
        .query("SELECT 1 FROM export_jobs WHERE id = ?", &[job_id.into()])?
        .is_empty()
    {
        return Err(ApiError::NotFound("Export job not found".into()));
    }
    let changes_before = db.total_changes()?;
    match change.status.as_str() {
        "processing" => db.execute(
            "UPDATE export_jobs SET status = 'processing', started_at = CURRENT_TIMESTAMP \
             WHERE id = ? AND status = 'pending'",
            &[job_id.into()],
        )?,
        "error" => db.execute(
            "UPDATE export_jobs SET status = 'error', error = ?, completed_at = CURRENT_TIMESTAMP \
             WHERE id = ? AND status IN ('pending', 'processing')",
            &[
                change
                    .error
                    .unwrap_or_else(|| "Export failed".to_owned())
                    .into(),
                job_id.into(),
            ],
        )?,
        other => {
            return Err(ApiError::Unprocessable(format!(
                "body field 'status': 'processing' or 'error', not '{other}' (a result completes a job)"
            )))
        }
    };
    let applied = db.total_changes()? > changes_before;
    Ok(Reply::json(json!({ "applied": applied })))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::track_frames;
    use crate::handlers::tests::{call, form, json_body, ok, status, test_db, TestDb};
    use crate::handlers::{Body, Deletion, FormValue, Job, Method, UploadedFile};
    use user_data_core::db::Db;

    fn game(db: &TestDb, with_video: bool) -> i64 {
        let id = ok(db, Method::Post, "/api/games", form(&[("name", "match")]))["game"]["id"]
            .as_i64()
            .unwrap();
        if with_video {
            upload_video(db, id);
        }
        id
    }

    fn upload_video(db: &TestDb, game_id: i64) -> Vec<Job> {
        let file = UploadedFile {
            filename: "game.mp4".into(),
            content_type: "video/mp4".into(),
            bytes: vec![0; 64].into(),
        };
        let body = Body::Form(vec![("video".into(), FormValue::File(file))]);
        call(
            db,
            Method::Put,
            &format!("/api/games/{game_id}/video"),
            body,
        )
        .unwrap()
        .jobs
    }

    fn save(db: &TestDb, game_id: i64, start: f64, end: f64, rating: i64) -> (i64, Vec<Job>) {
        let body = json_body(
            json!({"game_id": game_id, "start_time": start, "end_time": end,
                                    "rating": rating, "name": "Goal"}),
        );
        let reply = call(db, Method::Post, "/api/clips/raw/save", body).unwrap();
        let crate::handlers::ApiResponse::Json(answer) = &reply.response else {
            panic!("C4 answers JSON")
        };
        (answer["raw_clip_id"].as_i64().unwrap(), reply.jobs)
    }

    fn cut(db: &TestDb, clip: i64, filename: &str, start: f64, end: f64) -> Value {
        let body = json_body(json!({"filename": filename, "start_time": start, "end_time": end}));
        ok(
            db,
            Method::Post,
            &format!("/processing/clips/{clip}/cut"),
            body,
        )
    }

    fn clip_file(db: &TestDb, clip: i64) -> String {
        db.query_value(
            "SELECT filename FROM raw_clips WHERE id = ?",
            &[clip.into()],
        )
        .unwrap()
        .unwrap()
    }

    fn auto_project(db: &TestDb, clip: i64) -> Option<i64> {
        db.query_value(
            "SELECT auto_project_id FROM raw_clips WHERE id = ?",
            &[clip.into()],
        )
        .unwrap()
    }

    fn version_sum(db: &TestDb) -> i64 {
        db.query_value("SELECT total_changes()", &[])
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_clip_is_cut_once_its_game_has_a_video_whenever_it_was_saved() {
        let db = test_db();
        let game_id = game(&db, false);
        let (before, jobs) = save(&db, game_id, 1.0, 4.5, 3);
        assert!(jobs.is_empty(), "no video yet, no cut: {jobs:?}");
        let jobs = upload_video(&db, game_id);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, "cut_clip");
        assert_eq!(
            jobs[0].ids,
            json!({"raw_clip_id": before, "game_id": game_id})
        );
        assert_eq!(jobs[0].params, json!({"start_time": 1.0, "end_time": 4.5}));
        let video: String = db
            .query_value(
                "SELECT video_filename FROM games WHERE id = ?",
                &[game_id.into()],
            )
            .unwrap()
            .unwrap();
        assert_eq!(jobs[0].source, json!({"game_video": video}));

        let (after, jobs) = save(&db, game_id, 6.0, 9.0, 3);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].ids["raw_clip_id"], json!(after));
        // A clip already cut is not cut again when the video is replaced with the same name.
        assert_eq!(
            cut(&db, before, "aaaaaaaaaaaa.mp4", 1.0, 4.5)["applied"],
            json!(true)
        );
        let jobs = upload_video(&db, game_id);
        assert_eq!(jobs.len(), 1, "only the pending clip: {jobs:?}");
        assert_eq!(jobs[0].ids["raw_clip_id"], json!(after));
    }

    #[test]
    fn a_replayed_cut_changes_nothing_and_a_stale_one_is_ignored() {
        let db = test_db();
        let game_id = game(&db, true);
        let (clip, _) = save(&db, game_id, 2.0, 5.0, 3);
        assert_eq!(
            cut(&db, clip, "bbbbbbbbbbbb.mp4", 2.0, 5.0)["applied"],
            json!(true)
        );
        assert_eq!(clip_file(&db, clip), "bbbbbbbbbbbb.mp4");
        let changes = version_sum(&db);
        assert_eq!(
            cut(&db, clip, "bbbbbbbbbbbb.mp4", 2.0, 5.0)["applied"],
            json!(false)
        );
        assert_eq!(
            cut(&db, clip, "cccccccccccc.mp4", 2.0, 5.0)["applied"],
            json!(false)
        );
        assert_eq!(version_sum(&db), changes, "a replay wrote a row");
        assert_eq!(clip_file(&db, clip), "bbbbbbbbbbbb.mp4");

        // New times: the old cut goes (deleted after the commit), a new cut job goes out, and a
        // late cut of the old times is ignored.
        let reply = call(
            &db,
            Method::Put,
            &format!("/api/clips/raw/{clip}"),
            json_body(json!({"start_time": 2.5})),
        )
        .unwrap();
        assert_eq!(
            reply.deletions,
            vec![Deletion::Object("raw_clips/bbbbbbbbbbbb.mp4".into())]
        );
        assert_eq!(reply.jobs.len(), 1);
        assert_eq!(
            reply.jobs[0].params,
            json!({"start_time": 2.5, "end_time": 5.0})
        );
        assert_eq!(clip_file(&db, clip), "");
        assert_eq!(
            cut(&db, clip, "dddddddddddd.mp4", 2.0, 5.0)["applied"],
            json!(false)
        );
        assert_eq!(
            cut(&db, clip, "eeeeeeeeeeee.mp4", 2.5, 5.0)["applied"],
            json!(true)
        );
        assert_eq!(clip_file(&db, clip), "eeeeeeeeeeee.mp4");
        // Changing only the name keeps the cut.
        let reply = call(
            &db,
            Method::Put,
            &format!("/api/clips/raw/{clip}"),
            json_body(json!({"name": "Renamed"})),
        )
        .unwrap();
        assert!(reply.jobs.is_empty() && reply.deletions.is_empty());
    }

    #[test]
    fn moving_a_start_in_the_annotation_sync_recuts_only_that_clip() {
        let db = test_db();
        let game_id = game(&db, true);
        let (moved, _) = save(&db, game_id, 1.0, 3.0, 3);
        let (kept, _) = save(&db, game_id, 4.0, 6.0, 3);
        cut(&db, moved, "aaaaaaaaaaaa.mp4", 1.0, 3.0);
        cut(&db, kept, "bbbbbbbbbbbb.mp4", 4.0, 6.0);
        let items = json!([
            {"start_time": 1.5, "end_time": 3.0, "name": "", "rating": 3, "tags": [], "notes": ""},
            {"start_time": 4.0, "end_time": 6.0, "name": "", "rating": 3, "tags": [], "notes": ""},
        ]);
        let reply = call(
            &db,
            Method::Put,
            &format!("/api/games/{game_id}/annotations"),
            json_body(items),
        )
        .unwrap();
        assert_eq!(reply.jobs.len(), 1);
        assert_eq!(reply.jobs[0].ids["raw_clip_id"], json!(moved));
        assert_eq!(
            reply.deletions,
            vec![Deletion::Object("raw_clips/aaaaaaaaaaaa.mp4".into())]
        );
        assert_eq!(clip_file(&db, kept), "bbbbbbbbbbbb.mp4");
    }

    #[test]
    fn a_five_star_clip_keeps_one_auto_project_through_its_cut() {
        let db = test_db();
        let game_id = game(&db, true);
        let (clip, _) = save(&db, game_id, 0.0, 2.0, 5);
        let project = auto_project(&db, clip).expect("a 5-star clip has its auto-project");
        cut(&db, clip, "ffffffffffff.mp4", 0.0, 2.0);
        let projects: i64 = db
            .query_value("SELECT COUNT(*) FROM projects", &[])
            .unwrap()
            .unwrap();
        assert_eq!(projects, 1);
        let clips = ok(
            &db,
            Method::Get,
            &format!("/api/clips/projects/{project}/clips"),
            Body::Empty,
        );
        assert_eq!(clips[0]["filename"], json!("ffffffffffff.mp4"));
        // A 5-star clip whose auto-project link was cleared gets one with its cut.
        let (other, _) = save(&db, game_id, 3.0, 4.0, 5);
        db.execute(
            "UPDATE raw_clips SET auto_project_id = NULL WHERE id = ?",
            &[other.into()],
        )
        .unwrap();
        cut(&db, other, "111111111111.mp4", 3.0, 4.0);
        assert!(auto_project(&db, other).is_some());
    }

    fn export(db: &TestDb, project: i64, kind: &str) -> (String, Vec<Job>) {
        let body = json_body(json!({"project_id": project, "type": kind, "config": {"k": 1}}));
        let reply = call(db, Method::Post, "/api/exports", body).unwrap();
        let crate::handlers::ApiResponse::Json(answer) = &reply.response else {
            panic!("E1 answers JSON")
        };
        (answer["job_id"].as_str().unwrap().to_owned(), reply.jobs)
    }

    #[test]
    fn a_framing_result_completes_its_job_once() {
        let db = test_db();
        let game_id = game(&db, true);
        let (clip, _) = save(&db, game_id, 0.0, 2.0, 5);
        let project = auto_project(&db, clip).expect("a 5-star clip has its auto-project");
        let (job, jobs) = export(&db, project, "framing");
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, "framing");
        assert_eq!(jobs[0].ids, json!({"job_id": job, "project_id": project}));
        assert_eq!(jobs[0].params, json!({"k": 1}));
        let (_, none) = export(&db, project, "multi_clip");
        assert!(none.is_empty(), "a type nobody renders sends no job");

        let path = format!("/processing/exports/{job}/status");
        assert_eq!(
            ok(
                &db,
                Method::Post,
                &path,
                json_body(json!({"status": "processing", "progress": 10}))
            )["applied"],
            json!(true)
        );
        let framing = format!("/processing/exports/{job}/framing");
        let done = ok(
            &db,
            Method::Post,
            &framing,
            json_body(json!({"filename": "project_1_v1.mp4"})),
        );
        assert_eq!(done["applied"], json!(true));
        let changes = version_sum(&db);
        let again = ok(
            &db,
            Method::Post,
            &framing,
            json_body(json!({"filename": "project_1_v1.mp4"})),
        );
        assert_eq!(again["applied"], json!(false));
        assert_eq!(
            ok(
                &db,
                Method::Post,
                &path,
                json_body(json!({"status": "error", "error": "late"}))
            )["applied"],
            json!(false)
        );
        assert_eq!(version_sum(&db), changes, "a replay wrote a row");

        let job_row = ok(
            &db,
            Method::Get,
            &format!("/api/exports/{job}"),
            Body::Empty,
        );
        assert_eq!(job_row["status"], json!("complete"));
        assert_eq!(job_row["output_filename"], json!("project_1_v1.mp4"));
        assert_eq!(job_row["output_video_id"], done["working_video_id"]);
        let working = call(
            &db,
            Method::Get,
            &format!("/api/projects/{project}/working-video"),
            Body::Empty,
        )
        .unwrap();
        let crate::handlers::ApiResponse::File(file) = working.response else {
            panic!("the working video is a file route")
        };
        assert_eq!(file.key, "working_videos/project_1_v1.mp4");
        let stamped: i64 = db
            .query_value("SELECT COUNT(*) FROM working_clips WHERE project_id = ? AND exported_at IS NOT NULL", &[project.into()])
            .unwrap()
            .unwrap();
        assert_eq!(stamped, 1);
        // A result for the wrong kind of job is refused, not recorded.
        assert_eq!(
            status(
                &db,
                Method::Post,
                &format!("/processing/exports/{job}/final"),
                json_body(json!({"filename": "x.mp4"}))
            ),
            400
        );
    }

    #[test]
    fn a_final_result_adds_a_gallery_video_with_its_tracks() {
        let db = test_db();
        let game_id = game(&db, true);
        let (clip, _) = save(&db, game_id, 0.0, 2.0, 5);
        cut(&db, clip, "222222222222.mp4", 0.0, 2.0);
        let project = auto_project(&db, clip).expect("a 5-star clip has its auto-project");
        db.execute("UPDATE working_clips SET timing_data = '{\"trimRange\": {\"start\": 0.5, \"end\": 1.5}}'", &[]).unwrap();
        let (job, _) = export(&db, project, "overlay");
        let path = format!("/processing/exports/{job}/final");
        let done = ok(
            &db,
            Method::Post,
            &path,
            json_body(json!({"filename": "final_1_v1.mp4"})),
        );
        assert_eq!(done["applied"], json!(true));
        let changes = version_sum(&db);
        assert_eq!(
            ok(
                &db,
                Method::Post,
                &path,
                json_body(json!({"filename": "final_1_v1.mp4"}))
            )["applied"],
            json!(false)
        );
        assert_eq!(version_sum(&db), changes);
        let gallery = ok(&db, Method::Get, "/api/downloads", Body::Empty);
        assert!(gallery.to_string().contains("brilliant_clip"), "{gallery}");
        let track: (String, i64, i64) = {
            let row = db
                .query(
                    "SELECT source_path, start_frame, end_frame FROM before_after_tracks",
                    &[],
                )
                .unwrap();
            assert_eq!(row.len(), 1);
            (
                row[0].get(0).unwrap(),
                row[0].get(1).unwrap(),
                row[0].get(2).unwrap(),
            )
        };
        assert_eq!(track, ("raw_clips/222222222222.mp4".to_owned(), 15, 45));
    }

    #[test]
    fn results_with_unsafe_names_or_statuses_are_refused() {
        let db = test_db();
        let game_id = game(&db, true);
        let (clip, _) = save(&db, game_id, 0.0, 2.0, 3);
        for name in ["", "../x.mp4", "a/b.mp4", ".hidden", "sp ace.mp4"] {
            let body = json_body(json!({"filename": name, "start_time": 0.0, "end_time": 2.0}));
            assert_eq!(
                status(
                    &db,
                    Method::Post,
                    &format!("/processing/clips/{clip}/cut"),
                    body
                ),
                422,
                "{name:?}"
            );
        }
        assert_eq!(clip_file(&db, clip), "");
        let project = ok(
            &db,
            Method::Post,
            "/api/projects",
            json_body(json!({"name": "P", "aspect_ratio": "16:9"})),
        )["id"]
            .as_i64()
            .unwrap();
        let (job, _) = export(&db, project, "framing");
        let body = json_body(json!({"status": "complete"}));
        assert_eq!(
            status(
                &db,
                Method::Post,
                &format!("/processing/exports/{job}/status"),
                body
            ),
            422
        );
        let body = json_body(json!({"status": "processing"}));
        assert_eq!(
            status(
                &db,
                Method::Post,
                "/processing/exports/export_nope/status",
                body
            ),
            404
        );
    }

    #[test]
    fn track_frames_read_both_shapes_of_framing_data() {
        assert_eq!(
            track_frames(Some(r#"{"trimRange": {"start": 1.5, "end": 4}}"#), None),
            (45, 120)
        );
        assert_eq!(
            track_frames(None, Some(r#"{"trim_start": 2, "trim_end": 3}"#)),
            (60, 90)
        );
        assert_eq!(
            track_frames(
                Some(r#"{"trimRange": null}"#),
                Some(r#"{"boundaries": [0, 2.5, 7], "segmentSpeeds": {}}"#)
            ),
            (0, 210)
        );
        assert_eq!(track_frames(None, Some("not json")), (0, 0));
        assert_eq!(track_frames(None, None), (0, 0));
    }

    /// A step of a user and a processing service working on two clips at once.
    #[derive(Debug, Clone)]
    enum Step {
        /// The user moves a clip's start (C5) to one of a few values, maybe its current one.
        Retime { clip: usize, start: u8 },
        /// A cut result arrives for these times: current, stale or replayed, under one of a few names.
        Cut { clip: usize, start: u8, name: u8 },
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0..2usize, 0..3u8).prop_map(|(clip, start)| Step::Retime { clip, start }),
            (0..2usize, 0..3u8, 0..2u8).prop_map(|(clip, start, name)| Step::Cut {
                clip,
                start,
                name
            }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the order of edits, deliveries and replays: a clip holds a cut only of its
        /// current times, the first such cut wins, and a result that does not apply changes no row.
        #[test]
        fn cuts_apply_once_and_only_to_the_current_times(steps in proptest::collection::vec(step(), 1..24)) {
            let db = test_db();
            let game_id = game(&db, true);
            let end = |clip: usize| 10.0 + clip as f64 * 10.0;
            let clips: Vec<i64> = (0..2).map(|clip| save(&db, game_id, 0.0, end(clip), 3).0).collect();
            // The model: each clip's start and the cut it holds.
            let mut model: Vec<(f64, Option<String>)> = vec![(0.0, None), (0.0, None)];
            for step in steps {
                match step {
                    Step::Retime { clip, start } => {
                        let start = f64::from(start);
                        let body = json_body(json!({"start_time": start}));
                        let reply = call(&db, Method::Put, &format!("/api/clips/raw/{}", clips[clip]), body).unwrap();
                        let moved = start != model[clip].0;
                        // A move drops the old cut and asks for a new one; no move, nothing.
                        let dropped = moved && model[clip].1.is_some();
                        proptest::prop_assert_eq!(reply.deletions.len(), usize::from(dropped));
                        proptest::prop_assert_eq!(reply.jobs.len(), usize::from(moved || model[clip].1.is_none()));
                        if moved {
                            model[clip] = (start, None);
                        }
                    }
                    Step::Cut { clip, start, name } => {
                        let start = f64::from(start);
                        let filename = format!("{name}{name}{name}{name}{name}{name}.mp4");
                        let before = version_sum(&db);
                        let answer = cut(&db, clips[clip], &filename, start, end(clip));
                        let applies = model[clip].1.is_none() && start == model[clip].0;
                        proptest::prop_assert_eq!(&answer["applied"], &json!(applies));
                        if applies {
                            model[clip].1 = Some(filename);
                        } else {
                            proptest::prop_assert_eq!(version_sum(&db), before, "a result that did not apply wrote");
                        }
                    }
                }
                for (clip, (_, held)) in clips.iter().zip(&model) {
                    proptest::prop_assert_eq!(clip_file(&db, *clip), held.clone().unwrap_or_default());
                }
            }
        }
    }
}
