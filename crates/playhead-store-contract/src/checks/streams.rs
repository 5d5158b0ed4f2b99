//! [`StreamStore`](playhead_core::ports::StreamStore): the limit counts per account and an
//! operator's own limit wins; a stopped stream is refused at its next event and frees its slot;
//! the timeout frees a slot; concurrent batches of one account never pass the limit.

use playhead_core::event::EventKind;
use playhead_core::ids::{AccountId, ProfileId, StreamId};
use playhead_core::ports::PruneKind;
use playhead_core::streams::{StreamRules, StreamTouch, StreamVerdict, stream_key};
use playhead_core::time::Timestamp;
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::{min, new_profile, tid};

const RULES: StreamRules = StreamRules { max_per_account: 2, timeout_ms: 120_000 };

fn account_of(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(0xacc0_0000 + n))
}

fn touch(profile: ProfileId, session: &str, kind: EventKind, at: Timestamp) -> StreamTouch {
    StreamTouch {
        profile,
        key: stream_key(Some(session), None, None).expect("a key"),
        title: tid("m1"),
        kind,
        occurred_at: at,
        device_id: Some(format!("dev-{session}")),
        signin_session: Some("sid-1".into()),
    }
}

async fn starts(
    s: &Stores,
    account: AccountId,
    profile: ProfileId,
    sessions: &[&str],
    now: Timestamp,
) -> Vec<StreamVerdict> {
    let touches: Vec<_> = sessions.iter().map(|x| touch(profile, x, EventKind::Start, now)).collect();
    s.streams.touch_streams(account, &touches, &RULES, now).await.expect("touch_streams").verdicts
}

/// Starts beyond the limit are refused, per account (another account's streams do not count),
/// every field round-trips, and an operator's own limit wins until cleared.
pub async fn streams_count_to_the_limit_per_account(s: &Stores) {
    use StreamVerdict::{Allowed, OverLimit};
    let (p1, p2) = (new_profile(s, 1).await, new_profile(s, 2).await);
    let (a1, a2) = (account_of(1), account_of(2));
    let now = min(10);
    assert_eq!(starts(s, a1, p1, &["a", "b", "c"], now).await, [Allowed, Allowed, OverLimit]);
    assert_eq!(starts(s, a2, p2, &["x"], now).await, [Allowed], "another account has its own slots");
    let live = s.streams.live_streams(a1, now, RULES.timeout_ms).await.expect("live_streams");
    assert_eq!(live.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), ["session:a", "session:b"]);
    let a = &live[0];
    assert_eq!((a.account, a.profile, a.title.as_str()), (a1, p1, "m1"));
    assert_eq!((a.device_id.as_deref(), a.signin_session.as_deref()), (Some("dev-a"), Some("sid-1")));
    assert_eq!((a.started_at, a.last_seen, a.stopped_at), (now, now, None));

    assert_eq!(s.streams.stream_limit(a1).await.expect("stream_limit"), None);
    s.streams.set_stream_limit(a1, Some(3)).await.expect("set");
    s.streams.set_stream_limit(a1, Some(3)).await.expect("set again (idempotent)");
    assert_eq!(s.streams.stream_limit(a1).await.expect("stream_limit"), Some(3));
    let out = s
        .streams
        .touch_streams(a1, &[touch(p1, "c", EventKind::Start, now)], &RULES, now)
        .await
        .expect("touch");
    assert_eq!((out.verdicts.as_slice(), out.limit, out.live.len()), ([Allowed].as_slice(), 3, 3));
    s.streams.set_stream_limit(a1, None).await.expect("clear");
    assert_eq!(starts(s, a1, p1, &["d"], now).await, [OverLimit], "back to the default of 2");
}

