//! [`playhead_core::ports::ErasureStore`]: sagas leased to one runner at a time, and erase steps
//! that leave nothing of a profile and can run twice.

use playhead_core::erasure::{Erasure, Scope, Step};
use playhead_core::ids::{ErasureId, PlayId, ProfileId};
use playhead_core::ports::{Feedback, FeedbackKind};
use playhead_core::rules::recs::{TRENDING_HALF_LIFE_MS, count_play};
use playhead_core::time::Timestamp;
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::{event, held, min, movie, new_profile, play, queued, tid};

fn saga(n: u128, scope: Scope, profiles: Vec<ProfileId>) -> Erasure {
    Erasure::new(ErasureId(Uuid::from_u128(0xe000 + n)), scope, profiles, "tests".into(), min(0))
}

async fn count(s: &Stores, profile: ProfileId, id: PlayId, item: &str, at: Timestamp) {
    let mut tx = s.viewing.begin().await.expect("begin");
    let window = tx.recs_window(profile, 50).await.expect("recs_window");
    let c = count_play(profile, id, tid(item), at, &window, TRENDING_HALF_LIFE_MS);
    assert!(tx.count_play(&c).await.expect("count_play"));
    tx.commit().await.expect("commit");
}

/// One unfinished saga per scope; a leased saga is invisible to other runners until its lease
/// expires, and only the lease holder saves it.
pub async fn sagas_are_leased_to_one_runner(s: &Stores) {
    let p = new_profile(s, 1).await;
    let account = s.accounts.profile(p).await.expect("profile").expect("exists").account_id;
    let scope = Scope::Profile { account, profile: p };
    let first = s.erasure.start_erasure(&saga(1, scope, vec![p])).await.expect("start");
    let again = s.erasure.start_erasure(&saga(2, scope, vec![p])).await.expect("start again");
    assert_eq!(again.id, first.id, "asking twice while it runs is the same saga");
    assert_eq!(s.erasure.erasure(first.id).await.expect("read"), Some(first.clone()));
    assert_eq!(s.erasure.erasure_backlog().await.expect("backlog"), (1, 0));

    let leased = s.erasure.claim_erasure("a", min(1), min(2)).await.expect("claim").expect("due");
    assert_eq!(leased.id, first.id);
    assert!(s.erasure.claim_erasure("b", min(1), min(2)).await.expect("claim").is_none(), "leased to a");
    let mut progressed = leased.clone();
    progressed.step_done(Step::StopAccepting, min(1));
    assert!(!s.erasure.save_erasure(&progressed, "b", Some(min(3))).await.expect("save"), "b holds no lease");
    assert!(s.erasure.save_erasure(&progressed, "a", Some(min(3))).await.expect("save"));
    // a dies: after its lease, b takes the saga over where a left it.
    assert!(s.erasure.claim_erasure("b", min(2), min(4)).await.expect("claim").is_none());
    let taken =
        s.erasure.claim_erasure("b", Timestamp(min(3).0 + 1), min(9)).await.expect("claim").expect("expired");
    assert_eq!(taken.next_step(), Some(Step::DropQueued));
    // A failed step waits for its backoff.
    let mut failed = taken.clone();
    failed.step_failed(Step::DropQueued, "database down", min(5));
    assert!(s.erasure.save_erasure(&failed, "b", None).await.expect("save"));
    assert!(s.erasure.claim_erasure("c", min(5), min(10)).await.expect("claim").is_none(), "backing off");
    assert!(s.erasure.claim_erasure("c", failed.next_attempt_at, min(10)).await.expect("claim").is_some());
    // Done: never claimed again, and a new request starts a new saga.
    let mut done = failed.clone();
    for step in Step::ORDER {
        done.step_done(step, min(6));
    }
    assert!(s.erasure.save_erasure(&done, "c", None).await.expect("save"));
    assert_eq!(s.erasure.erasure_backlog().await.expect("backlog"), (0, 0));
    assert!(s.erasure.claim_erasure("d", min(60), min(61)).await.expect("claim").is_none());
    let next = s.erasure.start_erasure(&saga(3, scope, vec![p])).await.expect("start");
    assert_ne!(next.id, first.id);
}

