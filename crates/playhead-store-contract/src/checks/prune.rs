//! [`Pruner`](playhead_core::ports::Pruner): each kind deletes only what is past its horizon, at
//! most a batch at a time, and reports how many rows went.

use playhead_core::auth::Scopes;
use playhead_core::identity::{
    AuditEntry, AuthCode, CodeUse, DenialKind, DeviceCode, DeviceStatus, RefreshToken, Session, TokenDenial,
    WebSession,
};
use playhead_core::ids::AccountId;
use playhead_core::ports::{IdempotencyBegin, PruneKind, StoredResponse};
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::at;

fn digest(seed: u8) -> [u8; 32] {
    [seed; 32]
}

/// Prune `kind` past `horizon` in batches of `batch` until a batch comes back short; the rows
/// deleted by each batch.
async fn prune_all(s: &Stores, kind: PruneKind, horizon: i64, batch: u32) -> Vec<u64> {
    let mut batches = Vec::new();
    loop {
        let n = s.pruner.prune(kind, at(horizon), batch).await.expect("prune");
        batches.push(n);
        if n < u64::from(batch) {
            return batches;
        }
    }
}

/// Authorization and device codes that expired before the horizon go, in batches; a code that
/// expires at or after it stays.
pub async fn expired_codes_are_pruned_in_batches(s: &Stores) {
    let account = AccountId(Uuid::now_v7());
    let code = |seed: u8, expires: i64| AuthCode {
        hash: digest(seed),
        client_id: "web".into(),
        account,
        redirect_uri: "https://a.example/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scopes: Scopes::parse("history:read").expect("scopes"),
        profile: None,
        auth_time: at(0),
        session_id: format!("s-{seed}"),
        expires_at: at(expires),
        used_at: None,
    };
    for (seed, expires) in [(1, 10), (2, 20), (3, 30), (4, 100)] {
        s.identity.create_auth_code(&code(seed, expires)).await.expect("create_auth_code");
    }
    assert_eq!(prune_all(s, PruneKind::AuthCodes, 100, 2).await, vec![2, 1]);
    for seed in [1, 2, 3] {
        assert_eq!(
            s.identity.consume_auth_code(digest(seed), at(200)).await.expect("consume"),
            CodeUse::Unknown
        );
    }
    assert!(matches!(
        s.identity.consume_auth_code(digest(4), at(200)).await.expect("consume"),
        CodeUse::Fresh(_)
    ));

    let device = |seed: u8, user_code: &str, expires: i64| DeviceCode {
        hash: digest(seed),
        user_code: user_code.into(),
        client_id: "tv".into(),
        scopes: Scopes::parse("history:read").expect("scopes"),
        expires_at: at(expires),
        interval_secs: 5,
        last_poll_at: None,
        status: DeviceStatus::Pending,
        version: 1,
    };
    s.identity.create_device_code(&device(10, "BCDFGHJK", 50)).await.expect("create_device_code");
    s.identity.create_device_code(&device(11, "BCDFGHJL", 150)).await.expect("create_device_code");
    assert_eq!(prune_all(s, PruneKind::DeviceCodes, 100, 10).await, vec![1]);
    assert_eq!(s.identity.device_code(digest(10)).await.expect("device_code"), None);
    assert!(s.identity.device_code(digest(11)).await.expect("device_code").is_some());
}

/// Refresh tokens that expired before the horizon go (used or not); a session goes once it was
/// created (and, if revoked, revoked) before the horizon and none of its refresh tokens expires
/// at or after it, so a family still in use, a session started after the horizon, or one revoked
/// after it (the revocation poll still reads it), stays.
pub async fn refresh_families_and_sessions_go_after_their_lifetime(s: &Stores) {
    let account = AccountId(Uuid::now_v7());
    let session = |id: &str, created: i64| Session {
        id: id.into(),
        account,
        client_id: "tv".into(),
        scopes: Scopes::parse("history:read").expect("scopes"),
        profile: None,
        auth_time: at(created),
        created_at: at(created),
        revoked_at: None,
    };
    let revoked = |id: &str, at_ms: i64| Session { revoked_at: Some(at(at_ms)), ..session(id, 10) };
    let token = |seed: u8, sid: &str, expires: i64, used: Option<i64>| RefreshToken {
        hash: digest(seed),
        session_id: sid.into(),
        client_id: "tv".into(),
        created_at: at(0),
        expires_at: at(expires),
        used_at: used.map(at),
    };
    for x in [
        session("ended", 10),
        session("in-use", 10),
        session("no-refresh", 20),
        session("young", 500),
        revoked("revoked-long-ago", 50),
        revoked("revoked-lately", 150),
    ] {
        s.identity.create_session(&x).await.expect("create_session");
    }
    s.identity.create_refresh_token(&token(1, "ended", 40, Some(30))).await.expect("refresh");
    s.identity.create_refresh_token(&token(2, "ended", 50, None)).await.expect("refresh");
    s.identity.create_refresh_token(&token(3, "in-use", 60, Some(55))).await.expect("refresh");
    s.identity.create_refresh_token(&token(4, "in-use", 5_000, None)).await.expect("refresh");

    assert_eq!(prune_all(s, PruneKind::RefreshTokens, 100, 10).await, vec![3]);
    for seed in [1, 2, 3] {
        assert_eq!(s.identity.refresh_token(digest(seed)).await.expect("refresh_token"), None);
    }
    assert!(s.identity.refresh_token(digest(4)).await.expect("refresh_token").is_some());

    assert_eq!(prune_all(s, PruneKind::Sessions, 100, 10).await, vec![3]);
    for (id, kept) in [
        ("ended", false),
        ("no-refresh", false),
        ("revoked-long-ago", false),
        ("in-use", true),
        ("young", true),
        ("revoked-lately", true),
    ] {
        assert_eq!(s.identity.session(id).await.expect("session").is_some(), kept, "{id}");
    }
}

