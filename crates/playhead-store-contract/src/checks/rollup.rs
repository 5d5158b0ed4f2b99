//! The retention roll-up ([`Pruner::roll_up`](playhead_core::ports::Pruner::roll_up) and
//! [`ViewingStore::rollups`](playhead_core::ports::ViewingStore::rollups), decision 0083).

use playhead_core::ids::{PlayId, TitleId};
use playhead_core::ports::{PlayQuery, RollupQuery, Viewing};
use playhead_core::rules::rollup::PlayRollup;
use playhead_core::time::Timestamp;

use crate::Stores;
use crate::fixtures::{event, explicit, held, implicit, in_session, new_profile, play, queued, tid, viewing};

fn utc(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("an RFC 3339 instant")
}

/// A play of `title` in `key`'s group from `from` for `minutes`.
fn old_play(
    id: u128,
    p: playhead_core::ids::ProfileId,
    title: &str,
    key: playhead_core::rules::viewing::SessionKey,
    from: &str,
    minutes: i64,
    completed: bool,
) -> Viewing {
    let from = utc(from);
    let mut v = viewing(id, p, title, Some(key), from, from.plus_ms(minutes * 60_000), true);
    v.completed = completed;
    v
}

fn figures(r: &[PlayRollup]) -> Vec<(String, String, u64, i64, u64)> {
    r.iter()
        .map(|r| (r.month_label(), r.title_id.as_str().to_owned(), r.plays, r.watched_ms, r.completed_plays))
        .collect()
}

async fn rollups(s: &Stores, p: playhead_core::ids::ProfileId, q: RollupQuery) -> Vec<PlayRollup> {
    s.viewing.rollups(p, &RollupQuery { limit: 10, ..q }).await.expect("rollups")
}

