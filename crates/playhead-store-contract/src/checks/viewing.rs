//! [`ViewingStore`](playhead_core::ports::ViewingStore) and
//! [`ViewingTx`](playhead_core::ports::ViewingTx): atomic, serialised apply transactions; the
//! event groups an apply reads (minus dropped and tombstoned events); viewings, progress, hides;
//! history pages; deletes and backfills where deletes win.

use playhead_core::ports::GroupEvent;
use std::cmp::Reverse;
use std::collections::BTreeSet;

use playhead_core::StoreError;
use playhead_core::event::PlaybackEvent;
use playhead_core::ids::{EventId, PlayId, ProfileId};
use playhead_core::ports::{BackfillOutcome, PlayQuery, ResumeRow, Viewing};
use playhead_core::precondition::{IfMatch, play_etag};
use playhead_core::rules::viewing::SessionKey;
use playhead_core::time::Timestamp;
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::{
    at, episode, event, explicit, held, implicit, in_session, min, movie, new_profile, on_device, play,
    queued, resume, series, sorted, store_viewings, tid, viewing,
};

const ROOMY: u64 = 1_000;

fn event_ids(events: &[PlaybackEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.event_id).collect()
}

async fn append(s: &Stores, events: &[PlaybackEvent]) {
    let entries: Vec<_> = events.iter().map(queued).collect();
    s.log.append(&entries, ROOMY).await.expect("append");
}

/// A dropped (never committed) apply transaction leaves no trace: its claims, recorded events,
/// resume point and viewings are all rolled back.
pub async fn an_uncommitted_apply_changes_nothing(s: &Stores) {
    let p = new_profile(s, 1).await;
    let e1 = event(p, "m", 1, min(1));
    let e2 = event(p, "m", 2, min(2));
    append(s, &[e1.clone(), e2.clone()]).await;
    let seqs: Vec<i64> = s.log.next_batch(10).await.expect("next_batch").iter().map(|q| q.seq).collect();
    let e3 = event(p, "m", 3, min(3));
    let v = viewing(1, p, "m", Some(implicit(Some("tv"))), min(1), min(3), true);
    {
        let mut tx = s.viewing.begin().await.expect("begin");
        assert_eq!(tx.claim(&seqs).await.expect("claim").len(), 2);
        assert!(tx.record_applied(&e3).await.expect("record_applied"));
        tx.save_progress(&resume(p, "m", 60_000, min(3), 3)).await.expect("save_progress");
        tx.replace_viewings(&[], std::slice::from_ref(&v)).await.expect("replace_viewings");
        tx.drop_events(&[e1.event_id]).await.expect("drop_events");
        // Dropped here without commit.
    }
    assert_eq!(s.log.backlog().await.expect("backlog"), 2);
    assert_eq!(s.viewing.progress(p, &tid("m")).await.expect("progress"), None);
    assert_eq!(
        s.viewing.plays(p, &PlayQuery { limit: 10, ..Default::default() }).await.expect("plays"),
        vec![]
    );
    let mut tx = s.viewing.begin().await.expect("begin after a dropped transaction");
    assert_eq!(tx.claim(&seqs).await.expect("claim").len(), 2, "claims were rolled back");
    assert!(tx.record_applied(&e3).await.expect("record_applied"), "the recorded event was rolled back");
    let seen = live(tx.events(p, &tid("m"), &implicit(Some("tv")), min(0), min(10)).await.expect("events"));
    assert_eq!(
        event_ids(&sorted_events(seen)),
        [e1.event_id, e2.event_id, e3.event_id],
        "the drop was rolled back"
    );
    tx.commit().await.expect("commit");
}

/// Concurrent read-modify-write applies on one resume point never lose an update: appliers are
/// serialised.
pub async fn appliers_do_not_interleave(s: &Stores) {
    let p = new_profile(s, 1).await;
    let title = tid("m");
    let worker = |first_event: u128| {
        let title = title.clone();
        async move {
            for i in 0..10u128 {
                let mut tx = s.viewing.begin().await.expect("begin");
                let current = tx.progress(p, &title).await.expect("progress");
                tokio::task::yield_now().await; // let the other applier run if it can
                let position = current.map_or(0, |r| r.position_ms) + 1;
                let n = first_event + i;
                tx.save_progress(&resume(p, "m", position, at(n as i64), n)).await.expect("save_progress");
                tokio::task::yield_now().await;
                tx.commit().await.expect("commit");
            }
        }
    };
    tokio::join!(worker(100), worker(200));
    let stored = s.viewing.progress(p, &title).await.expect("progress").expect("a resume point");
    assert_eq!(stored.progress.position_ms, 20, "every one of the 20 increments is kept");
}

/// Reads outside a transaction answer while an apply transaction is open (the consumer and the
/// API read while the applier writes).
pub async fn reads_do_not_wait_for_an_open_apply(s: &Stores) {
    let p = new_profile(s, 1).await;
    append(s, &[event(p, "m", 1, min(1))]).await;
    s.catalog.upsert_titles(&[movie("m")], at(0)).await.expect("upsert");
    let mut tx = s.viewing.begin().await.expect("begin");
    tx.save_progress(&resume(p, "m", 1, min(1), 1)).await.expect("save_progress");
    assert_eq!(s.viewing.progress(p, &tid("m")).await.expect("progress"), None, "uncommitted is not visible");
    assert_eq!(s.viewing.recent_progress(p, at(0), 10).await.expect("recent_progress"), vec![]);
    let plays = s.viewing.plays(p, &PlayQuery { limit: 10, ..Default::default() }).await.expect("plays");
    assert!(plays.is_empty());
    assert_eq!(s.log.next_batch(10).await.expect("next_batch").len(), 1);
    assert_eq!(s.log.backlog().await.expect("backlog"), 1);
    assert!(s.catalog.title(&tid("m")).await.expect("title").is_some());
    tx.commit().await.expect("commit");
    assert!(s.viewing.progress(p, &tid("m")).await.expect("progress").is_some());
}

