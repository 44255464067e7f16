//! Auto-projects for 5-star clips (schema §4.5): created when a clip reaches 5 stars, deleted
//! when it leaves them or is deleted, but only while the user has not worked on the project.

use crate::error::ApiError;
use crate::handlers::insert_returning_id;
use user_data_core::db::Db;

/// Creates the 9:16 project of a 5-star clip with the clip as its only working clip, and links
/// it from the clip. Returns the project id.
pub fn create(db: &impl Db, raw_clip_id: i64, clip_name: &str) -> Result<i64, ApiError> {
    let name = if clip_name.is_empty() {
        format!("Clip {raw_clip_id}")
    } else {
        clip_name.to_owned()
    };
    let project_id = insert_returning_id(
        db,
        "INSERT INTO projects (name, aspect_ratio) VALUES (?, '9:16') RETURNING id",
        &[name.into()],
    )?;
    db.execute(
        "INSERT INTO working_clips (project_id, raw_clip_id, sort_order, version) VALUES (?, ?, 0, 1)",
        &[project_id.into(), raw_clip_id.into()],
    )?;
    db.execute(
        "UPDATE raw_clips SET auto_project_id = ? WHERE id = ?",
        &[project_id.into(), raw_clip_id.into()],
    )?;
    Ok(project_id)
}

/// Deletes the auto-project of a clip if it is unmodified: no working video, no final video, at
/// most one working clip row (all versions). A modified project is kept, and so is the link.
/// Returns whether it was deleted.
pub fn delete_if_unmodified(
    db: &impl Db,
    raw_clip_id: i64,
    project_id: i64,
) -> Result<bool, ApiError> {
    let modified: bool = db
        .query_value(
            "SELECT EXISTS (SELECT 1 FROM working_videos WHERE project_id = ?1) \
                 OR EXISTS (SELECT 1 FROM final_videos WHERE project_id = ?1) \
                 OR (SELECT COUNT(*) FROM working_clips WHERE project_id = ?1) > 1",
            &[project_id.into()],
        )?
        .unwrap_or(false);
    if modified {
        return Ok(false);
    }
    db.execute(
        "DELETE FROM working_clips WHERE project_id = ?",
        &[project_id.into()],
    )?;
    db.execute("DELETE FROM projects WHERE id = ?", &[project_id.into()])?;
    db.execute(
        "UPDATE raw_clips SET auto_project_id = NULL WHERE id = ?",
        &[raw_clip_id.into()],
    )?;
    Ok(true)
}
