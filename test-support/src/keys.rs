//! Where the Worker keeps a user's things, as the tests name them: the KV flag that routes a user
//! to their Durable Object, and the R2 keys of their database and its backups.
//!
//! These mirror the Worker's own definitions, which tests cannot import (the Worker crate is
//! built for wasm): the flag's key is `flag::key` in `src/flag.rs`, the R2 keys are
//! `database_key` and `backup_key` in `src/bucket/layout.rs`. A change there is a change here.

/// The KV key of `user`'s flag (`migrated:<user>`): present, the router sends the user's requests
/// to their Durable Object; absent, to the R2 path.
pub fn flag_key(user: &str) -> String {
    format!("migrated:{user}")
}

/// The R2 key of `user`'s database (`<user>/database.sqlite`).
pub fn database_key(user: &str) -> String {
    format!("{user}/database.sqlite")
}

/// The R2 key under which a move keeps the database object of `version` it replaced
/// (`<user>/backups/database.v<version>.sqlite`).
pub fn backup_key(user: &str, version: u64) -> String {
    format!("{user}/backups/database.v{version}.sqlite")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_workers() {
        assert_eq!(flag_key("ann"), "migrated:ann");
        assert_eq!(database_key("ann"), "ann/database.sqlite");
        assert_eq!(backup_key("ann", 4), "ann/backups/database.v4.sqlite");
    }
}