/// `progress_of` reads several resume points of one profile at once: exactly the titles asked
/// for that have one (never another profile's), whatever the order.
pub async fn progress_of_reads_many_titles_at_once(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let mut tx = s.viewing.begin().await.expect("begin");
    for (i, t) in ["a", "b", "c"].iter().enumerate() {
        let n = i as u128 + 1;
        tx.save_progress(&resume(p, t, 1_000 * n as i64, min(n as i64), n)).await.expect("save_progress");
    }
    tx.save_progress(&resume(other, "d", 5, min(4), 4)).await.expect("save_progress");
    tx.commit().await.expect("commit");
    let mut got: Vec<(String, i64)> = s
        .viewing
        .progress_of(p, &[tid("c"), tid("a"), tid("d"), tid("never")])
        .await
        .expect("progress_of")
        .into_iter()
        .map(|r| (r.progress.title_id.as_str().to_owned(), r.progress.position_ms))
        .collect();
    got.sort();
    assert_eq!(got, [("a".to_owned(), 1_000), ("c".to_owned(), 3_000)]);
    assert_eq!(s.viewing.progress_of(p, &[]).await.expect("progress_of"), vec![]);
}

/// `record_applied` stores an event once (`false` for any id already logged, by either path),
/// without queueing it; the stored event reads back whole.
pub async fn record_applied_stores_each_event_once(s: &Stores) {
    let p = new_profile(s, 1).await;
    let put = on_device(event(p, "m", 1, min(1)), None);
    let appended = event(p, "m", 2, min(2));
    append(s, std::slice::from_ref(&appended)).await;

    let mut tx = s.viewing.begin().await.expect("begin");
    assert!(tx.record_applied(&put).await.expect("record_applied"));
    assert!(!tx.record_applied(&put).await.expect("record_applied"), "same id again");
    assert!(!tx.record_applied(&appended).await.expect("record_applied"), "already in the log");
    let seen = live(tx.events(p, &tid("m"), &implicit(None), min(0), min(5)).await.expect("events"));
    assert_eq!(seen, vec![put.clone()]);
    tx.commit().await.expect("commit");

    assert_eq!(s.log.backlog().await.expect("backlog"), 1, "a recorded event is not queued");
    assert_eq!(
        s.log.append(&[queued(&put)], ROOMY).await.expect("append"),
        [playhead_core::ports::AppendOutcome::Duplicate]
    );
    let mut tx = s.viewing.begin().await.expect("begin");
    assert!(!tx.record_applied(&put).await.expect("record_applied"), "committed: still a duplicate");
    tx.commit().await.expect("commit");
}

/// An explicit session's events are all of that session, whatever `[from, to]` says, and only
/// that profile's, title's and session's.
pub async fn explicit_session_events_ignore_the_window(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let early = in_session(event(p, "m", 1, min(0)), "s1");
    let late = on_device(in_session(event(p, "m", 2, min(300)), "s1"), Some("phone"));
    let undeviced = on_device(in_session(event(p, "m", 3, min(100)), "s1"), None);
    let noise = vec![
        in_session(event(p, "m", 10, min(50)), "s2"),
        event(p, "m", 11, min(50)),
        in_session(event(p, "other", 12, min(50)), "s1"),
        in_session(event(other, "m", 13, min(50)), "s1"),
    ];
    let mut all = vec![late.clone(), early.clone(), undeviced.clone()];
    all.extend(noise);
    append(s, &all).await;

    let mut tx = s.viewing.begin().await.expect("begin");
    let mut seen =
        live(tx.events(p, &tid("m"), &explicit("s1"), min(1_000), min(1_001)).await.expect("events"));
    seen.sort_by_key(|e| (e.occurred_at, e.event_id));
    assert_eq!(seen, vec![early, undeviced, late]);
    tx.commit().await.expect("commit");
}

/// An implicit group's events are those without a session, from that device (or with no device
/// for `Implicit(None)`), with `from <= occurred_at <= to`.
pub async fn implicit_events_match_device_and_window(s: &Stores) {
    let p = new_profile(s, 1).await;
    let tv: Vec<_> = [0, 10, 20].iter().map(|&m| event(p, "m", 1 + m as u128, min(m))).collect();
    let phone = on_device(event(p, "m", 50, min(5)), Some("phone"));
    let none = on_device(event(p, "m", 51, min(7)), None);
    let tv_in_session = in_session(event(p, "m", 52, min(8)), "s1");
    let mut all = tv.clone();
    all.extend([phone.clone(), none.clone(), tv_in_session]);
    append(s, &all).await;

    let mut tx = s.viewing.begin().await.expect("begin");
    let t = tid("m");
    let mut q = async |key: SessionKey, from: Timestamp, to: Timestamp| {
        let mut got = live(tx.events(p, &t, &key, from, to).await.expect("events"));
        got.sort_by_key(|e| (e.occurred_at, e.event_id));
        event_ids(&got)
    };
    assert_eq!(q(implicit(Some("tv")), min(0), min(10)).await, event_ids(&tv[..2]), "bounds are inclusive");
    assert_eq!(q(implicit(Some("tv")), min(0), min(60)).await, event_ids(&tv));
    assert_eq!(q(implicit(Some("tv")), at(1), at(599_999)).await, vec![]);
    assert_eq!(q(implicit(Some("phone")), min(0), min(60)).await, [phone.event_id]);
    assert_eq!(q(implicit(None), min(0), min(60)).await, [none.event_id]);
    assert_eq!(q(implicit(Some("radio")), min(0), min(60)).await, vec![]);
    tx.commit().await.expect("commit");
}

