//! Derived values of docs/api.md §3 that several routes share: clip names, game display names,
//! a project's games and its `group_key`, and the tag encoding the tag filter depends on.

use serde::Serialize;

use crate::error::ApiError;
use user_data_core::db::{Db, Row};

/// English three-letter month names, for display dates such as `Dec 6`.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const FULL_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Tag full name -> short name, for the annotation variant of clip names (§3.1).
const SHORT_TAGS: [(&str, &str); 16] = [
    ("Goals", "Goal"),
    ("Assists", "Assist"),
    ("Dribbling", "Dribble"),
    ("Movement Off Ball", "Movement"),
    ("Passing Range", "Pass"),
    ("Chance Creation", "Chance Creation"),
    ("Possession Play", "Possession"),
    ("Transitions", "Transition"),
    ("Tackles", "Tackle"),
    ("Interceptions", "Interception"),
    ("1v1 Defense", "1v1 Defense"),
    ("Build-Up Passing", "Build-Up"),
    ("Shot Stopping", "Save"),
    ("Command of Area", "Command"),
    ("Distribution", "Distribution"),
    ("1v1 Saves", "1v1 Save"),
];

/// Which of the two clip-name variants of §3.1 a route uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameVariant {
    /// `/api/clips/...`: tags verbatim.
    Library,
    /// `/api/games/...`: tags shortened.
    Annotation,
}

/// The derived name of a clip: `Brilliant Goals and Dribbling`; `''` without tags.
pub fn derived_clip_name(rating: i64, tags: &[String], variant: NameVariant) -> String {
    let adjective = match rating {
        5 => "Brilliant",
        4 => "Good",
        2 => "Unfortunate",
        1 => "Bad",
        _ => "Interesting",
    };
    let tags: Vec<&str> = tags
        .iter()
        .map(|tag| match variant {
            NameVariant::Library => tag.as_str(),
            NameVariant::Annotation => SHORT_TAGS
                .iter()
                .find(|(full, _)| full == tag)
                .map_or(tag.as_str(), |(_, short)| short),
        })
        .collect();
    let tag_part = match tags.as_slice() {
        [] => return String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    format!("{adjective} {tag_part}")
}

/// The stored name when it is set, else the derived one.
pub fn clip_name(
    stored: Option<&str>,
    rating: i64,
    tags: &[String],
    variant: NameVariant,
) -> String {
    match stored {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => derived_clip_name(rating, tags, variant),
    }
}

/// Tags as stored: a JSON array; NULL or anything unreadable reads as no tags.
pub fn parse_tags(stored: Option<&str>) -> Vec<String> {
    stored
        .and_then(|text| serde_json::from_str::<Vec<String>>(text).ok())
        .unwrap_or_default()
}

/// Encodes one string as Python's `json.dumps` does (ASCII only, `\uXXXX` escapes), because the
/// stored tags and the tag filter's substring match (`"<tag>"`) both depend on that exact form.
pub fn python_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Tags in the stored form: `["Goals", "Dribbling"]`.
pub fn tags_json(tags: &[String]) -> String {
    let items: Vec<String> = tags.iter().map(|tag| python_json_string(tag)).collect();
    format!("[{}]", items.join(", "))
}

/// The stored fields of a game that its display name is made of.
pub struct GameNameParts<'a> {
    pub opponent_name: Option<&'a str>,
    pub game_date: Option<&'a str>,
    pub game_type: Option<&'a str>,
    pub tournament_name: Option<&'a str>,
}

/// §3.2: `at Rivals Oct 4`, `Cup: Vs Other Mar 9`, `Vs Lions`; `fallback` when there is no
/// opponent (the routes differ in what they fall back to).
pub fn game_display_name(game: &GameNameParts<'_>, fallback: &str) -> String {
    let opponent = match game.opponent_name {
        Some(opponent) if !opponent.is_empty() => opponent,
        _ => return fallback.to_owned(),
    };
    let prefix = match (game.game_type, game.tournament_name) {
        (Some("tournament"), Some(tournament)) if !tournament.is_empty() => {
            format!("{tournament}: Vs")
        }
        (Some("away"), _) => "at".to_owned(),
        _ => "Vs".to_owned(),
    };
    let mut parts = vec![prefix, opponent.to_owned()];
    match game.game_date {
        Some(date) if !date.is_empty() => parts.push(short_date(date).unwrap_or(date.to_owned())),
        _ => {}
    }
    parts.join(" ")
}

