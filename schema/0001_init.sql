-- The per-user schema of the existing app (shared/schema.md, January 2026), verbatim in shape:
-- 8 tables and their indexes. Foreign keys are declared but never enforced, as in the existing app.
-- Never edit this file after it ships: add 0002_*.sql instead.

CREATE TABLE IF NOT EXISTS raw_clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    filename TEXT NOT NULL,
    rating INTEGER NOT NULL,
    tags TEXT,
    name TEXT,
    notes TEXT,
    start_time REAL,
    end_time REAL,
    game_id INTEGER REFERENCES games(id),
    auto_project_id INTEGER REFERENCES projects(id),
    default_highlight_regions TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    aspect_ratio TEXT NOT NULL,
    working_video_id INTEGER REFERENCES working_videos(id),
    final_video_id INTEGER REFERENCES final_videos(id),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    last_opened_at TIMESTAMP DEFAULT NULL,
    current_mode TEXT DEFAULT 'framing'
);

CREATE TABLE IF NOT EXISTS working_clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    raw_clip_id INTEGER REFERENCES raw_clips(id),
    uploaded_filename TEXT,
    exported_at TEXT DEFAULT NULL,
    sort_order INTEGER DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    crop_data TEXT,
    timing_data TEXT,
    segments_data TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS working_videos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    filename TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    highlights_data TEXT,
    text_overlays TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    effect_type TEXT DEFAULT 'original'
);

CREATE TABLE IF NOT EXISTS final_videos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    filename TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    duration REAL,
    source_type TEXT,
    game_id INTEGER,
    name TEXT,
    rating_counts TEXT
);

CREATE TABLE IF NOT EXISTS games (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    video_filename TEXT,
    clip_count INTEGER DEFAULT 0,
    brilliant_count INTEGER DEFAULT 0,
    good_count INTEGER DEFAULT 0,
    interesting_count INTEGER DEFAULT 0,
    mistake_count INTEGER DEFAULT 0,
    blunder_count INTEGER DEFAULT 0,
    aggregate_score INTEGER DEFAULT 0,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    video_duration REAL,
    video_width INTEGER,
    video_height INTEGER,
    video_size INTEGER,
    opponent_name TEXT,
    game_date TEXT,
    game_type TEXT,
    tournament_name TEXT
);

CREATE TABLE IF NOT EXISTS export_jobs (
    id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    input_data TEXT NOT NULL,
    output_video_id INTEGER,
    output_filename TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    started_at TIMESTAMP,
    completed_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS before_after_tracks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    final_video_id INTEGER NOT NULL REFERENCES final_videos(id) ON DELETE CASCADE,
    raw_clip_id INTEGER,
    source_path TEXT NOT NULL,
    start_frame INTEGER NOT NULL,
    end_frame INTEGER NOT NULL,
    clip_index INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_raw_clips_game_id ON raw_clips(game_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_raw_clips_game_end_time ON raw_clips(game_id, end_time);
CREATE INDEX IF NOT EXISTS idx_working_clips_project_version ON working_clips(project_id, version DESC);
CREATE INDEX IF NOT EXISTS idx_working_clips_project_raw_clip_version ON working_clips(project_id, raw_clip_id, version DESC);
CREATE INDEX IF NOT EXISTS idx_working_clips_project_upload_version ON working_clips(project_id, uploaded_filename, version DESC);
CREATE INDEX IF NOT EXISTS idx_working_videos_project_version ON working_videos(project_id, version DESC);
CREATE INDEX IF NOT EXISTS idx_final_videos_project_version ON final_videos(project_id, version DESC);
CREATE INDEX IF NOT EXISTS idx_export_jobs_project ON export_jobs(project_id);
CREATE INDEX IF NOT EXISTS idx_export_jobs_status ON export_jobs(status);
CREATE INDEX IF NOT EXISTS idx_before_after_tracks_final_video ON before_after_tracks(final_video_id);
