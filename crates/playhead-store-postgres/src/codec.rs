//! Rows to domain values: how PostgreSQL stores what the shared decoders (`playhead-store-rows`)
//! read.
//!
//! The rule: decoders are not written here. This file says only what is PostgreSQL's own: native
//! `uuid` columns, integers of three widths ([`Pg`]), and `jsonb` columns selected as `::text` (so
//! no JSON feature of sqlx is needed and the decoders parse the same text as SQLite's).

use playhead_core::StoreError;
use playhead_store_rows::{Cols, FromColumns, RowTypes, column, corrupt};
pub(crate) use playhead_store_rows::{
    event_columns, external_ids_json, genres_json, json_list, profile_columns, progress_columns, to_i64,
    to_u64, viewing_columns,
};
use sqlx::postgres::PgRow;
use sqlx::{Column, Row, TypeInfo};
use uuid::Uuid;

/// The columns the title decoder reads, from `titles` aliased `t` (`jsonb` as text).
macro_rules! title_columns {
    () => {
        "t.id, t.kind, t.name, t.duration_ms, t.credits_start_ms, t.series_id, t.season, t.episode, \
         t.genres::text AS genres, t.maturity, t.release_year, t.available_from, \
         t.external_ids::text AS external_ids"
    };
}
pub(crate) use title_columns;

/// PostgreSQL's storage types, as the shared decoders need them.
pub(crate) struct Pg;

impl RowTypes for Pg {
    type Row = PgRow;

    /// `smallint` (maturity ratings) and `integer` (seasons, years, statuses) widen losslessly;
    /// sqlx decodes each width only as its own Rust type, so the width is read from the row.
    fn opt_i64(row: &PgRow, col: &str) -> Result<Option<i64>, StoreError> {
        let width = row.try_column(col).map_err(|e| corrupt(col, e))?.type_info().name();
        match width {
            "INT2" => Ok(column::<_, Option<i16>>(row, col)?.map(i64::from)),
            "INT4" => Ok(column::<_, Option<i32>>(row, col)?.map(i64::from)),
            _ => column(row, col),
        }
    }

    fn opt_uuid(row: &PgRow, col: &str) -> Result<Option<Uuid>, StoreError> {
        column(row, col)
    }
}

/// A row read through the shared `Columns` (for decoders that are functions, not types).
pub(crate) fn cols(row: &PgRow) -> Cols<'_, Pg> {
    Cols::new(row)
}

/// Decode a row with `T`'s shared decoder.
pub(crate) fn decode<T: FromColumns>(row: &PgRow) -> Result<T, StoreError> {
    playhead_store_rows::decode_row::<Pg, T>(row)
}
