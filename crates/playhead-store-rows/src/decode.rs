//! The decoders of the catalog, event log, viewing, account, API-key, recommendation and
//! idempotency rows: one per row shape, written once.
//!
//! The rule: a decoder names the columns it reads; the query selecting them lives in the adapter
//! and uses the matching `*_columns!` list where one exists.

use playhead_core::StoreError;
use playhead_core::event::{EventKind, PlaybackEvent};
use playhead_core::ids::{AccountId, DeviceId, EventId, PlayId, ProfileId, SessionId, TitleId};
use playhead_core::ports::{
    ApiKeyRecord, Feedback, FeedbackKind, GroupEvent, IdempotencyBegin, Impressions, QueuedEvent, ResumeRow,
    StoredResponse, StoredTitle, Viewing,
};
use playhead_core::profile::{Account, Email, Profile, ProfileName};
use playhead_core::rules::progress::ProgressRecord;
use playhead_core::rules::viewing::SessionKey;
use playhead_core::time::Timestamp;
use playhead_core::title::{Title, TitleKind};
use playhead_core::trace::TraceContext;

use crate::columns::{Columns, FromColumns};
use crate::error::corrupt;
use crate::to_u32;

/// From [`event_columns!`](crate::event_columns).
impl FromColumns for PlaybackEvent {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            event_id: EventId(c.uuid("event_id")?),
            profile_id: ProfileId(c.uuid("profile_id")?),
            title_id: c.title_id("title_id")?,
            kind: c.named("kind", EventKind::parse)?,
            position_ms: c.i64("position_ms")?,
            duration_ms: c.opt_i64("duration_ms")?,
            occurred_at: c.timestamp("occurred_at")?,
            occurred_at_raw: c.timestamp("occurred_at_raw")?,
            received_at: c.timestamp("received_at")?,
            device_id: c.opt_parsed("device_id", DeviceId::parse)?,
            session_id: c.opt_parsed("session_id", SessionId::parse)?,
        })
    }
}

/// An event with its queue position and trace context (`q.seq` and `q.traceparent` beside the
/// event's columns). A stored trace context that no longer parses is dropped: it only links a
/// trace, and must never keep an event from being applied.
impl FromColumns for QueuedEvent {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            seq: c.i64("seq")?,
            event: PlaybackEvent::from_columns(c)?,
            trace: c.opt_text("traceparent")?.and_then(TraceContext::parse),
        })
    }
}

/// An event of a session group with its `deleted` flag (covered by a tombstone).
impl FromColumns for GroupEvent {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self { event: PlaybackEvent::from_columns(c)?, deleted: c.bool("deleted")? })
    }
}

/// A claimed queue row (`seq, event_id`).
pub fn claimed(c: &impl Columns) -> Result<(i64, EventId), StoreError> {
    Ok((c.i64("seq")?, EventId(c.uuid("event_id")?)))
}

/// From the adapter's `title_columns!` (genres and external ids as JSON text).
impl FromColumns for Title {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: c.title_id("id")?,
            kind: c.named("kind", TitleKind::parse)?,
            name: c.string("name")?,
            duration_ms: c.i64("duration_ms")?,
            credits_start_ms: c.opt_i64("credits_start_ms")?,
            series_id: c.opt_title_id("series_id")?,
            season: c.opt_i32("season")?,
            episode: c.opt_i32("episode")?,
            genres: c.json("genres")?,
            maturity: c.u8("maturity")?,
            release_year: c.opt_i32("release_year")?,
            available_from: c.opt_timestamp("available_from")?,
            external_ids: c.json("external_ids")?,
        })
    }
}

/// A title with its `version` column.
impl FromColumns for StoredTitle {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self { title: Title::from_columns(c)?, version: c.i64("version")? })
    }
}

/// From [`viewing_columns!`](crate::viewing_columns).
impl FromColumns for Viewing {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: PlayId(c.uuid("id")?),
            profile_id: ProfileId(c.uuid("profile_id")?),
            title_id: c.title_id("title_id")?,
            key: c
                .opt_text("session_key")?
                .map(|k| SessionKey::decode(k).ok_or_else(|| corrupt("session_key", k)))
                .transpose()?,
            started_at: c.timestamp("started_at")?,
            ended_at: c.timestamp("ended_at")?,
            watched_ms: c.i64("watched_ms")?,
            completed: c.bool("completed")?,
            is_play: c.bool("is_play")?,
            manual: c.bool("manual")?,
        })
    }
}

