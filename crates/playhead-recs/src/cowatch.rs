//! Co-watch item-kNN: how often two items were watched close together by the same profile.
//!
//! Counting rule: when a positive play of item i arrives and i is not already among the items of
//! the profile's other recent plays (the last [`WINDOW`]), i's count goes up by one and each
//! distinct item j of that window gets `pair(i, j) += 1`. So a pair is counted once, when the
//! second of its two items enters the window, whichever arrives first: the totals do not depend
//! on the order in which plays are delivered, and binge-watching a show does not inflate it.
//!
//! Idempotence rule: every update is keyed by the play id. [`CoWatch::record_play`] refuses a
//! play id it has applied; a store that persists counters must write the delta
//! ([`delta_for_play`]) and the applied play id in one transaction (DESIGN.md, "Delivery").
//!
//! Similarity is cosine with shrinkage: `c_ij / (sqrt(c_i · c_j) + shrink)`; the shrink term keeps
//! two items seen together once by one profile from looking identical.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use playhead_core::TitleId;
use serde::{Deserialize, Serialize};

use crate::ease::sort_desc_truncate;

/// How many of a profile's most recent plays a new play is paired with, and the window rule
/// itself: both live in the core (`playhead_core::rules::recs`), so the consumer's live counters
/// and training count exactly alike.
pub use playhead_core::rules::recs::{COWATCH_WINDOW as WINDOW, window_partners};

/// What one play changes: the item's own count and one increment per pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoWatchDelta {
    /// The played item (movie or series id).
    pub item: TitleId,
    /// 1 when the item entered the profile's window (it counts), 0 otherwise.
    pub item_increment: u32,
    /// `(a, b, +n)` with `a < b`: the pair counters to add to.
    pub pairs: Vec<(TitleId, TitleId, u32)>,
}

impl CoWatchDelta {
    /// Whether applying it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.item_increment == 0 && self.pairs.is_empty()
    }
}

/// The delta for a positive play of `new_play` by a profile whose other plays' items (most recent
/// last) are `recent`. Pure: the caller persists it with the play id.
pub fn delta_for_play(recent: &[TitleId], new_play: &TitleId) -> CoWatchDelta {
    match window_partners(recent, new_play) {
        None => CoWatchDelta { item: new_play.clone(), item_increment: 0, pairs: Vec::new() },
        Some(partners) => CoWatchDelta {
            item: new_play.clone(),
            item_increment: 1,
            pairs: partners
                .into_iter()
                .filter(|p| p != new_play)
                .map(|p| if p < *new_play { (p, new_play.clone(), 1) } else { (new_play.clone(), p, 1) })
                .collect(),
        },
    }
}

/// Co-watch counters keyed by item id, updated play by play. Serialisable so the binary can
/// persist and reload it; the set of applied play ids travels with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoWatch {
    /// Per item: how many profile windows it entered.
    items: BTreeMap<TitleId, u32>,
    /// Symmetric adjacency: `pairs[a][b] == pairs[b][a]` = times a and b shared a window.
    pairs: BTreeMap<TitleId, BTreeMap<TitleId, u32>>,
    /// Play ids already applied (the idempotence key).
    applied: BTreeSet<String>,
}

impl CoWatch {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count a positive play once: `recent` are the items of the profile's other plays, most
    /// recent last. Returns the delta applied, or `None` when `play_id` was already applied.
    pub fn record_play(
        &mut self,
        recent: &[TitleId],
        new_play: &TitleId,
        play_id: &str,
    ) -> Option<CoWatchDelta> {
        if self.applied.contains(play_id) {
            return None;
        }
        let delta = delta_for_play(recent, new_play);
        self.apply(play_id, &delta);
        Some(delta)
    }

    /// Apply a delta computed elsewhere (e.g. read back from the store). Returns `false` and
    /// changes nothing when `play_id` was already applied.
    pub fn apply(&mut self, play_id: &str, delta: &CoWatchDelta) -> bool {
        if !self.applied.insert(play_id.to_owned()) {
            return false;
        }
        if delta.item_increment > 0 {
            *self.items.entry(delta.item.clone()).or_default() += delta.item_increment;
        }
        for (a, b, n) in &delta.pairs {
            *self.pairs.entry(a.clone()).or_default().entry(b.clone()).or_default() += n;
            *self.pairs.entry(b.clone()).or_default().entry(a.clone()).or_default() += n;
        }
        true
    }

