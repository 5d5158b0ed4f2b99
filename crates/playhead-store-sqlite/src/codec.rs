//! Rows to domain values and back.
//!
//! The rule: every stored value is parsed back through the domain's own constructor
//! (`TitleId::parse`, `Email::parse`, `SessionKey::decode`...), so a hand-edited or corrupt row
//! becomes an `Internal` error here instead of an invalid value deep in the application. Column
//! lists live in the `*_columns!` macros so each query and its decoder agree on the names.

use std::collections::BTreeMap;

use playhead_core::StoreError;
use playhead_core::auth::Scopes;
use playhead_core::event::{EventKind, PlaybackEvent};
use playhead_core::ids::{AccountId, DeviceId, EventId, PlayId, ProfileId, SessionId, TitleId};
use playhead_core::ports::{ApiKeyRecord, ResumeRow, StoredTitle, Viewing};
use playhead_core::profile::{Account, Email, Profile, ProfileName};
use playhead_core::rules::progress::ProgressRecord;
use playhead_core::rules::viewing::SessionKey;
use playhead_core::time::Timestamp;
use playhead_core::title::{Title, TitleKind};
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};
use uuid::Uuid;

use crate::error::corrupt;

/// The columns [`event`] reads, from `events` aliased `e`.
macro_rules! event_columns {
    () => {
        "e.event_id, e.profile_id, e.title_id, e.kind, e.position_ms, e.duration_ms, e.occurred_at, \
         e.occurred_at_raw, e.received_at, e.device_id, e.session_id"
    };
}
pub(crate) use event_columns;

/// The columns [`title`] reads, from `titles` aliased `t`.
macro_rules! title_columns {
    () => {
        "t.id, t.kind, t.name, t.duration_ms, t.credits_start_ms, t.series_id, t.season, t.episode, \
         t.genres, t.maturity, t.release_year, t.available_from, t.external_ids"
    };
}
pub(crate) use title_columns;

/// The columns [`viewing`] reads, from `viewings` aliased `v`.
macro_rules! viewing_columns {
    () => {
        "v.id, v.profile_id, v.title_id, v.session_key, v.started_at, v.ended_at, v.watched_ms, \
         v.completed, v.is_play"
    };
}
pub(crate) use viewing_columns;

/// The columns [`progress`] reads, from `progress` aliased `p`.
macro_rules! progress_columns {
    () => {
        "p.profile_id, p.title_id, p.position_ms, p.duration_ms, p.occurred_at, p.event_id, p.finished, \
         p.updated_at"
    };
}
pub(crate) use progress_columns;

/// The columns [`profile`] reads.
macro_rules! profile_columns {
    () => {
        "id, account_id, name, kids, maturity_limit, private, version, created_at"
    };
}
pub(crate) use profile_columns;

/// Read one column, naming it in the error.
pub(crate) fn get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(col).map_err(|e| corrupt(col, e))
}

fn uuid(row: &SqliteRow, col: &str) -> Result<Uuid, StoreError> {
    let s: &str = get(row, col)?;
    Uuid::parse_str(s).map_err(|e| corrupt(col, e))
}

pub(crate) fn timestamp(row: &SqliteRow, col: &str) -> Result<Timestamp, StoreError> {
    get::<i64>(row, col).map(Timestamp)
}

fn opt_timestamp(row: &SqliteRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    get::<Option<i64>>(row, col).map(|v| v.map(Timestamp))
}

pub(crate) fn title_id(row: &SqliteRow, col: &str) -> Result<TitleId, StoreError> {
    let s: &str = get(row, col)?;
    TitleId::parse(s).map_err(|e| corrupt(col, e))
}

fn opt_i32(row: &SqliteRow, col: &str) -> Result<Option<i32>, StoreError> {
    get::<Option<i64>>(row, col)?.map(|v| i32::try_from(v).map_err(|e| corrupt(col, e))).transpose()
}

fn small(row: &SqliteRow, col: &str) -> Result<u8, StoreError> {
    let v: i64 = get(row, col)?;
    u8::try_from(v).map_err(|e| corrupt(col, e))
}

/// A stored event id (as returned by `RETURNING event_id`).
pub(crate) fn event_id(row: &SqliteRow, col: &str) -> Result<EventId, StoreError> {
    uuid(row, col).map(EventId)
}

/// An event from [`event_columns`].
pub(crate) fn event(row: &SqliteRow) -> Result<PlaybackEvent, StoreError> {
    let kind: &str = get(row, "kind")?;
    Ok(PlaybackEvent {
        event_id: event_id(row, "event_id")?,
        profile_id: ProfileId(uuid(row, "profile_id")?),
        title_id: title_id(row, "title_id")?,
        kind: EventKind::parse(kind).ok_or_else(|| corrupt("kind", kind))?,
        position_ms: get(row, "position_ms")?,
        duration_ms: get(row, "duration_ms")?,
        occurred_at: timestamp(row, "occurred_at")?,
        occurred_at_raw: timestamp(row, "occurred_at_raw")?,
        received_at: timestamp(row, "received_at")?,
        device_id: get::<Option<&str>>(row, "device_id")?
            .map(|s| DeviceId::parse(s).map_err(|e| corrupt("device_id", e)))
            .transpose()?,
        session_id: get::<Option<&str>>(row, "session_id")?
            .map(|s| SessionId::parse(s).map_err(|e| corrupt("session_id", e)))
            .transpose()?,
    })
}

/// JSON text of a title's genres (order kept: it is the platform's).
pub(crate) fn genres_json(t: &Title) -> Result<String, StoreError> {
    serde_json::to_string(&t.genres).map_err(|e| StoreError::Internal(format!("encoding genres: {e}")))
}