/// A play of an episode with its series (`series_id` beside [`viewing_columns!`](crate::viewing_columns)).
pub fn series_play(c: &impl Columns) -> Result<(TitleId, Viewing), StoreError> {
    Ok((c.title_id("series_id")?, Viewing::from_columns(c)?))
}

/// From [`progress_columns!`](crate::progress_columns).
impl FromColumns for ProgressRecord {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            profile_id: ProfileId(c.uuid("profile_id")?),
            title_id: c.title_id("title_id")?,
            position_ms: c.i64("position_ms")?,
            duration_ms: c.i64("duration_ms")?,
            occurred_at: c.timestamp("occurred_at")?,
            event_id: EventId(c.uuid("event_id")?),
            finished: c.bool("finished")?,
            updated_at: c.timestamp("updated_at")?,
        })
    }
}

/// A resume point joined with its `hidden_at`.
impl FromColumns for ResumeRow {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self { progress: ProgressRecord::from_columns(c)?, hidden_at: c.opt_timestamp("hidden_at")? })
    }
}

/// An account (`id, email, created_at`).
impl FromColumns for Account {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: AccountId(c.uuid("id")?),
            email: c.parsed("email", Email::parse)?,
            created_at: c.timestamp("created_at")?,
        })
    }
}

/// From [`profile_columns!`](crate::profile_columns).
impl FromColumns for Profile {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: ProfileId(c.uuid("id")?),
            account_id: AccountId(c.uuid("account_id")?),
            name: c.parsed("name", ProfileName::parse)?,
            kids: c.bool("kids")?,
            maturity_limit: c.opt_u8("maturity_limit")?,
            private: c.bool("private")?,
            history_paused: c.bool("history_paused")?,
            keep_resume_points_while_paused: c.bool("keep_resume_points_while_paused")?,
            version: c.i64("version")?,
            created_at: c.timestamp("created_at")?,
        })
    }
}

/// An API key (`prefix, name, hash, scopes, created_at, revoked_at`).
impl FromColumns for ApiKeyRecord {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            prefix: c.string("prefix")?,
            name: c.string("name")?,
            hash: c.hash("hash")?,
            scopes: c.scopes("scopes")?,
            created_at: c.timestamp("created_at")?,
            revoked_at: c.opt_timestamp("revoked_at")?,
        })
    }
}

/// A profile's feedback on a title (`title_id, kind, at`).
impl FromColumns for Feedback {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            title_id: c.title_id("title_id")?,
            kind: c.named("kind", FeedbackKind::parse)?,
            at: c.timestamp("at")?,
        })
    }
}

/// How often a title was shown to a profile (`title_id, shown, last_at`).
impl FromColumns for Impressions {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            title_id: c.title_id("title_id")?,
            shown: to_u32(c.i64("shown")?),
            last_at: c.timestamp("last_at")?,
        })
    }
}

/// A co-watch neighbour (`b, together, own`).
pub fn cowatch_neighbour(c: &impl Columns) -> Result<(TitleId, u32, u32), StoreError> {
    Ok((c.title_id("b")?, to_u32(c.i64("together")?), to_u32(c.i64("own")?)))
}

/// A trending item and its summed weight (`item, w`).
pub fn trending_item(c: &impl Columns) -> Result<(TitleId, f64), StoreError> {
    Ok((c.title_id("item")?, c.f64("w")?))
}

/// What `IdempotencyStore::begin` answers for a key already stored (`fingerprint, state,
/// started_at, status, headers, body, expires_at`), or `None` when the stored claim no longer
/// counts (a completed answer past `expires_at`, a running claim past its lease): the caller then
/// takes the key over and answers `Started`.
pub fn idempotency_outcome(
    c: &impl Columns,
    fingerprint: [u8; 32],
    now: Timestamp,
    lease_ms: i64,
) -> Result<Option<IdempotencyBegin>, StoreError> {
    let state = c.text("state")?;
    let expired = state == "done" && c.opt_i64("expires_at")?.is_some_and(|e| e <= now.0);
    let dead = state == "running" && c.i64("started_at")? + lease_ms <= now.0;
    Ok(if expired || dead {
        None
    } else if c.bytes("fingerprint")? != fingerprint.as_slice() {
        Some(IdempotencyBegin::Mismatch)
    } else if state == "running" {
        Some(IdempotencyBegin::InFlight)
    } else {
        let status = c.i64("status")?;
        Some(IdempotencyBegin::Completed(StoredResponse {
            status: u16::try_from(status).map_err(|e| corrupt("status", e))?,
            headers: c.json("headers")?,
            body: c.bytes("body")?.to_vec(),
        }))
    })
}
