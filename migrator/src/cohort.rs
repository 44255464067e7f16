//! Who a command takes: the users named, or those of the listing it applies to, narrowed by size
//! and by a stable percentage cohort by a hash of the user id.
//!
//! Every user has a fixed bucket in 0..10000 (FNV-1a of the id). `--percent P` takes the buckets
//! below P x 100, so a 1% cohort is inside the 10% cohort, which is inside 100%: raising the
//! percentage only ever adds users.

use admin_api::UserSummary;

use crate::cli::Selection;
use crate::client::AdminClient;

/// The users a command takes.
pub struct Chosen {
    /// Each user, with what the listing says of them (`None`: named and not listed).
    pub users: Vec<(String, Option<UserSummary>)>,
    /// The R2 path's ceiling, when the listing was read and named it.
    pub r2_max_bytes: Option<u64>,
    /// The calls the listing took: one per page, none when only named users were taken.
    pub list_calls: usize,
}

impl Chosen {
    /// The users' ids.
    pub fn ids(self) -> Vec<String> {
        self.users.into_iter().map(|(user, _)| user).collect()
    }
}

/// The users `selection` takes for the command that `verb` names: with `--all` (or
/// `--min-size`, which only the listing knows) every listed user `applies` to, among the named
/// ones if there are any; else the named users as they are. Then those in the `--percent`
/// cohort.
pub fn choose(
    client: &AdminClient,
    selection: &Selection,
    verb: &str,
    applies: impl Fn(&UserSummary) -> bool,
) -> Result<Chosen, String> {
    if selection.users.is_empty() && !selection.all {
        return Err(format!("name the users to {verb}, or pass --all"));
    }
    let mut chosen = if selection.all || selection.min_size.is_some() {
        let listing = client.listing().map_err(|err| err.to_string())?;
        Chosen {
            users: listing
                .users
                .into_iter()
                .filter(|u| applies(u))
                .filter(|u| selection.users.is_empty() || selection.users.contains(&u.user_id))
                .filter(|u| u.r2.size.unwrap_or(0) >= selection.min_size.unwrap_or(0))
                .map(|u| (u.user_id.clone(), Some(u)))
                .collect(),
            r2_max_bytes: listing.r2_max_bytes,
            list_calls: listing.pages,
        }
    } else {
        Chosen {
            users: selection.users.iter().map(|u| (u.clone(), None)).collect(),
            r2_max_bytes: None,
            list_calls: 0,
        }
    };
    chosen
        .users
        .retain(|(user, _)| selection.percent.is_none_or(|p| in_cohort(user, p)));
    Ok(chosen)
}

/// The user's bucket, 0 to 9999.
pub fn bucket(user: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % 10_000
}

/// Whether `user` is in the cohort of `percent` (0 to 100, fractions allowed).
pub fn in_cohort(user: &str, percent: f64) -> bool {
    (bucket(user) as f64) < percent * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_nest_and_are_about_the_right_size() {
        let users: Vec<String> = (0..5000).map(|i| format!("user_{i}")).collect();
        let cohort = |p: f64| {
            users
                .iter()
                .filter(|u| in_cohort(u, p))
                .cloned()
                .collect::<Vec<_>>()
        };
        let (one, ten, all) = (cohort(1.0), cohort(10.0), cohort(100.0));
        assert!(one.iter().all(|u| ten.contains(u)), "1% is inside 10%");
        assert_eq!(all.len(), users.len());
        assert!(
            (300..700).contains(&ten.len()),
            "10% of 5000 is about 500: {}",
            ten.len()
        );
        assert!(cohort(0.0).is_empty());
    }

    #[test]
    fn the_bucket_of_a_user_never_changes() {
        assert_eq!(bucket("e2e_1706000000"), bucket("e2e_1706000000"));
        assert_ne!(bucket("a"), bucket("b"));
    }
}