/// The steps leave nothing of the profile (rows, queue, held events, counters, feedback) and
/// nothing changes when they run again; another profile keeps everything, counters included.
pub async fn erase_steps_leave_nothing_and_run_twice(s: &Stores) {
    s.catalog.upsert_titles(&[movie("a"), movie("b")], min(0)).await.expect("upsert");
    let p = new_profile(s, 1).await;
    let q = new_profile(s, 2).await;
    for (profile, base) in [(p, 0u128), (q, 100)] {
        let events = [event(profile, "a", base + 1, min(1)), event(profile, "b", base + 2, min(2))];
        s.log.append(&[queued(&events[0]), queued(&events[1])], 1_000).await.expect("append");
        count(s, profile, play(base + 1), "a", min(1)).await;
        count(s, profile, play(base + 2), "b", min(2)).await;
        s.recs
            .set_feedback(profile, &Feedback { title_id: tid("a"), kind: FeedbackKind::Up, at: min(3) })
            .await
            .expect("feedback");
        s.recs.record_impressions(profile, &[tid("a")], min(3)).await.expect("impressions");
        s.viewing.hide(profile, &tid("a"), min(3)).await.expect("hide");
    }
    s.log.append(&[held(&event(p, "premiere", 9, min(4)))], 1_000).await.expect("append held");
    let a = s.recs.cowatch(&tid("a"), 10).await.expect("cowatch");
    assert_eq!((a.count, a.neighbours[0].1), (2, 2));

    let account = s.accounts.profile(p).await.expect("profile").expect("exists").account_id;
    let e = s
        .erasure
        .start_erasure(&saga(1, Scope::Profile { account, profile: p }, vec![p]))
        .await
        .expect("start");
    for _ in 0..2 {
        s.erasure.erase_stop(&e, min(5)).await.expect("stop");
        s.erasure.erase_queued(&e).await.expect("queued");
        s.erasure.erase_recs_signals(&e).await.expect("recs");
        s.erasure.erase_rows(&e).await.expect("rows");
    }
    assert!(s.accounts.profile(p).await.expect("profile").is_none());
    assert_eq!(s.erasure.erased_profile(p).await.expect("watermark"), Some((account, e.id)));
    assert_eq!(s.erasure.erased_profile(q).await.expect("watermark"), None);
    assert_eq!(s.log.held_for_profile(p).await.expect("held"), 0);
    let left: Vec<ProfileId> =
        s.log.next_batch(100).await.expect("batch").iter().map(|q| q.event.profile_id).collect();
    assert_eq!(left, vec![q, q], "only the other profile's events wait");
    assert!(s.recs.feedback(p).await.expect("feedback").is_empty());
    assert!(s.recs.impressions(p).await.expect("impressions").is_empty());
    assert_eq!(s.recs.feedback(q).await.expect("feedback").len(), 1);
    let mut tx = s.viewing.begin().await.expect("begin");
    assert!(tx.recs_window(p, 50).await.expect("window").is_empty());
    assert_eq!(tx.recs_window(q, 50).await.expect("window").len(), 2);
    drop(tx);
    let a = s.recs.cowatch(&tid("a"), 10).await.expect("cowatch");
    assert_eq!((a.count, a.neighbours[0].1), (1, 1), "only the other profile's pair is left");
    let t = s.recs.trending(10).await.expect("trending");
    let one = |m: i64| playhead_core::rules::recs::decay_weight(min(m), TRENDING_HALF_LIFE_MS);
    let weight = |i: &str| t.iter().find(|(x, _)| x.as_str() == i).map(|(_, w)| *w).expect("voted");
    assert!((weight("a") - one(1)).abs() < 1e-6 * one(1), "trending keeps one vote for a");
    assert!((weight("b") - one(2)).abs() < 1e-6 * one(2), "trending keeps one vote for b");
}