/// Viewings that ended before the cutoff become per-(month, title) sums and go with their raw
/// events, batch by batch; plays after the cutoff, one that ends after it, watched marks, held
/// and queued events stay; tombstones before the cutoff go with the events they covered; a
/// second run changes nothing; roll-ups page newest first and filter like plays.
pub async fn old_plays_roll_up_into_months_once(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let cutoff = utc("2026-12-01T00:00:00Z");
    let s1 = old_play(1, p, "a", explicit("s1"), "2026-11-03T20:00:00Z", 10, true);
    let tv = old_play(2, p, "a", implicit(Some("tv")), "2026-11-20T20:00:00Z", 4, false);
    let b = old_play(3, p, "b", implicit(Some("tv")), "2026-10-31T23:58:00Z", 5, true);
    let mut short = old_play(4, p, "a", implicit(Some("tv")), "2026-11-25T20:00:00Z", 1, false);
    short.is_play = false;
    let straddles = old_play(5, p, "c", implicit(Some("tv")), "2026-11-30T23:55:00Z", 10, true);
    let recent = old_play(6, p, "a", implicit(Some("tv")), "2026-12-02T20:00:00Z", 10, true);
    let theirs = old_play(7, other, "a", implicit(Some("tv")), "2026-11-03T20:00:00Z", 10, true);
    let deleted = old_play(8, p, "d", implicit(Some("tv")), "2026-09-01T20:00:00Z", 10, true);
    // Raw events behind the plays: applied ones, one still queued, one held.
    let ev = |n: u128, title: &str, at: Timestamp| event(p, title, n, at);
    let applied = vec![
        in_session(ev(11, "a", s1.started_at), "s1"),
        in_session(ev(12, "a", s1.ended_at), "s1"),
        ev(21, "a", tv.started_at),
        ev(22, "a", tv.ended_at),
        ev(31, "b", b.started_at),
        ev(51, "c", straddles.started_at),
        ev(61, "a", recent.started_at),
        ev(81, "d", deleted.started_at),
        ev(82, "d", deleted.ended_at),
    ];
    let mut tx = s.viewing.begin().await.expect("begin");
    for e in &applied {
        tx.record_applied(e).await.expect("record_applied");
    }
    tx.commit().await.expect("commit");
    let waiting = in_session(ev(13, "a", s1.started_at.plus_ms(60_000)), "s1");
    let premiere = ev(99, "new", s1.started_at);
    s.log.append(&[queued(&waiting), held(&premiere)], 1_000).await.expect("append");
    let all = [&s1, &tv, &b, &short, &straddles, &recent, &theirs, &deleted].map(Clone::clone);
    crate::fixtures::store_viewings(s, &[], &all).await;
    s.viewing.delete_play(p, deleted.id, utc("2026-09-02T00:00:00Z")).await.expect("delete_play");
    let mark = s.viewing.mark_watched(p, &[(tid("m"), play(9))], utc("2026-10-01T00:00:00Z"), false).await;
    mark.expect("mark_watched");

    let mut total = playhead_core::ports::RolledUp::default();
    let mut batches = 0;
    loop {
        let n = s.pruner.roll_up(cutoff, 2).await.expect("roll_up");
        assert!(n.viewings <= 2 && n.tombstones <= 2, "a batch is at most 2 rows of each: {n:?}");
        if n.is_empty() {
            break;
        }
        batches += 1;
        total.plays += n.plays;
        total.viewings += n.viewings;
        total.events += n.events;
        total.tombstones += n.tombstones;
        assert!(batches < 10, "the roll-up never finished");
    }
    assert!(batches >= 3, "5 viewings in batches of 2");
    assert_eq!((total.plays, total.viewings, total.tombstones), (4, 5, 1), "{total:?}");
    assert_eq!(total.events, 7, "s1 (2), tv (2), b (1) and the deleted play's (2)");

    let got = rollups(s, p, RollupQuery::default()).await;
    // a in November: s1 (10 min, completed) + tv (4 min); b counts in October, where it started.
    let expected = vec![
        ("2026-11".to_owned(), "a".to_owned(), 2, 14 * 60_000, 1),
        ("2026-10".to_owned(), "b".to_owned(), 1, 5 * 60_000, 1),
    ];
    assert_eq!(figures(&got), expected);
    assert_eq!(got[0].month, utc("2026-11-01T00:00:00Z"));
    assert_eq!(figures(&rollups(s, other, RollupQuery::default()).await).len(), 1, "each profile its own");

    // What stays: the plays after the cutoff and across it, the mark, and their events.
    let plays = s.viewing.plays(p, &PlayQuery { limit: 10, ..PlayQuery::default() }).await.expect("plays");
    let ids: Vec<PlayId> = plays.iter().map(|v| v.id).collect();
    assert_eq!(ids, [recent.id, straddles.id, play(9)], "newest first");
    let mut tx = s.viewing.begin().await.expect("begin");
    let s1_events =
        tx.events(p, &tid("a"), &explicit("s1"), s1.started_at, s1.ended_at).await.expect("events");
    let left: Vec<_> = s1_events.iter().map(|g| g.event.event_id).collect();
    assert_eq!(left, [waiting.event_id], "the event not applied yet stays");
    let c = tx.events(p, &tid("c"), &implicit(Some("tv")), straddles.started_at, straddles.ended_at).await;
    assert_eq!(c.expect("events").len(), 1, "a play that ended after the cutoff keeps its events");
    let d = tx.events(p, &tid("d"), &implicit(Some("tv")), deleted.started_at, deleted.ended_at).await;
    assert!(d.expect("events").is_empty(), "a deleted play's events went with its tombstone");
    drop(tx);
    assert_eq!(s.log.held_for_profile(p).await.expect("held"), 1, "held events stay");

    // Idempotent: nothing more to do, nothing changes.
    assert!(s.pruner.roll_up(cutoff, 2).await.expect("roll_up").is_empty());
    assert_eq!(figures(&rollups(s, p, RollupQuery::default()).await), expected);

    // Watched state and counts include the roll-ups.
    let counts = s.viewing.watch_counts(p, &[tid("a"), tid("b")]).await.expect("watch_counts");
    let mut counts: Vec<(String, u32, bool)> =
        counts.into_iter().map(|c| (c.title_id.as_str().to_owned(), c.plays, c.watched)).collect();
    counts.sort();
    assert_eq!(counts, [("a".to_owned(), 3, true), ("b".to_owned(), 1, true)]);
    let mut watched: Vec<TitleId> = s.viewing.watched_titles(p).await.expect("watched_titles");
    watched.sort();
    assert_eq!(watched, [tid("a"), tid("b"), tid("c"), tid("m")]);

    // Pages and filters.
    let first =
        s.viewing.rollups(p, &RollupQuery { limit: 1, ..RollupQuery::default() }).await.expect("rollups");
    assert_eq!(figures(&first), expected[..1]);
    let before = Some((first[0].month, Some(first[0].title_id.clone())));
    assert_eq!(
        figures(&rollups(s, p, RollupQuery { before, ..RollupQuery::default() }).await),
        expected[1..]
    );
    let before = Some((utc("2026-11-01T00:00:00Z"), None));
    assert_eq!(
        figures(&rollups(s, p, RollupQuery { before, ..RollupQuery::default() }).await),
        expected[1..]
    );
    let unfinished = rollups(s, p, RollupQuery { completed: Some(false), ..RollupQuery::default() }).await;
    assert_eq!(figures(&unfinished), expected[..1], "only a had a play that did not complete");
    let finished = rollups(s, p, RollupQuery { completed: Some(true), ..RollupQuery::default() }).await;
    assert_eq!(figures(&finished), expected);
    let only_b = rollups(s, p, RollupQuery { title_id: Some(tid("b")), ..RollupQuery::default() }).await;
    assert_eq!(figures(&only_b), expected[1..]);
}
