//! [`IdempotencyStore`](playhead_core::ports::IdempotencyStore): one holder per key, replay of
//! completed responses for the same payload only, release, lease take-over, expiry.

use playhead_core::ports::{IdempotencyBegin, StoredResponse};

use crate::Stores;
use crate::fixtures::at;

const FP: [u8; 32] = [7; 32];
const OTHER: [u8; 32] = [9; 32];
const LEASE: i64 = 60_000;

fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/v1/x/1".into()),
        ],
        body: b"{\"id\":1}\x00\xff".to_vec(),
    }
}

/// The first `begin` holds the key; while it runs, the same payload is `InFlight` and another
/// payload is `Mismatch`; other keys are independent.
pub async fn a_key_is_held_by_one_request_at_a_time(s: &Stores) {
    let st = &s.idempotency;
    assert_eq!(st.begin("p1:k", FP, at(0), LEASE).await.expect("begin"), IdempotencyBegin::Started);
    assert_eq!(st.begin("p1:k", FP, at(1), LEASE).await.expect("begin"), IdempotencyBegin::InFlight);
    assert_eq!(st.begin("p1:k", OTHER, at(1), LEASE).await.expect("begin"), IdempotencyBegin::Mismatch);
    assert_eq!(st.begin("p2:k", FP, at(1), LEASE).await.expect("begin"), IdempotencyBegin::Started);
}

/// A completed key replays its exact response (status, headers in order, binary body) for the same
/// payload, answers `Mismatch` for another, and is forgotten once expired (and purged).
pub async fn completed_keys_replay_until_they_expire(s: &Stores) {
    let st = &s.idempotency;
    assert_eq!(st.begin("p1:k", FP, at(0), LEASE).await.expect("begin"), IdempotencyBegin::Started);
    st.complete("p1:k", FP, &response(), at(1_000)).await.expect("complete");
    assert_eq!(
        st.begin("p1:k", FP, at(10), LEASE).await.expect("begin"),
        IdempotencyBegin::Completed(response())
    );
    assert_eq!(st.begin("p1:k", OTHER, at(10), LEASE).await.expect("begin"), IdempotencyBegin::Mismatch);
    // A complete for a key nobody holds with that payload changes nothing.
    st.complete("p1:k", OTHER, &StoredResponse { status: 500, ..response() }, at(2_000))
        .await
        .expect("complete");
    assert_eq!(
        st.begin("p1:k", FP, at(20), LEASE).await.expect("begin"),
        IdempotencyBegin::Completed(response())
    );

    assert_eq!(st.begin("p2:k", FP, at(0), LEASE).await.expect("begin"), IdempotencyBegin::Started);
    st.complete("p2:k", FP, &response(), at(5_000)).await.expect("complete");
    assert_eq!(st.purge_expired(at(1_000)).await.expect("purge"), 1, "only the expired entry is purged");
    assert_eq!(st.begin("p1:k", OTHER, at(1_000), LEASE).await.expect("begin"), IdempotencyBegin::Started);
    assert_eq!(
        st.begin("p2:k", FP, at(1_000), LEASE).await.expect("begin"),
        IdempotencyBegin::Completed(response())
    );
}

/// A released key can be used again at once (with any payload); a running key whose lease has
/// passed (its process died) is taken over.
pub async fn released_and_abandoned_keys_can_be_retried(s: &Stores) {
    let st = &s.idempotency;
    assert_eq!(st.begin("p1:k", FP, at(0), LEASE).await.expect("begin"), IdempotencyBegin::Started);
    st.release("p1:k", OTHER).await.expect("release with another payload");
    assert_eq!(
        st.begin("p1:k", FP, at(1), LEASE).await.expect("begin"),
        IdempotencyBegin::InFlight,
        "not released by a stranger"
    );
    st.release("p1:k", FP).await.expect("release");
    assert_eq!(st.begin("p1:k", OTHER, at(2), LEASE).await.expect("begin"), IdempotencyBegin::Started);

    assert_eq!(st.begin("p1:dead", FP, at(0), LEASE).await.expect("begin"), IdempotencyBegin::Started);
    assert_eq!(
        st.begin("p1:dead", FP, at(LEASE - 1), LEASE).await.expect("begin"),
        IdempotencyBegin::InFlight
    );
    assert_eq!(st.begin("p1:dead", FP, at(LEASE), LEASE).await.expect("begin"), IdempotencyBegin::Started);
    st.complete("p1:dead", FP, &response(), at(10 * LEASE)).await.expect("complete");
    assert_eq!(
        st.begin("p1:dead", FP, at(LEASE + 1), LEASE).await.expect("begin"),
        IdempotencyBegin::Completed(response())
    );
}
