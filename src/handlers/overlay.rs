//! `/api/export/projects/{project_id}/overlay-data` (docs/api.md §7): a project's highlight
//! regions, and the per-clip defaults that carry them over to other projects.
//!
//! Regions are saved in working-video space (pixels of a 1080x1920 frame, seconds of the working
//! video) and kept per raw clip in raw-clip space (source frames at 30 fps, source pixels), via
//! the clip's trim, speed and crop. Two defects of the existing app are fixed here (docs/api.md
//! §13.3, §13.4): only the latest version of each clip is used, so regions are neither
//! duplicated on load nor counted twice on save; and the current frontend's formats (crop
//! keyframes keyed by `time`, segments as `{trim_start, trim_end, segments}`) are understood
//! besides the legacy ones, instead of degenerating to one crop and no trim.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::project_clips::latest_working_clips;
use crate::handlers::projects::require_project;
use crate::handlers::{local_iso_now, ApiRequest, Reply};
use user_data_core::db::Db;

const FPS: f64 = 30.0;
/// The working video's size; this Worker cannot read it from the file.
const WIDTH: f64 = 1080.0;
const HEIGHT: f64 = 1920.0;

/// How working-video time maps to source time: the kept window and its speed segments.
#[derive(Debug, Clone, PartialEq)]
struct Timeline {
    /// `(source start, source end, speed)` of every kept piece, in order.
    pieces: Vec<(f64, f64, f64)>,
    /// Source time of working time 0 when there are no pieces (trim start, else 0).
    offset: f64,
    /// The kept source window, when one is known.
    window: Option<(f64, f64)>,
}

fn number(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

impl Timeline {
    /// Reads `segments_data` in either shape; anything else is the identity.
    fn from_segments(segments_data: Option<&str>) -> Self {
        let data: Value = segments_data
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        let (boundaries, speeds, window) = if let Some(bounds) =
            data.get("boundaries").and_then(Value::as_array)
        {
            let boundaries: Vec<f64> = bounds.iter().filter_map(Value::as_f64).collect();
            let speeds: Vec<f64> = (0..boundaries.len().saturating_sub(1))
                .map(|i| {
                    data.get("segmentSpeeds")
                        .and_then(|speeds| number(speeds, &i.to_string()))
                        .unwrap_or(1.0)
                })
                .collect();
            let trim = data.get("trimRange");
            let window = trim.and_then(|t| Some((number(t, "start")?, number(t, "end")?)));
            (boundaries, speeds, window)
        } else {
            let segments = data
                .get("segments")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut boundaries = Vec::new();
            let mut speeds = Vec::new();
            for segment in &segments {
                if let (Some(start), Some(end)) = (number(segment, "start"), number(segment, "end"))
                {
                    if boundaries.last() != Some(&start) {
                        boundaries.push(start);
                    }
                    boundaries.push(end);
                    speeds.push(number(segment, "speed").unwrap_or(1.0));
                }
            }
            if boundaries.len() != speeds.len() + 1 {
                // Gaps between segments: not a partition of the clip; keep only the trim.
                boundaries.clear();
                speeds.clear();
            }
            let window = match (number(&data, "trim_start"), number(&data, "trim_end")) {
                (Some(start), Some(end)) => Some((start, end)),
                (Some(start), None) => boundaries.last().map(|end| (start, *end)),
                (None, Some(end)) => Some((boundaries.first().copied().unwrap_or(0.0), end)),
                (None, None) => None,
            };
            (boundaries, speeds, window)
        };

        let (trim_start, trim_end) = window.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
        let pieces = boundaries
            .windows(2)
            .zip(&speeds)
            .filter_map(|(bounds, speed)| {
                let (start, end) = (bounds[0].max(trim_start), bounds[1].min(trim_end));
                let speed = if *speed > 0.0 { *speed } else { 1.0 };
                (end > start).then_some((start, end, speed))
            })
            .collect();
        Timeline {
            pieces,
            offset: window.map_or(0.0, |(start, _)| start),
            window,
        }
    }

    /// Working seconds -> source seconds (clamped to the end of the kept pieces).
    fn to_source(&self, working: f64) -> f64 {
        let mut elapsed = 0.0;
        for (start, end, speed) in &self.pieces {
            let length = (end - start) / speed;
            if working <= elapsed + length {
                return start + (working - elapsed).max(0.0) * speed;
            }
            elapsed += length;
        }
        match self.pieces.last() {
            Some((_, end, _)) => *end,
            None => working + self.offset,
        }
    }

    /// Source seconds -> working seconds, or `None` outside the kept window.
    fn to_working(&self, source: f64) -> Option<f64> {
        if let Some((start, end)) = self.window {
            if source < start || source > end {
                return None;
            }
        }
        if self.pieces.is_empty() {
            return Some(source - self.offset);
        }
        let mut elapsed = 0.0;
        for (start, end, speed) in &self.pieces {
            if source >= *start && source <= *end {
                return Some(elapsed + (source - start) / speed);
            }
            elapsed += (end - start) / speed;
        }
        None
    }

    /// The working time of the kept window's start and end.
    fn working_bounds(&self) -> (f64, f64) {
        let total: f64 = self.pieces.iter().map(|(s, e, v)| (e - s) / v).sum();
        match (self.pieces.is_empty(), self.window) {
            (false, _) => (0.0, total),
            (true, Some((start, end))) => (0.0, end - start),
            (true, None) => (0.0, f64::INFINITY),
        }
    }
}

/// A crop rectangle in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Crop {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
}

