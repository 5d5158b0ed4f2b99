//! Playback events: what players send, and the admission rules every event passes before it is
//! accepted into the log (DESIGN.md, "Clocks and bad values").
//!
//! Admission is per event: one bad event is rejected with a [`FieldError`] naming its field, and
//! the rest of its batch goes on.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::ids::{DeviceId, EventId, ProfileId, SessionId, TitleId};
use crate::rules::Rules;
use crate::time::Timestamp;

/// What happened in the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Playback started.
    Start,
    /// Periodic position report while playing.
    Heartbeat,
    /// Paused.
    Pause,
    /// Stopped (player closed, back button).
    Stop,
    /// The player says the title finished.
    Complete,
}

impl EventKind {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Pause => "pause",
            EventKind::Stop => "stop",
            EventKind::Complete => "complete",
        }
    }
    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Start, Self::Heartbeat, Self::Pause, Self::Stop, Self::Complete]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// An admitted playback event, as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackEvent {
    /// Client UUID; the dedupe key.
    pub event_id: EventId,
    /// Whose viewing.
    pub profile_id: ProfileId,
    /// What was played.
    pub title_id: TitleId,
    /// What happened.
    pub kind: EventKind,
    /// Position, clamped to the duration when slightly past it.
    pub position_ms: i64,
    /// Duration the player saw, if it sent one.
    pub duration_ms: Option<i64>,
    /// Client time corrected for batch clock skew: the order of the register.
    pub occurred_at: Timestamp,
    /// Client time as sent (kept for audit and for re-correction).
    pub occurred_at_raw: Timestamp,
    /// Server time of acceptance.
    pub received_at: Timestamp,
    /// The player's device.
    pub device_id: Option<DeviceId>,
    /// The player's session; events without one are grouped by the server.
    pub session_id: Option<SessionId>,
}

impl PlaybackEvent {
    /// Total order of the last-writer-wins register: `(occurred_at, event_id)`.
    pub fn version(&self) -> (Timestamp, EventId) {
        (self.occurred_at, self.event_id)
    }
}

/// An event as parsed from the wire, before the rules. Every field optional so each missing or
/// ill-typed one is reported by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEvent {
    /// `event_id`.
    pub event_id: Option<String>,
    /// `title_id`.
    pub title_id: Option<String>,
    /// `kind`.
    pub kind: Option<String>,
    /// `position_ms`.
    pub position_ms: Option<i64>,
    /// `duration_ms`.
    pub duration_ms: Option<i64>,
    /// `occurred_at` (RFC 3339).
    pub occurred_at: Option<String>,
    /// `device_id`.
    pub device_id: Option<String>,
    /// `session_id`.
    pub session_id: Option<String>,
}

/// The per-batch facts admission needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchContext {
    /// Server time at receipt.
    pub now: Timestamp,
    /// Correction added to every `occurred_at` in the batch (see [`batch_clock_shift`]).
    pub shift_ms: i64,
    /// A backfill may carry events older than `max_event_age`.
    pub backfill: bool,
}

/// The shift to apply to a batch's client times: when `sent_at` differs from the server clock by
/// more than the skew allowance, the client's clock is wrong by that difference.
pub fn batch_clock_shift(sent_at: Option<Timestamp>, now: Timestamp, rules: &Rules) -> i64 {
    match sent_at {
        Some(sent) if (now.0 - sent.0).abs() > rules.skew_allowance_ms => now.0 - sent.0,
        _ => 0,
    }
}

/// Check a position against a duration: slightly past the end is clamped (players report the
/// last frame late), far past or negative is rejected.
pub fn clamp_position(position_ms: i64, duration_ms: Option<i64>, rules: &Rules) -> Result<i64, FieldError> {
    if position_ms < 0 {
        return Err(FieldError::new("position_ms", "out_of_range", "must not be negative"));
    }
    match duration_ms {
        Some(d) if d > 0 && position_ms > d => {
            let tolerance = rules.clamp_tolerance_ms(d);
            if position_ms - d <= tolerance {
                Ok(d)
            } else {
                Err(FieldError::new(
                    "position_ms",
                    "out_of_range",
                    format!(
                        "is {} ms past duration_ms {d}; at most {tolerance} ms past is clamped",
                        position_ms - d
                    ),
                ))
            }
        }
        _ => Ok(position_ms),
    }
}

/// What a client reported about a position, before the admission rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// Client time as sent.
    pub occurred_at_raw: Timestamp,
    /// Position as sent.
    pub position_ms: i64,
    /// Duration the player saw, if it sent one.
    pub duration_ms: Option<i64>,
}

/// A reported position after the admission rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Client time corrected for the batch's clock skew.
    pub occurred_at: Timestamp,
    /// Position, clamped to the duration when slightly past it.
    pub position_ms: i64,
}

