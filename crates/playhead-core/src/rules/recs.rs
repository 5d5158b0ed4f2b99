//! Recommendation counters the event consumer keeps (DESIGN.md, "Delivery"): co-watch pairs and
//! sharded trending votes, updated in the apply transaction and keyed by play id.
//!
//! Rules kept here:
//! - A play counts for co-watch only when its item (a movie, or the series of an episode) is not
//!   already among the items of the profile's last [`COWATCH_WINDOW`] counted plays; it then pairs
//!   once with each distinct item of that window. So a pair is counted when the second of its two
//!   items enters the window, and a binge of one show adds no pairs after its first episode.
//! - A play votes for trending when its item enters the window (so a binge of one show is one
//!   vote, as in the engine's training). The vote goes to one of [`TRENDING_SHARDS`] rows chosen
//!   by a hash of the play id, so a hot title is many rows, not one hot row; readers sum them.
//! - Votes are forward-decayed: a vote at `at` weighs `2^((at - epoch) / half_life)`; dividing the
//!   sum by the weight of "now" gives the decayed count, so no stored value ever needs rewriting.
//!
//! The window rule ([`window_partners`]) is defined here once; `playhead-recs` trains with it.

use crate::ids::{PlayId, ProfileId, TitleId};
use crate::time::Timestamp;

/// How many of a profile's most recent counted plays a new play is paired with.
pub const COWATCH_WINDOW: usize = 50;
/// Rows per title for trending votes.
pub const TRENDING_SHARDS: u32 = 16;
/// Half-life of trending votes (3 days, the engine's tuned default). Stored weights are relative
/// to it: changing it means resetting the trending table.
pub const TRENDING_HALF_LIFE_MS: i64 = 3 * 86_400_000;
/// Backfilled plays that started within this horizon of now enter the live counters; older ones
/// reach recommendations at the next training, which reads every play (decision 0108). The live
/// counters carry what happened since the model was trained, not imported history: counting a
/// play costs one statement per partner in the window (50), and a history import of 100,000
/// years-old plays counted that way took minutes, for trending votes that weigh nothing.
/// Seven days: votes older than that weigh under a fifth (3-day half-life), and a device's
/// offline plays sync well within it.
pub const LIVE_BACKFILL_HORIZON_MS: i64 = 7 * 86_400_000;
/// Whether a backfilled play that started at `started` (now being `now`) enters the live counters.
pub fn counts_live(started: Timestamp, now: Timestamp) -> bool {
    started.0 >= now.0 - LIVE_BACKFILL_HORIZON_MS
}
/// A play is a positive (a co-watch pair and a trending vote) at or above this share of the title
/// watched, or when completed: the engine's training threshold (`playhead_recs::data`).
pub const POSITIVE_PCT: f64 = 50.0;

/// Whether a play counts for co-watch and trending.
pub fn is_positive(completed: bool, watched_ms: i64, duration_ms: i64) -> bool {
    completed || (duration_ms > 0 && watched_ms as f64 * 100.0 >= POSITIVE_PCT * duration_ms as f64)
}

/// The item a title's plays count toward: an episode's series, otherwise the title itself.
pub fn item_of(title: &crate::title::Title) -> TitleId {
    title.series_or_self().clone()
}

/// Start of the forward-decay clock (2026-01-01T00:00:00Z): weights stay far from f64 overflow
/// for decades at any half-life of a day or more.
pub const DECAY_EPOCH_MS: i64 = 1_767_225_600_000;

/// What one positive play changes, computed before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayCount {
    /// The profile.
    pub profile_id: ProfileId,
    /// The idempotence key.
    pub play_id: PlayId,
    /// The item: a movie's id, or an episode's series id.
    pub item: TitleId,
    /// When the play started.
    pub at: Timestamp,
    /// Items to pair with (empty when the item was already in the window).
    pub partners: Vec<TitleId>,
    /// Whether the item entered the window (its own co-watch count goes up).
    pub counts: bool,
    /// Trending shard of this play.
    pub shard: u32,
    /// Forward-decayed trending weight of this vote.
    pub weight: f64,
}

