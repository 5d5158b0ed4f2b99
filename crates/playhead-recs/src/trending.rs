//! Trending: time-decayed popularity, kept in sharded counters so one hot title is not one hot row.
//!
//! Each counter cell holds `(value, as_of)`: the decayed sum as of `as_of`. Adding an event at `t`
//! decays the cell forward to `max(as_of, t)` and adds the event's weight decayed the same way,
//! so events may arrive late or out of order and the cell ends the same (up to float rounding).
//! A title's score at `now` is the sum over its shards of each cell decayed to `now`
//! (sum-on-read). The shard of an event is chosen from its play id ([`shard_for`]), so concurrent
//! plays of one hot title spread over `shards` rows instead of contending on one.
//!
//! Rule: what counts is a title *start* (the play that brings an item into the profile's
//! co-watch window, i.e. [`crate::cowatch::CoWatchDelta::item_increment`] = 1), so binge-watching
//! ten episodes is one vote for the show, not ten. A half-life of `None` is plain popularity.

use std::collections::HashMap;

use playhead_core::{Timestamp, TitleId};
use serde::{Deserialize, Serialize};

use crate::catalog::fnv1a;

/// Default number of shards per title.
pub const DEFAULT_SHARDS: u16 = 16;

/// Multiplier that decays a value over `dt_ms` with the given half-life (`None`: no decay).
pub fn decay_factor(dt_ms: i64, half_life_ms: Option<i64>) -> f64 {
    match half_life_ms {
        Some(h) if h > 0 => (-(dt_ms as f64) / h as f64).exp2(),
        _ => 1.0,
    }
}

/// The shard an event goes to: a stable hash of its key (the play id) modulo `shards`.
pub fn shard_for(event_key: &str, shards: u16) -> u16 {
    (fnv1a(event_key.as_bytes()) % u64::from(shards.max(1))) as u16
}

/// One counter cell: a decayed sum as of an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DecayedCounter {
    /// The sum, decayed to `as_of_ms`.
    pub value: f64,
    /// The instant `value` is expressed at (ms since the epoch).
    pub as_of_ms: i64,
}

impl DecayedCounter {
    /// Add `weight` for an event at `at`.
    pub fn add(&mut self, at: Timestamp, weight: f64, half_life_ms: Option<i64>) {
        if self.value == 0.0 {
            *self = Self { value: weight, as_of_ms: at.0 };
        } else if at.0 >= self.as_of_ms {
            self.value = self.value * decay_factor(at.0 - self.as_of_ms, half_life_ms) + weight;
            self.as_of_ms = at.0;
        } else {
            // A late event: decay it to the cell's instant instead of moving the cell back.
            self.value += weight * decay_factor(self.as_of_ms - at.0, half_life_ms);
        }
    }

    /// The value decayed to `now` (a cell newer than `now` is read as of its own instant).
    pub fn value_at(&self, now: Timestamp, half_life_ms: Option<i64>) -> f64 {
        self.value * decay_factor((now.0 - self.as_of_ms).max(0), half_life_ms)
    }
}

/// Sum-on-read: a title's score at `now` from its shard cells.
pub fn sum_on_read(cells: &[DecayedCounter], now: Timestamp, half_life_ms: Option<i64>) -> f64 {
    cells.iter().map(|c| c.value_at(now, half_life_ms)).sum()
}

/// In-memory sharded trending counters (the reference the stores mirror row for row).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrendingCounters {
    /// Half-life of a vote in ms; `None` for no decay (popularity).
    pub half_life_ms: Option<i64>,
    /// Shards per title.
    pub shards: u16,
    cells: HashMap<TitleId, Vec<DecayedCounter>>,
}

impl TrendingCounters {
    /// Empty counters.
    pub fn new(half_life_ms: Option<i64>, shards: u16) -> Self {
        Self { half_life_ms, shards: shards.max(1), cells: HashMap::new() }
    }

    /// Count a start of `item` at `at`, sharded by `event_key` (the play id).
    pub fn add(&mut self, item: &TitleId, event_key: &str, at: Timestamp) {
        let shards = self.shards;
        let cells =
            self.cells.entry(item.clone()).or_insert_with(|| vec![DecayedCounter::default(); shards.into()]);
        cells[usize::from(shard_for(event_key, shards))].add(at, 1.0, self.half_life_ms);
    }

    /// An item's score at `now`.
    pub fn score(&self, item: &TitleId, now: Timestamp) -> f64 {
        self.cells.get(item).map_or(0.0, |c| sum_on_read(c, now, self.half_life_ms))
    }

