//! The retention roll-up (issue 16, decision 0083): plays that ended before a month-aligned
//! cutoff become one aggregate per (profile, title, calendar month in UTC) of the play's start.
//!
//! Rules a contributor must keep here:
//! - The cutoff is the first instant of a UTC month, so a month is rolled up in one go and a
//!   history page never shows half a month as plays and half as a roll-up (a play backfilled into
//!   a rolled-up month later is added to it on the next round).
//! - Only real plays count; viewings below the play threshold are deleted without counting, and
//!   manual plays (watched marks) are never rolled up: unmarking must keep working.
//! - Aggregation is additive (`plays`, `watched_ms`, `completed_plays` are sums), so adding a
//!   batch to what a month already holds is the same as rolling the whole month at once. The
//!   store adds a batch and deletes its rows in one transaction: a crash never counts twice.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::ids::{ProfileId, TitleId};
use crate::ports::Viewing;
use crate::time::{DAY_MS, Timestamp};

/// One rolled-up month of one title for one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayRollup {
    /// Whose.
    pub profile_id: ProfileId,
    /// What.
    pub title_id: TitleId,
    /// The first instant of the UTC month the plays started in.
    pub month: Timestamp,
    /// How many plays.
    pub plays: u64,
    /// Their watched time, summed.
    pub watched_ms: i64,
    /// How many of them completed.
    pub completed_plays: u64,
}

impl PlayRollup {
    /// The first instant of the next month (the roll-up covers `[month, end)`).
    pub fn end(&self) -> Timestamp {
        next_month(self.month)
    }

    /// The month as `YYYY-MM`.
    pub fn month_label(&self) -> String {
        let s = self.month.to_rfc3339();
        s.get(..7).map_or(s.clone(), str::to_owned)
    }
}

/// The first instant of the UTC month containing `t`.
pub fn month_start(t: Timestamp) -> Timestamp {
    let nanos = i128::from(t.0) * 1_000_000;
    let Ok(dt) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else { return t };
    let Ok(first) = dt.date().replace_day(1) else { return t };
    let start = first.midnight().assume_utc();
    Timestamp(i64::try_from(start.unix_timestamp_nanos() / 1_000_000).unwrap_or(t.0))
}

/// The first instant of the month after the one containing `t`.
pub fn next_month(t: Timestamp) -> Timestamp {
    // 32 days past a month's first day is always inside the next month.
    month_start(month_start(t).plus_ms(32 * DAY_MS))
}

/// Plays that ended before this instant are rolled up, at `now` with a horizon of `after_days`:
/// the start of the month holding `now - after_days` (so a month is rolled up only once all of
/// it is past the horizon).
pub fn cutoff(now: Timestamp, after_days: u32) -> Timestamp {
    month_start(now.plus_ms(-i64::from(after_days) * DAY_MS))
}

/// Aggregate `viewings` per (profile, title, month of start), ordered by that key. Viewings that
/// are not plays, and manual plays, contribute nothing.
pub fn aggregate(viewings: &[Viewing]) -> Vec<PlayRollup> {
    let mut acc: BTreeMap<(ProfileId, TitleId, Timestamp), (u64, i64, u64)> = BTreeMap::new();
    for v in viewings.iter().filter(|v| v.is_play && !v.manual) {
        let e = acc.entry((v.profile_id, v.title_id.clone(), month_start(v.started_at))).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(v.watched_ms.max(0));
        e.2 += u64::from(v.completed);
    }
    acc.into_iter()
        .map(|((profile_id, title_id, month), (plays, watched_ms, completed_plays))| PlayRollup {
            profile_id,
            title_id,
            month,
            plays,
            watched_ms,
            completed_plays,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::ids::PlayId;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn play(n: u128, title: &str, start: &str, watched_ms: i64, completed: bool) -> Viewing {
        Viewing {
            id: PlayId(Uuid::from_u128(n)),
            profile_id: ProfileId(Uuid::from_u128(1)),
            title_id: TitleId::parse(title).unwrap(),
            key: None,
            started_at: at(start),
            ended_at: at(start).plus_ms(watched_ms),
            watched_ms,
            completed,
            is_play: true,
            manual: false,
        }
    }

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(month_start(at("2025-03-31T23:59:59.999Z")), at("2025-03-01T00:00:00Z"));
        assert_eq!(month_start(at("2025-03-01T00:00:00Z")), at("2025-03-01T00:00:00Z"));
        assert_eq!(next_month(at("2025-01-31T12:00:00Z")), at("2025-02-01T00:00:00Z"));
        assert_eq!(next_month(at("2024-12-15T00:00:00Z")), at("2025-01-01T00:00:00Z"));
        assert_eq!(next_month(at("2024-02-29T00:00:00Z")), at("2024-03-01T00:00:00Z"));
        let r = PlayRollup {
            profile_id: ProfileId(Uuid::nil()),
            title_id: TitleId::parse("t").unwrap(),
            month: at("2025-02-01T00:00:00Z"),
            plays: 1,
            watched_ms: 1,
            completed_plays: 0,
        };
        assert_eq!(r.month_label(), "2025-02");
        assert_eq!(r.end(), at("2025-03-01T00:00:00Z"));
    }

    #[test]
    fn the_cutoff_is_the_month_holding_the_horizon() {
        // 365 days before 2026-12-04 is 2025-12-04: everything before December 2025 rolls up.
        assert_eq!(cutoff(at("2026-12-04T10:00:00Z"), 365), at("2025-12-01T00:00:00Z"));
        assert_eq!(cutoff(at("2026-03-01T00:00:00Z"), 0), at("2026-03-01T00:00:00Z"));
    }

    #[test]
    fn plays_sum_per_title_and_month_and_other_viewings_count_nothing() {
        let mut short = play(4, "a", "2025-01-20T00:00:00Z", 10_000, false);
        short.is_play = false;
        let mut mark = play(5, "a", "2025-01-21T00:00:00Z", 0, true);
        mark.manual = true;
        let batch = [
            play(1, "a", "2025-01-02T00:00:00Z", 1_000, true),
            play(2, "a", "2025-01-31T23:00:00Z", 2_000, false),
            play(3, "a", "2025-02-01T00:00:00Z", 4_000, true),
            play(6, "b", "2025-01-05T00:00:00Z", 8_000, true),
            short,
            mark,
        ];
        let got: Vec<(String, String, u64, i64, u64)> = aggregate(&batch)
            .into_iter()
            .map(|r| {
                (r.title_id.as_str().to_owned(), r.month_label(), r.plays, r.watched_ms, r.completed_plays)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_owned(), "2025-01".to_owned(), 2, 3_000, 1),
                ("a".to_owned(), "2025-02".to_owned(), 1, 4_000, 1),
                ("b".to_owned(), "2025-01".to_owned(), 1, 8_000, 1),
            ]
        );
        // Additive: two halves give the same sums as the whole.
        let (x, y) = batch.split_at(2);
        let halves: u64 = aggregate(x).iter().chain(aggregate(y).iter()).map(|r| r.plays).sum();
        assert_eq!(halves, aggregate(&batch).iter().map(|r| r.plays).sum::<u64>());
    }
}