/// Dropped events are never returned by `events`; held events of the group are.
pub async fn dropped_events_are_never_returned(s: &Stores) {
    let p = new_profile(s, 1).await;
    let a = in_session(event(p, "m", 1, min(1)), "s1");
    let b = in_session(event(p, "m", 2, min(2)), "s1");
    let h = in_session(event(p, "m", 3, min(3)), "s1");
    let c = event(p, "m", 4, min(4));
    append(s, &[a.clone(), b.clone(), c.clone()]).await;
    s.log.append(&[held(&h)], ROOMY).await.expect("append held");

    let mut tx = s.viewing.begin().await.expect("begin");
    tx.drop_events(&[a.event_id, c.event_id]).await.expect("drop_events");
    tx.drop_events(&[]).await.expect("drop nothing");
    tx.commit().await.expect("commit");
    let mut tx = s.viewing.begin().await.expect("begin");
    let got = live(tx.events(p, &tid("m"), &explicit("s1"), min(0), min(10)).await.expect("events"));
    assert_eq!(event_ids(&sorted_events(got)), [b.event_id, h.event_id]);
    let got = live(tx.events(p, &tid("m"), &implicit(Some("tv")), min(0), min(10)).await.expect("events"));
    assert_eq!(got, vec![]);
    tx.commit().await.expect("commit");
}

fn sorted_events(mut v: Vec<PlaybackEvent>) -> Vec<PlaybackEvent> {
    v.sort_by_key(|e| (e.occurred_at, e.event_id));
    v
}

/// Deleting a play tombstones its events: `events` flags them (and a late or redelivered event
/// inside the deleted span) as deleted, for explicit and implicit groups alike; events of the
/// same group outside the span, and of other groups, are not flagged.
pub async fn deleted_plays_tombstone_their_events(s: &Stores) {
    let p = new_profile(s, 1).await;
    let t = tid("m");
    let session: Vec<_> =
        (0..=10).map(|m| in_session(event(p, "m", 100 + m as u128, min(m)), "s1")).collect();
    let tv: Vec<_> = (0..=10).map(|m| event(p, "m", 200 + m as u128, min(m))).collect();
    let phone: Vec<_> =
        (0..=10).map(|m| on_device(event(p, "m", 300 + m as u128, min(m)), Some("phone"))).collect();
    append(s, &[session.clone(), tv.clone(), phone.clone()].concat()).await;
    let by_session = viewing(1, p, "m", Some(explicit("s1")), min(0), min(10), true);
    let by_tv = viewing(2, p, "m", Some(implicit(Some("tv"))), min(0), min(10), true);
    let by_phone = viewing(3, p, "m", Some(implicit(Some("phone"))), min(0), min(10), true);
    store_viewings(s, &[], &[by_session.clone(), by_tv.clone(), by_phone.clone()]).await;

    s.viewing.delete_play(p, by_session.id, min(20)).await.expect("delete_play");
    s.viewing.delete_play(p, by_tv.id, min(20)).await.expect("delete_play");

    // Late arrivals: inside the deleted spans, and after them.
    let late_inside = [in_session(event(p, "m", 150, min(5)), "s1"), event(p, "m", 250, at(5 * 60_000 + 1))];
    let after = [in_session(event(p, "m", 160, min(11)), "s1"), event(p, "m", 260, min(40))];
    append(s, &[late_inside.clone(), after.clone()].concat()).await;

    let mut tx = s.viewing.begin().await.expect("begin");
    let all = tx.events(p, &t, &explicit("s1"), min(0), min(60)).await.expect("events");
    let flagged: Vec<EventId> = all.iter().filter(|g| g.deleted).map(|g| g.event.event_id).collect();
    let mut expected: Vec<EventId> = session.iter().chain(&late_inside[..1]).map(|e| e.event_id).collect();
    expected.sort();
    let mut flagged_sorted = flagged.clone();
    flagged_sorted.sort();
    assert_eq!(flagged_sorted, expected, "events inside the deleted span come back flagged deleted");
    let got = live(all);
    assert_eq!(event_ids(&got), [after[0].event_id], "only the event after the deleted session span");
    let got = live(tx.events(p, &t, &implicit(Some("tv")), min(0), min(60)).await.expect("events"));
    assert_eq!(event_ids(&got), [after[1].event_id], "only the event after the deleted span");
    let got = live(tx.events(p, &t, &implicit(Some("phone")), min(0), min(60)).await.expect("events"));
    assert_eq!(event_ids(&sorted_events(got)), event_ids(&phone), "another device's group is untouched");
    assert_eq!(tx.viewings(p, &t, &explicit("s1"), min(0), min(60)).await.expect("viewings"), vec![]);
    assert_eq!(tx.viewings(p, &t, &implicit(Some("tv")), min(0), min(60)).await.expect("viewings"), vec![]);
    tx.commit().await.expect("commit");
    let plays = s.viewing.plays(p, &PlayQuery { limit: 10, ..Default::default() }).await.expect("plays");
    assert_eq!(plays, vec![by_phone]);
}