/// `2025-12-06` -> `Dec 6`; `None` unless the text is a valid `YYYY-MM-DD` date.
fn short_date(date: &str) -> Option<String> {
    let mut fields = date.splitn(3, '-');
    let (year, month, day) = (fields.next()?, fields.next()?, fields.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let _year: u32 = year.parse().ok()?;
    let month: usize = month.parse().ok()?;
    let day: u32 = day.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(format!("{} {day}", MONTHS[month - 1]))
}

/// `2026-01-24 10:11:12` -> `January 2026`; `None` when it does not start with a date.
pub fn month_and_year(timestamp: &str) -> Option<String> {
    let mut fields = timestamp.get(..10)?.splitn(3, '-');
    let year: u32 = fields.next()?.parse().ok()?;
    let month: usize = fields.next()?.parse().ok()?;
    let _day: u32 = fields.next()?.parse().ok()?;
    (1..=12)
        .contains(&month)
        .then(|| format!("{} {year}", FULL_MONTHS[month - 1]))
}

/// The games of a project or a download (§3.3), in the shape both routes return.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GameList {
    pub game_ids: Vec<i64>,
    pub game_names: Vec<String>,
    pub game_dates: Vec<String>,
}

/// SQL columns of a game, in the order [`GameList::push_row`] reads them from `first`.
pub const GAME_LIST_COLUMNS: &str =
    "g.id, g.name, g.opponent_name, g.game_date, g.game_type, g.tournament_name";

impl GameList {
    /// Adds the game in columns `first..first + 6` of `row` (see [`GAME_LIST_COLUMNS`]), unless
    /// it is already listed.
    pub fn push_row(&mut self, row: &Row, first: usize) -> Result<(), ApiError> {
        let id: i64 = row.get(first)?;
        if self.game_ids.contains(&id) {
            return Ok(());
        }
        let stored: String = row.get::<Option<String>>(first + 1)?.unwrap_or_default();
        let date: Option<String> = row.get(first + 3)?;
        let fallback = if stored.is_empty() {
            format!("Game {id}")
        } else {
            stored
        };
        let name = game_display_name(
            &GameNameParts {
                opponent_name: row.get::<Option<String>>(first + 2)?.as_deref(),
                game_date: date.as_deref(),
                game_type: row.get::<Option<String>>(first + 4)?.as_deref(),
                tournament_name: row.get::<Option<String>>(first + 5)?.as_deref(),
            },
            &fallback,
        );
        self.game_ids.push(id);
        self.game_names.push(name);
        self.game_dates.push(date.unwrap_or_default());
        Ok(())
    }

    /// §3.3 `group_key`: `null`, one game's name, a season, a year, or a range of years.
    pub fn group_key(&self) -> Option<String> {
        match self.game_names.as_slice() {
            [] => return None,
            [only] => return Some(only.clone()),
            _ => {}
        }
        let year_months: Vec<(i64, i64)> = self
            .game_dates
            .iter()
            .filter_map(|date| {
                let parts: Option<Vec<i64>> = date.split('-').map(|p| p.parse().ok()).collect();
                match parts?.as_slice() {
                    [year, month, ..] => Some((*year, *month)),
                    _ => None,
                }
            })
            .collect();
        if year_months.is_empty() {
            let mut key = self.game_names[..2].join(" / ");
            if self.game_names.len() > 2 {
                key.push_str("...");
            }
            return Some(key);
        }
        let mut years: Vec<i64> = year_months.iter().map(|(year, _)| *year).collect();
        years.sort_unstable();
        years.dedup();
        let mut seasons: Vec<&str> = year_months
            .iter()
            .filter_map(|(_, month)| match month {
                9..=12 => Some("Fall"),
                1..=5 => Some("Spring"),
                6..=8 => Some("Summer"),
                _ => None,
            })
            .collect();
        seasons.sort_unstable();
        seasons.dedup();
        Some(match (years.as_slice(), seasons.as_slice()) {
            ([year], [season]) => format!("{season} {year}"),
            ([year], _) => year.to_string(),
            (years, _) => format!("{}-{}", years[0], years[years.len() - 1]),
        })
    }
}

