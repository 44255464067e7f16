//! Asking the Worker about many users at once: a few threads share the list, and the results
//! come back to the calling thread as they arrive, so that it alone prints and counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Runs `work` on every item, `concurrency` items at a time, and hands each result to `done`
/// on this thread as soon as it is there (in no particular order).
pub fn each<T: Sync, R: Send>(
    items: &[T],
    concurrency: usize,
    work: impl Fn(&T) -> R + Sync,
    mut done: impl FnMut(R),
) {
    let next = AtomicUsize::new(0);
    let (results, received) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            let (next, work, results) = (&next, &work, results.clone());
            scope.spawn(move || {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) {
                    if results.send(work(item)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(results);
        for result in received {
            done(result);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_worked_on_once_whatever_the_concurrency() {
        let items: Vec<u32> = (0..100).collect();
        for concurrency in [1, 3, 64] {
            let mut seen = Vec::new();
            each(&items, concurrency, |i| i * 2, |r| seen.push(r));
            seen.sort_unstable();
            assert_eq!(seen, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
    }
}
