//! One job from the Worker's queue (docs/processing.md §1) and what the processor does with it:
//! `cut_clip` is cut with ffmpeg, uploaded and recorded; rendering (`framing`, `overlay`) is not
//! implemented here and is recorded as the job's error, so the user sees why.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::worker::{CallError, Worker};

/// A job as the Worker's consumer posts it.
#[derive(Debug, Deserialize)]
pub struct Job {
    pub user_id: String,
    pub kind: String,
    pub ids: Value,
    #[serde(default)]
    pub source: Value,
    #[serde(default)]
    pub params: Value,
}

/// What became of a job, recorded in the Worker.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its result is recorded (or was already: a replay).
    Recorded,
    /// Nothing to do any more (the game video is gone, the clip changed meanwhile).
    Ignored,
    /// It cannot be done here; the job's error is recorded.
    FailedRecorded,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Recorded => "recorded",
            Outcome::Ignored => "ignored",
            Outcome::FailedRecorded => "failed_recorded",
        }
    }
}

/// Why a job was not done.
#[derive(Debug)]
pub enum JobError {
    /// The job itself is wrong: doing it again would not help (400; the queue drops it).
    Malformed(String),
    /// Worth another try later (503; the queue offers it again).
    Retry(String),
}

impl From<CallError> for JobError {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Unavailable(_) => JobError::Retry(err.to_string()),
            // The Worker refusing our own call is a bug here or there: retrying repeats it.
            CallError::NotFound | CallError::Refused(..) => JobError::Malformed(err.to_string()),
        }
    }
}

/// A clip cut out of a game video: where from and which seconds.
#[derive(Debug)]
struct Cut<'a> {
    raw_clip_id: i64,
    game_video: &'a str,
    start: f64,
    end: f64,
}

impl<'a> Cut<'a> {
    fn of(job: &'a Job) -> Result<Self, JobError> {
        let malformed = |what: &str| JobError::Malformed(format!("cut_clip: {what}"));
        let raw_clip_id = job.ids["raw_clip_id"]
            .as_i64()
            .ok_or_else(|| malformed("ids.raw_clip_id must be an integer"))?;
        let game_video = job.source["game_video"]
            .as_str()
            .filter(|name| is_plain_name(name))
            .ok_or_else(|| malformed("source.game_video must be a file name"))?;
        let start = job.params["start_time"].as_f64();
        let end = job.params["end_time"].as_f64();
        let (Some(start), Some(end)) = (start, end) else {
            return Err(malformed(
                "params.start_time and params.end_time are required",
            ));
        };
        if !(start.is_finite() && end.is_finite() && start >= 0.0 && end > start) {
            return Err(malformed(&format!(
                "the range {start}..{end} is not a range of a video"
            )));
        }
        Ok(Self {
            raw_clip_id,
            game_video,
            start,
            end,
        })
    }

    /// The file name of this cut: the same job always writes the same object (docs/schema.md
    /// §4.6: extracted clips are 12 hex characters + `.mp4`).
    fn filename(&self, user: &str) -> String {
        let what = format!("{user}/{}/{}/{}", self.game_video, self.start, self.end);
        let digest = Sha256::digest(what.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{}.mp4", &hex[..12])
    }
}

/// A name the Worker's media routes take: one path segment.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '%'])
}

/// Does one job for the Worker at `worker`.
pub fn run(job: &Job, worker: &Worker<'_>, ffmpeg: &str) -> Result<Outcome, JobError> {
    match job.kind.as_str() {
        "cut_clip" => cut_clip(&Cut::of(job)?, worker, ffmpeg),
        kind @ ("framing" | "overlay") => {
            let job_id = job.ids["job_id"]
                .as_str()
                .filter(|id| is_plain_name(id))
                .ok_or_else(|| JobError::Malformed(format!("{kind}: ids.job_id is required")))?;
            let error = format!("Rendering ({kind}) is not implemented by the reference processor");
            worker.record(
                &format!("/processing/exports/{job_id}/status"),
                &json!({"status": "error", "error": error}),
            )?;
            Ok(Outcome::FailedRecorded)
        }
        other => Err(JobError::Malformed(format!("unknown job kind {other:?}"))),
    }
}

