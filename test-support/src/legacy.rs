//! The existing app's files, as it left them in R2: the first test corpus.
//!
//! `schema/legacy/` holds the app's own statements for two lineages: a file the January 2026
//! version created (`era-fresh.sql`), and one the December 2025 version created and every later
//! version upgraded (`oldest-upgraded.sql`). Every prefix of the latter's upgrade history is the
//! file of a user who stopped using the app there ([`LegacyState`]). [`Contents`] are rows shaped
//! like a real user's (the app's JSON in its text columns, versions of clips, dangling references,
//! non-ASCII and awkward text, 17-digit floats, values in the columns the app no longer uses),
//! drawn from a seed; [`LegacyState::file`] lays a state down and fills it with them, holding only
//! what that state's tables can hold.
//!
//! Two references to compare an upgrade against: [`upgraded_by_the_app`] (the rest of the app's
//! own upgrade history run on a file, which is what the app itself would have made of it) and
//! [`fresh_with_rows_of`] (the same rows in a file of our own schema).

use rusqlite::types::Value;
use rusqlite::Connection;

/// The statements of a file the January 2026 app created.
pub const ERA_FRESH_SQL: &str = include_str!("../../schema/legacy/era-fresh.sql");
/// The statements of a file the December 2025 app created, then upgraded by every later version.
pub const OLDEST_SQL: &str = include_str!("../../schema/legacy/oldest-upgraded.sql");

/// Which version of the app created the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lineage {
    /// The January 2026 version: the current shape, `last_opened_at` without a DEFAULT clause.
    EraFresh,
    /// The December 2025 version, then upgraded statement by statement.
    Oldest,
}

/// One shape of file that some user has in R2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyState {
    pub lineage: Lineage,
    /// For [`Lineage::Oldest`], how many statements of its upgrade history the file went through.
    pub upgrades: usize,
}

/// A script's statements, and how many of them make its first `CREATE` block.
fn statements(script: &'static str) -> (Vec<&'static str>, usize) {
    let statements: Vec<&str> = script
        .split(";\n")
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .collect();
    let creates = statements
        .iter()
        .position(|statement| statement.lines().any(|line| line.starts_with("ALTER ")))
        .expect("the script has an upgrade history");
    (statements, creates)
}

/// The statements of the oldest lineage's upgrade history, in order.
fn history() -> Vec<&'static str> {
    let (statements, creates) = statements(OLDEST_SQL);
    statements[creates..].to_vec()
}

impl LegacyState {
    pub const ERA_FRESH: LegacyState = LegacyState {
        lineage: Lineage::EraFresh,
        upgrades: 0,
    };

    /// The December file: the oldest lineage before `working_clips.exported_at` was added.
    pub fn december() -> Self {
        let upgrades = history()
            .iter()
            .position(|statement| statement.contains("ADD COLUMN exported_at"))
            .expect("the history adds exported_at");
        LegacyState {
            lineage: Lineage::Oldest,
            upgrades,
        }
    }

    /// The oldest lineage, upgraded by every later version.
    pub fn oldest_upgraded() -> Self {
        LegacyState {
            lineage: Lineage::Oldest,
            upgrades: history().len(),
        }
    }

    /// Every state: the January file, and the oldest lineage after each prefix of its history
    /// (from the bare December 2025 `CREATE`s to the end).
    pub fn all() -> Vec<Self> {
        let mut all = vec![Self::ERA_FRESH];
        all.extend((0..=history().len()).map(|upgrades| LegacyState {
            lineage: Lineage::Oldest,
            upgrades,
        }));
        all
    }

    /// A name for messages: `era-fresh`, `december`, `oldest+N`.
    pub fn name(&self) -> String {
        match self.lineage {
            Lineage::EraFresh => "era-fresh".to_owned(),
            Lineage::Oldest if *self == Self::december() => "december".to_owned(),
            Lineage::Oldest if *self == Self::oldest_upgraded() => "oldest-upgraded".to_owned(),
            Lineage::Oldest => format!("oldest+{}", self.upgrades),
        }
    }