/// The games of every project, keyed by project id: working clips (all versions) -> raw clip ->
/// game, ordered by `game_date` (NULL first), each game once.
pub fn games_by_project(
    db: &impl Db,
) -> Result<std::collections::HashMap<i64, GameList>, ApiError> {
    let rows = db.query(
        &format!(
            "SELECT DISTINCT wc.project_id, {GAME_LIST_COLUMNS} \
             FROM working_clips wc \
             JOIN raw_clips rc ON rc.id = wc.raw_clip_id \
             JOIN games g ON g.id = rc.game_id \
             ORDER BY wc.project_id, g.game_date ASC, g.id ASC"
        ),
        &[],
    )?;
    let mut games = std::collections::HashMap::<i64, GameList>::new();
    for row in &rows {
        games.entry(row.get(0)?).or_default().push_row(row, 1)?;
    }
    Ok(games)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(
        opponent: Option<&'a str>,
        date: Option<&'a str>,
        game_type: Option<&'a str>,
        tournament: Option<&'a str>,
    ) -> GameNameParts<'a> {
        GameNameParts {
            opponent_name: opponent,
            game_date: date,
            game_type,
            tournament_name: tournament,
        }
    }

    #[test]
    fn display_names_follow_the_contract_examples() {
        let away = parts(Some("Rivals"), Some("2025-10-04"), Some("away"), None);
        assert_eq!(game_display_name(&away, "x"), "at Rivals Oct 4");
        let cup = parts(
            Some("Other"),
            Some("2026-03-09"),
            Some("tournament"),
            Some("Cup"),
        );
        assert_eq!(game_display_name(&cup, "x"), "Cup: Vs Other Mar 9");
        let home = parts(Some("Lions"), None, Some("home"), None);
        assert_eq!(game_display_name(&home, "x"), "Vs Lions");
    }

    #[test]
    fn unparsable_date_is_kept_raw_and_no_opponent_uses_fallback() {
        let odd = parts(Some("Lions"), Some("next week"), None, Some(""));
        assert_eq!(game_display_name(&odd, "x"), "Vs Lions next week");
        let tournament_without_name = parts(Some("A"), Some(""), Some("tournament"), Some(""));
        assert_eq!(game_display_name(&tournament_without_name, "x"), "Vs A");
        let none = parts(Some(""), Some("2025-01-01"), None, None);
        assert_eq!(game_display_name(&none, "stored.mp4"), "stored.mp4");
    }

    #[test]
    fn clip_names_in_both_variants() {
        let tags = vec!["Goals".to_owned(), "Dribbling".to_owned()];
        assert_eq!(
            derived_clip_name(5, &tags, NameVariant::Library),
            "Brilliant Goals and Dribbling"
        );
        assert_eq!(
            derived_clip_name(5, &tags, NameVariant::Annotation),
            "Brilliant Goal and Dribble"
        );
        let three = vec!["A".to_owned(), "B".to_owned(), "C".to_owned()];
        assert_eq!(
            derived_clip_name(2, &three, NameVariant::Library),
            "Unfortunate A, B and C"
        );
        assert_eq!(
            derived_clip_name(9, &["X".into()], NameVariant::Library),
            "Interesting X"
        );
        assert_eq!(derived_clip_name(5, &[], NameVariant::Library), "");
        assert_eq!(
            clip_name(Some("Mine"), 1, &tags, NameVariant::Library),
            "Mine"
        );
        assert_eq!(
            clip_name(Some(""), 1, &tags, NameVariant::Library),
            "Bad Goals and Dribbling"
        );
    }

    #[test]
    fn tags_are_stored_as_python_json() {
        let tags = vec![
            "Goals".to_owned(),
            "Défense \"x\"".to_owned(),
            "⚽".to_owned(),
        ];
        assert_eq!(
            tags_json(&tags),
            r#"["Goals", "D\u00e9fense \"x\"", "\u26bd"]"#
        );
        assert_eq!(parse_tags(Some(&tags_json(&tags))), tags);
        assert_eq!(parse_tags(Some("not json")), Vec::<String>::new());
        assert_eq!(tags_json(&[]), "[]");
    }

    fn games(names: &[&str], dates: &[&str]) -> GameList {
        GameList {
            game_ids: (1..=names.len() as i64).collect(),
            game_names: names.iter().map(|n| n.to_string()).collect(),
            game_dates: dates.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn group_keys_by_season_year_and_range() {
        assert_eq!(games(&[], &[]).group_key(), None);
        assert_eq!(
            games(&["Vs A"], &["2025-10-01"]).group_key().unwrap(),
            "Vs A"
        );
        let fall = games(&["A", "B"], &["2025-09-01", "2025-12-01"]);
        assert_eq!(fall.group_key().unwrap(), "Fall 2025");
        let mixed = games(&["A", "B"], &["2025-03-01", "2025-10-01"]);
        assert_eq!(mixed.group_key().unwrap(), "2025");
        let years = games(&["A", "B", "C"], &["2026-01-01", "2024-05-01", ""]);
        assert_eq!(years.group_key().unwrap(), "2024-2026");
        let undated = games(&["A", "B", "C"], &["", "soon", ""]);
        assert_eq!(undated.group_key().unwrap(), "A / B...");
    }

    #[test]
    fn month_and_year_of_a_timestamp() {
        assert_eq!(
            month_and_year("2026-01-24 10:11:12").unwrap(),
            "January 2026"
        );
        assert_eq!(month_and_year("garbage"), None);
    }
}
