//! Who moves next: a stable percentage cohort by a hash of the user id.
//!
//! Every user has a fixed bucket in 0..10000 (FNV-1a of the id). `--percent P` takes the buckets
//! below P x 100, so a 1% cohort is inside the 10% cohort, which is inside 100%: raising the
//! percentage only ever adds users.

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