/// JSON text of a title's external ids (a `BTreeMap`, so keys are sorted and the text is stable:
/// the upsert compares it to detect "unchanged").
pub(crate) fn external_ids_json(t: &Title) -> Result<String, StoreError> {
    serde_json::to_string(&t.external_ids)
        .map_err(|e| StoreError::Internal(format!("encoding external_ids: {e}")))
}

/// A title from [`title_columns`].
pub(crate) fn title(row: &SqliteRow) -> Result<Title, StoreError> {
    let kind: &str = get(row, "kind")?;
    let genres: &str = get(row, "genres")?;
    let external_ids: &str = get(row, "external_ids")?;
    Ok(Title {
        id: title_id(row, "id")?,
        kind: TitleKind::parse(kind).ok_or_else(|| corrupt("kind", kind))?,
        name: get(row, "name")?,
        duration_ms: get(row, "duration_ms")?,
        credits_start_ms: get(row, "credits_start_ms")?,
        series_id: get::<Option<&str>>(row, "series_id")?
            .map(|s| TitleId::parse(s).map_err(|e| corrupt("series_id", e)))
            .transpose()?,
        season: opt_i32(row, "season")?,
        episode: opt_i32(row, "episode")?,
        genres: serde_json::from_str::<Vec<String>>(genres).map_err(|e| corrupt("genres", e))?,
        maturity: small(row, "maturity")?,
        release_year: opt_i32(row, "release_year")?,
        available_from: opt_timestamp(row, "available_from")?,
        external_ids: serde_json::from_str::<BTreeMap<String, String>>(external_ids)
            .map_err(|e| corrupt("external_ids", e))?,
    })
}

/// A title with its `version` column.
pub(crate) fn stored_title(row: &SqliteRow) -> Result<StoredTitle, StoreError> {
    Ok(StoredTitle { title: title(row)?, version: get(row, "version")? })
}

/// A viewing from [`viewing_columns`].
pub(crate) fn viewing(row: &SqliteRow) -> Result<Viewing, StoreError> {
    let key = get::<Option<&str>>(row, "session_key")?
        .map(|k| SessionKey::decode(k).ok_or_else(|| corrupt("session_key", k)))
        .transpose()?;
    Ok(Viewing {
        id: PlayId(uuid(row, "id")?),
        profile_id: ProfileId(uuid(row, "profile_id")?),
        title_id: title_id(row, "title_id")?,
        key,
        started_at: timestamp(row, "started_at")?,
        ended_at: timestamp(row, "ended_at")?,
        watched_ms: get(row, "watched_ms")?,
        completed: get(row, "completed")?,
        is_play: get(row, "is_play")?,
    })
}

/// A resume point from [`progress_columns`].
pub(crate) fn progress(row: &SqliteRow) -> Result<ProgressRecord, StoreError> {
    Ok(ProgressRecord {
        profile_id: ProfileId(uuid(row, "profile_id")?),
        title_id: title_id(row, "title_id")?,
        position_ms: get(row, "position_ms")?,
        duration_ms: get(row, "duration_ms")?,
        occurred_at: timestamp(row, "occurred_at")?,
        event_id: event_id(row, "event_id")?,
        finished: get(row, "finished")?,
        updated_at: timestamp(row, "updated_at")?,
    })
}

/// A resume point joined with its `hidden_at`.
pub(crate) fn resume_row(row: &SqliteRow) -> Result<ResumeRow, StoreError> {
    Ok(ResumeRow { progress: progress(row)?, hidden_at: opt_timestamp(row, "hidden_at")? })
}

/// An account (`id, email, created_at`).
pub(crate) fn account(row: &SqliteRow) -> Result<Account, StoreError> {
    let email: &str = get(row, "email")?;
    Ok(Account {
        id: AccountId(uuid(row, "id")?),
        email: Email::parse(email).map_err(|e| corrupt("email", e))?,
        created_at: timestamp(row, "created_at")?,
    })
}

/// A profile from [`profile_columns`].
pub(crate) fn profile(row: &SqliteRow) -> Result<Profile, StoreError> {
    let name: &str = get(row, "name")?;
    Ok(Profile {
        id: ProfileId(uuid(row, "id")?),
        account_id: AccountId(uuid(row, "account_id")?),
        name: ProfileName::parse(name).map_err(|e| corrupt("name", e))?,
        kids: get(row, "kids")?,
        maturity_limit: get::<Option<i64>>(row, "maturity_limit")?
            .map(|v| u8::try_from(v).map_err(|e| corrupt("maturity_limit", e)))
            .transpose()?,
        private: get(row, "private")?,
        version: get(row, "version")?,
        created_at: timestamp(row, "created_at")?,
    })
}

/// An API key (`prefix, name, hash, scopes, created_at, revoked_at`).
pub(crate) fn api_key(row: &SqliteRow) -> Result<ApiKeyRecord, StoreError> {
    let hash: &[u8] = get(row, "hash")?;
    let scopes: &str = get(row, "scopes")?;
    Ok(ApiKeyRecord {
        prefix: get(row, "prefix")?,
        name: get(row, "name")?,
        hash: hash.try_into().map_err(|_| corrupt("hash", format!("{} bytes, not 32", hash.len())))?,
        scopes: Scopes::parse(scopes).map_err(|e| corrupt("scopes", e))?,
        created_at: timestamp(row, "created_at")?,
        revoked_at: opt_timestamp(row, "revoked_at")?,
    })
}

/// A list as one JSON array parameter, for `json_each(?)`.
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|e| StoreError::Internal(format!("encoding a list: {e}")))
}

/// A count or limit as SQLite's integer.
pub(crate) fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// A count read back from SQLite (never negative).
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