const FULL_FRAME: Crop = Crop {
    x: 0.0,
    y: 0.0,
    width: WIDTH,
    height: HEIGHT,
};

/// Crop keyframes by raw frame, interpolated linearly between them.
struct CropTrack(Vec<(f64, Crop)>);

impl CropTrack {
    fn from_crop_data(crop_data: Option<&str>) -> Self {
        let keyframes: Vec<Value> = crop_data
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let mut track: Vec<(f64, Crop)> = keyframes
            .iter()
            .filter_map(|kf| {
                // Legacy keyframes carry `frame`; the current frontend's carry `time` (seconds).
                let frame = number(kf, "frame")
                    .or_else(|| number(kf, "time").map(|t| (t * FPS).round()))
                    .unwrap_or(0.0);
                let crop = Crop {
                    x: number(kf, "x")?,
                    y: number(kf, "y")?,
                    width: number(kf, "width")?,
                    height: number(kf, "height")?,
                };
                (crop.width > 0.0 && crop.height > 0.0).then_some((frame, crop))
            })
            .collect();
        track.sort_by(|a, b| a.0.total_cmp(&b.0));
        CropTrack(track)
    }

    fn at(&self, frame: f64) -> Crop {
        let track = &self.0;
        match track.iter().position(|(f, _)| *f >= frame) {
            None => track.last().map_or(FULL_FRAME, |(_, crop)| *crop),
            Some(0) => track[0].1,
            Some(i) => {
                let ((f0, a), (f1, b)) = (track[i - 1], track[i]);
                let t = if f1 > f0 {
                    (frame - f0) / (f1 - f0)
                } else {
                    0.0
                };
                let lerp = |p: f64, q: f64| p + (q - p) * t;
                Crop {
                    x: lerp(a.x, b.x),
                    y: lerp(a.y, b.y),
                    width: lerp(a.width, b.width),
                    height: lerp(a.height, b.height),
                }
            }
        }
    }
}

/// The mapping of one working clip between working space and its raw clip's space.
struct ClipSpace {
    timeline: Timeline,
    crops: CropTrack,
}

fn keyframe_value(kf: &Value, key: &str, default: f64) -> f64 {
    number(kf, key).unwrap_or(default)
}

fn color(kf: &Value) -> Value {
    kf.get("color").cloned().unwrap_or_else(|| json!("#FFFF00"))
}

