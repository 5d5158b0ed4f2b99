//! [`EventLog`](playhead_core::ports::EventLog): durable, deduplicated, bounded appends; held
//! events; the queue the consumer reads and acknowledges; replay.

use playhead_core::ports::GroupEvent;
use std::collections::BTreeSet;

use playhead_core::StoreError;
use playhead_core::event::{EventKind, PlaybackEvent};
use playhead_core::ids::{EventId, ProfileId};
use playhead_core::ports::AppendOutcome::{Accepted, Duplicate, Held};
use playhead_core::ports::{LogEntry, QueuedEvent};
use playhead_core::time::Timestamp;
use playhead_core::trace::TraceContext;
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::{at, device, event, held, implicit, min, movie, new_profile, queued, session, tid};

const ROOMY: u64 = 1_000;

/// Claims name events in no particular order: compare them as sets.
fn set(ids: Vec<EventId>) -> BTreeSet<EventId> {
    ids.into_iter().collect()
}

fn ids(batch: &[QueuedEvent]) -> Vec<EventId> {
    batch.iter().map(|q| q.event.event_id).collect()
}

async fn queue(s: &Stores) -> Vec<QueuedEvent> {
    s.log.next_batch(10_000).await.expect("next_batch")
}

/// Every field of an event comes back from the queue exactly as appended, including absent
/// optional fields, a corrected clock (`occurred_at` != `occurred_at_raw`), instants before 1970,
/// and the longest ids with every allowed character.
pub async fn appended_events_round_trip_every_field(s: &Stores) {
    let p = new_profile(s, 1).await;
    let long_title = format!("{}:._-Z9", "t".repeat(121));
    let odd = "a b:c/\"q\"\\'%_*?~`{}[]<>|^&$#@!=+,;";
    let full = PlaybackEvent {
        event_id: EventId(Uuid::from_u128(u128::MAX)),
        profile_id: p,
        title_id: tid(&long_title),
        kind: EventKind::Complete,
        position_ms: 9_007_199_254_740_993, // above 2^53: must not pass through a float
        duration_ms: Some(i64::MAX),
        occurred_at: at(-7_200_000),
        occurred_at_raw: at(3_600_000),
        received_at: at(1),
        device_id: Some(device(odd)),
        session_id: Some(session(&"s".repeat(128))),
    };
    let bare = PlaybackEvent {
        event_id: EventId(Uuid::nil()),
        profile_id: ProfileId(Uuid::from_u128(u128::MAX)),
        title_id: tid("m"),
        kind: EventKind::Start,
        position_ms: 0,
        duration_ms: None,
        occurred_at: Timestamp(-1),
        occurred_at_raw: Timestamp(i64::MIN),
        received_at: Timestamp(0),
        device_id: None,
        session_id: None,
    };
    let kinds = [EventKind::Heartbeat, EventKind::Pause, EventKind::Stop];
    let mut events = vec![full, bare];
    events.extend(
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| PlaybackEvent { kind: *k, ..event(p, "m", 10 + i as u128, min(i as i64)) }),
    );
    let entries: Vec<_> = events.iter().map(queued).collect();
    assert_eq!(s.log.append(&entries, ROOMY).await.expect("append"), vec![Accepted; events.len()]);
    let batch = queue(s).await;
    let got: Vec<PlaybackEvent> = batch.iter().map(|q| q.event.clone()).collect();
    assert_eq!(got, events);
}

/// The trace context an append carries comes back with its queued event (the apply step
/// continues the request's trace), per event; an event appended without one has none, and a
/// duplicate within the batch keeps the first copy's context, as it keeps the first copy.
pub async fn trace_contexts_ride_with_queued_events(s: &Stores) {
    let p = new_profile(s, 1).await;
    let t1 = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
    let t2 = TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").expect("valid");
    let (a, b, c) = (event(p, "m", 1, min(1)), event(p, "m", 2, min(2)), event(p, "m", 3, min(3)));
    let entries = vec![
        LogEntry { trace: Some(t1), ..queued(&a) },
        LogEntry { trace: Some(t2), ..queued(&b) },
        LogEntry { trace: Some(t2), ..queued(&a) }, // a duplicate of `a`: its context is not kept
        queued(&c),
    ];
    assert_eq!(
        s.log.append(&entries, ROOMY).await.expect("append"),
        vec![Accepted, Accepted, Duplicate, Accepted]
    );
    let got: Vec<(EventId, Option<TraceContext>)> =
        queue(s).await.iter().map(|q| (q.event.event_id, q.trace)).collect();
    assert_eq!(got, vec![(a.event_id, Some(t1)), (b.event_id, Some(t2)), (c.event_id, None)]);
}