/// `last_event` is the group's newest stored event (by occurred_at, then id) other than the ones
/// named: never a dropped one, another device's, session's, title's or profile's; flagged when a
/// deleted play's tombstone reaches it or any later time.
pub async fn last_event_is_the_groups_newest_other_event(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let t = tid("m");
    let e1 = event(p, "m", 1, min(1));
    let e2 = event(p, "m", 2, min(5));
    let e3 = event(p, "m", 3, min(9));
    let tie = event(p, "m", 4, min(9)); // same time as e3, greater id: later in event order
    let phone = on_device(event(p, "m", 5, min(20)), Some("phone"));
    let undeviced = on_device(event(p, "m", 6, min(21)), None);
    let session = on_device(in_session(event(p, "m", 7, min(30)), "s1"), Some("tv"));
    let noise = [
        event(p, "x", 8, min(40)),
        event(other, "m", 9, min(40)),
        in_session(event(p, "m", 10, min(2)), "s2"),
    ];
    // Appended out of order: the answer must not depend on arrival.
    let mut all = vec![
        tie.clone(),
        e1.clone(),
        session.clone(),
        e3.clone(),
        phone.clone(),
        e2.clone(),
        undeviced.clone(),
    ];
    all.extend(noise);
    append(s, &all).await;

    let mut tx = s.viewing.begin().await.expect("begin");
    let tv = implicit(Some("tv"));
    let last = |g: Option<GroupEvent>| g.map(|g| (g.event.event_id, g.deleted));
    assert_eq!(last(tx.last_event(p, &t, &tv, &[]).await.expect("last_event")), Some((tie.event_id, false)));
    assert_eq!(
        last(tx.last_event(p, &t, &tv, &[tie.event_id]).await.expect("last_event")),
        Some((e3.event_id, false)),
        "the named events are skipped"
    );
    tx.drop_events(&[e2.event_id]).await.expect("drop_events");
    assert_eq!(
        last(tx.last_event(p, &t, &tv, &[tie.event_id, e3.event_id]).await.expect("last_event")),
        Some((e1.event_id, false)),
        "a dropped event is never the last"
    );
    assert_eq!(
        last(tx.last_event(p, &t, &tv, &[tie.event_id, e3.event_id, e1.event_id]).await.expect("last_event")),
        None
    );
    let read = tx.last_event(p, &t, &implicit(Some("phone")), &[]).await.expect("last_event");
    assert_eq!(read.map(|g| g.event), Some(phone.clone()), "the stored event reads back whole");
    assert_eq!(
        last(tx.last_event(p, &t, &implicit(None), &[]).await.expect("last_event")),
        Some((undeviced.event_id, false))
    );
    assert_eq!(
        last(tx.last_event(p, &t, &explicit("s1"), &[]).await.expect("last_event")),
        Some((session.event_id, false)),
        "a session's events whatever their device"
    );
    assert_eq!(last(tx.last_event(p, &t, &explicit("s3"), &[]).await.expect("last_event")), None);
    tx.commit().await.expect("commit");

    // A deleted play of the phone's group from minute 3 to 6: its tombstone ends before the
    // phone's last event (minute 20), which is not flagged; the event at minute 3 is.
    let before_phone = on_device(event(p, "m", 11, min(3)), Some("phone"));
    append(s, std::slice::from_ref(&before_phone)).await;
    let deleted = viewing(20, p, "m", Some(implicit(Some("phone"))), min(3), min(6), true);
    store_viewings(s, &[], std::slice::from_ref(&deleted)).await;
    s.viewing.delete_play(p, deleted.id, min(50)).await.expect("delete_play");
    let mut tx = s.viewing.begin().await.expect("begin");
    let phone_key = implicit(Some("phone"));
    assert_eq!(
        last(tx.last_event(p, &t, &phone_key, &[]).await.expect("last_event")),
        Some((phone.event_id, false)),
        "a tombstone that ends before the last event does not flag it"
    );
    assert_eq!(
        last(tx.last_event(p, &t, &phone_key, &[phone.event_id]).await.expect("last_event")),
        Some((before_phone.event_id, true)),
        "a tombstone reaching the last event flags it"
    );
    tx.commit().await.expect("commit");
}