/// The admission rules every reported position passes, whether it came in an event batch or as
/// a resume point set directly (PUT progress): the duration is positive, the clock is corrected,
/// the time is neither ahead of the server beyond the skew allowance nor (outside a backfill)
/// older than `max_event_age`, and the position is clamped or rejected.
///
/// `catalog_duration` is the title's duration when the catalog has it (it wins over the
/// player's, which may include ads).
pub fn check_admission(
    reported: Reported,
    ctx: &BatchContext,
    catalog_duration: Option<i64>,
    rules: &Rules,
) -> Result<Admitted, FieldError> {
    if let Some(d) = reported.duration_ms
        && d <= 0
    {
        return Err(FieldError::new("duration_ms", "out_of_range", "must be greater than 0"));
    }
    let occurred_at = reported.occurred_at_raw.plus_ms(ctx.shift_ms);
    if occurred_at.0 > ctx.now.0 + rules.skew_allowance_ms {
        return Err(FieldError::new(
            "occurred_at",
            "in_future",
            format!(
                "is {} s ahead of the server clock; at most {} s is allowed (send sent_at so the server can correct a wrong device clock)",
                (occurred_at.0 - ctx.now.0) / 1000,
                rules.skew_allowance_ms / 1000
            ),
        ));
    }
    if !ctx.backfill && occurred_at.0 < ctx.now.0 - rules.max_event_age_ms {
        return Err(FieldError::new(
            "occurred_at",
            "too_old",
            format!(
                "is older than max_event_age ({} days); send old events with \"backfill\": true",
                rules.max_event_age_ms / crate::time::DAY_MS
            ),
        ));
    }
    let duration_for_clamp = catalog_duration.filter(|d| *d > 0).or(reported.duration_ms);
    let position_ms = clamp_position(reported.position_ms, duration_for_clamp, rules)?;
    Ok(Admitted { occurred_at, position_ms })
}

