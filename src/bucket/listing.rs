//! The fleet as R2 lists it: a page of users' database objects with their metadata, and what
//! one object's metadata says ([`summary_of`]). One list call per page, never a call per user.

use admin_api::{ListedUser, R2Summary};
use worker::{Bucket, Include, Object};

use crate::bucket::layout::{self, R2State};
use crate::bucket::R2Error;

/// One page of the bucket: the users whose database object it holds (an R2 page also holds the
/// users' media, so it may name fewer users than `limit`), and where the next page starts.
pub struct DatabasePage {
    pub users: Vec<ListedUser>,
    /// `None` after the last page.
    pub cursor: Option<String>,
}

/// The page of at most `limit` objects after `cursor` (`None`: the first).
pub async fn databases(
    bucket: &Bucket,
    cursor: Option<String>,
    limit: u32,
) -> Result<DatabasePage, R2Error> {
    let mut list = bucket
        .list()
        .include(vec![Include::CustomMetadata])
        .limit(limit);
    if let Some(next) = cursor {
        list = list.cursor(next);
    }
    let page = list
        .execute()
        .await
        .map_err(R2Error::on("the list of users"))?;
    let mut users = Vec::new();
    for object in page.objects() {
        if let Some(user) = layout::database_owner(&object.key()) {
            users.push(ListedUser {
                r2: summary_of(&object)?,
                user_id: user.as_str().to_owned(),
            });
        }
    }
    Ok(DatabasePage {
        users,
        cursor: page.cursor().filter(|_| page.truncated()),
    })
}

/// The summary of a user's database object, from a HEAD or from a list with its metadata.
pub fn summary_of(object: &Object) -> Result<R2Summary, R2Error> {
    let key = object.key();
    let metadata = object.custom_metadata().map_err(R2Error::on(&key))?;
    let (state, migrated_at) = match R2State::from_metadata(&metadata) {
        R2State::Active => (admin_api::R2State::Active, None),
        R2State::Migrated { at_ms } => (admin_api::R2State::Migrated, Some(at_ms)),
    };
    Ok(R2Summary {
        exists: true,
        version: layout::version_from_metadata(&metadata).0,
        size: Some(object.size()),
        etag: Some(object.etag()),
        state,
        migrated_at,
    })
}