/// `viewings` returns an explicit session's viewings whatever the window, and an implicit group's
/// viewings that overlap `[from, to]` (touching counts), never another group's.
pub async fn viewings_are_selected_by_key_and_overlap(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let tv = Some(implicit(Some("tv")));
    let a = viewing(1, p, "m", tv.clone(), min(0), min(10), true);
    let b = viewing(2, p, "m", tv.clone(), min(40), min(50), false);
    let c = viewing(3, p, "m", tv.clone(), min(100), min(110), true);
    let d = viewing(4, p, "m", Some(implicit(Some("phone"))), min(0), min(10), true);
    let e = viewing(5, p, "m", Some(explicit("s1")), min(0), min(200), true);
    let f = viewing(6, p, "m", Some(explicit("s2")), min(0), min(5), true);
    let g = viewing(7, p, "other", tv.clone(), min(0), min(10), true);
    let h = viewing(8, other, "m", tv.clone(), min(0), min(10), true);
    let none = viewing(9, p, "m", Some(implicit(None)), min(60), min(70), true);
    let all = [a.clone(), b.clone(), c.clone(), d.clone(), e.clone(), f, g, h, none.clone()];
    store_viewings(s, &[], &all).await;

    let mut tx = s.viewing.begin().await.expect("begin");
    let t = tid("m");
    let mut q = async |key: SessionKey, from: Timestamp, to: Timestamp| {
        sorted(tx.viewings(p, &t, &key, from, to).await.expect("viewings"))
    };
    let tv = implicit(Some("tv"));
    assert_eq!(q(tv.clone(), min(5), min(45)).await, vec![a.clone(), b.clone()]);
    assert_eq!(q(tv.clone(), min(10), min(10)).await, vec![a.clone()], "touching the end overlaps");
    assert_eq!(q(tv.clone(), min(30), min(40)).await, vec![b.clone()], "touching the start overlaps");
    assert_eq!(q(tv.clone(), at(600_001), at(2_399_999)).await, vec![]);
    assert_eq!(q(tv.clone(), min(-100), min(1_000)).await, vec![a, b, c]);
    assert_eq!(q(implicit(Some("phone")), min(0), min(1_000)).await, vec![d]);
    assert_eq!(q(implicit(None), min(0), min(1_000)).await, vec![none]);
    assert_eq!(
        q(explicit("s1"), min(5_000), min(5_001)).await,
        vec![e],
        "a session is one viewing, any window"
    );
    assert_eq!(q(explicit("s3"), min(0), min(1_000)).await, vec![]);
    tx.commit().await.expect("commit");
}

/// `replace_viewings` removes by id and inserts or replaces by id, keeping every field (all three
/// kinds of key).
pub async fn replace_viewings_removes_and_upserts(s: &Stores) {
    let p = new_profile(s, 1).await;
    let a = viewing(1, p, "m", Some(implicit(Some("tv"))), min(0), min(10), true);
    let b = viewing(2, p, "m", Some(implicit(Some("tv"))), min(40), min(50), false);
    store_viewings(s, &[], &[a.clone(), b.clone()]).await;

    let b2 = Viewing { ended_at: min(55), watched_ms: 123, completed: true, is_play: true, ..b.clone() };
    let c = Viewing { completed: true, ..viewing(3, p, "m", Some(implicit(None)), min(60), min(61), true) };
    store_viewings(s, &[a.id, play(99)], &[b2.clone(), c.clone()]).await;

    let mut tx = s.viewing.begin().await.expect("begin");
    let t = tid("m");
    assert_eq!(
        sorted(tx.viewings(p, &t, &implicit(Some("tv")), min(0), min(100)).await.expect("viewings")),
        vec![b2.clone()]
    );
    assert_eq!(
        tx.viewings(p, &t, &implicit(None), min(0), min(100)).await.expect("viewings"),
        vec![c.clone()]
    );
    // A viewing may move between groups when recomputed: replacing by id moves it.
    let moved = Viewing { key: Some(explicit("s9")), ..c.clone() };
    tx.replace_viewings(&[], std::slice::from_ref(&moved)).await.expect("replace_viewings");
    assert_eq!(tx.viewings(p, &t, &implicit(None), min(0), min(100)).await.expect("viewings"), vec![]);
    assert_eq!(
        tx.viewings(p, &t, &explicit("s9"), min(0), min(100)).await.expect("viewings"),
        vec![moved.clone()]
    );
    tx.replace_viewings(&[], &[]).await.expect("replace nothing");
    tx.commit().await.expect("commit");
    let plays = s.viewing.plays(p, &PlayQuery { limit: 10, ..Default::default() }).await.expect("plays");
    assert_eq!(plays, vec![moved, b2]);
}

/// A resume point saved in a transaction is readable in it at once, visible outside only after
/// commit, and replaced (not duplicated) by the next save.
pub async fn progress_round_trips_and_commits_atomically(s: &Stores) {
    let p = new_profile(s, 1).await;
    let t = tid("m");
    let first = resume(p, "m", 600_000, min(10), 1);
    let mut tx = s.viewing.begin().await.expect("begin");
    assert_eq!(tx.progress(p, &t).await.expect("progress"), None);
    tx.save_progress(&first).await.expect("save_progress");
    assert_eq!(tx.progress(p, &t).await.expect("progress"), Some(first.clone()));
    tx.commit().await.expect("commit");
    assert_eq!(
        s.viewing.progress(p, &t).await.expect("progress"),
        Some(ResumeRow { progress: first.clone(), hidden_at: None })
    );

    let finished = playhead_core::rules::progress::ProgressRecord {
        position_ms: 0,
        duration_ms: 0,
        finished: true,
        ..resume(p, "m", 0, min(20), 2)
    };
    let mut tx = s.viewing.begin().await.expect("begin");
    assert_eq!(tx.progress(p, &t).await.expect("progress"), Some(first));
    tx.save_progress(&finished).await.expect("save_progress");
    tx.commit().await.expect("commit");
    assert_eq!(s.viewing.progress(p, &t).await.expect("progress").map(|r| r.progress), Some(finished));
    assert_eq!(s.viewing.recent_progress(p, at(0), 10).await.expect("recent_progress").len(), 1);
    assert_eq!(s.viewing.progress(p, &tid("other")).await.expect("progress"), None);
}

