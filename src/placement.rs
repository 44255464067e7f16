//! Where a user's request is served: the one decision the router, the R2 path and the user's
//! Durable Object all take, from what each knows when the request reaches it.
//!
//! Three records say where a user's data is:
//! - the KV flag (`crate::flag`): the intent, which may be stale for about a minute;
//! - the R2 object's [`R2State`]: `active` (the R2 path serves) or `migrated` (the fence: the
//!   object holds the data);
//! - the object's own [`ObjectState`]: only an `active` object serves.
//!
//! The flag only routes: a side that finds the records against it hands the request over. An
//! object that never held the data moves the user as soon as the flag asks; one that held it and
//! gave it back, or an active one whose flag is gone, waits until the change has had time to reach
//! every location (`FLAG_PROPAGATION_SECONDS`): within that window the records, not the flag,
//! decide. A move that failed recently is not tried again by requests (an operator can), so a
//! failing move costs one request, not every request.

pub use admin_api::{Action, ObjectState};

use crate::bucket::layout::R2State;

/// Where a request is, with what is known there besides R2's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Side {
    /// The router, in front of the R2 path; it read the KV flag (cached).
    Router { flag_seen: bool },
    /// The R2-SQLite path, which reads R2's state with the load that serves the request.
    R2Path,
    /// The user's Durable Object.
    Object(ObjectFacts),
}

/// What an object knows when a request reaches it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectFacts {
    /// Whether the router saw the KV flag ([`headers::FLAG_SEEN`]).
    pub flag_seen: bool,
    pub state: ObjectState,
    /// How long ago the object entered `state`.
    pub since_ms: u64,
    /// The move that failed within the retry delay, if one did.
    pub recently_failed: Option<Action>,
    /// How long a flag change may take to reach every location.
    pub flag_propagation_ms: u64,
}

/// What the side does with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Serve it here.
    Serve,
    /// Give it to the other side.
    HandOver,
    /// Move the user into the object first, then decide again.
    MigrateFirst,
    /// Move the user back to R2 first, then decide again.
    RollBackFirst,
    /// Answer 503 with `Retry-After`: the object holds the data but is reading it out (a
    /// chunked rollback or export), and serves again when that ends or stalls.
    Wait,
}

/// What `side` does with a request before anything is read from R2; `None` when that depends on
/// R2's state: read it (one HEAD, or the load that serves the request) and ask [`decide`].
/// The router's [`Placement::Serve`] means the R2 path's.
pub fn decide_without_r2(side: Side) -> Option<Placement> {
    match side {
        // The flag is the cheap hint (a cached KV read): follow it without reading R2.
        Side::Router { flag_seen: true } => Some(Placement::HandOver),
        Side::Router { flag_seen: false } | Side::R2Path => None,
        // R2 is fenced off while the object is active; its state does not matter.
        Side::Object(object) if object.state == ObjectState::Active => {
            Some(at_active_object(object))
        }
        Side::Object(object) if object.state == ObjectState::Exporting => Some(Placement::Wait),
        Side::Object(_) => None,
    }
}

/// What `side` does with a request, knowing R2's state `r2`.
pub fn decide(side: Side, r2: R2State) -> Placement {
    match side {
        // R2's state alone decides: the R2 path is authoritative while it says `active`, and
        // fenced off once it says `migrated`, whatever a stale flag said.
        Side::Router { .. } | Side::R2Path if r2 == R2State::Active => Placement::Serve,
        Side::Router { .. } | Side::R2Path => Placement::HandOver,
        Side::Object(object) if object.state == ObjectState::Active => at_active_object(object),
        Side::Object(object) if object.state == ObjectState::Exporting => Placement::Wait,
        Side::Object(object) => at_inactive_object(object, r2),
    }
}

fn settled(object: ObjectFacts) -> bool {
    object.since_ms >= object.flag_propagation_ms
}

fn may(object: ObjectFacts, action: Action) -> bool {
    object.recently_failed != Some(action)
}

fn at_active_object(object: ObjectFacts) -> Placement {
    if !object.flag_seen && settled(object) && may(object, Action::Rollback) {
        Placement::RollBackFirst
    } else {
        Placement::Serve
    }
}