/// Admit one event: parse every field, correct the clock, check age and position.
///
/// `catalog_duration` is the title's duration when the catalog has it (it wins over the player's
/// `duration_ms`, which may include ads); `None` for a title not yet imported (the event is held
/// and its position is checked again when applied).
pub fn admit(
    raw: RawEvent,
    profile_id: ProfileId,
    ctx: &BatchContext,
    catalog_duration: Option<i64>,
    rules: &Rules,
) -> Result<PlaybackEvent, FieldError> {
    let event_id = raw.event_id.ok_or_else(|| FieldError::required("event_id")).and_then(|s| {
        EventId::parse(&s).map_err(|_| FieldError::new("event_id", "invalid", "must be a UUID"))
    })?;
    let title_id = raw.title_id.ok_or_else(|| FieldError::required("title_id")).and_then(|s| {
        TitleId::parse(&s).map_err(|e| FieldError::new("title_id", "invalid", e.to_string()))
    })?;
    let kind = raw.kind.ok_or_else(|| FieldError::required("kind")).and_then(|s| {
        EventKind::parse(&s).ok_or_else(|| {
            FieldError::new("kind", "invalid", "must be start, heartbeat, pause, stop or complete")
        })
    })?;
    let position_ms = raw.position_ms.ok_or_else(|| FieldError::required("position_ms"))?;
    let occurred_at_raw =
        raw.occurred_at.ok_or_else(|| FieldError::required("occurred_at")).and_then(|s| {
            Timestamp::parse_rfc3339(&s).map_err(|e| FieldError::new("occurred_at", "invalid", e.to_string()))
        })?;
    let Admitted { occurred_at, position_ms } = check_admission(
        Reported { occurred_at_raw, position_ms, duration_ms: raw.duration_ms },
        ctx,
        catalog_duration,
        rules,
    )?;
    let device_id = raw
        .device_id
        .map(|s| DeviceId::parse(&s).map_err(|e| FieldError::new("device_id", "invalid", e.to_string())))
        .transpose()?;
    let session_id = raw
        .session_id
        .map(|s| SessionId::parse(&s).map_err(|e| FieldError::new("session_id", "invalid", e.to_string())))
        .transpose()?;
    Ok(PlaybackEvent {
        event_id,
        profile_id,
        title_id,
        kind,
        position_ms,
        duration_ms: raw.duration_ms,
        occurred_at,
        occurred_at_raw,
        received_at: ctx.now,
        device_id,
        session_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{DAY_MS, MINUTE_MS};
    use uuid::Uuid;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn raw(at: Timestamp) -> RawEvent {
        RawEvent {
            event_id: Some(Uuid::from_u128(1).to_string()),
            title_id: Some("m1".into()),
            kind: Some("heartbeat".into()),
            position_ms: Some(600_000),
            duration_ms: None,
            occurred_at: Some(at.to_rfc3339()),
            device_id: Some("tv".into()),
            session_id: None,
        }
    }

    fn ctx(shift_ms: i64, backfill: bool) -> BatchContext {
        BatchContext { now: NOW, shift_ms, backfill }
    }

    fn pid() -> ProfileId {
        ProfileId(Uuid::from_u128(9))
    }

    #[test]
    fn a_good_event_is_admitted_unchanged() {
        let e = admit(raw(NOW.plus_ms(-1000)), pid(), &ctx(0, false), Some(3_600_000), &Rules::default())
            .unwrap();
        assert_eq!(e.position_ms, 600_000);
        assert_eq!(e.occurred_at, NOW.plus_ms(-1000));
        assert_eq!(e.received_at, NOW);
    }

    #[test]
    fn events_ahead_of_the_server_by_more_than_the_allowance_are_rejected() {
        let r = Rules::default();
        assert!(admit(raw(NOW.plus_ms(5 * MINUTE_MS)), pid(), &ctx(0, false), None, &r).is_ok());
        let e = admit(raw(NOW.plus_ms(5 * MINUTE_MS + 1)), pid(), &ctx(0, false), None, &r).unwrap_err();
        assert_eq!((e.field.as_ref(), e.code), ("occurred_at", "in_future"));
    }

    #[test]
    fn sent_at_corrects_a_wrong_device_clock_and_keeps_the_raw_value() {
        let r = Rules::default();
        // The TV's clock is two hours fast: sent_at and occurred_at are both two hours ahead.
        let skew = 2 * 60 * MINUTE_MS;
        let shift = batch_clock_shift(Some(NOW.plus_ms(skew)), NOW, &r);
        assert_eq!(shift, -skew);
        let e = admit(raw(NOW.plus_ms(skew - 30_000)), pid(), &ctx(shift, false), None, &r).unwrap();
        assert_eq!(e.occurred_at, NOW.plus_ms(-30_000));
        assert_eq!(e.occurred_at_raw, NOW.plus_ms(skew - 30_000));
    }

    #[test]
    fn small_sent_at_differences_are_not_corrected() {
        let r = Rules::default();
        assert_eq!(batch_clock_shift(Some(NOW.plus_ms(5 * MINUTE_MS)), NOW, &r), 0);
        assert_eq!(batch_clock_shift(Some(NOW.plus_ms(-5 * MINUTE_MS - 1)), NOW, &r), 5 * MINUTE_MS + 1);
        assert_eq!(batch_clock_shift(None, NOW, &r), 0);
    }

    #[test]
    fn old_events_need_a_backfill() {
        let r = Rules::default();
        let old = NOW.plus_ms(-31 * DAY_MS);
        let e = admit(raw(old), pid(), &ctx(0, false), None, &r).unwrap_err();
        assert_eq!(e.code, "too_old");
        assert!(admit(raw(old), pid(), &ctx(0, true), None, &r).is_ok());
    }

    #[test]
    fn positions_slightly_past_the_end_are_clamped_and_far_past_rejected() {
        let r = Rules::default();
        let d = 3_600_000; // 5% = 180 s > 60 s
        assert_eq!(clamp_position(d + 180_000, Some(d), &r).unwrap(), d);
        assert_eq!(clamp_position(d + 180_001, Some(d), &r).unwrap_err().code, "out_of_range");
        let short = 600_000; // 5% = 30 s < 60 s
        assert_eq!(clamp_position(short + 60_000, Some(short), &r).unwrap(), short);
        assert!(clamp_position(short + 60_001, Some(short), &r).is_err());
        assert!(clamp_position(-1, Some(d), &r).is_err());
        assert_eq!(clamp_position(9_999_999, None, &r).unwrap(), 9_999_999);
    }

    #[test]
    fn the_catalog_duration_wins_over_the_players() {
        let r = Rules::default();
        let mut ev = raw(NOW);
        ev.position_ms = Some(4_000_000);
        ev.duration_ms = Some(5_000_000); // the player's duration includes ads
        let e = admit(ev, pid(), &ctx(0, false), Some(3_600_000), &r).unwrap_err();
        assert_eq!(e.field, "position_ms");
    }

    #[test]
    fn each_missing_or_bad_field_is_named() {
        let r = Rules::default();
        type Mutation = fn(&mut RawEvent);
        let cases: [(Mutation, &str); 7] = [
            (|e| e.event_id = None, "event_id"),
            (|e| e.event_id = Some("nope".into()), "event_id"),
            (|e| e.title_id = Some("a b".into()), "title_id"),
            (|e| e.kind = Some("seek".into()), "kind"),
            (|e| e.position_ms = None, "position_ms"),
            (|e| e.occurred_at = Some("soon".into()), "occurred_at"),
            (|e| e.duration_ms = Some(0), "duration_ms"),
        ];
        for (mutate, field) in cases {
            let mut ev = raw(NOW);
            mutate(&mut ev);
            assert_eq!(admit(ev, pid(), &ctx(0, false), None, &r).unwrap_err().field, field);
        }
    }
}
