//! [`RecsStore`](playhead_core::ports::RecsStore) and the apply transaction's recommendation
//! counters ([`ViewingTx::count_play`](playhead_core::ports::ViewingTx::count_play)): training
//! reads in pages, feedback where the latest wins, impressions, co-watch pairs and sharded
//! trending counted once per play id and only when committed.

use playhead_core::ids::{PlayId, ProfileId, TitleId};
use playhead_core::ports::{Feedback, FeedbackKind, PlayQuery, StoredModel};
use playhead_core::rules::recs::{PlayCount, TRENDING_HALF_LIFE_MS, count_play, decay_weight};
use playhead_core::time::Timestamp;

use crate::Stores;
use crate::fixtures::{min, new_profile, play, store_viewings, tid, viewing};

const HALF_LIFE: i64 = 86_400_000;

/// Count a play the way the consumer does: read the window in the transaction, decide, write.
async fn count(s: &Stores, profile: ProfileId, id: PlayId, item: &str, at: Timestamp, commit: bool) -> bool {
    count_with(s, profile, id, item, at, commit, HALF_LIFE).await
}

async fn count_with(
    s: &Stores,
    profile: ProfileId,
    id: PlayId,
    item: &str,
    at: Timestamp,
    commit: bool,
    half_life: i64,
) -> bool {
    let mut tx = s.viewing.begin().await.expect("begin");
    let window = tx.recs_window(profile, 50).await.expect("recs_window");
    let c: PlayCount = count_play(profile, id, tid(item), at, &window, half_life);
    let counted = tx.count_play(&c).await.expect("count_play");
    if commit {
        tx.commit().await.expect("commit");
    }
    counted
}

fn names(v: &[(TitleId, u32, u32)]) -> Vec<(&str, u32, u32)> {
    v.iter().map(|(t, n, o)| (t.as_str(), *n, *o)).collect()
}

/// Training reads every play of every profile, in `(profile, play)` order, in pages without gaps
/// or repeats; sub-threshold viewings are not plays and are left out.
pub async fn training_plays_page_over_every_profile(s: &Stores) {
    let p1 = new_profile(s, 1).await;
    let p2 = new_profile(s, 2).await;
    let mut all = Vec::new();
    for (i, p) in [(1u128, p1), (2, p2), (3, p1), (4, p2), (5, p1)] {
        all.push(viewing(i, p, "m", None, min(i as i64 * 10), min(i as i64 * 10 + 5), true));
    }
    let not_a_play = viewing(9, p1, "m", None, min(100), min(101), false);
    let mut upsert = all.clone();
    upsert.push(not_a_play);
    store_viewings(s, &[], &upsert).await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.recs.training_plays(after, 2).await.expect("training_plays");
        assert!(page.len() <= 2, "a page is at most the limit");
        let done = page.len() < 2;
        after = page.last().map(|v| (v.profile_id, v.id));
        seen.extend(page);
        if done {
            break;
        }
    }
    let mut expected = all;
    expected.sort_by_key(|v| (v.profile_id, v.id));
    assert_eq!(seen, expected);
    // A play deleted through the port is no longer training data.
    s.viewing.delete_play(p1, play(1), min(200)).await.expect("delete_play");
    let left = s.recs.training_plays(None, 100).await.expect("training_plays");
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|v| v.id != play(1)));
    assert_eq!(
        s.viewing.plays(p1, &PlayQuery { limit: 10, ..Default::default() }).await.expect("plays").len(),
        2
    );
}

