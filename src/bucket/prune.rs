//! Pruning the bucket: backups older than a cutoff are deleted, and the frozen R2 copies of
//! users migrated before it become tombstones (a small object whose metadata still fences the
//! R2 path).

use worker::{Bucket, Include};

use crate::bucket::database::put_tombstone;
use crate::bucket::layout::{self, R2State};
use crate::bucket::R2Error;

/// What a prune deleted and tombstoned (or, in a dry run, would have): object keys.
#[derive(Debug, Default)]
pub struct Pruned {
    pub deleted_backups: Vec<String>,
    pub tombstoned: Vec<String>,
}

/// Prunes what is older than `cutoff_ms` (milliseconds since the epoch); with `dry_run`, only
/// says what it would prune.
pub async fn prune(bucket: &Bucket, cutoff_ms: u64, dry_run: bool) -> Result<Pruned, R2Error> {
    let mut pruned = Pruned::default();
    let mut cursor: Option<String> = None;
    loop {
        let mut list = bucket.list().include(vec![Include::CustomMetadata]);
        if let Some(next) = cursor.take() {
            list = list.cursor(next);
        }
        let page = list
            .execute()
            .await
            .map_err(R2Error::on("the list of objects"))?;
        for object in page.objects() {
            let key = object.key();
            let metadata = object.custom_metadata().unwrap_or_default();
            if layout::is_backup(&key) && object.uploaded().as_millis() < cutoff_ms {
                if !dry_run {
                    bucket.delete(&key).await.map_err(R2Error::on(&key))?;
                }
                pruned.deleted_backups.push(key);
            } else if layout::is_database(&key) && !layout::is_tombstone(&metadata) {
                let R2State::Migrated { at_ms } = R2State::from_metadata(&metadata) else {
                    continue;
                };
                if at_ms >= cutoff_ms {
                    continue;
                }
                if !dry_run {
                    let version = layout::version_from_metadata(&metadata);
                    // Only over the copy that was listed: a rollback may be writing it.
                    put_tombstone(bucket, &key, version, at_ms, Some(object.etag())).await?;
                }
                pruned.tombstoned.push(key);
            }
        }
        match page.cursor().filter(|_| page.truncated()) {
            Some(next) => cursor = Some(next),
            None => return Ok(pruned),
        }
    }
}