/// The co-watch window rule, the only copy (the consumer's counters and the engine's training
/// both call it): the distinct items a new play of `new` pairs with, given the items of the
/// profile's other counted plays, most recent last (only the last [`COWATCH_WINDOW`] matter).
/// `None` when `new` is already in that window: its pairs were counted when it entered.
pub fn window_partners<K: PartialEq + Clone>(recent: &[K], new: &K) -> Option<Vec<K>> {
    let window = &recent[recent.len().saturating_sub(COWATCH_WINDOW)..];
    if window.contains(new) {
        return None;
    }
    let mut out: Vec<K> = Vec::with_capacity(window.len());
    for k in window {
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    Some(out)
}

/// Decide what a positive play of `item` adds, given the items of the profile's other counted
/// plays, most recent last (only the last [`COWATCH_WINDOW`] matter).
pub fn count_play(
    profile_id: ProfileId,
    play_id: PlayId,
    item: TitleId,
    at: Timestamp,
    recent: &[TitleId],
    half_life_ms: i64,
) -> PlayCount {
    let (counts, partners) = match window_partners(recent, &item) {
        Some(p) => (true, p),
        None => (false, Vec::new()),
    };
    PlayCount {
        profile_id,
        play_id,
        shard: shard_of(play_id),
        weight: decay_weight(at, half_life_ms),
        item,
        at,
        partners,
        counts,
    }
}

/// The trending shard of a play (FNV-1a of its id: stable across processes and versions).
pub fn shard_of(play_id: PlayId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in play_id.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % TRENDING_SHARDS
}

/// Forward-decay weight of a vote at `at`.
pub fn decay_weight(at: Timestamp, half_life_ms: i64) -> f64 {
    ((at.0 - DECAY_EPOCH_MS) as f64 / half_life_ms.max(1) as f64).exp2()
}

/// The decayed count at `now` of a sum of forward-decayed weights.
pub fn decayed(sum: f64, now: Timestamp, half_life_ms: i64) -> f64 {
    sum / decay_weight(now, half_life_ms)
}

/// What one profile's counted plays added to the shared counters, to be taken out again when the
/// profile is erased (decision 0086).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Uncount {
    /// `(a, b, n)`: co-watch rows to decrease by `n` (`b` empty: `a`'s own count).
    pub pairs: Vec<(TitleId, String, u32)>,
    /// `(item, shard, weight)`: trending votes to subtract.
    pub votes: Vec<(TitleId, u32, f64)>,
}

/// Replay the window rule over a profile's counted plays `(play, item, at)` in `(at, play)`
/// order and collect what they added. Plays counted out of that order may have paired with a
/// slightly different window when they arrived; the difference is bounded by the window, and
/// the adapter never lets a counter go below zero.
pub fn uncount(plays: &[(PlayId, TitleId, Timestamp)], half_life_ms: i64) -> Uncount {
    let mut sorted: Vec<&(PlayId, TitleId, Timestamp)> = plays.iter().collect();
    sorted.sort_by_key(|x| (x.2, x.0));
    let mut pairs: std::collections::BTreeMap<(TitleId, String), u32> = std::collections::BTreeMap::new();
    let mut votes = Vec::new();
    let mut recent: Vec<TitleId> = Vec::new();
    for (play, item, at) in sorted {
        if let Some(partners) = window_partners(&recent, item) {
            *pairs.entry((item.clone(), String::new())).or_default() += 1;
            for p in partners {
                *pairs.entry((item.clone(), p.as_str().to_owned())).or_default() += 1;
                *pairs.entry((p.clone(), item.as_str().to_owned())).or_default() += 1;
            }
            votes.push((item.clone(), shard_of(*play), decay_weight(*at, half_life_ms)));
        }
        recent.push(item.clone());
    }
    Uncount { pairs: pairs.into_iter().map(|((a, b), n)| (a, b, n)).collect(), votes }
}

/// A signed change to the shared counters (deleting one play: decision 0108).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CounterDelta {
    /// `(a, b, n)`: co-watch rows to change by `n` (`b` empty: `a`'s own count); a negative `n`
    /// takes out. The adapter never lets a counter go below zero.
    pub pairs: Vec<(TitleId, String, i64)>,
    /// `(item, shard, weight)`: trending weight to add (negative takes a vote out), one entry
    /// per `(item, shard)`, in that order.
    pub votes: Vec<(TitleId, u32, f64)>,
}