/// Stopping: only a live stream of the account (else `NotFound`); its slot is free at once and
/// its next event is refused as stopped.
pub async fn stopped_streams_are_refused_and_free_their_slot(s: &Stores) {
    use StreamVerdict::{Allowed, OverLimit, Stopped};
    let (p1, _) = (new_profile(s, 1).await, new_profile(s, 2).await);
    let (a1, a2) = (account_of(1), account_of(2));
    let now = min(10);
    assert_eq!(starts(s, a1, p1, &["a", "b", "c"], now).await, [Allowed, Allowed, OverLimit]);
    let live = s.streams.live_streams(a1, now, RULES.timeout_ms).await.expect("live");
    let a = live[0].id;
    let t = RULES.timeout_ms;
    assert!(matches!(s.streams.stop_stream(a2, a, now, t).await, Err(playhead_core::StoreError::NotFound)));
    let unknown = StreamId(Uuid::now_v7());
    assert!(matches!(
        s.streams.stop_stream(a1, unknown, now, t).await,
        Err(playhead_core::StoreError::NotFound)
    ));
    s.streams.stop_stream(a1, a, now, t).await.expect("stop");
    assert!(matches!(s.streams.stop_stream(a1, a, now, t).await, Err(playhead_core::StoreError::NotFound)));
    let later = now.plus_ms(1_000);
    let out = s
        .streams
        .touch_streams(
            a1,
            &[touch(p1, "c", EventKind::Start, later), touch(p1, "a", EventKind::Heartbeat, later)],
            &RULES,
            later,
        )
        .await
        .expect("touch");
    assert_eq!(out.verdicts, [Allowed, Stopped]);
    let keys: Vec<_> = out.live.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["session:b", "session:c"]);
}

/// A stream with no event for longer than the timeout no longer counts or lists.
pub async fn streams_expire_after_the_timeout(s: &Stores) {
    use StreamVerdict::{Allowed, OverLimit};
    let p1 = new_profile(s, 1).await;
    let a1 = account_of(1);
    let now = min(10);
    assert_eq!(starts(s, a1, p1, &["a", "b"], now).await, [Allowed, Allowed]);
    let edge = now.plus_ms(RULES.timeout_ms);
    assert_eq!(starts(s, a1, p1, &["c"], edge).await, [OverLimit]);
    let gone = edge.plus_ms(1);
    assert!(s.streams.live_streams(a1, gone, RULES.timeout_ms).await.expect("live").is_empty());
    assert_eq!(starts(s, a1, p1, &["c"], gone).await, [Allowed]);
}

/// The pruning job's `streams` kind: a row whose last event is before the horizon goes, one
/// seen at the horizon stays (the job runs it a day after the last event: decision 0092).
pub async fn streams_past_the_horizon_are_pruned(s: &Stores) {
    use StreamVerdict::Allowed;
    let p1 = new_profile(s, 1).await;
    let a1 = account_of(1);
    let (t0, t1) = (min(10), min(11));
    assert_eq!(starts(s, a1, p1, &["a"], t0).await, [Allowed]);
    assert_eq!(starts(s, a1, p1, &["b"], t1).await, [Allowed]);
    assert_eq!(s.streams.live_streams(a1, t1, RULES.timeout_ms).await.expect("live").len(), 2);
    let prune = |n| s.pruner.prune(PruneKind::Streams, t1, n);
    assert_eq!(prune(1).await.expect("prune"), 1);
    assert_eq!(prune(1).await.expect("prune"), 0, "nothing else is past the horizon");
    let live = s.streams.live_streams(a1, t1, RULES.timeout_ms).await.expect("live");
    assert_eq!(live.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), ["session:b"]);
}

/// Many batches of one account at once (one start each, from different devices): exactly the
/// limit is allowed, whatever the interleaving.
pub async fn concurrent_starts_never_pass_the_limit(s: &Stores) {
    let p1 = new_profile(s, 1).await;
    let a1 = account_of(1);
    let now = min(10);
    let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
    let calls = names.iter().map(|n| {
        let t = [touch(p1, n, EventKind::Start, now)];
        async move { s.streams.touch_streams(a1, &t, &RULES, now).await.expect("touch").verdicts[0] }
    });
    let verdicts = futures::future::join_all(calls).await;
    let allowed = verdicts.iter().filter(|v| **v == StreamVerdict::Allowed).count();
    assert_eq!(allowed, 2, "{verdicts:?}");
    assert_eq!(s.streams.live_streams(a1, now, RULES.timeout_ms).await.expect("live").len(), 2);
}
