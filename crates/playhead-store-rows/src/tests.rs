//! The decoders against rows no adapter would write: what reaches the application from a
//! hand-edited or corrupt database is an `Internal` error naming the column, never a value.
//! (Rows an adapter does write are covered by `playhead-store-contract` on both databases.)

use std::collections::HashMap;

use playhead_core::StoreError;
use playhead_core::identity::{DeviceCode, DeviceStatus};
use playhead_core::ports::{IdempotencyBegin, StoredResponse};
use playhead_core::time::Timestamp;
use playhead_core::title::Title;
use uuid::Uuid;

use crate::decode::idempotency_outcome;
use crate::{Columns, FromColumns};

/// A column value as a test writes it.
#[derive(Clone)]
enum V {
    Null,
    Text(&'static str),
    Int(i64),
    Bytes(Vec<u8>),
}

/// A row held in a map; columns it does not have are missing (an adapter's error too).
#[derive(Default)]
struct Row(HashMap<&'static str, V>);

impl Row {
    fn with(mut self, col: &'static str, v: V) -> Self {
        self.0.insert(col, v);
        self
    }

    fn get(&self, col: &str) -> Result<&V, StoreError> {
        self.0.get(col).ok_or_else(|| StoreError::Internal(format!("no column {col}")))
    }

    fn mismatch(col: &str) -> StoreError {
        StoreError::Internal(format!("corrupt {col}: wrong type"))
    }
}

impl Columns for Row {
    fn opt_text(&self, col: &str) -> Result<Option<&str>, StoreError> {
        match self.get(col)? {
            V::Null => Ok(None),
            V::Text(s) => Ok(Some(s)),
            _ => Err(Self::mismatch(col)),
        }
    }
    fn opt_i64(&self, col: &str) -> Result<Option<i64>, StoreError> {
        match self.get(col)? {
            V::Null => Ok(None),
            V::Int(i) => Ok(Some(*i)),
            _ => Err(Self::mismatch(col)),
        }
    }
    fn opt_f64(&self, col: &str) -> Result<Option<f64>, StoreError> {
        Ok(self.opt_i64(col)?.map(|i| i as f64))
    }
    fn opt_bool(&self, col: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.opt_i64(col)?.map(|i| i != 0))
    }
    fn opt_bytes(&self, col: &str) -> Result<Option<&[u8]>, StoreError> {
        match self.get(col)? {
            V::Null => Ok(None),
            V::Bytes(b) => Ok(Some(b)),
            _ => Err(Self::mismatch(col)),
        }
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, StoreError> {
        self.opt_parsed(col, Uuid::parse_str)
    }
}

fn title_row() -> Row {
    Row::default()
        .with("id", V::Text("ep-1"))
        .with("kind", V::Text("episode"))
        .with("name", V::Text("Pilot"))
        .with("duration_ms", V::Int(1_800_000))
        .with("credits_start_ms", V::Null)
        .with("series_id", V::Text("show"))
        .with("season", V::Int(1))
        .with("episode", V::Int(1))
        .with("genres", V::Text(r#"["drama"]"#))
        .with("maturity", V::Int(12))
        .with("release_year", V::Null)
        .with("available_from", V::Null)
        .with("external_ids", V::Text(r#"{"imdb":"tt1"}"#))
}

/// The message of an `Internal` error (anything else fails the test).
fn internal(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Internal(m)) => m,
        other => panic!("expected Internal, got {other:?}"),
    }
}

#[test]
fn a_well_formed_title_decodes() {
    let t = Title::from_columns(&title_row()).expect("decodes");
    assert_eq!(t.series_id.as_ref().map(|s| s.as_str()), Some("show"));
    assert_eq!((t.season, t.maturity, t.genres.len()), (Some(1), 12, 1));
    assert_eq!(t.external_ids.get("imdb").map(String::as_str), Some("tt1"));
}

#[test]
fn corrupt_title_columns_are_named() {
    let cases: [(&str, V, &str); 6] = [
        ("kind", V::Text("trailer"), "corrupt kind: trailer"),
        ("id", V::Text(""), "corrupt id:"),
        ("name", V::Null, "corrupt name: NULL"),
        ("season", V::Int(i64::from(i32::MAX) + 1), "corrupt season:"),
        ("maturity", V::Int(300), "corrupt maturity:"),
        ("genres", V::Text("drama"), "corrupt genres:"),
    ];
    for (col, value, want) in cases {
        let msg = internal(Title::from_columns(&title_row().with(col, value)));
        assert!(msg.starts_with(want), "{col}: {msg}");
    }
}

fn device_row(status: &'static str) -> Row {
    Row::default()
        .with("hash", V::Bytes(vec![7; 32]))
        .with("user_code", V::Text("BDWP-HQPK"))
        .with("client_id", V::Text("tv"))
        .with("scopes", V::Text("history:read"))
        .with("expires_at", V::Int(1_000))
        .with("interval_secs", V::Int(5))
        .with("last_poll_at", V::Null)
        .with("status", V::Text(status))
        .with("account_id", V::Null)
        .with("profile_id", V::Null)
        .with("auth_time", V::Null)
        .with("version", V::Int(1))
}

#[test]
fn device_codes_read_the_approval_only_when_approved() {
    let pending =
        DeviceCode::from_columns(&device_row("pending")).expect("pending decodes with NULL approval");
    assert!(matches!(pending.status, DeviceStatus::Pending));

    // An approved code without its account is corrupt, and says which column is missing.
    assert_eq!(internal(DeviceCode::from_columns(&device_row("approved"))), "corrupt account_id: NULL");

    let account = "6f1c1c4e-6f0b-4b8e-9d7e-2d6f1f1f1f1f";
    let approved = device_row("approved").with("account_id", V::Text(account)).with("auth_time", V::Int(900));
    let d = DeviceCode::from_columns(&approved).expect("approved decodes");
    match d.status {
        DeviceStatus::Approved { account: a, profile, auth_time } => {
            assert_eq!((a.to_string().as_str(), profile, auth_time), (account, None, Timestamp(900)));
        }
        other => panic!("expected approved, got {other:?}"),
    }

    assert_eq!(internal(DeviceCode::from_columns(&device_row("lost"))), "corrupt status: lost");
    let short = device_row("pending").with("hash", V::Bytes(vec![7; 31]));
    assert_eq!(internal(DeviceCode::from_columns(&short)), "corrupt hash: 31 bytes, not 32");
}

fn key_row(state: &'static str, fingerprint: u8) -> Row {
    Row::default()
        .with("fingerprint", V::Bytes(vec![fingerprint; 32]))
        .with("state", V::Text(state))
        .with("started_at", V::Int(1_000))
        .with("status", V::Int(201))
        .with("headers", V::Text(r#"[["location","/v1/x"]]"#))
        .with("body", V::Bytes(b"{}".to_vec()))
        .with("expires_at", V::Int(5_000))
}

#[test]
fn a_stored_idempotency_key_is_judged_by_state_fingerprint_and_clock() {
    let fp = [1; 32];
    let lease = 500;
    let judge = |row: Row, now: i64| idempotency_outcome(&row, fp, Timestamp(now), lease).expect("decodes");

    assert!(matches!(judge(key_row("running", 1), 1_200), Some(IdempotencyBegin::InFlight)));
    // A claim past its lease was abandoned: taken over.
    assert!(judge(key_row("running", 1), 1_500).is_none());
    assert!(matches!(judge(key_row("running", 2), 1_200), Some(IdempotencyBegin::Mismatch)));
    match judge(key_row("done", 1), 4_999) {
        Some(IdempotencyBegin::Completed(StoredResponse { status, headers, body })) => {
            assert_eq!(
                (status, headers, body),
                (201, vec![("location".into(), "/v1/x".into())], b"{}".to_vec())
            );
        }
        other => panic!("expected the stored answer, got {other:?}"),
    }
    // An answer past its expiry no longer counts, whatever the fingerprint.
    assert!(judge(key_row("done", 2), 5_000).is_none());

    let bad_status = key_row("done", 1).with("status", V::Int(70_000));
    assert!(
        internal(idempotency_outcome(&bad_status, fp, Timestamp(0), lease)).starts_with("corrupt status:")
    );
}