fn cut_clip(cut: &Cut<'_>, worker: &Worker<'_>, ffmpeg: &str) -> Result<Outcome, JobError> {
    let scratch = tempfile::tempdir()
        .map_err(|err| JobError::Retry(format!("no temporary folder: {err}")))?;
    let source = scratch.path().join("game");
    let mut file = std::fs::File::create(&source)
        .map_err(|err| JobError::Retry(format!("no temporary file: {err}")))?;
    match worker.download(&format!("games/{}", cut.game_video), &mut file) {
        Ok(()) => {}
        // The game or its video was removed: a new upload sends new jobs.
        Err(CallError::NotFound) => return Ok(Outcome::Ignored),
        Err(err) => return Err(err.into()),
    }
    drop(file);
    let filename = cut.filename(worker.user);
    let output = scratch.path().join(&filename);
    run_ffmpeg(ffmpeg, &source, cut.start, cut.end, &output)?;
    worker.upload(&format!("raw_clips/{filename}"), &output)?;
    let answer = worker.record(
        &format!("/processing/clips/{}/cut", cut.raw_clip_id),
        &json!({"filename": filename, "start_time": cut.start, "end_time": cut.end}),
    );
    match answer {
        Ok(answer) if answer["applied"] == json!(true) => Ok(Outcome::Recorded),
        // The clip changed or went meanwhile, or this is a replay of a recorded cut.
        Ok(_) | Err(CallError::NotFound) => Ok(Outcome::Ignored),
        Err(err) => Err(err.into()),
    }
}

/// Cuts `end − start` seconds from `start`, accurate to a frame: seeking before `-i` while
/// re-encoding decodes from the keyframe before `start` and drops frames until it, so the cut
/// starts on the exact frame (a stream copy would start on a keyframe).
fn run_ffmpeg(
    ffmpeg: &str,
    source: &Path,
    start: f64,
    end: f64,
    output: &Path,
) -> Result<(), JobError> {
    let result = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-ss", &format!("{start:.6}")])
        .arg("-i")
        .arg(source)
        .args(["-t", &format!("{:.6}", end - start)])
        .args(["-map", "0:v:0", "-map", "0:a:0?"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ])
        .arg(output)
        .output();
    match result {
        Ok(result) if result.status.success() => Ok(()),
        // A video ffmpeg cannot read will not become readable: the job is dropped, and logged.
        Ok(result) => Err(JobError::Malformed(format!(
            "ffmpeg failed ({}): {}",
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        ))),
        Err(err) => Err(JobError::Retry(format!(
            "ffmpeg ({ffmpeg}) did not start: {err}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(params: Value) -> Job {
        Job {
            user_id: "alice".into(),
            kind: "cut_clip".into(),
            ids: json!({"raw_clip_id": 3, "game_id": 1}),
            source: json!({"game_video": "abc.mp4"}),
            params,
        }
    }

    #[test]
    fn a_cut_is_named_by_what_it_cuts() {
        let first = job(json!({"start_time": 1.5, "end_time": 3.0}));
        let same = job(json!({"start_time": 1.5, "end_time": 3.0}));
        let other = job(json!({"start_time": 1.5, "end_time": 3.25}));
        let name = |job: &Job| Cut::of(job).unwrap().filename("alice");
        assert_eq!(name(&first), name(&same));
        assert_ne!(name(&first), name(&other));
        assert_ne!(name(&first), Cut::of(&first).unwrap().filename("bob"));
        let name = name(&first);
        assert_eq!(name.len(), 16);
        assert!(name[..12].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn ranges_that_are_not_ranges_are_malformed() {
        for params in [
            json!({"start_time": 3.0, "end_time": 3.0}),
            json!({"start_time": 4.0, "end_time": 3.0}),
            json!({"start_time": -1.0, "end_time": 3.0}),
            json!({"start_time": 1.0}),
            json!({}),
        ] {
            assert!(
                matches!(Cut::of(&job(params.clone())), Err(JobError::Malformed(_))),
                "{params}"
            );
        }
        let mut bad_source = job(json!({"start_time": 1.0, "end_time": 2.0}));
        bad_source.source = json!({"game_video": "../other/x.mp4"});
        assert!(matches!(Cut::of(&bad_source), Err(JobError::Malformed(_))));
    }
}
