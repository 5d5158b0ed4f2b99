//! Evaluation protocols: which plays are training and which are held out, per profile.
//!
//! - Temporal: one global cutoff, the time of the play at the `1 − test_fraction` quantile; every
//!   play at or before it trains. A profile is evaluated when it has a play before the cutoff and a
//!   held-out title after it. Its truth is, per item, the first title it played positively after
//!   the cutoff that it had not played before: so a show in progress contributes its next
//!   episode, not every remaining one.
//! - Leave-last-out: per profile, the last positive play of a title it had never played before is
//!   held out; training keeps everything of that profile before it (and every other profile's
//!   data). Recommendations are asked as of that play's time.
//!
//! Rule: the synthetic generator calls these same functions to place its oracle, so the split is
//! defined here once; change it here and the oracle follows.

use std::collections::HashSet;

use playhead_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::catalog::{ItemIdx, TitleIdx};
use crate::dataset::Dataset;

/// Default share of plays held out by the temporal protocol.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

/// An evaluation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Global time cutoff.
    Temporal,
    /// Each profile's last new positive.
    LeaveLastOut,
}

impl Protocol {
    /// Parse `temporal` or `leave-last-out`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "temporal" => Some(Self::Temporal),
            "leave-last-out" => Some(Self::LeaveLastOut),
            _ => None,
        }
    }

    /// The CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Temporal => "temporal",
            Self::LeaveLastOut => "leave-last-out",
        }
    }
}

/// One evaluated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Index into [`Dataset::profiles`].
    pub profile: usize,
    /// The profile's first `train_len` plays are its history.
    pub train_len: usize,
    /// Recommendations are asked as of this instant.
    pub now: Timestamp,
    /// Held-out playable titles.
    pub truth: Vec<TitleIdx>,
}

/// The split: queries plus how much of each profile trains.
#[derive(Debug, Clone)]
pub struct Split {
    /// The protocol.
    pub protocol: Protocol,
    /// Temporal cutoff (None for leave-last-out).
    pub cutoff: Option<Timestamp>,
    /// Per profile (index as in the dataset): plays that train.
    pub train_len: Vec<usize>,
    /// Evaluated profiles.
    pub queries: Vec<Query>,
}

/// The temporal cutoff: the time of the play at the `1 − test_fraction` quantile.
pub fn temporal_cutoff(ds: &Dataset, test_fraction: f64) -> Timestamp {
    let mut times: Vec<i64> = ds.plays.iter().flatten().map(|p| p.at).collect();
    if times.is_empty() {
        return Timestamp(0);
    }
    times.sort_unstable();
    let keep = ((1.0 - test_fraction.clamp(0.0, 1.0)) * times.len() as f64).ceil() as usize;
    Timestamp(times[keep.clamp(1, times.len()) - 1])
}

/// Split a dataset under a protocol.
pub fn split(ds: &Dataset, protocol: Protocol, test_fraction: f64) -> Split {
    match protocol {
        Protocol::Temporal => {
            let cutoff = temporal_cutoff(ds, test_fraction);
            let mut train_len = Vec::with_capacity(ds.plays.len());
            let mut queries = Vec::new();
            for (p, plays) in ds.plays.iter().enumerate() {
                let n = plays.partition_point(|pl| pl.at <= cutoff.0);
                train_len.push(n);
                if n == 0 {
                    continue;
                }
                let before: HashSet<TitleIdx> = plays[..n].iter().map(|pl| pl.title).collect();
                let mut items: HashSet<ItemIdx> = HashSet::new();
                let mut truth = Vec::new();
                for pl in &plays[n..] {
                    if pl.positive && !before.contains(&pl.title) && items.insert(pl.item) {
                        truth.push(pl.title);
                    }
                }
                if !truth.is_empty() {
                    queries.push(Query { profile: p, train_len: n, now: cutoff, truth });
                }
            }
            Split { protocol, cutoff: Some(cutoff), train_len, queries }
        }
        Protocol::LeaveLastOut => {
            let mut train_len = Vec::with_capacity(ds.plays.len());
            let mut queries = Vec::new();
            for (p, plays) in ds.plays.iter().enumerate() {
                match leave_last_out_index(plays.iter().map(|pl| (pl.title, pl.positive))) {
                    Some(k) if k > 0 => {
                        train_len.push(k);
                        queries.push(Query {
                            profile: p,
                            train_len: k,
                            now: Timestamp(plays[k].at),
                            truth: vec![plays[k].title],
                        });
                    }
                    _ => train_len.push(plays.len()),
                }
            }
            Split { protocol, cutoff: None, train_len, queries }
        }
    }
}

/// The index of the last positive play of a title not played earlier, over `(title, positive)`
/// in time order.
pub fn leave_last_out_index(plays: impl Iterator<Item = (TitleIdx, bool)>) -> Option<usize> {
    let mut seen = HashSet::new();
    let mut last = None;
    for (i, (t, pos)) in plays.enumerate() {
        if pos && !seen.contains(&t) {
            last = Some(i);
        }
        seen.insert(t);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Play;

    fn play(title: u32, item: u32, at: i64, positive: bool) -> Play {
        Play { title, item, at, positive, percent: None }
    }

    #[test]
    fn temporal_truth_is_the_first_new_title_per_item() {
        let ds = Dataset {
            profiles: vec!["a".into(), "b".into()],
            plays: vec![
                // Episodes 10, 11, 12 of show 1; movie 20 rewatched after the cutoff; movie 21 new.
                vec![
                    play(10, 1, 1, true),
                    play(20, 2, 2, true),
                    play(11, 1, 8, true),
                    play(12, 1, 9, true),
                    play(20, 2, 9, true),
                    play(21, 3, 10, true),
                ],
                vec![play(30, 4, 3, true), play(31, 5, 4, true), play(32, 6, 5, true), play(33, 7, 6, false)],
            ],
            interactions: 10,
            ..Dataset::default()
        };
        // 10 plays, 40% held out: the cutoff is the 6th smallest time, 6.
        let s = split(&ds, Protocol::Temporal, 0.4);
        assert_eq!(s.cutoff, Some(Timestamp(6)));
        assert_eq!(s.train_len, vec![2, 4]);
        assert_eq!(s.queries.len(), 1);
        assert_eq!(s.queries[0].truth, vec![11, 21]);
    }

    #[test]
    fn leave_last_out_skips_rewatches_and_partials() {
        let plays = [(1, true), (2, true), (3, false), (1, true)];
        assert_eq!(leave_last_out_index(plays.into_iter()), Some(1));
        assert_eq!(leave_last_out_index([(1, false)].into_iter()), None);
    }
}