/// `recent_progress` lists a profile's resume points with `occurred_at >= since`, newest first
/// (ties by event id, descending), at most `limit`, with their hide marker.
pub async fn recent_progress_is_newest_first(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let records = vec![
        resume(p, "old", 1, min(1), 1),
        resume(p, "a", 1, min(5), 2),
        resume(p, "b", 1, min(5), 9),
        resume(p, "c", 1, min(7), 3),
        resume(p, "d", 1, min(3), 4),
        resume(other, "e", 1, min(9), 5),
    ];
    let mut tx = s.viewing.begin().await.expect("begin");
    for r in &records {
        tx.save_progress(r).await.expect("save_progress");
    }
    tx.commit().await.expect("commit");
    s.viewing.hide(p, &tid("c"), min(8)).await.expect("hide");

    let titles =
        |rows: Vec<ResumeRow>| rows.into_iter().map(|r| r.progress.title_id.to_string()).collect::<Vec<_>>();
    let rows = s.viewing.recent_progress(p, min(3), 10).await.expect("recent_progress");
    assert_eq!(rows[0], ResumeRow { progress: records[3].clone(), hidden_at: Some(min(8)) });
    assert_eq!(rows[1].hidden_at, None);
    assert_eq!(titles(rows), ["c", "b", "a", "d"], "since is inclusive; ties by event id, newest first");
    assert_eq!(titles(s.viewing.recent_progress(p, min(0), 2).await.expect("recent_progress")), ["c", "b"]);
    assert_eq!(
        titles(s.viewing.recent_progress(p, min(8), 10).await.expect("recent_progress")),
        Vec::<String>::new()
    );
}

/// Hiding keeps the later of two hide times, works before any resume point exists, and is
/// per profile and title.
pub async fn a_later_hide_wins(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let t = tid("m");
    s.viewing.hide(p, &t, min(100)).await.expect("hide without a resume point");
    assert_eq!(s.viewing.progress(p, &t).await.expect("progress"), None);
    let mut tx = s.viewing.begin().await.expect("begin");
    tx.save_progress(&resume(p, "m", 1, min(1), 1)).await.expect("save_progress");
    tx.save_progress(&resume(p, "n", 1, min(1), 2)).await.expect("save_progress");
    tx.save_progress(&resume(other, "m", 1, min(1), 3)).await.expect("save_progress");
    tx.commit().await.expect("commit");
    let hidden = async |p: ProfileId, t: &str| {
        s.viewing.progress(p, &tid(t)).await.expect("progress").expect("row").hidden_at
    };
    assert_eq!(hidden(p, "m").await, Some(min(100)));
    s.viewing.hide(p, &t, min(50)).await.expect("an earlier hide");
    assert_eq!(hidden(p, "m").await, Some(min(100)), "an earlier hide does not move it back");
    s.viewing.hide(p, &t, min(200)).await.expect("a later hide");
    assert_eq!(hidden(p, "m").await, Some(min(200)));
    assert_eq!(hidden(p, "n").await, None);
    assert_eq!(hidden(other, "m").await, None);
    let kept = s.viewing.progress(p, &t).await.expect("progress").expect("row");
    assert_eq!(kept.progress, resume(p, "m", 1, min(1), 1), "hiding keeps the resume point");
}

/// Deterministic pseudo-random numbers (no dependency, reproducible failures).
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

/// Page through `plays` with `query` until a short page; panics on an over-long page, and on
/// paging that does not end (a cursor that repeats its last play would loop forever).
async fn all_pages(s: &Stores, p: ProfileId, mut query: PlayQuery, stored: usize) -> Vec<Viewing> {
    let mut out: Vec<Viewing> = Vec::new();
    loop {
        assert!(out.len() <= stored, "paging returned more plays than were stored: the cursor repeats");
        let page = s.viewing.plays(p, &query).await.expect("plays");
        assert!(page.len() <= query.limit as usize, "a page holds at most `limit` plays");
        out.extend(page.iter().cloned());
        match page.last() {
            Some(last) if page.len() == query.limit as usize => {
                query.before = Some((last.started_at, last.id))
            }
            _ => return out,
        }
    }
}

