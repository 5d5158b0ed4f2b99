//! The concurrent-stream rows (`streams`, decision 0092).

use playhead_core::StoreError;
use playhead_core::ids::{AccountId, ProfileId, StreamId};
use playhead_core::streams::Stream;

use crate::columns::{Columns, FromColumns};

/// The columns [`Stream`]'s decoder reads, from `streams`.
pub const STREAM_COLS: &str = "stream_id, account_id, profile_id, stream_key, title_id, device_id, signin_session, \
                               started_at, last_seen, stopped_at";

/// From [`STREAM_COLS`].
impl FromColumns for Stream {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: StreamId(c.uuid("stream_id")?),
            account: AccountId(c.uuid("account_id")?),
            profile: ProfileId(c.uuid("profile_id")?),
            key: c.string("stream_key")?,
            title: c.title_id("title_id")?,
            device_id: c.opt_string("device_id")?,
            signin_session: c.opt_string("signin_session")?,
            started_at: c.timestamp("started_at")?,
            last_seen: c.timestamp("last_seen")?,
            stopped_at: c.opt_timestamp("stopped_at")?,
        })
    }
}