fn at_inactive_object(object: ObjectFacts, r2: R2State) -> Placement {
    let flag_seen = object.flag_seen;
    match (object.state, r2) {
        // A cut-over happened and the activation did not (a crash): finish it. R2 will not
        // serve the user, so there is no other side to fall back to.
        (_, R2State::Migrated { .. }) => Placement::MigrateFirst,
        // A user rolled back is moved again only once the flag has had time to reach every
        // location: before that, a flag seen set may be the stale one the rollback cleared.
        (ObjectState::RolledBack, _)
            if flag_seen && settled(object) && may(object, Action::Migrate) =>
        {
            Placement::MigrateFirst
        }
        (ObjectState::New, _) if flag_seen && may(object, Action::Migrate) => {
            Placement::MigrateFirst
        }
        // A chunked migrate is copying the data in (R2 serves until its cut-over), or one that
        // did not finish left its rows: the flag alone does not start a move over it.
        _ => Placement::HandOver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: u64 = 120_000;
    const ACTIVE: R2State = R2State::Active;
    const MIGRATED: R2State = R2State::Migrated { at_ms: 1 };

    fn object(
        state: ObjectState,
        since_ms: u64,
        flag_seen: bool,
        recently_failed: Option<Action>,
    ) -> Side {
        Side::Object(ObjectFacts {
            flag_seen,
            state,
            since_ms,
            recently_failed,
            flag_propagation_ms: GRACE,
        })
    }

    fn at(state: ObjectState, since_ms: u64, flag_seen: bool) -> Side {
        object(state, since_ms, flag_seen, None)
    }

    #[test]
    fn the_router_follows_the_flag_and_the_r2_path_its_fence() {
        let router = |flag_seen| Side::Router { flag_seen };
        assert_eq!(decide_without_r2(router(true)), Some(Placement::HandOver));
        assert_eq!(decide_without_r2(router(false)), None, "R2's state decides");
        assert_eq!(decide_without_r2(Side::R2Path), None);
        // Once R2's state is known, it alone decides, whatever a stale flag said.
        for side in [router(true), router(false), Side::R2Path] {
            assert_eq!(decide(side, ACTIVE), Placement::Serve);
            assert_eq!(decide(side, MIGRATED), Placement::HandOver, "the fence");
        }
    }

    #[test]
    fn an_active_object_serves_and_rolls_back_only_on_a_settled_absent_flag() {
        for r2 in [ACTIVE, MIGRATED] {
            for (since, flag, expected) in [
                (5, true, Placement::Serve),
                (5, false, Placement::Serve), // KV may be stale
                (GRACE, true, Placement::Serve),
                (GRACE, false, Placement::RollBackFirst),
            ] {
                let active = at(ObjectState::Active, since, flag);
                assert_eq!(decide(active, r2), expected);
                assert_eq!(decide_without_r2(active), Some(expected), "R2 is not read");
            }
        }
    }

    #[test]
    fn an_inactive_object_reads_r2_before_anything_else() {
        for state in [
            ObjectState::New,
            ObjectState::RolledBack,
            ObjectState::RollingBack,
        ] {
            for flag in [true, false] {
                assert_eq!(decide_without_r2(at(state, GRACE, flag)), None);
            }
        }
    }

    #[test]
    fn an_inactive_object_migrates_on_the_flag_or_to_finish_a_cut_over() {
        let new = |flag| at(ObjectState::New, u64::MAX, flag);
        assert_eq!(decide(new(true), ACTIVE), Placement::MigrateFirst);
        assert_eq!(decide(new(false), ACTIVE), Placement::HandOver);
        let stale = decide(at(ObjectState::RolledBack, 5, true), ACTIVE);
        assert_eq!(stale, Placement::HandOver, "KV may be stale");
        let settled = decide(at(ObjectState::RolledBack, GRACE, true), ACTIVE);
        assert_eq!(settled, Placement::MigrateFirst);
        assert_eq!(decide(new(false), MIGRATED), Placement::MigrateFirst);
    }

    #[test]
    fn a_move_that_failed_recently_is_not_retried_by_requests_but_the_user_is_served() {
        let failed = |state, since, flag, action| object(state, since, flag, Some(action));
        let migrate_failed = failed(ObjectState::New, u64::MAX, true, Action::Migrate);
        assert_eq!(
            decide(migrate_failed, ACTIVE),
            Placement::HandOver,
            "R2 keeps serving"
        );
        let rollback_failed = failed(ObjectState::Active, GRACE, false, Action::Rollback);
        assert_eq!(
            decide(rollback_failed, MIGRATED),
            Placement::Serve,
            "the object keeps serving"
        );
        // A cut-over already happened: the object is the only side that can serve.
        let finish = failed(ObjectState::New, u64::MAX, false, Action::Migrate);
        assert_eq!(decide(finish, MIGRATED), Placement::MigrateFirst);
        // The other move is not held back by this one's failure.
        let other = failed(ObjectState::New, u64::MAX, true, Action::Rollback);
        assert_eq!(decide(other, ACTIVE), Placement::MigrateFirst);
    }
}
