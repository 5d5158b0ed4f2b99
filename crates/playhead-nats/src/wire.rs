//! The message format on the events subject: the outbox row's seq and its event, as JSON, with
//! a format version so a replica never misreads a message written by a newer one (it
//! dead-letters it instead; a replay after the upgrade applies it).
//!
//! Headers: `Nats-Msg-Id` is `<event_id>:<seq>` (see [`msg_id`]); `Playhead-Seq` and
//! `Playhead-Event-Id` repeat the row's identity outside the payload, so a message whose payload
//! cannot be read can still be tied to its outbox row. `traceparent` (W3C Trace Context) carries
//! the trace of the request that queued the event, when it had one (decision 0075); it stays out
//! of the payload so a message's trace never decides whether it can be applied.

use async_nats::HeaderMap;
use playhead_core::event::PlaybackEvent;
use playhead_core::ports::QueuedEvent;
use playhead_core::trace::TraceContext;
use serde::{Deserialize, Serialize};

/// The payload format this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Header: the outbox seq.
pub(crate) const SEQ: &str = "Playhead-Seq";
/// Header: the event id.
pub(crate) const EVENT_ID: &str = "Playhead-Event-Id";
/// Header on dead letters: why.
pub(crate) const REASON: &str = "Playhead-Reason";
/// Header on dead letters: the events stream's sequence of the original message.
pub(crate) const ORIGINAL: &str = "Playhead-Stream-Seq";
/// Header: the W3C trace context the relay hands on.
pub(crate) const TRACEPARENT: &str = "traceparent";

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    seq: i64,
    event: PlaybackEvent,
}

/// The broker's dedupe key for one outbox row. The event id alone is not enough: an operator's
/// replay (`admin replay`) or a dead-letter replay queues the same event again under a new seq,
/// and that new row must not be dropped as a duplicate of the old one within the window. A sweep
/// of the same row keeps the same key, which is what the duplicate window is for.
pub(crate) fn msg_id(q: &QueuedEvent) -> String {
    format!("{}:{}", q.event.event_id, q.seq)
}

/// Encode one outbox row.
pub(crate) fn encode(q: &QueuedEvent) -> (HeaderMap, bytes::Bytes) {
    let mut h = HeaderMap::new();
    h.insert(async_nats::header::NATS_MESSAGE_ID, msg_id(q).as_str());
    h.insert(SEQ, q.seq.to_string().as_str());
    h.insert(EVENT_ID, q.event.event_id.to_string().as_str());
    if let Some(t) = q.trace {
        h.insert(TRACEPARENT, t.traceparent().as_str());
    }
    // A PlaybackEvent always serialises (plain fields); an empty payload would be dead-lettered.
    let body =
        serde_json::to_vec(&Wire { v: VERSION, seq: q.seq, event: q.event.clone() }).unwrap_or_default();
    (h, body.into())
}

/// Decode a message; the error says why it can never apply (a deterministic failure). A
/// malformed `traceparent` is ignored: it only links a trace.
pub(crate) fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<QueuedEvent, String> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let v: Version = serde_json::from_slice(payload).map_err(|e| format!("undecodable payload: {e}"))?;
    if v.v != VERSION {
        return Err(format!("unknown payload version {} (this build reads {VERSION})", v.v));
    }
    let w: Wire = serde_json::from_slice(payload).map_err(|e| format!("undecodable event: {e}"))?;
    let trace = header(headers, TRACEPARENT).and_then(|t| TraceContext::parse(&t));
    Ok(QueuedEvent { seq: w.seq, event: w.event, trace })
}

/// The outbox seq a message names in its headers, if any.
pub(crate) fn seq_of(headers: Option<&HeaderMap>) -> Option<i64> {
    headers?.get(SEQ)?.as_str().parse().ok()
}

/// A header's value as text.
pub(crate) fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers?.get(name).map(|v| v.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use playhead_core::event::EventKind;
    use playhead_core::ids::{EventId, ProfileId, TitleId};
    use playhead_core::time::Timestamp;

    use super::*;

    fn row() -> QueuedEvent {
        QueuedEvent {
            seq: 42,
            event: PlaybackEvent {
                event_id: EventId(uuid_from(7)),
                profile_id: ProfileId(uuid_from(9)),
                title_id: TitleId::parse("m1").unwrap(),
                kind: EventKind::Pause,
                position_ms: 1_000,
                duration_ms: Some(60_000),
                occurred_at: Timestamp(1_700_000_000_000),
                occurred_at_raw: Timestamp(1_700_000_000_000),
                received_at: Timestamp(1_700_000_000_500),
                device_id: None,
                session_id: None,
            },
            trace: TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        }
    }

    fn uuid_from(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn a_row_round_trips_with_its_identity_in_the_headers() {
        let q = row();
        let (h, body) = encode(&q);
        let back = decode(Some(&h), &body).unwrap();
        assert_eq!((back.seq, &back.event, back.trace), (42, &q.event, q.trace));
        assert_eq!(decode(None, &body).unwrap().trace, None, "no header, no trace");
        assert_eq!(seq_of(Some(&h)), Some(42));
        assert_eq!(header(Some(&h), "Nats-Msg-Id").unwrap(), format!("{}:42", q.event.event_id));
    }

    #[test]
    fn garbage_an_unknown_version_and_a_bad_event_are_refused_with_the_reason() {
        assert!(decode(None, b"\x00\x01").unwrap_err().contains("undecodable payload"));
        assert!(
            decode(None, br#"{"v":2,"seq":1,"event":{}}"#).unwrap_err().contains("unknown payload version 2")
        );
        let (_, body) = encode(&row());
        let bad = String::from_utf8(body.to_vec()).unwrap().replace("\"pause\"", "\"rewind\"");
        assert!(decode(None, bad.as_bytes()).unwrap_err().contains("undecodable event"));
    }
}