/// The second copy of an event id is `Duplicate` and writes nothing, whether it comes in the same
/// batch or a later one, held or not; the first copy is the one kept.
pub async fn append_dedupes_within_and_across_batches(s: &Stores) {
    let p = new_profile(s, 1).await;
    let e1 = event(p, "m", 1, min(0));
    let e2 = event(p, "m", 2, min(1));
    let e3 = event(p, "m", 3, min(2));
    let e1_changed = PlaybackEvent { position_ms: 42, ..e1.clone() };
    let out = s.log.append(&[queued(&e1), queued(&e2), queued(&e1_changed)], ROOMY).await.expect("append");
    assert_eq!(out, [Accepted, Accepted, Duplicate]);
    let out = s.log.append(&[queued(&e2), queued(&e3), held(&e1)], ROOMY).await.expect("append");
    assert_eq!(out, [Duplicate, Accepted, Duplicate]);

    // Held first, queued second: the held copy wins and nothing is queued for it.
    let h4 = event(p, "premiere", 4, min(3));
    let out = s.log.append(&[held(&h4), queued(&h4)], ROOMY).await.expect("append");
    assert_eq!(out, [Held, Duplicate]);
    assert_eq!(s.log.append(&[queued(&h4)], ROOMY).await.expect("append"), [Duplicate]);

    let batch = queue(s).await;
    assert_eq!(ids(&batch), [e1.event_id, e2.event_id, e3.event_id]);
    assert_eq!(batch[0].event, e1, "the first copy is the one stored");
    assert_eq!(s.log.backlog().await.expect("backlog"), 3);
    assert_eq!(s.log.held_count().await.expect("held_count"), 1);
    assert_eq!(s.log.append(&[], ROOMY).await.expect("empty append"), vec![]);
}

/// A batch that would take the backlog past `max_backlog` is `Full` and writes nothing at all
/// (not even its held events); a batch that reaches the limit exactly, or queues nothing, is
/// accepted.
pub async fn a_full_log_writes_nothing(s: &Stores) {
    let p = new_profile(s, 1).await;
    let first: Vec<_> = (1..=3).map(|n| event(p, "m", n, min(n as i64))).collect();
    let entries: Vec<_> = first.iter().map(queued).collect();
    s.log.append(&entries, 3).await.expect("exactly at the limit is accepted");

    let e4 = event(p, "m", 4, min(4));
    let e5 = event(p, "m", 5, min(5));
    let h6 = event(p, "premiere", 6, min(6));
    let batch = [queued(&e4), queued(&e5), held(&h6), queued(&first[0])];
    assert!(matches!(s.log.append(&batch, 4).await, Err(StoreError::Full)), "3 + 2 new > 4 must be Full");
    assert_eq!(s.log.backlog().await.expect("backlog"), 3);
    assert_eq!(s.log.held_count().await.expect("held_count"), 0, "a refused batch holds nothing");
    assert_eq!(ids(&queue(s).await), first.iter().map(|e| e.event_id).collect::<Vec<_>>());

    // Nothing of the refused batch was logged: the same batch is new when there is room.
    assert_eq!(s.log.append(&batch, 5).await.expect("append"), [Accepted, Accepted, Held, Duplicate]);
    assert_eq!(s.log.backlog().await.expect("backlog"), 5);

    // At the limit, a batch that queues nothing (held events, duplicates) still goes in.
    let h7 = event(p, "premiere", 7, min(7));
    assert_eq!(s.log.append(&[held(&h7), queued(&e4)], 5).await.expect("append"), [Held, Duplicate]);
    assert_eq!(s.log.held_count().await.expect("held_count"), 2);
}

