//! Rows to domain values: how SQLite stores what the shared decoders (`playhead-store-rows`) read.
//!
//! The rule: decoders are not written here. This file says only what is SQLite's own: UUIDs are
//! stored as text and every integer as `INTEGER` ([`Sqlite`]), and the title columns are selected
//! as stored (JSON is text already). Everything else about a row is decoded in the shared crate.

use playhead_core::StoreError;
use playhead_store_rows::{Cols, FromColumns, RowTypes, column, corrupt};
pub(crate) use playhead_store_rows::{
    event_columns, external_ids_json, genres_json, json_list, profile_columns, progress_columns, to_i64,
    to_u64, viewing_columns,
};
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

/// The columns the title decoder reads, from `titles` aliased `t`.
macro_rules! title_columns {
    () => {
        "t.id, t.kind, t.name, t.duration_ms, t.credits_start_ms, t.series_id, t.season, t.episode, \
         t.genres, t.maturity, t.release_year, t.available_from, t.external_ids"
    };
}
pub(crate) use title_columns;

/// SQLite's storage types, as the shared decoders need them.
pub(crate) struct Sqlite;

impl RowTypes for Sqlite {
    type Row = SqliteRow;

    fn opt_i64(row: &SqliteRow, col: &str) -> Result<Option<i64>, StoreError> {
        column(row, col)
    }

    /// Stored as its hyphenated text (what `Uuid`'s `Display` writes).
    fn opt_uuid(row: &SqliteRow, col: &str) -> Result<Option<Uuid>, StoreError> {
        column::<_, Option<&str>>(row, col)?
            .map(|s| Uuid::parse_str(s).map_err(|e| corrupt(col, e)))
            .transpose()
    }
}

/// A row read through the shared `Columns` (for decoders that are functions, not types).
pub(crate) fn cols(row: &SqliteRow) -> Cols<'_, Sqlite> {
    Cols::new(row)
}

/// Decode a row with `T`'s shared decoder.
pub(crate) fn decode<T: FromColumns>(row: &SqliteRow) -> Result<T, StoreError> {
    playhead_store_rows::decode_row::<Sqlite, T>(row)
}