    /// Whether this play id was applied.
    pub fn is_applied(&self, play_id: &str) -> bool {
        self.applied.contains(play_id)
    }

    /// How many windows an item entered.
    pub fn item_count(&self, item: &TitleId) -> u32 {
        self.items.get(item).copied().unwrap_or(0)
    }

    /// How many times two items shared a window.
    pub fn pair_count(&self, a: &TitleId, b: &TitleId) -> u32 {
        self.pairs.get(a).and_then(|m| m.get(b)).copied().unwrap_or(0)
    }

    /// The `k` items most similar to `item` (cosine with `shrink`), best first.
    pub fn similar(&self, item: &TitleId, k: usize, shrink: f64) -> Vec<(TitleId, f64)> {
        let ci = f64::from(self.item_count(item));
        let Some(adj) = self.pairs.get(item) else { return Vec::new() };
        let mut out: Vec<(TitleId, f64)> = adj
            .iter()
            .map(|(j, &c)| (j.clone(), cosine(f64::from(c), ci, f64::from(self.item_count(j)), shrink)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    /// A serving index: each item's `k` nearest neighbours.
    pub fn index(&self, k: usize, shrink: f64) -> CoWatchIndex {
        let items: Vec<TitleId> = self.items.keys().cloned().collect();
        let pos: HashMap<&TitleId, u32> = items.iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        let neighbours = items
            .iter()
            .map(|t| {
                let mut row: Vec<(u32, f32)> = self
                    .similar(t, usize::MAX, shrink)
                    .into_iter()
                    .filter_map(|(j, s)| pos.get(&j).map(|&p| (p, s as f32)))
                    .collect();
                sort_desc_truncate(&mut row, k);
                row
            })
            .collect();
        CoWatchIndex { items, neighbours }
    }
}

/// Cosine similarity of two items from their co-count and own counts, shrunk toward 0.
pub fn cosine(pair: f64, a: f64, b: f64, shrink: f64) -> f64 {
    if pair <= 0.0 || a <= 0.0 || b <= 0.0 { 0.0 } else { pair / ((a * b).sqrt() + shrink) }
}

/// Precomputed co-watch neighbours, by item id: what serving reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CoWatchIndex {
    /// The items (positions are the indices used in `neighbours`).
    pub items: Vec<TitleId>,
    /// For each item, its nearest neighbours `(item position, similarity)`, best first.
    pub neighbours: Vec<Vec<(u32, f32)>>,
}

/// Co-watch counting over item indices, for batch training; same rule as [`CoWatch`].
#[derive(Debug, Default)]
pub(crate) struct CoCounts {
    pub items: HashMap<u32, u32>,
    pub pairs: HashMap<(u32, u32), u32>,
}

impl CoCounts {
    /// Count one profile's positive plays (items, in time order). Returns the plays that entered
    /// the window (the "starts" trending counts), as indices into `plays`.
    pub fn add_profile(&mut self, plays: &[u32]) -> Vec<usize> {
        let mut starts = Vec::new();
        for (n, &item) in plays.iter().enumerate() {
            if let Some(partners) = window_partners(&plays[..n], &item) {
                starts.push(n);
                *self.items.entry(item).or_default() += 1;
                for p in partners {
                    if p != item {
                        *self.pairs.entry((p.min(item), p.max(item))).or_default() += 1;
                    }
                }
            }
        }
        starts
    }

    /// Neighbour lists over `n` items (index = item index), `k` per item.
    pub fn neighbours(&self, n: usize, k: usize, shrink: f64) -> Vec<Vec<(u32, f32)>> {
        let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for (&(a, b), &c) in &self.pairs {
            let ca = f64::from(self.items.get(&a).copied().unwrap_or(0));
            let cb = f64::from(self.items.get(&b).copied().unwrap_or(0));
            let s = cosine(f64::from(c), ca, cb, shrink) as f32;
            if s > 0.0 && (a as usize) < n && (b as usize) < n {
                rows[a as usize].push((b, s));
                rows[b as usize].push((a, s));
            }
        }
        for r in &mut rows {
            sort_desc_truncate(r, k);
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TitleId {
        TitleId::parse(s).unwrap()
    }

    /// Replays plays of several profiles in a given delivery order. Each play carries the items
    /// of that profile's plays the store already holds at delivery (as the consumer would read).
    fn deliver(order: &[usize], plays: &[(&str, &str, &str)]) -> CoWatch {
        let mut cw = CoWatch::new();
        let mut seen: HashMap<&str, Vec<TitleId>> = HashMap::new();
        for &i in order {
            let (profile, item, play_id) = plays[i];
            let recent = seen.get(profile).cloned().unwrap_or_default();
            cw.record_play(&recent, &id(item), play_id);
            seen.entry(profile).or_default().push(id(item));
        }
        cw
    }

    const PLAYS: [(&str, &str, &str); 7] = [
        ("p1", "a", "1"),
        ("p1", "b", "2"),
        ("p1", "show", "3"),
        ("p1", "show", "4"),
        ("p2", "a", "5"),
        ("p2", "show", "6"),
        ("p2", "c", "7"),
    ];

    #[test]
    fn counts_pairs_once_per_profile_window() {
        let cw = deliver(&[0, 1, 2, 3, 4, 5, 6], &PLAYS);
        assert_eq!(cw.pair_count(&id("a"), &id("show")), 2);
        assert_eq!(cw.pair_count(&id("show"), &id("a")), 2);
        assert_eq!(cw.pair_count(&id("a"), &id("b")), 1);
        assert_eq!(cw.pair_count(&id("b"), &id("c")), 0);
        // The second episode of the show added nothing: the show was already in the window.
        assert_eq!(cw.item_count(&id("show")), 2);
    }

    #[test]
    fn redelivery_counts_nothing_twice() {
        let once = deliver(&[0, 1, 2, 3, 4, 5, 6], &PLAYS);
        let mut twice = once.clone();
        let recent = vec![id("a"), id("b")];
        assert!(twice.record_play(&recent, &id("show"), "3").is_none());
        let delta = delta_for_play(&recent, &id("show"));
        assert!(!twice.apply("6", &delta));
        assert_eq!(twice, once);
    }

    #[test]
    fn delivery_order_does_not_change_the_counts() {
        let base = deliver(&[0, 1, 2, 3, 4, 5, 6], &PLAYS);
        for order in [[6, 5, 4, 3, 2, 1, 0], [3, 0, 6, 1, 4, 2, 5], [4, 2, 6, 0, 5, 3, 1]] {
            let other = deliver(&order, &PLAYS);
            assert_eq!(other.items, base.items, "order {order:?}");
            assert_eq!(other.pairs, base.pairs, "order {order:?}");
        }
    }

    #[test]
    fn only_the_last_fifty_plays_pair() {
        let recent: Vec<TitleId> = (0..60).map(|i| id(&format!("m{i}"))).collect();
        let d = delta_for_play(&recent, &id("x"));
        assert_eq!(d.pairs.len(), WINDOW);
        assert!(d.pairs.iter().all(|(a, b, _)| a != &id("m0") && b != &id("m0")));
        assert!(d.pairs.iter().all(|(a, b, _)| a < b));
    }

    #[test]
    fn batch_counting_matches_incremental_counting() {
        let mut cc = CoCounts::default();
        let names = ["a", "b", "show", "c"];
        cc.add_profile(&[0, 1, 2, 2]);
        cc.add_profile(&[0, 2, 3]);
        let cw = deliver(&[0, 1, 2, 3, 4, 5, 6], &PLAYS);
        for (i, a) in names.iter().enumerate() {
            assert_eq!(cc.items.get(&(i as u32)).copied().unwrap_or(0), cw.item_count(&id(a)));
            for (j, b) in names.iter().enumerate().skip(i + 1) {
                let c = cc.pairs.get(&(i as u32, j as u32)).copied().unwrap_or(0);
                assert_eq!(c, cw.pair_count(&id(a), &id(b)), "{a} {b}");
            }
        }
    }

    #[test]
    fn similarity_is_shrunk_cosine_and_state_round_trips() {
        let cw = deliver(&[0, 1, 2, 3, 4, 5, 6], &PLAYS);
        let sim = cw.similar(&id("a"), 10, 1.0);
        assert_eq!(sim[0].0, id("show"));
        assert!((sim[0].1 - 2.0 / (4.0f64.sqrt() + 1.0)).abs() < 1e-12);
        let json = serde_json::to_string(&cw).unwrap();
        let back: CoWatch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cw);
        let idx = cw.index(1, 1.0);
        assert_eq!(idx.neighbours.len(), idx.items.len());
        assert!(idx.neighbours.iter().all(|r| r.len() <= 1));
    }
}