    /// The app's statements that leave a file in this state.
    pub fn statements(&self) -> Vec<&'static str> {
        match self.lineage {
            Lineage::EraFresh => statements(ERA_FRESH_SQL).0,
            Lineage::Oldest => {
                let (statements, creates) = statements(OLDEST_SQL);
                statements[..creates + self.upgrades].to_vec()
            }
        }
    }

    /// The statements the app would still run on a file in this state: the rest of the history.
    fn remaining(&self) -> Vec<&'static str> {
        match self.lineage {
            Lineage::EraFresh => Vec::new(),
            Lineage::Oldest => history()[self.upgrades..].to_vec(),
        }
    }

    /// A file in this state holding `contents`: each row with the columns its table has here
    /// (rows of tables the state lacks are left out). A state past the app's data step ran it
    /// when it was taken (clips exported under the `progress` flag are stamped).
    pub fn file(&self, contents: &Contents) -> Vec<u8> {
        let conn = Connection::open_in_memory().expect("an in-memory database");
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let statements = self.statements();
        let data_step = statements
            .iter()
            .position(|statement| statement.starts_with("UPDATE "));
        for statement in &statements {
            if !statement.starts_with("UPDATE ") {
                conn.execute_batch(statement)
                    .expect("the app's statement applies");
            }
        }
        insert(&conn, contents);
        if data_step.is_some() {
            // When it ran, long ago: datetime('now') then.
            conn.execute_batch(
                "UPDATE working_clips SET exported_at = '2026-01-05 10:00:00' \
                 WHERE exported_at IS NULL AND progress >= 1",
            )
            .unwrap();
        }
        serialize(conn)
    }

    /// The columns of `table` in a file of this state, in order; empty when it has no such table.
    pub fn columns(&self, table: &str) -> Vec<String> {
        let conn = Connection::open_in_memory().unwrap();
        for statement in self.statements() {
            conn.execute_batch(statement).unwrap();
        }
        columns(&conn, "main", table)
    }
}

/// A realistic file of `state` with about `clips` clips, drawn from `seed`.
pub fn realistic(state: LegacyState, clips: usize, seed: u64) -> Vec<u8> {
    state.file(&Contents::generate(seed, clips))
}

/// What the app itself makes of `file` (in `state`) on its next start: the rest of its upgrade
/// history, run as it runs it.
pub fn upgraded_by_the_app(state: LegacyState, file: &[u8]) -> Vec<u8> {
    let conn = open(file);
    for statement in state.remaining() {
        conn.execute_batch(statement)
            .expect("the app's own upgrade applies");
    }
    serialize(conn)
}

/// A file of our own schema (`schema/0001_init.sql`, `0002_data_version.sql`) holding the rows of
/// `file`: every column the two share, by name, and the AUTOINCREMENT counters, so that the next
/// row gets the same id in both.
pub fn fresh_with_rows_of(file: &[u8]) -> Vec<u8> {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute_batch(include_str!("../../schema/0001_init.sql"))
        .unwrap();
    conn.execute_batch(include_str!("../../schema/0002_data_version.sql"))
        .unwrap();
    conn.execute_batch("ATTACH ':memory:' AS src").unwrap();
    conn.deserialize_read_exact("src", file, file.len(), true)
        .expect("the file opens");
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for table in tables {
        let theirs = columns(&conn, "src", &table);
        let shared: Vec<String> = columns(&conn, "main", &table)
            .into_iter()
            .filter(|column| theirs.contains(column))
            .map(|column| format!("\"{column}\""))
            .collect();
        if shared.is_empty() {
            continue;
        }
        let list = shared.join(", ");
        conn.execute_batch(&format!(
            "DELETE FROM main.\"{table}\"; \
             INSERT INTO main.\"{table}\" ({list}) SELECT {list} FROM src.\"{table}\" ORDER BY rowid"
        ))
        .unwrap();
    }
    conn.execute_batch(
        "DELETE FROM main.sqlite_sequence;
         INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM src.sqlite_sequence;
         DETACH src;",
    )
    .unwrap();
    serialize(conn)
}

/// One row: its table and its values by column (the union of every lineage's columns).
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRow {
    pub table: &'static str,
    pub values: Vec<(&'static str, Value)>,
}

/// The rows of one user, in insertion order (referenced rows first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contents {
    pub rows: Vec<LegacyRow>,
}