/// Browser sessions that expired before the horizon go.
pub async fn expired_browser_sessions_are_pruned(s: &Stores) {
    let account = AccountId(Uuid::now_v7());
    let web = |seed: u8, expires: i64| WebSession {
        hash: digest(seed),
        account,
        auth_time: at(0),
        expires_at: at(expires),
        revoked_at: None,
    };
    s.identity.create_web_session(&web(1, 99)).await.expect("web");
    s.identity.create_web_session(&web(2, 100)).await.expect("web");
    assert_eq!(prune_all(s, PruneKind::WebSessions, 100, 10).await, vec![1]);
    assert_eq!(s.identity.web_session(digest(1)).await.expect("web_session"), None);
    assert!(s.identity.web_session(digest(2)).await.expect("web_session").is_some());
}

/// Idempotency records go when completed and expired before the horizon, or still running but
/// started before it; a recent running key and an unexpired completed one stay.
pub async fn idempotency_records_past_the_horizon_are_pruned(s: &Stores) {
    let st = &s.idempotency;
    let fp = [7; 32];
    let response = StoredResponse { status: 201, headers: vec![], body: b"{}".to_vec() };
    let lease = 1_000_000;
    for (key, started) in [("done-old", 0), ("run-old", 10), ("run-new", 200), ("done-new", 0)] {
        assert_eq!(st.begin(key, fp, at(started), lease).await.expect("begin"), IdempotencyBegin::Started);
    }
    st.complete("done-old", fp, &response, at(50)).await.expect("complete");
    st.complete("done-new", fp, &response, at(5_000)).await.expect("complete");
    assert_eq!(prune_all(s, PruneKind::IdempotencyKeys, 100, 10).await, vec![2]);
    // A pruned running key is free again; one kept is still held.
    assert_eq!(st.begin("run-old", fp, at(300), lease).await.expect("begin"), IdempotencyBegin::Started);
    assert_eq!(st.begin("run-new", fp, at(300), lease).await.expect("begin"), IdempotencyBegin::InFlight);
    assert_eq!(
        st.begin("done-new", fp, at(300), lease).await.expect("begin"),
        IdempotencyBegin::Completed(response)
    );
}

/// Audit entries recorded before the horizon go, oldest first, a batch at a time.
pub async fn audit_entries_before_the_horizon_are_pruned(s: &Stores) {
    let entry = |n: i64| AuditEntry {
        at: at(n),
        actor: format!("actor-{n}"),
        action: "signin.failed".into(),
        detail: "{}".into(),
        client_addr: None,
    };
    s.identity.audit(&[entry(10), entry(20), entry(100), entry(300)]).await.expect("audit");
    assert_eq!(prune_all(s, PruneKind::Audit, 100, 1).await, vec![1, 1, 0]);
    assert_eq!(s.identity.audit_since(at(0), 10).await.expect("audit_since"), vec![entry(100), entry(300)]);
}

/// Deny-list entries whose end passed before the horizon go; one still in force stays.
pub async fn ended_token_denials_are_pruned(s: &Stores) {
    let denial = |id: &str, until: i64| TokenDenial {
        kind: DenialKind::Token,
        id: id.into(),
        client_id: "svc".into(),
        revoked_at: at(0),
        until: at(until),
    };
    s.identity.deny_tokens(&denial("old", 50)).await.expect("deny");
    s.identity.deny_tokens(&denial("live", 5_000)).await.expect("deny");
    assert_eq!(prune_all(s, PruneKind::TokenDenials, 100, 10).await, vec![1]);
    assert_eq!(s.identity.token_denials(at(0)).await.expect("poll"), vec![denial("live", 5_000)]);
}
