//! The isolate's cache of opened databases, bounded in bytes.
//!
//! An isolate serves many requests; keeping the databases it recently opened saves both the
//! download and the parse when R2 still holds the same object (same etag). Entries are only a
//! cache: R2 is always asked first (a conditional GET), and a changed etag replaces the entry.
//!
//! Invariant: an entry is exactly R2's object at its etag. A request *takes* the entry (two
//! requests interleaving in one isolate never share a connection) and puts it back only when
//! it read without writing or after storing its write as that etag; on any error the
//! connection is dropped.

use std::cell::RefCell;
use std::collections::HashMap;

use user_data_core::db::rusqlite_db::RusqliteDb;

#[derive(Default)]
struct Cache {
    /// key -> (etag, database, its size in bytes, last use)
    entries: HashMap<String, (String, RusqliteDb, u64, u64)>,
    total_bytes: u64,
    clock: u64,
}

thread_local! {
    // A Worker isolate runs on one thread; no borrow is held across an await.
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The etag of the cached database of `key`, if any (for the conditional GET).
pub fn etag(key: &str) -> Option<String> {
    CACHE.with_borrow(|cache| cache.entries.get(key).map(|(etag, ..)| etag.clone()))
}

/// Takes the cached database of `key` if it is still the object at `etag`.
pub fn take(key: &str, etag: &str) -> Option<RusqliteDb> {
    CACHE.with_borrow_mut(|cache| {
        if cache
            .entries
            .get(key)
            .is_some_and(|(cached, ..)| cached == etag)
        {
            remove_entry(cache, key)
        } else {
            None
        }
    })
}

/// Keeps `db` as the object at `etag`, evicting the least recently used beyond `limit` bytes.
pub fn put(key: &str, etag: String, db: RusqliteDb, limit: u64) {
    let size = db.size_bytes();
    CACHE.with_borrow_mut(|cache| {
        remove_entry(cache, key);
        if size > limit {
            return;
        }
        while cache.total_bytes + size > limit {
            let Some(oldest) = cache
                .entries
                .iter()
                .min_by_key(|(_, (.., used))| *used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            remove_entry(cache, &oldest);
        }
        cache.clock += 1;
        cache.total_bytes += size;
        let now = cache.clock;
        cache.entries.insert(key.to_owned(), (etag, db, size, now));
    })
}

/// Forgets `key` (its object changed, or is gone).
pub fn remove(key: &str) {
    CACHE.with_borrow_mut(|cache| {
        remove_entry(cache, key);
    });
}

fn remove_entry(cache: &mut Cache, key: &str) -> Option<RusqliteDb> {
    cache.entries.remove(key).map(|(_, db, size, _)| {
        cache.total_bytes -= size;
        db
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use user_data_core::db::Db;

    fn database(rows: usize) -> RusqliteDb {
        let db = RusqliteDb::empty().unwrap();
        db.execute_script("CREATE TABLE t (x)").unwrap();
        for _ in 0..rows {
            db.execute("INSERT INTO t VALUES (zeroblob(4000))", &[])
                .unwrap();
        }
        db
    }

    #[test]
    fn taking_needs_the_same_etag_and_empties_the_entry() {
        put("a", "1".into(), database(1), 1 << 20);
        assert_eq!(etag("a").as_deref(), Some("1"));
        assert!(take("a", "2").is_none(), "another etag: the object changed");
        assert!(take("a", "1").is_some());
        assert!(
            take("a", "1").is_none(),
            "taken: a second request cannot share it"
        );
        assert_eq!(etag("a"), None);
    }

    #[test]
    fn the_least_recently_used_entry_goes_first_when_full() {
        let one = database(1).size_bytes();
        let limit = one * 2 + one / 2;
        put("x", "1".into(), database(1), limit);
        put("y", "1".into(), database(1), limit);
        put("z", "1".into(), database(1), limit);
        assert_eq!(etag("x"), None, "x was the least recently used");
        assert!(etag("y").is_some() && etag("z").is_some());
        put("big", "1".into(), database(10), limit);
        assert_eq!(etag("big"), None, "larger than the whole cache");
        remove("y");
        assert_eq!(etag("y"), None);
    }
}
