//! Instants as milliseconds since the Unix epoch.
//!
//! Every rule compares instants, so one small `Copy` type with total order is used throughout;
//! RFC 3339 is only the wire format.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, milliseconds since 1970-01-01T00:00:00Z (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// One second, in milliseconds.
pub const SECOND_MS: i64 = 1_000;
/// One minute, in milliseconds.
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
/// One day, in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

impl Timestamp {
    /// Build from milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This instant shifted by `ms` (saturating).
    pub const fn plus_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Parse RFC 3339 (`2026-11-29T10:00:00Z`, offsets allowed, sub-second digits truncated to ms).
    pub fn parse_rfc3339(s: &str) -> Result<Self, InvalidTimestamp> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| InvalidTimestamp)?;
        let ms = dt.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).map(Self).map_err(|_| InvalidTimestamp)
    }

    /// Format as RFC 3339 in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => {
                let (y, mo, d) = (dt.year(), u8::from(dt.month()), dt.day());
                let (h, mi, s, ms) = (dt.hour(), dt.minute(), dt.second(), dt.millisecond());
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
            }
            // Unreachable for values produced by this crate (parse bounds them); never panic.
            Err(_) => self.0.to_string(),
        }
    }
}

/// The input was not an RFC 3339 timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp (example: 2026-11-29T20:15:00Z)")]
pub struct InvalidTimestamp;

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_to_the_millisecond() {
        let t = Timestamp::parse_rfc3339("2026-11-29T20:15:01.123456Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T20:15:01.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let a = Timestamp::parse_rfc3339("2026-11-29T21:15:00+01:00").unwrap();
        let b = Timestamp::parse_rfc3339("2026-11-29T20:15:00Z").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("2026-13-01T00:00:00Z").is_err());
    }
}
