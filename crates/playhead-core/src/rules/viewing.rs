//! Viewings and plays (per-play history).
//!
//! Events with the same `session_id` are one viewing. Events without one are grouped by the server:
//! same device and title, split wherever two consecutive events are more than `session_gap_ms`
//! apart. Because the grouping is a function of the stored events (not of arrival order), a late
//! event can only join or bridge viewings, never split one, and recomputing from the stored events
//! always gives the same plays.
//!
//! A viewing's `watched_ms` sums forward progress between consecutive events, each step capped at
//! `seek_factor` times the wall-clock step, so seeks and skips are not counted as watching. A
//! viewing becomes a play only past [`Rules::play_threshold`] of watching.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::{Rules, TitleFacts};
use crate::event::PlaybackEvent;
use crate::ids::{DeviceId, SessionId};
use crate::time::Timestamp;

/// How events are grouped into viewings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SessionKey {
    /// The client's session id: one viewing, whatever the gaps.
    Explicit(SessionId),
    /// Server-grouped by device (`None`: the player sent no device id) and time gaps.
    Implicit(Option<DeviceId>),
}

impl SessionKey {
    /// The grouping key of an event.
    pub fn of(ev: &PlaybackEvent) -> Self {
        match &ev.session_id {
            Some(s) => Self::Explicit(s.clone()),
            None => Self::Implicit(ev.device_id.clone()),
        }
    }

    /// A compact, unambiguous text form for storage (`s:<session>` or `d:<device>` or `d`).
    pub fn encode(&self) -> String {
        match self {
            Self::Explicit(s) => format!("s:{}", s.as_str()),
            Self::Implicit(Some(d)) => format!("d:{}", d.as_str()),
            Self::Implicit(None) => "d".to_owned(),
        }
    }

    /// Inverse of [`SessionKey::encode`].
    pub fn decode(s: &str) -> Option<Self> {
        match s.split_once(':') {
            Some(("s", id)) => SessionId::parse(id).ok().map(Self::Explicit),
            Some(("d", id)) => DeviceId::parse(id).ok().map(|d| Self::Implicit(Some(d))),
            None if s == "d" => Some(Self::Implicit(None)),
            _ => None,
        }
    }
}

/// The stable order of events within a viewing.
pub fn event_order(a: &PlaybackEvent, b: &PlaybackEvent) -> Ordering {
    a.version().cmp(&b.version())
}

/// Split one implicit group's events (any order, one title and device) into viewings.
/// Duplicated event ids are counted once.
pub fn split_by_gap<'a>(events: &[&'a PlaybackEvent], rules: &Rules) -> Vec<Vec<&'a PlaybackEvent>> {
    let mut sorted: Vec<&PlaybackEvent> = events.to_vec();
    sorted.sort_by(|a, b| event_order(a, b));
    sorted.dedup_by_key(|e| e.event_id);
    let mut out: Vec<Vec<&PlaybackEvent>> = Vec::new();
    for e in sorted {
        match out.last_mut() {
            Some(cur)
                if cur.last().is_some_and(|l| e.occurred_at.0 - l.occurred_at.0 <= rules.session_gap_ms) =>
            {
                cur.push(e)
            }
            _ => out.push(vec![e]),
        }
    }
    out
}

/// What a viewing amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewingSummary {
    /// Earliest `occurred_at`.
    pub started_at: Timestamp,
    /// Latest `occurred_at`.
    pub ended_at: Timestamp,
    /// Forward progress, seek-capped.
    pub watched_ms: i64,
    /// Some event reached the watched point (or completed a short title).
    pub completed: bool,
    /// Passed the play threshold: appears in history.
    pub is_play: bool,
}