/// Held events are logged but not queued; they are counted in total and per profile; once their
/// title is imported, `release_held` queues them (once).
pub async fn held_events_wait_for_their_title(s: &Stores) {
    let p1 = new_profile(s, 1).await;
    let p2 = new_profile(s, 2).await;
    let a = event(p1, "premiere", 1, min(0));
    let b = event(p1, "premiere", 2, min(1));
    let c = event(p2, "premiere", 3, min(2));
    let d = event(p1, "later", 4, min(3));
    let live = event(p1, "m", 5, min(4));
    let out =
        s.log.append(&[held(&a), held(&b), held(&c), held(&d), queued(&live)], ROOMY).await.expect("append");
    assert_eq!(out, [Held, Held, Held, Held, Accepted]);
    assert_eq!(s.log.backlog().await.expect("backlog"), 1);
    assert_eq!(ids(&queue(s).await), [live.event_id]);
    assert_eq!(s.log.held_count().await.expect("held_count"), 4);
    assert_eq!(s.log.held_for_profile(p1).await.expect("held_for_profile"), 3);
    assert_eq!(s.log.held_for_profile(p2).await.expect("held_for_profile"), 1);
    assert_eq!(s.log.held_for_profile(ProfileId(Uuid::from_u128(77))).await.expect("held_for_profile"), 0);

    assert_eq!(s.log.release_held().await.expect("release_held"), 0, "no title imported yet");
    s.catalog.upsert_titles(&[movie("premiere")], at(0)).await.expect("upsert");
    assert_eq!(s.log.release_held().await.expect("release_held"), 3);
    assert_eq!(s.log.release_held().await.expect("release_held"), 0, "released once");

    let batch = queue(s).await;
    assert_eq!(batch[0].event.event_id, live.event_id, "released events queue after those already waiting");
    let released: BTreeSet<EventId> = ids(&batch[1..]).into_iter().collect();
    assert_eq!(released, BTreeSet::from([a.event_id, b.event_id, c.event_id]));
    assert_eq!(batch.iter().find(|q| q.event.event_id == c.event_id).map(|q| &q.event), Some(&c));
    assert_eq!(s.log.backlog().await.expect("backlog"), 4);
    assert_eq!(s.log.held_count().await.expect("held_count"), 1);
    assert_eq!(s.log.held_for_profile(p1).await.expect("held_for_profile"), 1);
    assert_eq!(s.log.held_for_profile(p2).await.expect("held_for_profile"), 0);
}

/// `expire_held` drops held events received strictly before the cutoff: they are never released,
/// replayed or applied, even after their title arrives.
pub async fn expired_held_events_are_dropped_for_good(s: &Stores) {
    let p = new_profile(s, 1).await;
    let old = event(p, "premiere", 1, min(0)); // received at min(0) + 1 s
    let young = event(p, "premiere", 2, min(10));
    s.log.append(&[held(&old), held(&young)], ROOMY).await.expect("append");
    assert_eq!(s.log.expire_held(old.received_at).await.expect("expire_held"), 0, "the cutoff is exclusive");
    assert_eq!(s.log.expire_held(young.received_at).await.expect("expire_held"), 1);
    assert_eq!(s.log.expire_held(young.received_at).await.expect("expire_held"), 0, "expired once");
    assert_eq!(s.log.held_count().await.expect("held_count"), 1);
    assert_eq!(s.log.held_for_profile(p).await.expect("held_for_profile"), 1);

    s.catalog.upsert_titles(&[movie("premiere")], at(0)).await.expect("upsert");
    assert_eq!(s.log.release_held().await.expect("release_held"), 1);
    assert_eq!(ids(&queue(s).await), [young.event_id]);
    assert_eq!(
        s.log.append(&[queued(&old)], ROOMY).await.expect("append"),
        [Duplicate],
        "still deduplicated"
    );

    let mut tx = s.viewing.begin().await.expect("begin");
    let seen =
        live(tx.events(p, &tid("premiere"), &implicit(Some("tv")), min(-60), min(60)).await.expect("events"));
    assert_eq!(seen.iter().map(|e| e.event_id).collect::<Vec<_>>(), [young.event_id]);
    tx.commit().await.expect("commit");
    let seqs: Vec<i64> = queue(s).await.iter().map(|q| q.seq).collect();
    let mut tx = s.viewing.begin().await.expect("begin");
    tx.claim(&seqs).await.expect("claim");
    tx.commit().await.expect("commit");
    assert_eq!(s.log.requeue_all().await.expect("requeue_all"), 1, "only the released event is replayed");
}

