//! Derived values of shared/api.md §3 that several routes share.

/// English three-letter month names, for display dates such as `Dec 6`.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

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
}
