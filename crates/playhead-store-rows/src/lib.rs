//! Rows to domain values, and database errors to [`StoreError`], written once for every SQL
//! adapter (decision 0023).
//!
//! An adapter reads a row through [`Columns`]. It says how its database stores the two things the
//! databases disagree on ([`RowTypes`]: SQLite keeps UUIDs as text and every integer as
//! `INTEGER`; PostgreSQL has native `uuid` and `int2`/`int4`/`int8`); everything else (text, bytes,
//! booleans, floats) is read the same way through `sqlx`. The decoders ([`FromColumns`] and the
//! functions of [`decode`]) parse every stored value back through the domain's own constructor
//! (`TitleId::parse`, `Email::parse`, `SessionKey::decode`...), so a hand-edited or corrupt row
//! becomes an `Internal` error naming the column instead of an invalid value deep in the
//! application.
//!
//! Rules a contributor must keep here:
//! - No SQL statements and no driver-specific code: statement text, placeholders and locking stay
//!   in each adapter. What is here is what both adapters would otherwise write twice: decoders,
//!   the column lists both dialects select alike (`*_columns!`, `*_COLS`), the JSON encodings of
//!   list columns, and the classification of `sqlx::Error` (driver-independent).
//! - A difference between the databases is hidden in an adapter's [`RowTypes`] or [`ErrorCodes`],
//!   never tested for in a decoder.
//! - A conflict is named in domain words by [`Unique`]; each adapter says which of its
//!   constraints is which, the words are chosen once here.

mod columns;
pub mod decode;
pub mod erasure;
mod error;
pub mod feed;
pub mod identity;
pub mod streams;
#[cfg(test)]
mod tests;

pub use columns::{Cols, Columns, FromColumns, RowTypes, column, decode_row};
pub use error::{ErrorCodes, Unique, corrupt, is_foreign_key_violation, map_error, migrate_error};

use playhead_core::StoreError;
use playhead_core::title::Title;

/// The columns [`playhead_core::event::PlaybackEvent`]'s decoder reads, from `events` aliased `e`.
#[macro_export]
macro_rules! event_columns {
    () => {
        "e.event_id, e.profile_id, e.title_id, e.kind, e.position_ms, e.duration_ms, e.occurred_at, \
         e.occurred_at_raw, e.received_at, e.device_id, e.session_id"
    };
}

/// The columns [`playhead_core::ports::Viewing`]'s decoder reads, from `viewings` aliased `v`.
#[macro_export]
macro_rules! viewing_columns {
    () => {
        "v.id, v.profile_id, v.title_id, v.session_key, v.started_at, v.ended_at, v.watched_ms, \
         v.completed, v.is_play, v.manual"
    };
}

/// The columns [`playhead_core::rules::progress::ProgressRecord`]'s decoder reads, from
/// `progress` aliased `p`.
#[macro_export]
macro_rules! progress_columns {
    () => {
        "p.profile_id, p.title_id, p.position_ms, p.duration_ms, p.occurred_at, p.event_id, p.finished, \
         p.updated_at"
    };
}

/// The columns [`playhead_core::profile::Profile`]'s decoder reads.
#[macro_export]
macro_rules! profile_columns {
    () => {
        "id, account_id, name, kids, maturity_limit, private, version, created_at, history_paused, \
         keep_resume_points_while_paused"
    };
}

/// JSON text of a title's genres (order kept: it is the platform's).
pub fn genres_json(t: &Title) -> Result<String, StoreError> {
    serde_json::to_string(&t.genres).map_err(|e| StoreError::Internal(format!("encoding genres: {e}")))
}

/// JSON text of a title's external ids. A `BTreeMap`, so keys are sorted and the text is stable:
/// SQLite's upsert compares the text to detect "unchanged" (PostgreSQL compares the `jsonb`).
pub fn external_ids_json(t: &Title) -> Result<String, StoreError> {
    serde_json::to_string(&t.external_ids)
        .map_err(|e| StoreError::Internal(format!("encoding external_ids: {e}")))
}

/// A list as one JSON array (a stored JSON column, or a parameter read with `json_each`).
pub fn json_list<T: serde::Serialize>(items: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|e| StoreError::Internal(format!("encoding a list: {e}")))
}

/// A count or limit as SQL's 64-bit integer.
pub fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// A count read back from SQL (never negative).
pub fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A counter read back from SQL as the `u32` the ports use (saturating).
pub fn to_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
