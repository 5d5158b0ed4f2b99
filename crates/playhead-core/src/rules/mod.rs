//! The domain rules of DESIGN.md, as pure functions over values.
//!
//! Every threshold is a field of [`Rules`] (operators set them in the config file's `[rules]`
//! table); the defaults are DESIGN.md's. Keep each rule here and unit-tested beside it: the
//! application layer only loads state, calls these, and stores the result.

pub mod marks;
pub mod progress;
pub mod recs;
pub mod rollup;
pub mod rows;
pub mod viewing;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::{DAY_MS, MINUTE_MS};
use crate::title::{Title, TitleKind};

/// Thresholds and windows of the domain rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// The resume window opens at this share of the duration (percent)...
    pub resume_start_pct: f64,
    /// ...and never before this position.
    pub resume_start_min_ms: i64,
    /// The watched point when credits are unknown (percent of duration).
    pub watched_pct: f64,
    /// Per-kind overrides of `watched_pct` (e.g. `episode = 92.0`).
    pub watched_pct_by_kind: BTreeMap<TitleKind, f64>,
    /// Titles shorter than this complete when stopped past the resume start.
    pub short_title_ms: i64,
    /// A viewing is a play only after this much watching (and past the resume start).
    pub play_min_ms: i64,
    /// Events of one device and title further apart than this start a new viewing.
    pub session_gap_ms: i64,
    /// Forward progress counts as watching only up to this multiple of wall-clock time.
    pub seek_factor: i64,
    /// Continue watching drops titles idle longer than this.
    pub stale_after_ms: i64,
    /// Client clocks may run ahead of the server by this much.
    pub skew_allowance_ms: i64,
    /// Events older than this are rejected unless sent as a backfill.
    pub max_event_age_ms: i64,
    /// Positions past the duration by at most max(this, `clamp_tolerance_pct`) are clamped.
    pub clamp_tolerance_min_ms: i64,
    /// See `clamp_tolerance_min_ms` (percent of duration).
    pub clamp_tolerance_pct: f64,
    /// Events for titles not yet in the catalog are kept this long, then dropped.
    pub held_ttl_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            resume_start_pct: 5.0,
            resume_start_min_ms: MINUTE_MS,
            watched_pct: 90.0,
            watched_pct_by_kind: BTreeMap::new(),
            short_title_ms: 5 * MINUTE_MS,
            play_min_ms: MINUTE_MS,
            session_gap_ms: 30 * MINUTE_MS,
            seek_factor: 3,
            stale_after_ms: 90 * DAY_MS,
            skew_allowance_ms: 5 * MINUTE_MS,
            max_event_age_ms: 30 * DAY_MS,
            clamp_tolerance_min_ms: MINUTE_MS,
            clamp_tolerance_pct: 5.0,
            held_ttl_ms: 7 * DAY_MS,
        }
    }
}

/// A problem with configured rules, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rules.{key}: {message}")]
pub struct InvalidRules {
    /// The offending key.
    pub key: &'static str,
    /// Why.
    pub message: &'static str,
}

/// The facts of a title the rules need (a title's duration may still be unknown: 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TitleFacts {
    /// Movie, series or episode.
    pub kind: TitleKind,
    /// Running time (0 = unknown).
    pub duration_ms: i64,
    /// Credits start, when known.
    pub credits_start_ms: Option<i64>,
}

impl From<&Title> for TitleFacts {
    fn from(t: &Title) -> Self {
        Self { kind: t.kind, duration_ms: t.duration_ms, credits_start_ms: t.credits_start_ms }
    }
}

fn pct_of(pct: f64, d: i64) -> i64 {
    // Durations are below 2^53 ms, so the float round trip is exact enough.
    #[expect(clippy::cast_possible_truncation, clippy::cast_precision_loss, reason = "bounded ms")]
    let v = (d as f64 * pct / 100.0).round() as i64;
    v
}

impl Rules {
    /// Check the values make sense together; called once at start-up.
    pub fn validate(&self) -> Result<(), InvalidRules> {
        let pct_ok = |p: f64| p > 0.0 && p <= 100.0;
        let checks: [(bool, &'static str, &'static str); 8] = [
            (pct_ok(self.resume_start_pct), "resume_start_pct", "must be in (0, 100]"),
            (pct_ok(self.watched_pct), "watched_pct", "must be in (0, 100]"),
            (
                self.watched_pct_by_kind.values().all(|p| pct_ok(*p)),
                "watched_pct_by_kind",
                "must be in (0, 100]",
            ),
            (self.resume_start_pct < self.watched_pct, "resume_start_pct", "must be below watched_pct"),
            (self.session_gap_ms > 0, "session_gap_ms", "must be positive"),
            (self.seek_factor >= 1, "seek_factor", "must be at least 1"),
            (
                self.skew_allowance_ms >= 0 && self.clamp_tolerance_min_ms >= 0,
                "skew_allowance_ms",
                "must not be negative",
            ),
            (
                self.max_event_age_ms > 0 && self.held_ttl_ms > 0 && self.stale_after_ms > 0,
                "max_event_age_ms",
                "ages must be positive",
            ),
        ];
        match checks.into_iter().find(|(ok, _, _)| !ok) {
            Some((_, key, message)) => Err(InvalidRules { key, message }),
            None => Ok(()),
        }
    }

