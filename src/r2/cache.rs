//! The isolate's cache of downloaded databases, bounded in bytes.
//!
//! An isolate serves many requests; keeping the bytes of the databases it recently loaded saves
//! the download when R2 still holds the same object (same etag). Entries are only a cache: R2
//! is always asked first (a conditional GET), and a changed etag replaces the entry.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A database as it was downloaded or uploaded.
#[derive(Debug, Clone)]
pub struct CachedDatabase {
    pub etag: String,
    pub bytes: Rc<Vec<u8>>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, (CachedDatabase, u64)>,
    total_bytes: u64,
    clock: u64,
}

thread_local! {
    // Workers run one request at a time per isolate thread; nothing here is held across an await.
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The cached database of `key`, if any.
pub fn get(key: &str) -> Option<CachedDatabase> {
    CACHE.with_borrow_mut(|cache| {
        cache.clock += 1;
        let now = cache.clock;
        cache.entries.get_mut(key).map(|(entry, used)| {
            *used = now;
            entry.clone()
        })
    })
}

/// Remembers a database, evicting the least recently used ones beyond `limit` bytes.
pub fn put(key: &str, database: CachedDatabase, limit: u64) {
    CACHE.with_borrow_mut(|cache| {
        remove_entry(cache, key);
        let size = database.bytes.len() as u64;
        if size > limit {
            return;
        }
        while cache.total_bytes + size > limit {
            let Some(oldest) = cache
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            remove_entry(cache, &oldest);
        }
        cache.clock += 1;
        cache.total_bytes += size;
        let now = cache.clock;
        cache.entries.insert(key.to_owned(), (database, now));
    })
}

/// Forgets `key` (its object is gone or unreadable).
pub fn remove(key: &str) {
    CACHE.with_borrow_mut(|cache| remove_entry(cache, key));
}

fn remove_entry(cache: &mut Cache, key: &str) {
    if let Some((entry, _)) = cache.entries.remove(key) {
        cache.total_bytes -= entry.bytes.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(etag: &str, size: usize) -> CachedDatabase {
        CachedDatabase {
            etag: etag.into(),
            bytes: Rc::new(vec![0; size]),
        }
    }

    #[test]
    fn the_least_recently_used_entry_goes_first_when_full() {
        put("a", database("1", 40), 100);
        put("b", database("2", 40), 100);
        assert!(get("a").is_some());
        put("c", database("3", 40), 100);
        assert!(get("b").is_none(), "b was the least recently used");
        assert_eq!(get("a").unwrap().etag, "1");
        assert!(get("c").is_some());
        put("huge", database("4", 101), 100);
        assert!(get("huge").is_none(), "larger than the whole cache");
        put("a", database("5", 10), 100);
        assert_eq!(get("a").unwrap().etag, "5");
        remove("a");
        assert!(get("a").is_none());
    }
}