impl CounterDelta {
    /// Nothing changes.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.votes.is_empty()
    }
}

/// What deleting the counted play `deleted` changes: the [`uncount`] replay of the profile's
/// counted plays `(play, item, at)` without it, minus the replay with it. Not just "take out what
/// it added": a later play of the same item that counted nothing (its item was already in the
/// window because of the deleted play) now enters the window itself, so its pairs and its vote
/// stay. Plays counted out of time order carry the same bounded difference as [`uncount`].
pub fn uncount_play(
    plays: &[(PlayId, TitleId, Timestamp)],
    deleted: PlayId,
    half_life_ms: i64,
) -> CounterDelta {
    let before = uncount(plays, half_life_ms);
    let rest: Vec<(PlayId, TitleId, Timestamp)> = plays.iter().filter(|p| p.0 != deleted).cloned().collect();
    let after = uncount(&rest, half_life_ms);
    let mut pairs: std::collections::BTreeMap<(TitleId, String), i64> = std::collections::BTreeMap::new();
    for (a, b, n) in after.pairs {
        *pairs.entry((a, b)).or_default() += i64::from(n);
    }
    for (a, b, n) in before.pairs {
        *pairs.entry((a, b)).or_default() -= i64::from(n);
    }
    // Votes are per play, computed identically in both replays: a vote present in both cancels
    // exactly (compared bit for bit), so no rounding residue is ever written.
    let mut removed = before.votes;
    let mut votes = Vec::new();
    for v in after.votes {
        match removed.iter().position(|r| r.0 == v.0 && r.1 == v.1 && r.2.to_bits() == v.2.to_bits()) {
            Some(i) => {
                removed.swap_remove(i);
            }
            None => votes.push(v),
        }
    }
    votes.extend(removed.into_iter().map(|(item, shard, w)| (item, shard, -w)));
    // One entry per row: a statement may change each row once.
    let mut by_row: std::collections::BTreeMap<(TitleId, u32), f64> = std::collections::BTreeMap::new();
    for (item, shard, w) in votes {
        *by_row.entry((item, shard)).or_default() += w;
    }
    CounterDelta {
        pairs: pairs.into_iter().filter(|(_, n)| *n != 0).map(|((a, b), n)| (a, b, n)).collect(),
        votes: by_row.into_iter().map(|((item, shard), w)| (item, shard, w)).collect(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_recent_backfilled_plays_count_live() {
        let now = Timestamp(100 * 86_400_000);
        assert!(counts_live(now, now));
        assert!(counts_live(Timestamp(now.0 - LIVE_BACKFILL_HORIZON_MS), now), "the horizon is inclusive");
        assert!(!counts_live(Timestamp(now.0 - LIVE_BACKFILL_HORIZON_MS - 1), now));
        assert!(
            !counts_live(Timestamp(now.0 - 400 * 86_400_000), now),
            "an imported year-old play waits for training"
        );
    }

    use super::*;

    fn pid() -> PlayId {
        PlayId::from_uuid(uuid::Uuid::new_v4())
    }

    fn t(s: &str) -> TitleId {
        TitleId::parse(s).expect("title id")
    }

    #[test]
    fn uncount_takes_out_what_counting_in_order_added() {
        let (p1, p2, p3) = (pid(), pid(), pid());
        let plays = vec![(p2, t("b"), Timestamp(2)), (p1, t("a"), Timestamp(1)), (p3, t("a"), Timestamp(3))];
        let u = uncount(&plays, 1);
        // a enters (own count), b enters and pairs with a both ways; the second a is in the window.
        let find = |a: &str, b: &str| u.pairs.iter().find(|(x, y, _)| x.as_str() == a && y == b).map(|p| p.2);
        assert_eq!(find("a", ""), Some(1));
        assert_eq!(find("b", ""), Some(1));
        assert_eq!(find("a", "b"), Some(1));
        assert_eq!(find("b", "a"), Some(1));
        assert_eq!(u.pairs.len(), 4);
        assert_eq!(u.votes.len(), 2, "one vote per item entering the window");
    }

    #[test]
    fn deleting_a_play_takes_out_only_what_no_other_play_keeps() {
        let (p1, p2, p3) = (pid(), pid(), pid());
        let plays = vec![(p1, t("a"), Timestamp(1)), (p2, t("b"), Timestamp(2)), (p3, t("c"), Timestamp(3))];
        // Deleting b: its own count, its pairs with a and c (both ways) and its vote go.
        let d = uncount_play(&plays, p2, 1);
        let mut pairs: Vec<(&str, &str, i64)> =
            d.pairs.iter().map(|(a, b, n)| (a.as_str(), b.as_str(), *n)).collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            vec![("a", "b", -1), ("b", "", -1), ("b", "a", -1), ("b", "c", -1), ("c", "b", -1)]
        );
        assert_eq!(d.votes, vec![(t("b"), shard_of(p2), -decay_weight(Timestamp(2), 1))]);
        // a, b, a again: the second a counted nothing while the first held a in the window.
        // Deleting the first a moves a's entry (and vote) to the second; the a-b pair stays.
        // (Play ids in different trending shards, so the moved vote shows as two entries; in one
        // shard they would net out, to nothing at this half-life.)
        let p3 = std::iter::repeat_with(pid).find(|p| shard_of(*p) != shard_of(p1)).expect("a play id");
        let plays = vec![(p1, t("a"), Timestamp(1)), (p2, t("b"), Timestamp(2)), (p3, t("a"), Timestamp(3))];
        let d = uncount_play(&plays, p1, 1);
        assert!(d.pairs.is_empty(), "a is still watched with b: {:?}", d.pairs);
        let mut expected = vec![
            (t("a"), shard_of(p1), -decay_weight(Timestamp(1), 1)),
            (t("a"), shard_of(p3), decay_weight(Timestamp(3), 1)),
        ];
        expected.sort_by_key(|x| x.1);
        assert_eq!(d.votes, expected);
        // Deleting a play that counted nothing changes nothing.
        assert!(uncount_play(&plays, p3, 1).is_empty());
        assert!(uncount_play(&plays, pid(), 1).is_empty(), "an unknown play");
    }

    #[test]
    fn a_new_item_pairs_once_with_each_distinct_recent_item() {
        let recent = [t("a"), t("b"), t("a")];
        let c =
            count_play(ProfileId::from_uuid(uuid::Uuid::new_v4()), pid(), t("c"), Timestamp(0), &recent, 1);
        assert!(c.counts);
        assert_eq!(c.partners, vec![t("a"), t("b")]);
    }

    #[test]
    fn an_item_already_in_the_window_adds_nothing() {
        let recent = [t("a"), t("b")];
        let c =
            count_play(ProfileId::from_uuid(uuid::Uuid::new_v4()), pid(), t("a"), Timestamp(0), &recent, 1);
        assert!(!c.counts);
        assert!(c.partners.is_empty());
    }

    #[test]
    fn only_the_last_fifty_plays_are_the_window() {
        let mut recent = vec![t("old")];
        recent.extend((0..COWATCH_WINDOW).map(|i| t(&format!("x{i}"))));
        let c =
            count_play(ProfileId::from_uuid(uuid::Uuid::new_v4()), pid(), t("old"), Timestamp(0), &recent, 1);
        assert!(c.counts, "the first play fell out of the window");
        assert_eq!(c.partners.len(), COWATCH_WINDOW);
    }

    #[test]
    fn half_watched_or_completed_plays_are_positives() {
        assert!(is_positive(true, 0, 0));
        assert!(is_positive(false, 50, 100));
        assert!(!is_positive(false, 49, 100));
        assert!(!is_positive(false, 10, 0), "no duration: only completion counts");
    }

    #[test]
    fn decay_halves_per_half_life() {
        let h = 86_400_000;
        let w = decay_weight(Timestamp(DECAY_EPOCH_MS + 10 * h), h);
        let now = Timestamp(DECAY_EPOCH_MS + 11 * h);
        assert!((decayed(w, now, h) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn shards_spread_plays() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let s = shard_of(pid());
            assert!(s < TRENDING_SHARDS);
            seen.insert(s);
        }
        assert_eq!(seen.len(), TRENDING_SHARDS as usize);
    }
}
