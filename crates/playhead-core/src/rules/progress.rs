//! The resume point: a last-writer-wins register per (profile, title), ordered by
//! `(occurred_at, event_id)`.
//!
//! Arrival order never matters: the register keeps whichever write has the greatest version, so
//! any permutation (and any duplication) of the same events ends in the same state. A write that
//! reaches the watched point resets the position to 0 and marks the register finished: the next
//! play starts from the beginning, and Continue watching drops the title.

use serde::{Deserialize, Serialize};

use super::{Rules, TitleFacts};
use crate::event::PlaybackEvent;
use crate::ids::{EventId, ProfileId, TitleId};
use crate::time::Timestamp;

/// The stored resume point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// Whose.
    pub profile_id: ProfileId,
    /// Which title.
    pub title_id: TitleId,
    /// Where to resume (0 after completion).
    pub position_ms: i64,
    /// Duration the position refers to (the catalog's, else the player's; 0 if neither).
    pub duration_ms: i64,
    /// Version part 1: the winning event's corrected client time.
    pub occurred_at: Timestamp,
    /// Version part 2: the winning event's id (tie-break).
    pub event_id: EventId,
    /// The winning event reached the watched point.
    pub finished: bool,
    /// Server time of the last change.
    pub updated_at: Timestamp,
}

impl ProgressRecord {
    /// The register's version.
    pub fn version(&self) -> (Timestamp, EventId) {
        (self.occurred_at, self.event_id)
    }
}

/// How a resume point looks to a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressState {
    /// Nothing worth resuming (before the resume window).
    NotStarted,
    /// In the resume window: shown in Continue watching.
    InProgress,
    /// The last viewing reached the watched point; resume starts at 0.
    Finished,
}

impl ProgressState {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProgressState::NotStarted => "not_started",
            ProgressState::InProgress => "in_progress",
            ProgressState::Finished => "finished",
        }
    }
}

/// Merge one event into the register. Returns the new record when the event wins, `None` when
/// the stored record is newer (or is this very event: redelivery changes nothing).
pub fn merge(
    current: Option<&ProgressRecord>,
    ev: &PlaybackEvent,
    facts: &TitleFacts,
    rules: &Rules,
    now: Timestamp,
) -> Option<ProgressRecord> {
    if current.is_some_and(|c| c.version() >= ev.version()) {
        return None;
    }
    let duration_ms = if facts.duration_ms > 0 { facts.duration_ms } else { ev.duration_ms.unwrap_or(0) };
    let effective = TitleFacts { duration_ms, ..*facts };
    let finished = rules.completes(ev.kind, ev.position_ms, &effective);
    Some(ProgressRecord {
        profile_id: ev.profile_id,
        title_id: ev.title_id.clone(),
        position_ms: if finished { 0 } else { ev.position_ms },
        duration_ms,
        occurred_at: ev.occurred_at,
        event_id: ev.event_id,
        finished,
        updated_at: now,
    })
}

/// Fold many events into the register; the result is independent of their order.
pub fn merge_all<'a>(
    current: Option<ProgressRecord>,
    events: impl IntoIterator<Item = &'a PlaybackEvent>,
    facts: &TitleFacts,
    rules: &Rules,
    now: Timestamp,
) -> Option<ProgressRecord> {
    // Only the greatest version can win, so pick it first: O(n) and trivially order-free.
    let best = events.into_iter().max_by_key(|e| e.version())?;
    merge(current.as_ref(), best, facts, rules, now)
}

/// The viewer-facing state of a record.
pub fn state(rec: &ProgressRecord, facts: &TitleFacts, rules: &Rules) -> ProgressState {
    let facts = TitleFacts {
        duration_ms: if facts.duration_ms > 0 { facts.duration_ms } else { rec.duration_ms },
        ..*facts
    };
    if rec.finished {
        ProgressState::Finished
    } else if rules.in_resume_window(rec.position_ms, &facts) {
        ProgressState::InProgress
    } else if rec.position_ms >= rules.watched_point(&facts) && facts.duration_ms > 0 {
        // A position at the end without a completing event (e.g. duration learned later).
        ProgressState::Finished
    } else {
        ProgressState::NotStarted
    }
}