/// History pages are newest first by `(started_at, play id)`, `before` exclusive: paging with any
/// page size yields every play exactly once, in order, even when many plays share `started_at`;
/// sub-threshold viewings and other profiles' plays never appear.
pub async fn plays_page_without_gaps_or_repeats(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let mut seed = 7;
    let mut stored = Vec::new();
    for n in 0..120u128 {
        let start = min((lcg(&mut seed) % 4) as i64); // many equal started_at values
        let id = Uuid::from_u128((u128::from(lcg(&mut seed)) << 64) | n);
        let title = ["m1", "m2", "m3"][(lcg(&mut seed) % 3) as usize];
        let v = Viewing {
            id: PlayId(id),
            completed: lcg(&mut seed).is_multiple_of(2),
            is_play: n % 5 != 0,
            ..viewing(0, p, title, Some(implicit(Some("tv"))), start, start.plus_ms(60_000), true)
        };
        stored.push(v);
    }
    stored.push(viewing(5_000, other, "m1", Some(implicit(Some("tv"))), min(2), min(3), true));
    store_viewings(s, &[], &stored).await;

    let mut want: Vec<Viewing> = stored.iter().filter(|v| v.is_play && v.profile_id == p).cloned().collect();
    want.sort_by_key(|v| Reverse((v.started_at, v.id)));
    for limit in [1, 2, 3, 7, 10, 96, 200] {
        let got = all_pages(s, p, PlayQuery { limit, ..Default::default() }, stored.len()).await;
        assert_eq!(got, want, "paging by {limit}");
    }
    // `before` is exclusive and need not be a stored play.
    let at_time = want[10].started_at;
    let page = s
        .viewing
        .plays(
            p,
            &PlayQuery { before: Some((at_time, PlayId(Uuid::max()))), limit: 500, ..Default::default() },
        )
        .await
        .expect("plays");
    let expected: Vec<_> = want.iter().filter(|v| v.started_at <= at_time).cloned().collect();
    assert_eq!(page, expected);
    let before_all =
        PlayQuery { before: Some((min(-1), PlayId(Uuid::max()))), limit: 10, ..Default::default() };
    assert_eq!(s.viewing.plays(p, &before_all).await.expect("plays"), vec![]);
    assert_eq!(
        s.viewing.plays(p, &PlayQuery { limit: 0, ..Default::default() }).await.expect("plays"),
        vec![]
    );
}

/// The title and completion filters combine with keyset paging.
pub async fn plays_filter_by_title_and_completion(s: &Stores) {
    let p = new_profile(s, 1).await;
    let mut stored = Vec::new();
    for n in 0..40u128 {
        let title = if n % 3 == 0 { "m1" } else { "m2" };
        let start = min((n % 6) as i64);
        stored.push(Viewing { completed: n % 2 == 0, ..viewing(n + 1, p, title, None, start, start, true) });
    }
    store_viewings(s, &[], &stored).await;
    let newest_first = |mut v: Vec<Viewing>| {
        v.sort_by_key(|v| Reverse((v.started_at, v.id)));
        v
    };
    let cases = [(Some("m1"), None), (None, Some(true)), (Some("m2"), Some(false)), (Some("m3"), None)];
    for (title, completed) in cases {
        let want = newest_first(
            stored
                .iter()
                .filter(|v| title.is_none_or(|t| v.title_id.as_str() == t))
                .filter(|v| completed.is_none_or(|c| v.completed == c))
                .cloned()
                .collect(),
        );
        let query = PlayQuery { limit: 3, title_id: title.map(tid), completed, ..Default::default() };
        assert_eq!(
            all_pages(s, p, query, stored.len()).await,
            want,
            "title {title:?}, completed {completed:?}"
        );
    }
}

/// `episode_plays` returns the plays of episodes with each episode's series, and nothing for
/// movies, unknown titles or sub-threshold viewings.
pub async fn episode_plays_name_their_series(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let catalog = [
        series("s1"),
        series("s2"),
        episode("s1.e1", "s1", Some(1), 1),
        episode("s1.e2", "s1", Some(1), 2),
        episode("s2.e1", "s2", Some(1), 1),
        movie("m"),
    ];
    s.catalog.upsert_titles(&catalog, at(0)).await.expect("upsert");
    let e1 = viewing(1, p, "s1.e1", None, min(0), min(40), true);
    let e2 = viewing(2, p, "s1.e2", None, min(50), min(90), true);
    let e3 = viewing(3, p, "s2.e1", None, min(100), min(140), true);
    let preview = viewing(4, p, "s2.e1", None, min(150), min(151), false);
    let film = viewing(5, p, "m", None, min(200), min(300), true);
    let unknown = viewing(6, p, "gone", None, min(300), min(400), true);
    let theirs = viewing(7, other, "s1.e1", None, min(0), min(40), true);
    store_viewings(s, &[], &[e1.clone(), e2.clone(), e3.clone(), preview, film, unknown, theirs]).await;

    let mut got = s.viewing.episode_plays(p).await.expect("episode_plays");
    got.sort_by_key(|(_, v)| v.id);
    assert_eq!(got, vec![(tid("s1"), e1), (tid("s1"), e2), (tid("s2"), e3)]);
    let none = s.viewing.episode_plays(ProfileId(Uuid::from_u128(42))).await.expect("episode_plays");
    assert_eq!(none, vec![]);
}

/// `delete_play` is `NotFound` for another profile's play, a sub-threshold viewing, an unknown id
/// and a play already deleted; otherwise the play is gone from history.
pub async fn delete_play_is_scoped_to_its_profile(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let mine = viewing(1, p, "m", Some(implicit(Some("tv"))), min(0), min(60), true);
    let preview = viewing(2, p, "m", Some(implicit(Some("tv"))), min(100), min(101), false);
    store_viewings(s, &[], &[mine.clone(), preview.clone()]).await;

    let not_found = |r: Result<(), StoreError>, what: &str| {
        assert!(matches!(r, Err(StoreError::NotFound)), "{what} must be NotFound, got {r:?}");
    };
    not_found(s.viewing.delete_play(other, mine.id, min(200)).await, "another profile's play");
    not_found(s.viewing.delete_play(p, preview.id, min(200)).await, "a sub-threshold viewing");
    not_found(s.viewing.delete_play(p, play(999), min(200)).await, "an unknown play");
    let query = PlayQuery { limit: 10, ..Default::default() };
    assert_eq!(s.viewing.plays(p, &query).await.expect("plays"), vec![mine.clone()]);

    s.viewing.delete_play(p, mine.id, min(200)).await.expect("delete_play");
    assert_eq!(s.viewing.plays(p, &query).await.expect("plays"), vec![]);
    not_found(s.viewing.delete_play(p, mine.id, min(201)).await, "a deleted play");
}

