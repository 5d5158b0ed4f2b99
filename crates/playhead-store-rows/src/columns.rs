//! Reading one column: the [`Columns`] trait the decoders are written against, and [`Cols`], its
//! implementation for any `sqlx` row whose adapter says how it stores UUIDs and integers.
//!
//! The rule: a required method returns a value or an `Internal` error naming the column (a NULL
//! where none may be is corrupt data); the database's storage types never reach a decoder.

use std::fmt::Display;
use std::marker::PhantomData;

use playhead_core::StoreError;
use playhead_core::auth::Scopes;
use playhead_core::ids::TitleId;
use playhead_core::time::Timestamp;
use serde::de::DeserializeOwned;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::error::corrupt;

/// Typed access to the columns of one row, by name. Adapters get it from [`Cols`]; tests may
/// implement it over a map.
pub trait Columns {
    /// A text column; `None` for NULL.
    fn opt_text(&self, col: &str) -> Result<Option<&str>, StoreError>;
    /// An integer column of any width, widened to 64 bits; `None` for NULL.
    fn opt_i64(&self, col: &str) -> Result<Option<i64>, StoreError>;
    /// A floating-point column; `None` for NULL.
    fn opt_f64(&self, col: &str) -> Result<Option<f64>, StoreError>;
    /// A boolean column (SQLite: an integer); `None` for NULL.
    fn opt_bool(&self, col: &str) -> Result<Option<bool>, StoreError>;
    /// A byte-string column; `None` for NULL.
    fn opt_bytes(&self, col: &str) -> Result<Option<&[u8]>, StoreError>;
    /// A UUID column, however the database stores it; `None` for NULL.
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, StoreError>;

    /// A text column that may not be NULL.
    fn text(&self, col: &str) -> Result<&str, StoreError> {
        required(col, self.opt_text(col)?)
    }
    /// An owned copy of a text column that may not be NULL.
    fn string(&self, col: &str) -> Result<String, StoreError> {
        self.text(col).map(str::to_owned)
    }
    /// An owned copy of a nullable text column.
    fn opt_string(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.opt_text(col)?.map(str::to_owned))
    }
    /// An integer column that may not be NULL.
    fn i64(&self, col: &str) -> Result<i64, StoreError> {
        required(col, self.opt_i64(col)?)
    }
    /// A floating-point column that may not be NULL.
    fn f64(&self, col: &str) -> Result<f64, StoreError> {
        required(col, self.opt_f64(col)?)
    }
    /// A boolean column that may not be NULL.
    fn bool(&self, col: &str) -> Result<bool, StoreError> {
        required(col, self.opt_bool(col)?)
    }
    /// A byte-string column that may not be NULL.
    fn bytes(&self, col: &str) -> Result<&[u8], StoreError> {
        required(col, self.opt_bytes(col)?)
    }
    /// A UUID column that may not be NULL.
    fn uuid(&self, col: &str) -> Result<Uuid, StoreError> {
        required(col, self.opt_uuid(col)?)
    }
    /// A nullable integer column narrowed to `i32` (a larger value is corrupt).
    fn opt_i32(&self, col: &str) -> Result<Option<i32>, StoreError> {
        self.opt_i64(col)?.map(|v| i32::try_from(v).map_err(|e| corrupt(col, e))).transpose()
    }
    /// A nullable small integer (an age, a maturity rating) narrowed to `u8`.
    fn opt_u8(&self, col: &str) -> Result<Option<u8>, StoreError> {
        self.opt_i64(col)?.map(|v| u8::try_from(v).map_err(|e| corrupt(col, e))).transpose()
    }
    /// A small integer that may not be NULL, narrowed to `u8`.
    fn u8(&self, col: &str) -> Result<u8, StoreError> {
        required(col, self.opt_u8(col)?)
    }
    /// A time in milliseconds since the epoch.
    fn timestamp(&self, col: &str) -> Result<Timestamp, StoreError> {
        self.i64(col).map(Timestamp)
    }
    /// A nullable time in milliseconds since the epoch.
    fn opt_timestamp(&self, col: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_i64(col)?.map(Timestamp))
    }
    /// A text column parsed by a domain constructor.
    fn parsed<T, E: Display>(
        &self,
        col: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        parse(self.text(col)?).map_err(|e| corrupt(col, e))
    }
    /// A nullable text column parsed by a domain constructor.
    fn opt_parsed<T, E: Display>(
        &self,
        col: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(col)?.map(|s| parse(s).map_err(|e| corrupt(col, e))).transpose()
    }
    /// A text column naming one of a closed set (`kind`, `status`...), read by `parse`.
    fn named<T>(&self, col: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, StoreError> {
        let s = self.text(col)?;
        parse(s).ok_or_else(|| corrupt(col, s))
    }
    /// A title id column.
    fn title_id(&self, col: &str) -> Result<TitleId, StoreError> {
        self.parsed(col, TitleId::parse)
    }
    /// A nullable title id column.
    fn opt_title_id(&self, col: &str) -> Result<Option<TitleId>, StoreError> {
        self.opt_parsed(col, TitleId::parse)
    }
    /// A JSON column (selected as text) parsed into `T`.
    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T, StoreError> {
        self.parsed(col, |s| serde_json::from_str(s))
    }
    /// A SHA-256 digest column.
    fn hash(&self, col: &str) -> Result<[u8; 32], StoreError> {
        required(col, self.opt_hash(col)?)
    }
    /// A nullable SHA-256 digest column.
    fn opt_hash(&self, col: &str) -> Result<Option<[u8; 32]>, StoreError> {
        self.opt_bytes(col)?
            .map(|b| b.try_into().map_err(|_| corrupt(col, format!("{} bytes, not 32", b.len()))))
            .transpose()
    }
    /// A space-separated scope list.
    fn scopes(&self, col: &str) -> Result<Scopes, StoreError> {
        self.parsed(col, Scopes::parse)
    }
}

