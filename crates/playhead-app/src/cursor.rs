//! Opaque, tamper-evident pagination cursors.
//!
//! A cursor is `base64url(json) "." base64url(hmac[..16])`: clients cannot forge one (so a cursor
//! can never reach another profile's rows or skip the keyset), and a cursor is bound to the query
//! it came from (`scope`: the route plus its filters), so replaying it on another query is a
//! clear 400, not a silently wrong page. The key lives in the data dir.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use playhead_core::FieldError;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks cursors.
#[derive(Clone)]
pub struct CursorCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(<key redacted>)")
    }
}

const MAC_LEN: usize = 16;

impl CursorCodec {
    /// A codec with this key.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, scope: &str, payload: &[u8]) -> HmacSha256 {
        // new_from_slice only fails for invalid key lengths, which HMAC does not have.
        let mut mac =
            HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// Encode a position for a query scope.
    pub fn encode<T: Serialize>(&self, scope: &str, position: &T) -> String {
        let payload = serde_json::to_vec(position).unwrap_or_default();
        let tag = self.mac(scope, &payload).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(&tag[..MAC_LEN]))
    }

    /// Decode a cursor, refusing forged, truncated or foreign-query cursors.
    pub fn decode<T: DeserializeOwned>(&self, scope: &str, cursor: &str) -> Result<T, FieldError> {
        let bad = || FieldError::new("cursor", "invalid", "is not a cursor returned by this query");
        if cursor.len() > 1024 {
            return Err(bad());
        }
        let (p, t) = cursor.split_once('.').ok_or_else(bad)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| bad())?;
        let tag = URL_SAFE_NO_PAD.decode(t).map_err(|_| bad())?;
        self.mac(scope, &payload).verify_truncated_left(&tag).map_err(|_| bad())?;
        if tag.len() != MAC_LEN {
            return Err(bad());
        }
        serde_json::from_slice(&payload).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = CursorCodec::new([7; 32]);
        let s = c.encode("history:p1", &(42_i64, "x".to_owned()));
        assert_eq!(c.decode::<(i64, String)>("history:p1", &s).unwrap(), (42, "x".into()));
    }

    #[test]
    fn forged_truncated_and_foreign_cursors_are_refused() {
        let c = CursorCodec::new([7; 32]);
        let s = c.encode("history:p1", &42_i64);
        assert!(c.decode::<i64>("history:p2", &s).is_err(), "another query's cursor");
        assert!(CursorCodec::new([8; 32]).decode::<i64>("history:p1", &s).is_err(), "another key");
        let (p, t) = s.split_once('.').unwrap();
        let forged = format!("{}.{t}", URL_SAFE_NO_PAD.encode(b"43"));
        assert!(c.decode::<i64>("history:p1", &forged).is_err(), "edited payload");
        assert!(c.decode::<i64>("history:p1", &format!("{p}.{}", &t[..4])).is_err(), "short tag");
        assert!(c.decode::<i64>("history:p1", "garbage").is_err());
    }
}