    /// Allowed overshoot past the duration before an event is rejected.
    pub fn clamp_tolerance_ms(&self, duration_ms: i64) -> i64 {
        self.clamp_tolerance_min_ms.max(pct_of(self.clamp_tolerance_pct, duration_ms))
    }

    /// Reaching this position completes a play: the credits, else `watched_pct` of the duration.
    pub fn watched_point(&self, t: &TitleFacts) -> i64 {
        match t.credits_start_ms {
            Some(c) if c > 0 && (t.duration_ms == 0 || c < t.duration_ms) => c,
            _ => {
                let pct = self.watched_pct_by_kind.get(&t.kind).copied().unwrap_or(self.watched_pct);
                pct_of(pct, t.duration_ms)
            }
        }
    }

    /// The resume window opens here: `resume_start_pct` of the duration, at least
    /// `resume_start_min_ms`, but never past the watched point (a 50 s clip has no window).
    pub fn resume_start(&self, t: &TitleFacts) -> i64 {
        pct_of(self.resume_start_pct, t.duration_ms).max(self.resume_start_min_ms).min(self.watched_point(t))
    }

    /// Watching needed for a viewing to become a play: max(resume start, `play_min_ms`), capped
    /// at the watched point so a short clip watched to the end still counts.
    pub fn play_threshold(&self, t: &TitleFacts) -> i64 {
        self.resume_start(t).max(self.play_min_ms).min(self.watched_point(t))
    }

    /// Whether a position lies in the resume window (shown in Continue watching).
    pub fn in_resume_window(&self, position_ms: i64, t: &TitleFacts) -> bool {
        position_ms > self.resume_start(t) && position_ms < self.watched_point(t)
    }

    /// Whether this event completes the title: the player said so, the watched point is reached,
    /// or a short title was stopped past its resume start.
    pub fn completes(&self, kind: crate::event::EventKind, position_ms: i64, t: &TitleFacts) -> bool {
        use crate::event::EventKind;
        if t.duration_ms <= 0 {
            return kind == EventKind::Complete;
        }
        kind == EventKind::Complete
            || position_ms >= self.watched_point(t)
            || (t.duration_ms < self.short_title_ms
                && matches!(kind, EventKind::Stop)
                && position_ms > self.resume_start(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn facts(duration_ms: i64, credits: Option<i64>) -> TitleFacts {
        TitleFacts { kind: TitleKind::Movie, duration_ms, credits_start_ms: credits }
    }

    #[test]
    fn the_watched_point_is_the_credits_when_known_else_90_percent() {
        let r = Rules::default();
        assert_eq!(r.watched_point(&facts(6_000_000, None)), 5_400_000);
        assert_eq!(r.watched_point(&facts(6_000_000, Some(5_700_000))), 5_700_000);
    }

    #[test]
    fn the_watched_percentage_can_differ_per_kind() {
        let mut r = Rules::default();
        r.watched_pct_by_kind.insert(TitleKind::Episode, 80.0);
        let ep = TitleFacts { kind: TitleKind::Episode, ..facts(1_000_000, None) };
        assert_eq!(r.watched_point(&ep), 800_000);
        assert_eq!(r.watched_point(&facts(1_000_000, None)), 900_000);
    }

    #[test]
    fn the_resume_window_starts_at_5_percent_and_at_least_60_s() {
        let r = Rules::default();
        let long = facts(6_000_000, None); // 5% = 300 s
        assert_eq!(r.resume_start(&long), 300_000);
        let short = facts(600_000, None); // 5% = 30 s -> 60 s
        assert_eq!(r.resume_start(&short), 60_000);
        assert!(!r.in_resume_window(300_000, &long));
        assert!(r.in_resume_window(300_001, &long));
        assert!(!r.in_resume_window(5_400_000, &long));
        assert!(r.in_resume_window(5_399_999, &long));
    }

    #[test]
    fn a_clip_shorter_than_a_minute_has_no_window_but_can_be_played() {
        let r = Rules::default();
        let clip = facts(50_000, None);
        assert_eq!(r.watched_point(&clip), 45_000);
        assert_eq!(r.resume_start(&clip), 45_000);
        assert!(!r.in_resume_window(30_000, &clip));
        assert_eq!(r.play_threshold(&clip), 45_000);
    }

    #[test]
    fn short_titles_complete_when_stopped_past_the_resume_start() {
        let r = Rules::default();
        let t = facts(240_000, None); // 4 min: resume start 60 s, watched point 216 s
        assert!(r.completes(EventKind::Stop, 61_000, &t));
        assert!(!r.completes(EventKind::Pause, 61_000, &t));
        assert!(!r.completes(EventKind::Stop, 59_000, &t));
        let long = facts(6_000_000, None);
        assert!(!r.completes(EventKind::Stop, 400_000, &long));
        assert!(r.completes(EventKind::Heartbeat, 5_400_000, &long));
        assert!(r.completes(EventKind::Complete, 10, &long));
    }

    #[test]
    fn rules_are_validated_with_the_key_named() {
        let r = Rules { watched_pct: 0.0, ..Rules::default() };
        assert_eq!(r.validate().unwrap_err().key, "watched_pct");
        let r = Rules { resume_start_pct: 95.0, ..Rules::default() };
        assert_eq!(
            r.validate().unwrap_err().to_string(),
            "rules.resume_start_pct: must be below watched_pct"
        );
        assert!(Rules::default().validate().is_ok());
    }
}