fn required<T>(col: &str, v: Option<T>) -> Result<T, StoreError> {
    v.ok_or_else(|| corrupt(col, "NULL"))
}

/// A domain value decoded from one row.
pub trait FromColumns: Sized {
    /// Decode `Self` from the row's columns.
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError>;
}

/// What an adapter says about how its database stores the values the databases disagree on.
/// Implemented on a marker type of the adapter.
pub trait RowTypes: 'static {
    /// The driver's row.
    type Row: Row;
    /// An integer column of whatever width the schema gave it, widened; `None` for NULL.
    fn opt_i64(row: &Self::Row, col: &str) -> Result<Option<i64>, StoreError>;
    /// A UUID column, however it is stored; `None` for NULL.
    fn opt_uuid(row: &Self::Row, col: &str) -> Result<Option<Uuid>, StoreError>;
}

/// One `sqlx` row read through [`Columns`]; `T` says how the adapter stores UUIDs and integers.
pub struct Cols<'r, T: RowTypes>(&'r T::Row, PhantomData<T>);

impl<'r, T: RowTypes> Cols<'r, T> {
    /// View `row` through [`Columns`].
    pub fn new(row: &'r T::Row) -> Self {
        Self(row, PhantomData)
    }
}

/// Read one column as the driver decodes `V`, naming the column in the error.
pub fn column<'r, R, V>(row: &'r R, col: &str) -> Result<V, StoreError>
where
    R: Row,
    V: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    row.try_get(col).map_err(|e| corrupt(col, e))
}

impl<'r, T> Columns for Cols<'r, T>
where
    T: RowTypes,
    for<'a> &'a str: Decode<'a, <T::Row as Row>::Database> + Type<<T::Row as Row>::Database>,
    for<'a> &'a [u8]: Decode<'a, <T::Row as Row>::Database> + Type<<T::Row as Row>::Database>,
    for<'a> bool: Decode<'a, <T::Row as Row>::Database> + Type<<T::Row as Row>::Database>,
    for<'a> f64: Decode<'a, <T::Row as Row>::Database> + Type<<T::Row as Row>::Database>,
    for<'c> &'c str: ColumnIndex<T::Row>,
{
    fn opt_text(&self, col: &str) -> Result<Option<&str>, StoreError> {
        column(self.0, col)
    }
    fn opt_i64(&self, col: &str) -> Result<Option<i64>, StoreError> {
        T::opt_i64(self.0, col)
    }
    fn opt_f64(&self, col: &str) -> Result<Option<f64>, StoreError> {
        column(self.0, col)
    }
    fn opt_bool(&self, col: &str) -> Result<Option<bool>, StoreError> {
        column(self.0, col)
    }
    fn opt_bytes(&self, col: &str) -> Result<Option<&[u8]>, StoreError> {
        column(self.0, col)
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, StoreError> {
        T::opt_uuid(self.0, col)
    }
}

/// Decode one row of an adapter with `V`'s shared decoder.
pub fn decode_row<T, V>(row: &T::Row) -> Result<V, StoreError>
where
    T: RowTypes,
    V: FromColumns,
    for<'r> Cols<'r, T>: Columns,
{
    V::from_columns(&Cols::<T>::new(row))
}