/// Feedback per (profile, title): the latest `at` wins, an older replay changes nothing, and
/// profiles do not see each other's.
pub async fn the_latest_feedback_wins(s: &Stores) {
    let p1 = new_profile(s, 1).await;
    let p2 = new_profile(s, 2).await;
    let f = |t: &str, kind, m| Feedback { title_id: tid(t), kind, at: min(m) };
    s.recs.set_feedback(p1, &f("a", FeedbackKind::Up, 1)).await.expect("set_feedback");
    s.recs.set_feedback(p1, &f("a", FeedbackKind::NotInterested, 3)).await.expect("set_feedback");
    s.recs.set_feedback(p1, &f("a", FeedbackKind::Down, 2)).await.expect("an older one");
    s.recs.set_feedback(p1, &f("b", FeedbackKind::Down, 1)).await.expect("set_feedback");
    s.recs.set_feedback(p2, &f("a", FeedbackKind::Up, 5)).await.expect("set_feedback");
    assert_eq!(
        s.recs.feedback(p1).await.expect("feedback"),
        vec![f("a", FeedbackKind::NotInterested, 3), f("b", FeedbackKind::Down, 1)]
    );
    assert_eq!(s.recs.feedback(p2).await.expect("feedback"), vec![f("a", FeedbackKind::Up, 5)]);
}

/// Impressions count showings per title (a title twice in one call counts once) and keep the
/// latest time shown.
pub async fn impressions_count_each_showing(s: &Stores) {
    let p = new_profile(s, 1).await;
    s.recs.record_impressions(p, &[tid("a"), tid("b"), tid("a")], min(2)).await.expect("record");
    s.recs.record_impressions(p, &[tid("a")], min(1)).await.expect("record");
    s.recs.record_impressions(p, &[], min(9)).await.expect("nothing to record");
    let got = s.recs.impressions(p).await.expect("impressions");
    let got: Vec<(&str, u32, Timestamp)> =
        got.iter().map(|i| (i.title_id.as_str(), i.shown, i.last_at)).collect();
    assert_eq!(got, vec![("a", 2, min(2)), ("b", 1, min(2))]);
    assert!(s.recs.impressions(new_profile(s, 2).await).await.expect("impressions").is_empty());
}

/// A play counts once per play id: pairs with the profile's window, its own count, and a trending
/// vote; a redelivery adds nothing, and an uncommitted count leaves no trace (not even its id).
pub async fn plays_count_once_for_cowatch_and_trending(s: &Stores) {
    let p = new_profile(s, 1).await;
    assert!(count(s, p, play(1), "a", min(1), false).await, "counted inside the transaction");
    assert!(s.recs.trending(10).await.expect("trending").is_empty(), "rolled back");
    assert!(count(s, p, play(1), "a", min(1), true).await, "the rolled-back id is free");
    assert!(count(s, p, play(2), "b", min(2), true).await);
    assert!(count(s, p, play(3), "c", min(3), true).await);
    assert!(!count(s, p, play(3), "c", min(3), true).await, "a redelivery counts nothing");
    // Re-watching a (still in the window) is counted as a play but adds no pair.
    assert!(count(s, p, play(4), "a", min(4), true).await);
    let a = s.recs.cowatch(&tid("a"), 10).await.expect("cowatch");
    assert_eq!(a.count, 1);
    assert_eq!(names(&a.neighbours), vec![("b", 1, 1), ("c", 1, 1)]);
    // A second profile pairs a and c again: c's neighbours are ordered by the pair count.
    let q = new_profile(s, 2).await;
    assert!(count(s, q, play(10), "c", min(1), true).await);
    assert!(count(s, q, play(11), "a", min(2), true).await);
    let c = s.recs.cowatch(&tid("c"), 10).await.expect("cowatch");
    assert_eq!(c.count, 2);
    assert_eq!(names(&c.neighbours), vec![("a", 2, 2), ("b", 1, 1)]);
    assert_eq!(names(&s.recs.cowatch(&tid("c"), 1).await.expect("cowatch").neighbours), vec![("a", 2, 2)]);
    assert_eq!(s.recs.cowatch(&tid("zz"), 10).await.expect("cowatch"), Default::default());
    // Trending: one vote each time an item enters a profile's window (the re-watch of a at minute
    // 4 is no vote); shards are summed on read, newer votes weigh more.
    let t = s.recs.trending(10).await.expect("trending");
    let items: Vec<&str> = t.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(items, vec!["c", "a", "b"]);
    let weight = |i: &str| t.iter().find(|(x, _)| x.as_str() == i).map(|(_, w)| *w).expect("voted");
    let one = |m: i64| decay_weight(min(m), HALF_LIFE);
    for (item, expected) in [("a", one(1) + one(2)), ("b", one(2)), ("c", one(3) + one(1))] {
        assert!((weight(item) - expected).abs() < 1e-9 * expected, "{item}: {} vs {expected}", weight(item));
    }
    assert_eq!(s.recs.trending(1).await.expect("trending").len(), 1);
}