impl ClipSpace {
    /// A working-space region -> raw-clip space; `None` when it is disabled, outside the
    /// trim window, or none of its keyframes map.
    fn to_raw(&self, region: &Value) -> Option<Value> {
        if region.get("enabled") == Some(&Value::Bool(false)) {
            return None;
        }
        let start = self.timeline.to_source(number(region, "start_time")?);
        let end = self.timeline.to_source(number(region, "end_time")?);
        if let Some((window_start, window_end)) = self.timeline.window {
            let outside = |t: f64| t < window_start || t > window_end;
            if outside(start) || outside(end) {
                return None;
            }
        }
        let keyframes: Vec<Value> = region
            .get("keyframes")
            .and_then(Value::as_array)?
            .iter()
            .filter_map(|kf| {
                let frame = (self.timeline.to_source(number(kf, "time")?) * FPS).round();
                let crop = self.crops.at(frame);
                Some(json!({
                    "raw_frame": frame as i64,
                    "raw_x": crop.x + number(kf, "x")? / WIDTH * crop.width,
                    "raw_y": crop.y + number(kf, "y")? / HEIGHT * crop.height,
                    "raw_radiusX": keyframe_value(kf, "radiusX", 30.0) * crop.width / WIDTH,
                    "raw_radiusY": keyframe_value(kf, "radiusY", 50.0) * crop.height / HEIGHT,
                    "opacity": keyframe_value(kf, "opacity", 0.15),
                    "color": color(kf),
                    "player_image_path": null,
                }))
            })
            .collect();
        if keyframes.is_empty() {
            return None;
        }
        let (start_frame, end_frame) = ((start * FPS).round(), (end * FPS).round());
        Some(json!({
            "id": region.get("id").cloned().unwrap_or(Value::Null),
            "raw_start_frame": start_frame as i64,
            "raw_end_frame": end_frame as i64,
            "duration_seconds": (end_frame - start_frame) / FPS,
            "keyframes": keyframes,
        }))
    }

    /// A raw-clip region -> working space, clamped to the trim window; `None` when it lies
    /// wholly outside it.
    fn to_working(&self, region: &Value) -> Option<Value> {
        let start = self
            .timeline
            .to_working(number(region, "raw_start_frame")? / FPS);
        let end = self
            .timeline
            .to_working(number(region, "raw_end_frame")? / FPS);
        let (window_start, window_end) = self.timeline.working_bounds();
        let (start, end) = match (start, end) {
            (None, None) => return None,
            (start, end) => (start.unwrap_or(window_start), end.unwrap_or(window_end)),
        };
        let keyframes: Vec<Value> = region
            .get("keyframes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|kf| {
                let raw_frame = number(kf, "raw_frame")?;
                let time = self.timeline.to_working(raw_frame / FPS)?;
                let crop = self.crops.at(raw_frame);
                let x = (number(kf, "raw_x")? - crop.x) / crop.width * WIDTH;
                let y = (number(kf, "raw_y")? - crop.y) / crop.height * HEIGHT;
                if !(0.0..=WIDTH).contains(&x) || !(0.0..=HEIGHT).contains(&y) {
                    return None;
                }
                Some(json!({
                    "time": time,
                    "frame": (time * FPS).round() as i64,
                    "x": x,
                    "y": y,
                    "radiusX": keyframe_value(kf, "raw_radiusX", 30.0) * WIDTH / crop.width,
                    "radiusY": keyframe_value(kf, "raw_radiusY", 50.0) * HEIGHT / crop.height,
                    "opacity": keyframe_value(kf, "opacity", 0.15),
                    "color": color(kf),
                    "origin": "restored",
                }))
            })
            .collect();
        Some(json!({
            "id": region.get("id").cloned().unwrap_or(Value::Null),
            "start_time": start,
            "end_time": end,
            "enabled": true,
            "keyframes": keyframes,
        }))
    }
}