/// `next_batch` reads (without consuming) the oldest queued events, in append order, at most
/// `max`, with increasing sequence numbers.
pub async fn next_batch_is_oldest_first_and_bounded(s: &Stores) {
    let p = new_profile(s, 1).await;
    let events: Vec<_> = (1..=10).map(|n| event(p, "m", 100 - n, min(20 - n as i64))).collect();
    for chunk in events.chunks(4) {
        let entries: Vec<_> = chunk.iter().map(queued).collect();
        s.log.append(&entries, ROOMY).await.expect("append");
    }
    let want: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
    let first = s.log.next_batch(4).await.expect("next_batch");
    assert_eq!(ids(&first), want[..4]);
    assert!(first.windows(2).all(|w| w[0].seq < w[1].seq), "seqs increase");
    assert_eq!(ids(&s.log.next_batch(4).await.expect("next_batch")), want[..4], "reading does not consume");
    assert_eq!(ids(&s.log.next_batch(100).await.expect("next_batch")), want);
    assert!(s.log.next_batch(0).await.expect("next_batch").is_empty());
}

/// `backlog` is exactly the number of queued events, also after acknowledgements out of order.
pub async fn backlog_is_the_exact_queue_depth(s: &Stores) {
    let p = new_profile(s, 1).await;
    assert_eq!(s.log.backlog().await.expect("backlog"), 0);
    let events: Vec<_> = (1..=5).map(|n| event(p, "m", n, min(n as i64))).collect();
    let mut entries: Vec<_> = events.iter().map(queued).collect();
    entries.push(held(&event(p, "premiere", 9, min(9))));
    s.log.append(&entries, ROOMY).await.expect("append");
    assert_eq!(s.log.backlog().await.expect("backlog"), 5, "held events are not in the backlog");

    let batch = queue(s).await;
    let mut tx = s.viewing.begin().await.expect("begin");
    tx.claim(&[batch[1].seq, batch[3].seq]).await.expect("claim");
    tx.commit().await.expect("commit");
    assert_eq!(s.log.backlog().await.expect("backlog"), 3, "gaps in the queue are not counted");
    assert_eq!(ids(&queue(s).await), [events[0].event_id, events[2].event_id, events[4].event_id]);
    // Room for exactly two more.
    let more = [queued(&event(p, "m", 6, min(6))), queued(&event(p, "m", 7, min(7)))];
    s.log.append(&more, 5).await.expect("3 + 2 <= 5 fits");
}

/// `oldest_unapplied` is the receive time of the oldest queued event (the pipeline lag's start):
/// held events do not count, an applied head moves it on, an empty queue has none.
pub async fn oldest_unapplied_is_the_queue_head(s: &Stores) {
    let p = new_profile(s, 1).await;
    assert_eq!(s.log.oldest_unapplied().await.expect("oldest"), None);
    let events: Vec<_> = (1..=3).map(|n| event(p, "m", n, min(n as i64))).collect();
    let mut entries = vec![held(&event(p, "premiere", 9, min(0)))];
    entries.extend(events.iter().map(queued));
    s.log.append(&entries, ROOMY).await.expect("append");
    assert_eq!(s.log.oldest_unapplied().await.expect("oldest"), Some(events[0].received_at));

    let batch = queue(s).await;
    let mut tx = s.viewing.begin().await.expect("begin");
    tx.claim(&[batch[0].seq]).await.expect("claim");
    tx.commit().await.expect("commit");
    assert_eq!(s.log.oldest_unapplied().await.expect("oldest"), Some(events[1].received_at));

    let mut tx = s.viewing.begin().await.expect("begin");
    tx.claim(&[batch[1].seq, batch[2].seq]).await.expect("claim");
    tx.commit().await.expect("commit");
    assert_eq!(s.log.oldest_unapplied().await.expect("oldest"), None, "only a held event is left");
}