/// Deleting a play takes it out of the live counters in the deleting transaction (the core's
/// `uncount_play`): its own count, its pairs (both ways) and its trending vote go; pairs other
/// plays make stay; a later play of the same item, which counted nothing while the deleted one
/// held its item in the window, now counts in its place.
pub async fn deleting_a_play_takes_it_out_of_the_counters(s: &Stores) {
    let p = new_profile(s, 1).await;
    let mine = [(1, "a", 1), (2, "b", 2), (3, "c", 3), (4, "a", 4)];
    let viewings: Vec<_> =
        mine.iter().map(|&(id, t, m)| viewing(id, p, t, None, min(m), min(m + 1), true)).collect();
    store_viewings(s, &[], &viewings).await;
    for (id, item, m) in mine {
        count_with(s, p, play(id), item, min(m), true, TRENDING_HALF_LIFE_MS).await;
    }
    // Another profile watches a with b.
    let q = new_profile(s, 2).await;
    count_with(s, q, play(10), "a", min(1), true, TRENDING_HALF_LIFE_MS).await;
    count_with(s, q, play(11), "b", min(2), true, TRENDING_HALF_LIFE_MS).await;
    assert_eq!(
        names(&s.recs.cowatch(&tid("b"), 10).await.expect("cowatch").neighbours),
        vec![("a", 2, 2), ("c", 1, 1)]
    );

    s.viewing.delete_play(p, play(2), min(10)).await.expect("delete_play");
    let b = s.recs.cowatch(&tid("b"), 10).await.expect("cowatch");
    assert_eq!(b.count, 1, "only the other profile's b is left");
    assert_eq!(names(&b.neighbours), vec![("a", 1, 2)], "b-c is gone, a-b is the other profile's");
    assert_eq!(names(&s.recs.cowatch(&tid("c"), 10).await.expect("cowatch").neighbours), vec![("a", 1, 2)]);
    let weight = |t: &[(TitleId, f64)], i: &str| t.iter().find(|(x, _)| x.as_str() == i).map(|(_, w)| *w);
    let one = |m: i64| decay_weight(min(m), TRENDING_HALF_LIFE_MS);
    let t = s.recs.trending(10).await.expect("trending");
    let b_weight = weight(&t, "b").expect("the other profile's vote");
    assert!((b_weight - one(2)).abs() < 1e-9 * one(2), "one vote for b left: {b_weight}");

    // Deleting the first a: the a at minute 4 enters the window instead, so a is still watched
    // (its count and its pair with c stay) and its vote moves to minute 4.
    s.viewing.delete_play(p, play(1), min(10)).await.expect("delete_play");
    let a = s.recs.cowatch(&tid("a"), 10).await.expect("cowatch");
    assert_eq!(a.count, 2);
    assert_eq!(names(&a.neighbours), vec![("b", 1, 1), ("c", 1, 1)]);
    let t = s.recs.trending(10).await.expect("trending");
    let a_weight = weight(&t, "a").expect("voted");
    let expected = one(1) + one(4);
    assert!((a_weight - expected).abs() < 1e-9 * expected, "{a_weight} vs {expected}");

    // Deleting a play that never counted (not a positive) changes nothing.
    let before = s.recs.cowatch(&tid("a"), 10).await.expect("cowatch");
    store_viewings(s, &[], &[viewing(5, p, "d", None, min(5), min(6), true)]).await;
    s.viewing.delete_play(p, play(5), min(10)).await.expect("delete_play");
    assert_eq!(s.recs.cowatch(&tid("a"), 10).await.expect("cowatch"), before);
}