/// A JSON array column; NULL or invalid JSON is empty.
fn json_array(text: Option<&str>) -> Vec<Value> {
    text.and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The latest version of each of the project's clips that has a raw clip:
/// `(raw_clip_id, its space, its stored defaults)`.
fn clip_spaces(
    db: &impl Db,
    project_id: i64,
) -> Result<Vec<(i64, ClipSpace, Option<String>)>, ApiError> {
    db.query(
        &format!(
            "{latest} SELECT l.raw_clip_id, l.segments_data, l.crop_data, rc.default_highlight_regions \
             FROM latest l JOIN raw_clips rc ON rc.id = l.raw_clip_id \
             ORDER BY l.sort_order ASC, l.id ASC",
            latest = latest_working_clips("WHERE wc.project_id = ?")
        ),
        &[project_id.into()],
    )?
    .iter()
    .map(|row| {
        let space = ClipSpace {
            timeline: Timeline::from_segments(row.get::<Option<String>>(1)?.as_deref()),
            crops: CropTrack::from_crop_data(row.get::<Option<String>>(2)?.as_deref()),
        };
        Ok((row.get(0)?, space, row.get(3)?))
    })
    .collect()
}

/// O1 `GET .../overlay-data`: the highest-version working video's overlay, else the clips'
/// saved defaults. There is no 404: an unknown project reads as the defaults.
pub fn get(db: &impl Db, project_id: i64) -> Result<Reply, ApiError> {
    let video = db.query_row(
        "SELECT highlights_data, text_overlays, effect_type FROM working_videos \
         WHERE project_id = ? ORDER BY version DESC, id DESC LIMIT 1",
        &[project_id.into()],
    )?;
    let (mut highlights, text_overlays, effect_type) = match &video {
        Some(row) => (
            json_array(row.get::<Option<String>>(0)?.as_deref()),
            json_array(row.get::<Option<String>>(1)?.as_deref()),
            row.get::<Option<String>>(2)?,
        ),
        None => (Vec::new(), Vec::new(), None),
    };
    let mut from_raw_clip = false;
    if highlights.is_empty() {
        for (_, space, defaults) in clip_spaces(db, project_id)? {
            let restored: Vec<Value> = json_array(defaults.as_deref())
                .iter()
                .filter_map(|region| space.to_working(region))
                .collect();
            from_raw_clip |= !restored.is_empty();
            highlights.extend(restored);
        }
    }
    let has_data = !highlights.is_empty() || !text_overlays.is_empty();
    Ok(Reply::json(json!({
        "highlights_data": highlights,
        "text_overlays": text_overlays,
        "effect_type": effect_type.unwrap_or_else(|| "original".into()),
        "has_data": has_data,
        "from_raw_clip": from_raw_clip,
    })))
}

/// O2 `PUT .../overlay-data` (form): stores the overlay on the current working video and, for a
/// non-empty list of regions, saves each clip's share as its raw clip's defaults.
pub fn save(db: &impl Db, project_id: i64, request: &ApiRequest) -> Result<Reply, ApiError> {
    let highlights = request.form_text("highlights_data").unwrap_or("[]");
    let text_overlays = request.form_text("text_overlays").unwrap_or("[]");
    let effect_type = request.form_text("effect_type").unwrap_or("original");
    require_project(db, project_id)?;
    let working_video_id: i64 = db
        .query_value::<Option<i64>>(
            "SELECT working_video_id FROM projects WHERE id = ?",
            &[project_id.into()],
        )?
        .flatten()
        .ok_or_else(|| {
            ApiError::BadRequest("Project has no working video - complete framing first".into())
        })?;
    db.execute(
        "UPDATE working_videos SET highlights_data = ?, text_overlays = ?, effect_type = ? WHERE id = ?",
        &[highlights.into(), text_overlays.into(), effect_type.into(), working_video_id.into()],
    )?;

    let regions = json_array(Some(highlights));
    let mut raw_clips_updated = 0;
    if !regions.is_empty() {
        for (raw_clip_id, space, _) in clip_spaces(db, project_id)? {
            let defaults: Vec<Value> = regions
                .iter()
                .filter_map(|region| space.to_raw(region))
                .collect();
            db.execute(
                "UPDATE raw_clips SET default_highlight_regions = ? WHERE id = ?",
                &[json!(defaults).to_string().into(), raw_clip_id.into()],
            )?;
            raw_clips_updated += 1;
        }
    }
    Ok(Reply::json(json!({
        "success": true,
        "saved_at": local_iso_now(db)?,
        "working_video_id": working_video_id,
        "raw_clips_updated": raw_clips_updated,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_timeline_without_segment_data() {
        let timeline = Timeline::from_segments(None);
        assert_eq!(timeline.to_source(2.5), 2.5);
        assert_eq!(timeline.to_working(2.5), Some(2.5));
    }

    #[test]
    fn legacy_segments_apply_trim_and_speed_both_ways() {
        let timeline = Timeline::from_segments(Some(
            r#"{"boundaries": [0, 4, 10], "segmentSpeeds": {"1": 2}, "trimRange": {"start": 2, "end": 8}}"#,
        ));
        // Kept: source 2..4 at speed 1 (working 0..2), then 4..8 at speed 2 (working 2..4).
        assert_eq!(timeline.to_source(1.0), 3.0);
        assert_eq!(timeline.to_source(3.0), 6.0);
        assert_eq!(timeline.to_working(6.0), Some(3.0));
        assert_eq!(timeline.to_working(9.0), None);
        assert_eq!(timeline.working_bounds(), (0.0, 4.0));
    }

    #[test]
    fn current_frontend_segments_are_understood() {
        let timeline = Timeline::from_segments(Some(
            r#"{"trim_start": 1, "trim_end": 5, "segments": [{"start": 0, "end": 6, "speed": 1}]}"#,
        ));
        assert_eq!(timeline.to_source(0.0), 1.0);
        assert_eq!(timeline.to_working(1.5), Some(0.5));
        assert_eq!(timeline.to_working(5.5), None);
    }

    #[test]
    fn crop_keyframes_by_time_interpolate() {
        let crops = CropTrack::from_crop_data(Some(
            r#"[{"time": 0, "x": 0, "y": 0, "width": 100, "height": 200},
                {"time": 1, "x": 100, "y": 0, "width": 100, "height": 200}]"#,
        ));
        assert_eq!(crops.at(15.0).x, 50.0);
        assert_eq!(crops.at(90.0).x, 100.0);
        assert_eq!(CropTrack::from_crop_data(None).at(3.0), FULL_FRAME);
    }

    #[test]
    fn a_region_survives_the_round_trip_to_raw_space_and_back() {
        let space = ClipSpace {
            timeline: Timeline::from_segments(Some(
                r#"{"boundaries": [0, 10], "segmentSpeeds": {}, "trimRange": {"start": 2, "end": 8}}"#,
            )),
            crops: CropTrack::from_crop_data(Some(
                r#"[{"frame": 0, "x": 100, "y": 50, "width": 540, "height": 960}]"#,
            )),
        };
        let region = json!({"id": "r1", "start_time": 1.0, "end_time": 3.0,
            "keyframes": [{"time": 1.0, "x": 540.0, "y": 960.0, "radiusX": 30.0, "radiusY": 50.0,
                           "opacity": 0.2, "color": "#FF0000"}]});
        let raw = space.to_raw(&region).unwrap();
        assert_eq!(raw["raw_start_frame"], 90);
        assert_eq!(raw["keyframes"][0]["raw_x"], 370.0);
        let back = space.to_working(&raw).unwrap();
        assert_eq!(back["start_time"], 1.0);
        assert_eq!(back["end_time"], 3.0);
        assert_eq!(back["keyframes"][0]["x"], 540.0);
        assert_eq!(back["keyframes"][0]["origin"], "restored");
    }

    #[test]
    fn disabled_regions_are_not_saved() {
        let space = ClipSpace {
            timeline: Timeline::from_segments(None),
            crops: CropTrack::from_crop_data(None),
        };
        let region = json!({"start_time": 0.0, "end_time": 1.0, "enabled": false,
            "keyframes": [{"time": 0.0, "x": 1.0, "y": 1.0}]});
        assert_eq!(space.to_raw(&region), None);
    }
}

#[cfg(test)]
mod route_tests {
    use serde_json::json;

    use crate::handlers::tests::{call, form, ok, test_db};
    use crate::handlers::{Body, Method};
    use user_data_core::db::Db;

    #[test]
    fn overlay_has_defaults_for_unknown_projects_and_needs_a_working_video_to_save() {
        let db = test_db();
        let empty = ok(
            &db,
            Method::Get,
            "/api/export/projects/9/overlay-data",
            Body::Empty,
        );
        assert_eq!(
            empty,
            json!({"highlights_data": [], "text_overlays": [], "effect_type": "original", "has_data": false, "from_raw_clip": false})
        );
        assert_eq!(
            call(
                &db,
                Method::Put,
                "/api/export/projects/9/overlay-data",
                form(&[])
            )
            .unwrap_err()
            .status(),
            404
        );
        db.execute(
            "INSERT INTO projects (id, name, aspect_ratio) VALUES (1, 'P', '9:16')",
            &[],
        )
        .unwrap();
        let err = call(
            &db,
            Method::Put,
            "/api/export/projects/1/overlay-data",
            form(&[]),
        )
        .unwrap_err();
        assert_eq!(
            (err.status(), err.detail()),
            (400, "Project has no working video - complete framing first")
        );
    }

    #[test]
    fn saved_regions_come_back_and_carry_over_to_another_project_of_the_clip() {
        let db = test_db();
        db.execute_script(
            "INSERT INTO raw_clips (id, filename, rating) VALUES (1, 'a.mp4', 3);
             INSERT INTO projects (id, name, aspect_ratio, working_video_id) VALUES (1, 'P', '9:16', 1), (2, 'Q', '9:16', NULL);
             INSERT INTO working_videos (id, project_id, filename) VALUES (1, 1, 'w.mp4');
             INSERT INTO working_clips (project_id, raw_clip_id, version) VALUES (1, 1, 1), (1, 1, 2), (2, 1, 1);",
        )
        .unwrap();
        let regions = json!([{"id": "r", "start_time": 1.0, "end_time": 2.0,
            "keyframes": [{"time": 1.0, "x": 100.0, "y": 200.0, "radiusX": 30.0, "radiusY": 50.0, "opacity": 0.15, "color": "#FFFF00"}]}]);
        let saved = ok(
            &db,
            Method::Put,
            "/api/export/projects/1/overlay-data",
            form(&[
                ("highlights_data", &regions.to_string()),
                ("effect_type", "dark_overlay"),
            ]),
        );
        // One clip in two versions counts once (the existing app counted 2: §13.3).
        assert_eq!(
            (
                saved["working_video_id"].clone(),
                saved["raw_clips_updated"].clone()
            ),
            (json!(1), json!(1))
        );
        let same = ok(
            &db,
            Method::Get,
            "/api/export/projects/1/overlay-data",
            Body::Empty,
        );
        assert_eq!(
            (
                same["highlights_data"].clone(),
                same["effect_type"].clone(),
                same["from_raw_clip"].clone()
            ),
            (regions, json!("dark_overlay"), json!(false))
        );
        let other = ok(
            &db,
            Method::Get,
            "/api/export/projects/2/overlay-data",
            Body::Empty,
        );
        assert_eq!(other["from_raw_clip"], true);
        assert_eq!(other["highlights_data"].as_array().unwrap().len(), 1);
        let keyframe = &other["highlights_data"][0]["keyframes"][0];
        assert_eq!(
            (
                keyframe["x"].clone(),
                keyframe["y"].clone(),
                keyframe["frame"].clone()
            ),
            (json!(100.0), json!(200.0), json!(30))
        );
    }
}