    /// The `top_n` items by score at `now`.
    pub fn snapshot(&self, now: Timestamp, top_n: usize) -> TrendingSnapshot {
        TrendingSnapshot::from_scores(now, self.cells.keys().map(|k| (k.clone(), self.score(k, now))), top_n)
    }
}

/// The trending list at one instant, best first: what serving reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrendingSnapshot {
    /// When it was computed.
    pub as_of: Timestamp,
    /// `(item id, score)`, highest first.
    pub scores: Vec<(TitleId, f64)>,
}

impl TrendingSnapshot {
    /// Keep the `top_n` positive scores, sorted (ties by id so snapshots are reproducible).
    pub fn from_scores(
        as_of: Timestamp,
        scores: impl IntoIterator<Item = (TitleId, f64)>,
        top_n: usize,
    ) -> Self {
        let mut scores: Vec<(TitleId, f64)> = scores.into_iter().filter(|(_, s)| *s > 0.0).collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        scores.truncate(top_n);
        Self { as_of, scores }
    }
}

/// Decayed scores over item indices for batch use (evaluation sweeps time forward).
#[derive(Debug, Clone)]
pub(crate) struct DecayedScores {
    pub half_life_ms: Option<i64>,
    pub cells: Vec<DecayedCounter>,
}

impl DecayedScores {
    pub fn new(n: usize, half_life_ms: Option<i64>) -> Self {
        Self { half_life_ms, cells: vec![DecayedCounter::default(); n] }
    }
    pub fn add(&mut self, item: u32, at: Timestamp) {
        self.cells[item as usize].add(at, 1.0, self.half_life_ms);
    }
    pub fn top(&self, now: Timestamp, top_n: usize) -> Vec<(u32, f64)> {
        let mut v: Vec<(u32, f64)> = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u32, c.value_at(now, self.half_life_ms)))
            .filter(|(_, s)| *s > 0.0)
            .collect();
        let k = top_n.min(v.len());
        if v.len() > k && k > 0 {
            v.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        v.truncate(k);
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn a_vote_halves_every_half_life() {
        let mut c = DecayedCounter::default();
        c.add(Timestamp(0), 1.0, Some(DAY));
        assert!((c.value_at(Timestamp(DAY), Some(DAY)) - 0.5).abs() < 1e-12);
        assert!((c.value_at(Timestamp(3 * DAY), Some(DAY)) - 0.125).abs() < 1e-12);
        assert_eq!(c.value_at(Timestamp(3 * DAY), None), 1.0);
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let times = [5 * DAY, 0, 2 * DAY, DAY / 3, 7 * DAY];
        let mut a = DecayedCounter::default();
        let mut b = DecayedCounter::default();
        for t in times {
            a.add(Timestamp(t), 1.0, Some(DAY));
        }
        for t in times.iter().rev() {
            b.add(Timestamp(*t), 1.0, Some(DAY));
        }
        let want: f64 = times.iter().map(|t| decay_factor(10 * DAY - t, Some(DAY))).sum();
        for c in [a, b] {
            assert!((c.value_at(Timestamp(10 * DAY), Some(DAY)) - want).abs() < 1e-12);
        }
    }

    #[test]
    fn shards_spread_one_title_and_sum_on_read() {
        let mut t = TrendingCounters::new(Some(DAY), 8);
        let hot = TitleId::parse("hot").unwrap();
        for i in 0..400 {
            t.add(&hot, &format!("play-{i}"), Timestamp(0));
        }
        let cells = &t.cells[&hot];
        assert!(cells.iter().all(|c| c.value > 20.0), "every shard takes a share: {cells:?}");
        assert!((t.score(&hot, Timestamp(DAY)) - 200.0).abs() < 1e-9);
        assert_eq!(shard_for("play-1", 8), shard_for("play-1", 8));
    }

    #[test]
    fn recent_starts_outrank_old_ones() {
        let mut t = TrendingCounters::new(Some(DAY), 4);
        let (old, new) = (TitleId::parse("old").unwrap(), TitleId::parse("new").unwrap());
        for i in 0..10 {
            t.add(&old, &format!("o{i}"), Timestamp(0));
        }
        for i in 0..3 {
            t.add(&new, &format!("n{i}"), Timestamp(5 * DAY));
        }
        let snap = t.snapshot(Timestamp(5 * DAY), 10);
        assert_eq!(snap.scores[0].0, new);
        let mut pop = TrendingCounters::new(None, 4);
        pop.add(&old, "x", Timestamp(0));
        pop.add(&old, "y", Timestamp(0));
        pop.add(&new, "z", Timestamp(5 * DAY));
        assert_eq!(pop.snapshot(Timestamp(5 * DAY), 10).scores[0].0, old);
    }
}