/// `delete_play_if` deletes only the version the precondition names: a stale entity tag is
/// `PreconditionFailed` and leaves the play; `*` and the current tag delete it; an unknown play
/// is `NotFound` whatever the precondition.
pub async fn delete_play_if_checks_the_entity_tag(s: &Stores) {
    let p = new_profile(s, 1).await;
    let first = viewing(1, p, "m", Some(implicit(Some("tv"))), min(0), min(60), true);
    let second = viewing(2, p, "n", Some(implicit(Some("tv"))), min(100), min(160), true);
    store_viewings(s, &[], &[first.clone(), second.clone()]).await;
    let query = PlayQuery { limit: 10, ..Default::default() };

    let stale = IfMatch::OneOf(vec![play_etag(first.started_at, first.watched_ms, first.completed)]);
    assert!(
        matches!(
            s.viewing.delete_play_if(p, first.id, min(200), &stale).await,
            Err(StoreError::PreconditionFailed)
        ),
        "a stale tag must be PreconditionFailed"
    );
    assert_eq!(s.viewing.plays(p, &query).await.expect("plays").len(), 2, "nothing deleted");
    let current = IfMatch::OneOf(vec![
        "\"other\"".into(),
        play_etag(first.ended_at, first.watched_ms, first.completed),
    ]);
    s.viewing.delete_play_if(p, first.id, min(200), &current).await.expect("the current tag deletes");
    s.viewing.delete_play_if(p, second.id, min(200), &IfMatch::Any).await.expect("* deletes");
    assert_eq!(s.viewing.plays(p, &query).await.expect("plays"), vec![]);
    assert!(matches!(
        s.viewing.delete_play_if(p, play(999), min(200), &current).await,
        Err(StoreError::NotFound)
    ));
}

/// Backfilled plays are stored without a key and deduplicated on (profile, title, started_at)
/// against any play, including earlier ones in the same batch; a deleted play (backfilled or
/// not) with that start is never recreated.
pub async fn backfill_dedupes_and_respects_deletes(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let b1 = Viewing { completed: true, ..viewing(1, p, "m", None, min(0), min(90), true) };
    let b2 = viewing(2, p, "m", None, min(1_000), min(1_090), true);
    let b1_again = viewing(3, p, "m", None, min(0), min(95), true);
    let out = s.viewing.backfill(&[b1.clone(), b2.clone(), b1_again]).await.expect("backfill");
    assert_eq!(
        out,
        [BackfillOutcome::Created(b1.id), BackfillOutcome::Created(b2.id), BackfillOutcome::Duplicate(b1.id)]
    );
    let query = PlayQuery { limit: 10, ..Default::default() };
    assert_eq!(s.viewing.plays(p, &query).await.expect("plays"), vec![b2.clone(), b1.clone()]);
    assert_eq!(s.viewing.backfill(&[]).await.expect("backfill"), vec![]);

    // A play computed from events counts as the same play.
    let live = viewing(10, p, "m", Some(implicit(Some("tv"))), min(2_000), min(2_090), true);
    let preview = viewing(11, p, "m", Some(implicit(Some("tv"))), min(3_000), min(3_001), false);
    store_viewings(s, &[], &[live.clone(), preview]).await;
    let out = s
        .viewing
        .backfill(&[viewing(12, p, "m", None, min(2_000), min(2_050), true)])
        .await
        .expect("backfill");
    assert_eq!(out, [BackfillOutcome::Duplicate(live.id)]);

    // Deletes win, for backfilled and event-made plays alike.
    s.viewing.delete_play(p, b2.id, min(5_000)).await.expect("delete_play");
    s.viewing.delete_play(p, live.id, min(5_000)).await.expect("delete_play");
    let again = [
        viewing(20, p, "m", None, min(1_000), min(1_090), true),
        viewing(21, p, "m", None, min(2_000), min(2_090), true),
        viewing(22, p, "n", None, min(1_000), min(1_090), true),
        viewing(23, other, "m", None, min(1_000), min(1_090), true),
        viewing(24, p, "m", None, min(3_000), min(3_090), true),
    ];
    let out = s.viewing.backfill(&again).await.expect("backfill");
    assert_eq!(
        out,
        [
            BackfillOutcome::Deleted,
            BackfillOutcome::Deleted,
            BackfillOutcome::Created(again[2].id),
            BackfillOutcome::Created(again[3].id),
            BackfillOutcome::Created(again[4].id),
        ],
        "a sub-threshold viewing with the same start is not a play to deduplicate against"
    );
    let ids: BTreeSet<PlayId> =
        s.viewing.plays(p, &query).await.expect("plays").iter().map(|v| v.id).collect();
    assert_eq!(ids, BTreeSet::from([b1.id, again[2].id, again[4].id]));
}

/// The events of a group that no deleted play covers.
fn live(events: Vec<GroupEvent>) -> Vec<PlaybackEvent> {
    events.into_iter().filter(|g| !g.deleted).map(|g| g.event).collect()
}
