//! Who a request is for: `X-User-ID` -> [`UserId`].
//!
//! This is the only place a `UserId` is made. The existing app silently stripped characters it
//! did not like, so two different headers could reach the same user's data; here an id is taken
//! exactly as sent or refused (docs/api.md §1; a deliberate difference, listed in §13).

use std::fmt;

use crate::headers;

const MAX_LEN: usize = 64;

/// Why a request names no user we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// The id breaks the rules (400).
    Invalid,
    /// No id, and no default user (401).
    Missing,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Invalid => write!(
                f,
                "Invalid {}: expected 1 to {MAX_LEN} characters of A-Z, a-z, 0-9, '_' or '-'",
                headers::USER_ID
            ),
            IdentityError::Missing => write!(f, "Missing {} header", headers::USER_ID),
        }
    }
}

impl std::error::Error for IdentityError {}

/// A validated user id: 1 to 64 characters of `[A-Za-z0-9_-]`.
///
/// Safe to use as an R2 key prefix and a Durable Object name without further escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// Validates `raw` as sent, without trimming or stripping anything.
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if raw.is_empty() || raw.len() > MAX_LEN || !raw.chars().all(allowed) {
            return Err(IdentityError::Invalid);
        }
        Ok(Self(raw.to_owned()))
    }

    /// Resolves the user of a request from its header, else the configured default user.
    /// No header and no default is 401: the caller did not say who it is.
    pub fn from_header(
        header: Option<&str>,
        default_user: Option<&str>,
    ) -> Result<Self, IdentityError> {
        match (header, default_user) {
            (Some(raw), _) => Self::parse(raw),
            (None, Some(default)) => Self::parse(default),
            (None, None) => Err(IdentityError::Missing),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_up_to_64_characters() {
        for id in ["a", "e2e_1706000000", "A-b_9", &"x".repeat(64)] {
            assert_eq!(UserId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_empty_long_and_foreign_characters_instead_of_stripping() {
        for id in [
            "",
            &"x".repeat(65),
            "ab$x-1_Z",
            "a b",
            "café",
            "../etc",
            "a/b",
        ] {
            assert!(
                matches!(UserId::parse(id), Err(IdentityError::Invalid)),
                "{id:?} was accepted"
            );
        }
    }

    #[test]
    fn missing_header_uses_default_or_is_unauthorized() {
        assert_eq!(UserId::from_header(None, Some("a")).unwrap().as_str(), "a");
        assert!(matches!(
            UserId::from_header(None, None),
            Err(IdentityError::Missing)
        ));
        assert_eq!(
            UserId::from_header(Some("bob"), Some("a"))
                .unwrap()
                .as_str(),
            "bob"
        );
    }
}