/// A small deterministic generator (SplitMix64): the same seed, the same user, with no
/// dependency the benchmark would not otherwise need.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }

    /// `value` drawn `percent` times in a hundred, else NULL.
    fn maybe(&mut self, percent: u64, value: impl FnOnce(&mut Draw) -> Value) -> Value {
        if self.chance(percent) {
            value(self)
        } else {
            Value::Null
        }
    }

    /// A float with all 17 significant digits in use, in `[0, scale)`.
    fn real(&mut self, scale: f64) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * scale
    }
}

/// Names users typed, and names that have broken software.
const NAMES: &[&str] = &[
    "Spiel gegen Nord – Fußball ⚽",
    "O'Brien's \"best\" game",
    "",
    " leading and trailing ",
    "日本語のクリップ",
    "emoji 🎬🏀",
    "tab\tand\nnewline",
    "Équipe B",
    "100%_like_pattern\\",
    "NULL",
    "0",
    "a very long name that goes on and on and on past what any form would show",
];

const TIMESTAMPS: &[&str] = &[
    "2025-12-20 18:30:00",
    "2025-12-31 23:59:59",
    "2026-01-02 03:04:05",
    "2026-01-15 12:00:00",
];

fn text(value: impl Into<String>) -> Value {
    Value::Text(value.into())
}