/// Share of the duration, one decimal (0 when the duration is unknown).
pub fn percent(position_ms: i64, duration_ms: i64) -> f64 {
    if duration_ms <= 0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "ms values are far below 2^53")]
    let p = (position_ms as f64 / duration_ms as f64 * 1000.0).round() / 10.0;
    p.min(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::title::TitleKind;
    use proptest::prelude::*;
    use uuid::Uuid;

    const FACTS: TitleFacts =
        TitleFacts { kind: TitleKind::Movie, duration_ms: 6_000_000, credits_start_ms: None };

    fn ev(id: u128, at: i64, pos: i64, kind: EventKind) -> PlaybackEvent {
        PlaybackEvent {
            event_id: EventId(Uuid::from_u128(id)),
            profile_id: ProfileId(Uuid::from_u128(1)),
            title_id: TitleId::parse("m1").unwrap(),
            kind,
            position_ms: pos,
            duration_ms: None,
            occurred_at: Timestamp(at),
            occurred_at_raw: Timestamp(at),
            received_at: Timestamp(at),
            device_id: None,
            session_id: None,
        }
    }

    fn fold(events: &[PlaybackEvent]) -> Option<ProgressRecord> {
        events
            .iter()
            .fold(None, |cur, e| merge(cur.as_ref(), e, &FACTS, &Rules::default(), Timestamp(0)).or(cur))
    }

    #[test]
    fn the_latest_occurred_at_wins_whatever_the_arrival_order() {
        let a = ev(1, 1_000, 600_000, EventKind::Heartbeat);
        let b = ev(2, 2_000, 900_000, EventKind::Pause);
        assert_eq!(fold(&[a.clone(), b.clone()]).unwrap().position_ms, 900_000);
        assert_eq!(fold(&[b, a]).unwrap().position_ms, 900_000);
    }

    #[test]
    fn equal_times_are_broken_by_event_id() {
        let a = ev(1, 1_000, 600_000, EventKind::Pause);
        let b = ev(2, 1_000, 700_000, EventKind::Pause);
        assert_eq!(fold(&[b.clone(), a.clone()]).unwrap().position_ms, 700_000);
        assert_eq!(fold(&[a, b]).unwrap().position_ms, 700_000);
    }

    #[test]
    fn redelivery_of_the_winning_event_changes_nothing() {
        let a = ev(1, 1_000, 600_000, EventKind::Pause);
        let rec = fold(std::slice::from_ref(&a)).unwrap();
        assert!(merge(Some(&rec), &a, &FACTS, &Rules::default(), Timestamp(5)).is_none());
    }

    #[test]
    fn reaching_the_watched_point_resets_the_resume_point() {
        let r = fold(&[ev(1, 1_000, 5_400_000, EventKind::Heartbeat)]).unwrap();
        assert_eq!((r.position_ms, r.finished), (0, true));
        assert_eq!(state(&r, &FACTS, &Rules::default()), ProgressState::Finished);
        let r = fold(&[ev(1, 1_000, 10, EventKind::Complete)]).unwrap();
        assert!(r.finished);
    }

    #[test]
    fn the_state_follows_the_window() {
        let rules = Rules::default();
        let s = |pos| state(&fold(&[ev(1, 1, pos, EventKind::Pause)]).unwrap(), &FACTS, &rules);
        assert_eq!(s(100_000), ProgressState::NotStarted);
        assert_eq!(s(1_000_000), ProgressState::InProgress);
    }

    #[test]
    fn percent_has_one_decimal() {
        assert!((percent(1_000_000, 6_000_000) - 16.7).abs() < 1e-9);
        assert!((percent(5, 0)).abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn any_order_and_any_duplication_give_the_same_register(
            raw in proptest::collection::vec((0i64..50, 0i64..6_500_000, 0u8..5), 1..30),
            seed in any::<u64>(),
        ) {
            let kinds = [EventKind::Start, EventKind::Heartbeat, EventKind::Pause, EventKind::Stop, EventKind::Complete];
            let events: Vec<_> = raw.iter().enumerate()
                .map(|(i, (at, pos, k))| ev(i as u128 + 1, *at, (*pos).min(6_000_000), kinds[*k as usize]))
                .collect();
            let expected = fold(&events);
            let mut shuffled: Vec<_> = events.iter().chain(events.iter().take(seed as usize % events.len())).cloned().collect();
            // A deterministic shuffle driven by the seed.
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(fold(&shuffled), expected.clone());
            prop_assert_eq!(merge_all(None, &shuffled, &FACTS, &Rules::default(), Timestamp(0)), expected);
        }
    }
}