/// `claim` deletes queue rows and returns the event ids it acknowledged; seqs
/// already acknowledged (a redelivery) or unknown return nothing.
pub async fn claims_acknowledge_each_event_once(s: &Stores) {
    let p = new_profile(s, 1).await;
    let events: Vec<_> = (1..=5).map(|n| event(p, "m", n, min(n as i64))).collect();
    let entries: Vec<_> = events.iter().map(queued).collect();
    s.log.append(&entries, ROOMY).await.expect("append");
    let batch = queue(s).await;
    let seqs: Vec<i64> = batch.iter().map(|q| q.seq).collect();
    let want: Vec<EventId> = events.iter().map(|e| e.event_id).collect();

    let mut tx = s.viewing.begin().await.expect("begin");
    let first_three = [seqs[2], seqs[0], seqs[1]];
    assert_eq!(set(tx.claim(&first_three).await.expect("claim")), set(want[..3].to_vec()));
    assert_eq!(tx.claim(&first_three).await.expect("claim"), vec![], "claimed already, in this transaction");
    tx.commit().await.expect("commit");
    assert_eq!(s.log.backlog().await.expect("backlog"), 2);

    let mut tx = s.viewing.begin().await.expect("begin");
    assert_eq!(tx.claim(&first_three).await.expect("claim"), vec![], "a redelivery claims nothing");
    let unknown = seqs.iter().max().copied().unwrap_or(0) + 1_000;
    assert_eq!(tx.claim(&[unknown]).await.expect("claim"), vec![]);
    assert_eq!(tx.claim(&[]).await.expect("claim"), vec![]);
    assert_eq!(set(tx.claim(&seqs).await.expect("claim")), set(want[3..].to_vec()));
    tx.commit().await.expect("commit");
    assert_eq!(s.log.backlog().await.expect("backlog"), 0);
    assert!(queue(s).await.is_empty());

    // New events get new seqs: an old acknowledgement can never claim them.
    s.log.append(&[queued(&event(p, "m", 6, min(6)))], ROOMY).await.expect("append");
    let mut tx = s.viewing.begin().await.expect("begin");
    assert_eq!(tx.claim(&seqs).await.expect("claim"), vec![]);
    tx.commit().await.expect("commit");
    assert_eq!(s.log.backlog().await.expect("backlog"), 1);
}

/// `requeue_all` queues every logged event once more (appended or recorded as applied), never held
/// or dropped ones, and does not queue an event twice while it is still waiting.
pub async fn requeue_all_replays_every_logged_event(s: &Stores) {
    let p = new_profile(s, 1).await;
    let a = event(p, "m", 1, min(1));
    let b = event(p, "m", 2, min(2));
    let c = event(p, "premiere", 3, min(3));
    let d = event(p, "m", 4, min(4));
    let bad = event(p, "m", 5, min(5));
    s.log.append(&[queued(&a), queued(&b), held(&c), queued(&bad)], ROOMY).await.expect("append");
    let seqs: Vec<i64> = queue(s).await.iter().map(|q| q.seq).collect();
    let mut tx = s.viewing.begin().await.expect("begin");
    tx.claim(&seqs).await.expect("claim");
    tx.drop_events(&[bad.event_id]).await.expect("drop_events");
    assert!(tx.record_applied(&d).await.expect("record_applied"));
    tx.commit().await.expect("commit");
    assert_eq!(s.log.backlog().await.expect("backlog"), 0);

    assert_eq!(s.log.requeue_all().await.expect("requeue_all"), 3);
    let replayed: BTreeSet<EventId> = ids(&queue(s).await).into_iter().collect();
    assert_eq!(replayed, BTreeSet::from([a.event_id, b.event_id, d.event_id]));
    assert_eq!(s.log.requeue_all().await.expect("requeue_all"), 0, "still queued: not queued twice");
    assert_eq!(s.log.backlog().await.expect("backlog"), 3);
    let replayed_b = queue(s).await.into_iter().find(|q| q.event.event_id == b.event_id).map(|q| q.event);
    assert_eq!(replayed_b, Some(b), "a replayed event is the stored event");
}

/// The events of a group that no deleted play covers.
fn live(events: Vec<GroupEvent>) -> Vec<PlaybackEvent> {
    events.into_iter().filter(|g| !g.deleted).map(|g| g.event).collect()
}