impl Contents {
    /// A user with about `clips` clips (at least one of each kind of row), drawn from `seed`.
    pub fn generate(seed: u64, clips: usize) -> Contents {
        let mut draw = Draw(seed);
        let mut rows = Vec::new();
        let games = 1 + clips / 10;
        let projects = 1 + clips / 8;
        let mut row = |table: &'static str, values: Vec<(&'static str, Value)>| {
            rows.push(LegacyRow { table, values })
        };
        for id in 1..=games as i64 {
            row(
                "games",
                vec![
                    ("id", Value::Integer(id)),
                    ("name", text(format!("{}.mp4", draw.pick(NAMES)))),
                    (
                        "video_filename",
                        draw.maybe(80, |_| text(format!("game_{id:06}.mp4"))),
                    ),
                    (
                        "annotations_filename",
                        draw.maybe(50, |_| text(format!("annotations_{id}.json"))),
                    ),
                    ("clip_count", Value::Integer(draw.below(40) as i64)),
                    ("brilliant_count", Value::Integer(draw.below(5) as i64)),
                    ("good_count", Value::Integer(draw.below(9) as i64)),
                    ("interesting_count", Value::Integer(draw.below(9) as i64)),
                    ("mistake_count", Value::Integer(draw.below(4) as i64)),
                    ("blunder_count", Value::Integer(draw.below(3) as i64)),
                    (
                        "aggregate_score",
                        Value::Integer(draw.below(200) as i64 - 50),
                    ),
                    ("created_at", text(draw.pick(TIMESTAMPS))),
                    (
                        "video_duration",
                        draw.maybe(70, |draw| Value::Real(draw.real(5400.0))),
                    ),
                    ("video_width", draw.maybe(70, |_| Value::Integer(1920))),
                    ("video_height", draw.maybe(70, |_| Value::Integer(1080))),
                    (
                        "video_size",
                        draw.maybe(70, |draw| {
                            Value::Integer((1 << 40) + draw.below(1 << 30) as i64)
                        }),
                    ),
                    (
                        "opponent_name",
                        draw.maybe(60, |draw| text(draw.pick(NAMES))),
                    ),
                    ("game_date", draw.maybe(60, |_| text("2025-12-14"))),
                    (
                        "game_type",
                        draw.maybe(60, |draw| text(draw.pick(&["home", "away", "tournament"]))),
                    ),
                    ("tournament_name", draw.maybe(30, |_| text("Coupe d'hiver"))),
                ],
            );
        }
        for id in 1..=clips as i64 {
            let game = match draw.below(10) {
                0 => Value::Null,
                1 => Value::Integer(games as i64 + 7), // a game deleted since
                _ => Value::Integer(1 + draw.below(games as u64) as i64),
            };
            let start = draw.real(3000.0);
            row(
                "raw_clips",
                vec![
                    ("id", Value::Integer(id)),
                    ("filename", text(format!("{:012x}.mp4", draw.next() >> 16))),
                    ("rating", Value::Integer(1 + draw.below(5) as i64)),
                    ("tags", draw.maybe(70, |_| text(r#"["Goals", "D\u00e9fense", "Pass"]"#))),
                    ("name", draw.maybe(80, |draw| text(draw.pick(NAMES)))),
                    ("notes", draw.maybe(40, |draw| text("notes ".repeat(1 + draw.below(40) as usize)))),
                    ("start_time", Value::Real(start)),
                    // Unique per game (the app's unique index on game_id, end_time).
                    ("end_time", Value::Real(id as f64 * 10_000.0 + start + 0.1 + 0.2)),
                    ("game_id", game),
                    ("auto_project_id", draw.maybe(10, |draw| Value::Integer(1 + draw.below(projects as u64) as i64))),
                    (
                        "default_highlight_regions",
                        draw.maybe(40, |_| text(r##"[{"id": "r1", "raw_start_frame": 3, "raw_end_frame": 90, "duration_seconds": 2.9, "keyframes": [{"raw_frame": 3, "raw_x": 512.5, "raw_y": 300.25, "raw_radiusX": 30.0, "raw_radiusY": 50.0, "opacity": 0.15, "color": "#FFFF00", "player_image_path": null}]}]"##)),
                    ),
                    ("created_at", text(draw.pick(TIMESTAMPS))),
                ],
            );
        }
        for id in 1..=projects as i64 {
            row(
                "projects",
                vec![
                    ("id", Value::Integer(id)),
                    ("name", text(draw.pick(NAMES))),
                    ("aspect_ratio", text(draw.pick(&["9:16", "16:9", "1:1"]))),
                    // Set below, once the videos exist; some point at nothing.
                    (
                        "working_video_id",
                        draw.maybe(20, |_| Value::Integer(10_000 + id)),
                    ),
                    ("final_video_id", Value::Null),
                    ("created_at", text(draw.pick(TIMESTAMPS))),
                    (
                        "last_opened_at",
                        draw.maybe(50, |draw| text(draw.pick(TIMESTAMPS))),
                    ),
                    (
                        "current_mode",
                        draw.maybe(80, |draw| {
                            text(draw.pick(&["framing", "overlay", "annotate"]))
                        }),
                    ),
                ],
            );
        }
        let mut working_clip = 0i64;
        for clip in 1..=clips as i64 {
            // Some clips have several versions in their project, as re-edits leave them.
            for version in 1..=(1 + draw.below(3) as i64) {
                working_clip += 1;
                let uploaded = draw.chance(10);
                let progress = draw.pick(&[
                    Value::Null,
                    Value::Integer(0),
                    Value::Integer(1),
                    Value::Integer(2),
                ]);
                row(
                    "working_clips",
                    vec![
                        ("id", Value::Integer(working_clip)),
                        ("project_id", Value::Integer(1 + (clip - 1) % projects as i64)),
                        ("raw_clip_id", if uploaded { Value::Null } else { Value::Integer(clip) }),
                        ("uploaded_filename", if uploaded { text(format!("upload_{clip}.mp4")) } else { Value::Null }),
                        ("exported_at", draw.maybe(20, |draw| text(draw.pick(TIMESTAMPS)))),
                        ("progress", progress),
                        ("sort_order", Value::Integer((clip - 1) / projects as i64)),
                        ("version", Value::Integer(version)),
                        ("crop_data", draw.maybe(70, |draw| text(format!(r#"[{{"time": 0.0, "x": {}, "y": 20, "width": 540, "height": 960}}]"#, draw.below(1000))))),
                        ("timing_data", draw.maybe(50, |draw| text(format!(r#"{{"trimRange": {{"start": {}, "end": {}}}}}"#, 0.5, 3.0 + draw.real(10.0))))),
                        ("segments_data", draw.maybe(40, |_| text(r#"{"boundaries": [0, 1.5, 4.0], "segmentSpeeds": {"1": 0.5}}"#))),
                        ("transform_data", draw.maybe(50, |_| text(r#"{"rotation": 90, "flip": false}"#))),
                        ("created_at", text(draw.pick(TIMESTAMPS))),
                    ],
                );
            }
        }
        let mut final_video = 0i64;
        // Version 1 of a project's working video is 10,000 + the project (what projects point
        // at); later versions follow every project's first, so that no two share an id.
        let stride = (projects as i64).max(100);
        for project in 1..=projects as i64 {
            for version in 1..=draw.below(3) as i64 {
                row(
                    "working_videos",
                    vec![
                        (
                            "id",
                            Value::Integer(10_000 + project + stride * (version - 1)),
                        ),
                        ("project_id", Value::Integer(project)),
                        ("filename", text(format!("working_{project}_{version}.mp4"))),
                        ("version", Value::Integer(version)),
                        (
                            "highlights_data",
                            draw.maybe(60, |_| {
                                text(r#"[{"id": "h", "start_time": 0.5, "end_time": 2.25}]"#)
                            }),
                        ),
                        ("text_overlays", draw.maybe(60, |_| text("[]"))),
                        ("created_at", text(draw.pick(TIMESTAMPS))),
                        (
                            "effect_type",
                            draw.maybe(80, |draw| {
                                text(draw.pick(&["original", "brightness_boost", "dark_overlay"]))
                            }),
                        ),
                    ],
                );
            }
            for version in 1..=draw.below(3) as i64 {
                final_video += 1;
                row(
                    "final_videos",
                    vec![
                        ("id", Value::Integer(final_video)),
                        ("project_id", Value::Integer(project)),
                        ("filename", text(format!("final_{project}_{version}.mp4"))),
                        ("version", Value::Integer(version)),
                        ("created_at", text(draw.pick(TIMESTAMPS))),
                        (
                            "duration",
                            draw.maybe(70, |draw| Value::Real(draw.real(120.0))),
                        ),
                        ("source_type", draw.maybe(70, |_| text("custom_project"))),
                        ("game_id", Value::Null),
                        ("name", Value::Null),
                        ("rating_counts", Value::Null),
                    ],
                );
                row(
                    "before_after_tracks",
                    vec![
                        ("final_video_id", Value::Integer(final_video)),
                        (
                            "raw_clip_id",
                            Value::Integer(1 + draw.below(clips.max(1) as u64) as i64),
                        ),
                        ("source_path", text("/data/raw_clips/x.mp4")),
                        ("start_frame", Value::Integer(0)),
                        ("end_frame", Value::Integer(30 + draw.below(300) as i64)),
                        ("clip_index", Value::Integer(version - 1)),
                        ("created_at", text(draw.pick(TIMESTAMPS))),
                    ],
                );
            }
            row(
                "export_jobs",
                vec![
                    ("id", text(format!("export_{:012x}", draw.next() >> 16))),
                    ("project_id", Value::Integer(project)),
                    (
                        "type",
                        text(draw.pick(&["framing", "overlay", "multi_clip"])),
                    ),
                    (
                        "status",
                        text(draw.pick(&["complete", "error", "pending", "processing"])),
                    ),
                    (
                        "error",
                        draw.maybe(30, |_| text("Server restarted during processing")),
                    ),
                    ("input_data", text("{}")),
                    ("output_video_id", Value::Null),
                    (
                        "output_filename",
                        draw.maybe(50, |_| text(format!("final_{project}.mp4"))),
                    ),
                    ("created_at", text(draw.pick(TIMESTAMPS))),
                    (
                        "started_at",
                        draw.maybe(50, |draw| text(draw.pick(TIMESTAMPS))),
                    ),
                    ("completed_at", Value::Null),
                ],
            );
        }
        // An annotated game's export, as the app records it.
        final_video += 1;
        row(
            "final_videos",
            vec![
                ("id", Value::Integer(final_video)),
                ("project_id", Value::Integer(0)),
                ("filename", text("annotated.mp4")),
                ("version", Value::Integer(1)),
                ("created_at", text(TIMESTAMPS[3])),
                ("duration", Value::Real(0.1 + 0.2)),
                ("source_type", text("annotated_game")),
                ("game_id", Value::Integer(1)),
                ("name", text("Game 1 (Annotated)")),
                (
                    "rating_counts",
                    text(
                        r#"{"brilliant": 1, "good": 2, "interesting": 0, "mistake": 0, "blunder": 1}"#,
                    ),
                ),
            ],
        );
        Contents { rows }
    }
}

/// Inserts every row whose table the file has, with the columns that table has.
fn insert(conn: &Connection, contents: &Contents) {
    for LegacyRow { table, values } in &contents.rows {
        let present = columns(conn, "main", table);
        let kept: Vec<&(&str, Value)> = values
            .iter()
            .filter(|(column, _)| present.iter().any(|p| p == column))
            .collect();
        if kept.is_empty() {
            continue;
        }
        let names: Vec<String> = kept.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let marks = vec!["?"; kept.len()].join(", ");
        conn.execute(
            &format!(
                "INSERT INTO \"{table}\" ({}) VALUES ({marks})",
                names.join(", ")
            ),
            rusqlite::params_from_iter(kept.iter().map(|(_, value)| value)),
        )
        .unwrap_or_else(|err| panic!("a row of {table}: {err}"));
    }
}

fn columns(conn: &Connection, schema: &str, table: &str) -> Vec<String> {
    conn.prepare(&format!("PRAGMA \"{schema}\".table_info(\"{table}\")"))
        .unwrap()
        .query_map([], |row| row.get::<_, String>(1))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn open(file: &[u8]) -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, file, file.len(), false)
        .expect("the file opens");
    conn
}

fn serialize(mut conn: Connection) -> Vec<u8> {
    conn.serialize(rusqlite::MAIN_DB)
        .expect("the database serialises")
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_states_run_from_the_bare_december_file_to_the_upgraded_one() {
        let all = LegacyState::all();
        assert_eq!(all[0], LegacyState::ERA_FRESH);
        assert_eq!(all[1].upgrades, 0);
        assert_eq!(*all.last().unwrap(), LegacyState::oldest_upgraded());
        assert!(all.contains(&LegacyState::december()));
        // The December file has the old flag, not yet its replacement.
        let december = LegacyState::december().columns("working_clips");
        assert!(december.contains(&"progress".to_owned()));
        assert!(!december.contains(&"exported_at".to_owned()));
        assert!(LegacyState::december().columns("export_jobs").is_empty());
    }

    #[test]
    fn every_state_holds_rows_in_every_table_it_has_and_the_obsolete_columns_keep_values() {
        let contents = Contents::generate(7, 30);
        for state in LegacyState::all() {
            let conn = open(&state.file(&contents));
            let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
            assert!(
                count("SELECT COUNT(*) FROM raw_clips") == 30,
                "{}",
                state.name()
            );
            assert!(count("SELECT COUNT(*) FROM working_clips") >= 30);
            if state.lineage == Lineage::Oldest {
                assert!(
                    count("SELECT COUNT(*) FROM working_clips WHERE transform_data IS NOT NULL")
                        > 0
                );
                assert!(count("SELECT COUNT(*) FROM working_clips WHERE progress >= 1") > 0);
                assert!(
                    count("SELECT COUNT(*) FROM games WHERE annotations_filename IS NOT NULL") > 0
                );
            }
        }
    }

    #[test]
    fn the_apps_own_upgrade_of_any_state_has_the_columns_of_the_upgraded_file() {
        let contents = Contents::generate(3, 12);
        let end = LegacyState::oldest_upgraded();
        for state in LegacyState::all()
            .into_iter()
            .filter(|s| s.lineage == Lineage::Oldest)
        {
            let upgraded = open(&upgraded_by_the_app(state, &state.file(&contents)));
            for table in [
                "games",
                "raw_clips",
                "projects",
                "working_clips",
                "export_jobs",
            ] {
                assert_eq!(
                    columns(&upgraded, "main", table),
                    end.columns(table),
                    "{}",
                    state.name()
                );
            }
        }
    }

    #[test]
    fn a_fresh_copy_holds_the_same_rows_of_the_shared_columns() {
        let file = realistic(LegacyState::oldest_upgraded(), 20, 11);
        let fresh = open(&fresh_with_rows_of(&file));
        let source = open(&file);
        let rows = |conn: &Connection| -> Vec<(i64, Option<String>, Option<f64>)> {
            conn.prepare("SELECT id, name, end_time FROM raw_clips ORDER BY id")
                .unwrap()
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(rows(&fresh), rows(&source));
        assert!(columns(&fresh, "main", "working_clips")
            .iter()
            .all(|c| c != "progress"));
    }
}