/// The window is the profile's most recent counted plays by time, whatever order they were
/// counted in, most recent last.
pub async fn the_window_is_the_most_recent_counted_plays(s: &Stores) {
    let p = new_profile(s, 1).await;
    for (i, item, m) in [(1u128, "x", 5), (2, "y", 1), (3, "z", 3)] {
        assert!(count(s, p, play(i), item, min(m), true).await);
    }
    let other = new_profile(s, 2).await;
    let mut tx = s.viewing.begin().await.expect("begin");
    let w = tx.recs_window(p, 50).await.expect("recs_window");
    assert_eq!(w, vec![tid("y"), tid("z"), tid("x")]);
    assert_eq!(tx.recs_window(p, 2).await.expect("recs_window"), vec![tid("z"), tid("x")]);
    assert!(tx.recs_window(other, 50).await.expect("recs_window").is_empty());
}

fn stored(version: &str, trained_at: i64, body: &[u8]) -> StoredModel {
    StoredModel { version: version.to_owned(), trained_at: Timestamp(trained_at), body: body.to_vec() }
}

/// Models: the newest by training time is the latest (not the last stored: a slow trainer that
/// finishes late never takes over); a version is stored once; only the `keep` newest stay.
pub async fn models_are_served_newest_first_and_pruned(s: &Stores) {
    assert_eq!(s.recs.latest_model().await.expect("latest"), None);
    s.recs.put_model(&stored("v1", 1_000, b"one"), 2).await.expect("put");
    s.recs.put_model(&stored("v3", 3_000, &vec![7u8; 300_000]), 2).await.expect("put");
    // Trained before v3, stored after it.
    s.recs.put_model(&stored("v2", 2_000, b"two"), 2).await.expect("put");
    let latest = s.recs.latest_model().await.expect("latest").expect("a model");
    assert_eq!((latest.version.as_str(), latest.trained_at), ("v3", Timestamp(3_000)));
    assert_eq!(s.recs.model_body("v3").await.expect("body"), Some(vec![7u8; 300_000]), "bodies round-trip");
    assert_eq!(s.recs.model_body("v1").await.expect("body"), None, "the oldest beyond keep=2 is gone");
    assert_eq!(s.recs.model_body("v2").await.expect("body"), Some(b"two".to_vec()));
    // A second put of a version changes nothing.
    s.recs.put_model(&stored("v2", 9_000, b"other"), 2).await.expect("put");
    assert_eq!(s.recs.model_body("v2").await.expect("body"), Some(b"two".to_vec()));
    assert_eq!(s.recs.latest_model().await.expect("latest").expect("a model").version, "v3");
    assert_eq!(s.recs.model_body("nope").await.expect("body"), None);
}

/// The training lease: one holder at a time; renewable by its holder; free once expired or
/// released.
pub async fn the_training_lease_has_one_holder(s: &Stores) {
    let t = Timestamp;
    assert!(s.recs.lease_training("a", t(100), t(200)).await.expect("lease"), "a free lease is taken");
    assert!(!s.recs.lease_training("b", t(150), t(250)).await.expect("lease"), "held by a until 200");
    assert!(s.recs.lease_training("a", t(150), t(300)).await.expect("lease"), "its holder renews it");
    assert!(!s.recs.lease_training("b", t(299), t(400)).await.expect("lease"), "renewed to 300");
    assert!(s.recs.lease_training("b", t(300), t(400)).await.expect("lease"), "expired: b takes it");
    assert!(!s.recs.lease_training("a", t(310), t(500)).await.expect("lease"));
    // b releases it (until = now): anyone may take it at once.
    assert!(s.recs.lease_training("b", t(320), t(320)).await.expect("lease"));
    assert!(s.recs.lease_training("a", t(320), t(600)).await.expect("lease"));
}
