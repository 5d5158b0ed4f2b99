//! The decoders of the feed's rows (issue 14): activities and follow edges, written once for both
//! SQL adapters.

use playhead_core::StoreError;
use playhead_core::feed::{Activity, ActivityKind, FollowState};
use playhead_core::ids::{ActivityId, PlayId, ProfileId};
use playhead_core::ports::FollowEdge;

use crate::columns::{Columns, FromColumns};

/// The columns [`Activity`]'s decoder reads, from `activities` aliased `a`.
#[macro_export]
macro_rules! activity_columns {
    () => {
        "a.id, a.actor, a.kind, a.title_id, a.source_title, a.play_id, a.subject_key, a.maturity, a.at"
    };
}

/// From [`activity_columns!`](crate::activity_columns).
impl FromColumns for Activity {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: ActivityId(c.uuid("id")?),
            actor: ProfileId(c.uuid("actor")?),
            kind: c.named("kind", ActivityKind::parse)?,
            title_id: c.title_id("title_id")?,
            source_title: c.title_id("source_title")?,
            play_id: c.opt_uuid("play_id")?.map(PlayId),
            subject_key: c.string("subject_key")?,
            maturity: c.u8("maturity")?,
            at: c.timestamp("at")?,
        })
    }
}

/// A follow edge (`follower, followee, state, since`).
impl FromColumns for FollowEdge {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            follower: ProfileId(c.uuid("follower")?),
            followee: ProfileId(c.uuid("followee")?),
            state: c.named("state", FollowState::parse)?,
            since: c.timestamp("since")?,
        })
    }
}