/// Summarise a viewing's events (any order; duplicates ignored). `None` for no events.
pub fn summarize(events: &[&PlaybackEvent], facts: &TitleFacts, rules: &Rules) -> Option<ViewingSummary> {
    let mut sorted: Vec<&PlaybackEvent> = events.to_vec();
    sorted.sort_by(|a, b| event_order(a, b));
    sorted.dedup_by_key(|e| e.event_id);
    let first = sorted.first()?;
    let last = sorted.last()?;
    // Unknown catalog duration: fall back to the longest duration a player reported.
    let duration_ms = if facts.duration_ms > 0 {
        facts.duration_ms
    } else {
        sorted.iter().filter_map(|e| e.duration_ms).max().unwrap_or(0)
    };
    let facts = TitleFacts { duration_ms, ..*facts };
    let watched_ms: i64 = sorted.windows(2).map(|w| watched_step(w[0], w[1], rules)).sum();
    let completed = sorted.iter().any(|e| rules.completes(e.kind, e.position_ms, &facts));
    let threshold = if duration_ms > 0 { rules.play_threshold(&facts) } else { rules.play_min_ms };
    Some(ViewingSummary {
        started_at: first.occurred_at,
        ended_at: last.occurred_at,
        watched_ms,
        completed,
        is_play: watched_ms >= threshold,
    })
}

/// Watching between two consecutive events of a viewing: forward progress, capped at
/// `seek_factor` times the wall-clock step (a seek or skip is not watching).
fn watched_step(a: &PlaybackEvent, b: &PlaybackEvent, rules: &Rules) -> i64 {
    let progress = (b.position_ms - a.position_ms).max(0);
    let wall = (b.occurred_at.0 - a.occurred_at.0).max(0);
    progress.min(wall.saturating_mul(rules.seek_factor))
}

/// The summary of a viewing extended by events that all come after its last one: what
/// [`summarize`] of all its events and `later` would give, computed from the summary, the last
/// event and `later` alone (the live case: a heartbeat that extends a long session costs the
/// same as the first one). `None` when that cannot be known this way, and the caller summarizes
/// all events: the title's duration is unknown (it then depends on every event's reported
/// duration), `later` is empty or does not all come after `last` (in [`event_order`]), or an
/// implicit group's gap splits it (`Some(gap)`: more than `gap` ms between consecutive events;
/// `None` for an explicit session, which gaps never split).
pub fn extend(
    summary: &ViewingSummary,
    last: &PlaybackEvent,
    later: &[&PlaybackEvent],
    gap: Option<i64>,
    facts: &TitleFacts,
    rules: &Rules,
) -> Option<ViewingSummary> {
    if facts.duration_ms <= 0 || summary.ended_at != last.occurred_at {
        return None;
    }
    let mut sorted: Vec<&PlaybackEvent> = later.to_vec();
    sorted.sort_by(|a, b| event_order(a, b));
    sorted.dedup_by_key(|e| e.event_id);
    let mut watched_ms = summary.watched_ms;
    let mut prev = last;
    for e in &sorted {
        if event_order(prev, e) != Ordering::Less
            || gap.is_some_and(|g| e.occurred_at.0 - prev.occurred_at.0 > g)
        {
            return None;
        }
        watched_ms += watched_step(prev, e, rules);
        prev = e;
    }
    let end = sorted.last()?;
    let completed = summary.completed || sorted.iter().any(|e| rules.completes(e.kind, e.position_ms, facts));
    Some(ViewingSummary {
        started_at: summary.started_at,
        ended_at: end.occurred_at,
        watched_ms,
        completed,
        is_play: watched_ms >= rules.play_threshold(facts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::ids::{EventId, ProfileId, TitleId};
    use crate::time::MINUTE_MS;
    use crate::title::TitleKind;
    use proptest::prelude::*;
    use uuid::Uuid;

    const HOUR: i64 = 60 * MINUTE_MS;
    const FACTS: TitleFacts =
        TitleFacts { kind: TitleKind::Movie, duration_ms: 2 * HOUR, credits_start_ms: None };

    fn ev(id: u128, at: i64, pos: i64) -> PlaybackEvent {
        PlaybackEvent {
            event_id: EventId(Uuid::from_u128(id)),
            profile_id: ProfileId(Uuid::from_u128(1)),
            title_id: TitleId::parse("m1").unwrap(),
            kind: EventKind::Heartbeat,
            position_ms: pos,
            duration_ms: None,
            occurred_at: Timestamp(at),
            occurred_at_raw: Timestamp(at),
            received_at: Timestamp(at),
            device_id: DeviceId::parse("tv").ok(),
            session_id: None,
        }
    }

    /// Heartbeats every 30 s of real watching from `start_pos`.
    fn watching(first_id: u128, start_at: i64, start_pos: i64, minutes: i64) -> Vec<PlaybackEvent> {
        (0..=minutes * 2)
            .map(|i| ev(first_id + i as u128, start_at + i * 30_000, start_pos + i * 30_000))
            .collect()
    }

    fn refs(v: &[PlaybackEvent]) -> Vec<&PlaybackEvent> {
        v.iter().collect()
    }

    #[test]
    fn continuous_watching_counts_fully() {
        let evs = watching(1, 0, 0, 20);
        let s = summarize(&refs(&evs), &FACTS, &Rules::default()).unwrap();
        assert_eq!(s.watched_ms, 20 * MINUTE_MS);
        assert_eq!((s.started_at, s.ended_at), (Timestamp(0), Timestamp(20 * MINUTE_MS)));
        assert!(s.is_play && !s.completed);
    }

    #[test]
    fn a_seek_forward_counts_only_three_times_the_wall_clock_step() {
        // 5 min watched, then a jump of 60 min in 10 s, then 5 more min.
        let mut evs = watching(1, 0, 0, 5);
        evs.extend(watching(100, 5 * MINUTE_MS + 10_000, 65 * MINUTE_MS, 5));
        let s = summarize(&refs(&evs), &FACTS, &Rules::default()).unwrap();
        assert_eq!(s.watched_ms, 10 * MINUTE_MS + 30_000);
    }

    #[test]
    fn going_backwards_is_not_negative_watching() {
        let evs = vec![ev(1, 0, 10 * MINUTE_MS), ev(2, 60_000, 0), ev(3, 120_000, 60_000)];
        let s = summarize(&refs(&evs), &FACTS, &Rules::default()).unwrap();
        assert_eq!(s.watched_ms, 60_000);
    }

    #[test]
    fn an_autoplay_preview_is_not_a_play() {
        // 2-hour film: the play threshold is 5% = 6 min.
        let evs = watching(1, 0, 0, 5);
        let s = summarize(&refs(&evs), &FACTS, &Rules::default()).unwrap();
        assert!(!s.is_play);
        let evs = watching(1, 0, 0, 6);
        assert!(summarize(&refs(&evs), &FACTS, &Rules::default()).unwrap().is_play);
    }

    #[test]
    fn skipping_to_the_end_completes_but_is_not_a_play() {
        let evs = vec![ev(1, 0, 0), ev(2, 5_000, 110 * MINUTE_MS)];
        let s = summarize(&refs(&evs), &FACTS, &Rules::default()).unwrap();
        assert!(s.completed && !s.is_play);
    }

    #[test]
    fn gaps_over_thirty_minutes_split_viewings() {
        let mut evs = watching(1, 0, 0, 10);
        evs.extend(watching(100, 10 * MINUTE_MS + 30 * MINUTE_MS, 10 * MINUTE_MS, 10));
        evs.extend(watching(200, 20 * MINUTE_MS + 61 * MINUTE_MS, 20 * MINUTE_MS, 10));
        let groups = split_by_gap(&refs(&evs), &Rules::default());
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [42, 21]);
    }

    #[test]
    fn a_late_event_can_bridge_two_viewings() {
        let mut evs = watching(1, 0, 0, 10);
        evs.extend(watching(100, 50 * MINUTE_MS, 10 * MINUTE_MS, 10));
        assert_eq!(split_by_gap(&refs(&evs), &Rules::default()).len(), 2);
        evs.push(ev(999, 30 * MINUTE_MS, 10 * MINUTE_MS));
        assert_eq!(split_by_gap(&refs(&evs), &Rules::default()).len(), 1);
    }

    #[test]
    fn session_keys_round_trip_through_their_text_form() {
        for k in [
            SessionKey::Explicit(SessionId::parse("abc:1").unwrap()),
            SessionKey::Implicit(DeviceId::parse("tv:living room").ok()),
            SessionKey::Implicit(None),
        ] {
            assert_eq!(SessionKey::decode(&k.encode()), Some(k));
        }
    }

    proptest! {
        #[test]
        fn grouping_and_summaries_do_not_depend_on_arrival_order(
            steps in proptest::collection::vec((0i64..40 * MINUTE_MS, -60_000i64..200_000), 1..40),
            seed in any::<u64>(),
        ) {
            let mut at = 0;
            let mut pos: i64 = 0;
            let events: Vec<_> = steps.iter().enumerate().map(|(i, (dt, dp))| {
                at += dt;
                pos = (pos + dp).clamp(0, 2 * HOUR);
                ev(i as u128 + 1, at, pos)
            }).collect();
            let canonical: Vec<_> = split_by_gap(&refs(&events), &Rules::default())
                .iter().map(|g| summarize(g, &FACTS, &Rules::default())).collect();
            let mut shuffled = events.clone();
            shuffled.extend(events.iter().take(seed as usize % events.len()).cloned());
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let again: Vec<_> = split_by_gap(&refs(&shuffled), &Rules::default())
                .iter().map(|g| summarize(g, &FACTS, &Rules::default())).collect();
            prop_assert_eq!(canonical, again);
        }

        /// The apply's fast path: extending a viewing's summary by later events gives exactly
        /// the summary of all its events, or declines (never a different answer).
        #[test]
        fn extending_a_summary_equals_summarizing_everything(
            steps in proptest::collection::vec((0i64..40 * MINUTE_MS, -60_000i64..200_000, 0u8..8), 2..40),
            cut in any::<usize>(),
            explicit in any::<bool>(),
        ) {
            let rules = Rules::default();
            let mut at = 0;
            let mut pos: i64 = 0;
            let events: Vec<_> = steps.iter().enumerate().map(|(i, (dt, dp, kind))| {
                at += dt;
                pos = (pos + dp).clamp(0, 2 * HOUR + 60_000);
                let mut e = ev(i as u128 + 1, at, pos);
                if *kind == 0 { e.kind = EventKind::Complete; }
                if *kind == 1 { e.kind = EventKind::Stop; }
                e
            }).collect();
            let cut = 1 + cut % (events.len() - 1);
            let (before, after) = events.split_at(cut);
            let gap = (!explicit).then_some(rules.session_gap_ms);
            // The viewing holding the last earlier event: the whole session, or its gap group.
            let first_group: Vec<&PlaybackEvent> = if explicit {
                refs(before)
            } else {
                split_by_gap(&refs(before), &rules).pop().unwrap()
            };
            let summary = summarize(&first_group, &FACTS, &rules).unwrap();
            let last = before.last().unwrap();
            if let Some(extended) = extend(&summary, last, &refs(after), gap, &FACTS, &rules) {
                let mut all = first_group.clone();
                all.extend(refs(after));
                if !explicit {
                    prop_assert_eq!(split_by_gap(&all, &rules).len(), 1, "extended across a gap");
                }
                prop_assert_eq!(Some(extended), summarize(&all, &FACTS, &rules));
            } else {
                // Declined only for a reason: a gap splits the later events off.
                prop_assert!(!explicit && split_by_gap(&refs(&events[cut - 1..]), &rules).len() > 1);
            }
        }
    }

    #[test]
    fn extending_declines_what_it_cannot_know() {
        let rules = Rules::default();
        let evs = watching(1, 0, 0, 20);
        let (before, after) = evs.split_at(10);
        let s = summarize(&refs(before), &FACTS, &rules).unwrap();
        let last = before.last().unwrap();
        let unknown = TitleFacts { duration_ms: 0, ..FACTS };
        assert_eq!(extend(&s, last, &refs(after), None, &unknown, &rules), None, "duration unknown");
        assert_eq!(extend(&s, &before[0], &refs(after), None, &FACTS, &rules), None, "not the last event");
        let earlier = ev(100, 1, 1_000);
        assert_eq!(extend(&s, last, &[&earlier], None, &FACTS, &rules), None, "an event before the last");
        assert_eq!(extend(&s, last, &[], None, &FACTS, &rules), None, "nothing to extend by");
        let far = ev(101, last.occurred_at.0 + rules.session_gap_ms + 1, 400_000);
        assert_eq!(
            extend(&s, last, &[&far], Some(rules.session_gap_ms), &FACTS, &rules),
            None,
            "across a gap"
        );
        assert!(extend(&s, last, &[&far], None, &FACTS, &rules).is_some(), "an explicit session has no gaps");
    }
}
