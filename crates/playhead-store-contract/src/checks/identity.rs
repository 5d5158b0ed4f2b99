//! [`IdentityStore`](playhead_core::ports::IdentityStore): records round-trip, and everything that
//! consumes (codes, refresh tokens, device codes) is won by exactly one of two racing callers.

use playhead_core::StoreError;
use playhead_core::auth::{Scope, Scopes};
use playhead_core::identity::{
    AuditEntry, AuthCode, ClientType, CodeUse, DeviceCode, DeviceStatus, GrantType, OAuthClient,
    RefreshToken, RefreshUse, Session, SigningKeyRecord, WebSession,
};
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::profile::{Account, Email};
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::at;

fn digest(seed: u8) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = seed.wrapping_add((i as u8).wrapping_mul(41)) ^ 0x9c;
    }
    h
}

async fn account(s: &Stores) -> AccountId {
    let id = AccountId(Uuid::now_v7());
    let email = Email::parse(&format!("{}@example.com", id.0.simple())).expect("email");
    s.accounts.create_account(&Account { id, email, created_at: at(0) }).await.expect("create_account");
    id
}

/// Passwords are set, replaced and read per account; an unknown account is `NotFound`. Clients
/// round-trip every field and their ids are unique.
pub async fn passwords_and_clients_round_trip(s: &Stores) {
    let a = account(s).await;
    assert_eq!(s.identity.password(a).await.expect("password"), None);
    s.identity.set_password(a, "$argon2id$v=19$first").await.expect("set_password");
    s.identity.set_password(a, "$argon2id$v=19$second").await.expect("set_password again");
    assert_eq!(s.identity.password(a).await.expect("password").as_deref(), Some("$argon2id$v=19$second"));
    assert!(
        matches!(s.identity.set_password(AccountId(Uuid::now_v7()), "x").await, Err(StoreError::NotFound)),
        "a password for a missing account must be NotFound"
    );

    let public = OAuthClient {
        client_id: "tv-app".into(),
        name: "Living-room TV".into(),
        client_type: ClientType::Public,
        secret_hash: None,
        redirect_uris: vec![],
        grants: vec![GrantType::DeviceCode, GrantType::RefreshToken],
        scopes: Scope::VIEWER.into_iter().collect(),
        created_at: at(1),
    };
    let confidential = OAuthClient {
        client_id: "partner".into(),
        name: "Partner backend".into(),
        client_type: ClientType::Confidential,
        secret_hash: Some(digest(3)),
        redirect_uris: vec!["https://a.example/cb".into(), "http://127.0.0.1:9/cb".into()],
        grants: GrantType::ALL.to_vec(),
        scopes: Scopes::parse("catalog:write profiles:any").expect("scopes"),
        created_at: at(2),
    };
    for c in [&public, &confidential] {
        s.identity.create_client(c).await.expect("create_client");
        assert_eq!(s.identity.client(&c.client_id).await.expect("client").as_ref(), Some(c));
    }
    let dup = OAuthClient { name: "impostor".into(), ..public.clone() };
    assert!(matches!(s.identity.create_client(&dup).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.identity.client("tv-app").await.expect("client"), Some(public));
    assert_eq!(s.identity.client("nobody").await.expect("client"), None);
}

/// Sessions round-trip; revocation keeps the first time, answers `false` for an unknown id, and
/// the revocation poll returns exactly the sessions revoked since the given time. Browser
/// sessions round-trip and sign out.
pub async fn sessions_revoke_once_and_are_polled(s: &Stores) {
    let a = account(s).await;
    let session = |id: &str, profile: Option<ProfileId>| Session {
        id: id.into(),
        account: a,
        client_id: "tv-app".into(),
        scopes: Scopes::parse("history:read").expect("scopes"),
        profile,
        auth_time: at(10),
        created_at: at(11),
        revoked_at: None,
    };
    let one = session("s-1", Some(ProfileId(Uuid::now_v7())));
    let two = session("s-2", None);
    let three = session("s-3", None);
    for x in [&one, &two, &three] {
        s.identity.create_session(x).await.expect("create_session");
        assert_eq!(s.identity.session(&x.id).await.expect("session").as_ref(), Some(x));
    }
    assert!(matches!(s.identity.create_session(&one).await, Err(StoreError::Conflict(_))));
    assert!(s.identity.revoke_session("s-1", at(100)).await.expect("revoke"));
    assert!(s.identity.revoke_session("s-1", at(200)).await.expect("revoke again"));
    assert!(s.identity.revoke_session("s-2", at(300)).await.expect("revoke"));
    assert!(!s.identity.revoke_session("s-none", at(300)).await.expect("revoke unknown"));
    assert_eq!(s.identity.session("s-1").await.expect("session").and_then(|x| x.revoked_at), Some(at(100)));
    let mut since = s.identity.revoked_sessions_since(at(100)).await.expect("poll");
    since.sort();
    assert_eq!(since, vec!["s-1".to_owned(), "s-2".to_owned()]);
    assert_eq!(s.identity.revoked_sessions_since(at(101)).await.expect("poll"), vec!["s-2".to_owned()]);

    let web =
        WebSession { hash: digest(9), account: a, auth_time: at(5), expires_at: at(500), revoked_at: None };
    s.identity.create_web_session(&web).await.expect("create_web_session");
    assert_eq!(s.identity.web_session(digest(9)).await.expect("web_session").as_ref(), Some(&web));
    s.identity.revoke_web_session(digest(9), at(50)).await.expect("sign out");
    s.identity.revoke_web_session(digest(9), at(60)).await.expect("sign out again");
    assert_eq!(
        s.identity.web_session(digest(9)).await.expect("web_session"),
        Some(WebSession { revoked_at: Some(at(50)), ..web })
    );
    assert_eq!(s.identity.web_session(digest(10)).await.expect("web_session"), None);
}

/// An authorization code is consumed once: of two concurrent consumers exactly one gets `Fresh`,
/// the other `Reused` (with the record, so the caller can revoke its session); unknown codes are
/// `Unknown`.
pub async fn auth_codes_are_consumed_once(s: &Stores) {
    let a = account(s).await;
    let code = AuthCode {
        hash: digest(1),
        client_id: "web".into(),
        account: a,
        redirect_uri: "https://a.example/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scopes: Scopes::parse("history:read recs:read").expect("scopes"),
        profile: Some(ProfileId(Uuid::now_v7())),
        auth_time: at(7),
        session_id: "s-code".into(),
        expires_at: at(600),
        used_at: None,
    };
    s.identity.create_auth_code(&code).await.expect("create_auth_code");
    let (x, y) = futures::join!(
        s.identity.consume_auth_code(digest(1), at(20)),
        s.identity.consume_auth_code(digest(1), at(21))
    );
    let outcomes = [x.expect("consume"), y.expect("consume")];
    let fresh: Vec<_> = outcomes.iter().filter(|o| matches!(o, CodeUse::Fresh(_))).collect();
    assert_eq!(fresh.len(), 1, "exactly one consumer wins: {outcomes:?}");
    let CodeUse::Fresh(won) = fresh[0] else { unreachable!() };
    assert_eq!(AuthCode { used_at: None, ..won.clone() }, code, "the code reads back whole");
    let used_at = won.used_at.expect("marked used");
    match s.identity.consume_auth_code(digest(1), at(30)).await.expect("consume") {
        CodeUse::Reused(c) => assert_eq!(c.used_at, Some(used_at), "the first use time is kept"),
        other => panic!("a third use must be Reused, got {other:?}"),
    }
    assert_eq!(s.identity.consume_auth_code(digest(2), at(30)).await.expect("consume"), CodeUse::Unknown);
}

/// Device codes: found by digest and, while pending, by user code; updates are conditional on
/// the version (exactly one of two racing writers wins); a pending user code is unique, and once
/// the code leaves `pending` its user code is free again and no longer found.
pub async fn device_codes_update_conditionally(s: &Stores) {
    let a = account(s).await;
    let code = DeviceCode {
        hash: digest(4),
        user_code: "BCDFGHJK".into(),
        client_id: "tv-app".into(),
        scopes: Scopes::parse("history:read").expect("scopes"),
        expires_at: at(1_800),
        interval_secs: 5,
        last_poll_at: None,
        status: DeviceStatus::Pending,
        version: 1,
    };
    s.identity.create_device_code(&code).await.expect("create_device_code");
    assert_eq!(s.identity.device_code(digest(4)).await.expect("device_code").as_ref(), Some(&code));
    assert_eq!(s.identity.pending_device_code("BCDFGHJK").await.expect("pending").as_ref(), Some(&code));
    let clash = DeviceCode { hash: digest(5), ..code.clone() };
    assert!(matches!(s.identity.create_device_code(&clash).await, Err(StoreError::Conflict(_))));

    let profile = ProfileId(Uuid::now_v7());
    let approved = DeviceCode {
        status: DeviceStatus::Approved { account: a, profile: Some(profile), auth_time: at(60) },
        version: 2,
        ..code.clone()
    };
    let denied = DeviceCode { status: DeviceStatus::Denied, version: 2, ..code.clone() };
    let (x, y) = futures::join!(
        s.identity.update_device_code(&approved, 1),
        s.identity.update_device_code(&denied, 1)
    );
    assert_eq!(
        [x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "exactly one conditional update wins: {x:?} {y:?}"
    );
    let stored = s.identity.device_code(digest(4)).await.expect("device_code").expect("stored");
    assert!(stored == approved || stored == denied, "{stored:?}");
    assert!(matches!(s.identity.update_device_code(&approved, 1).await, Err(StoreError::PreconditionFailed)));
    assert_eq!(s.identity.pending_device_code("BCDFGHJK").await.expect("pending"), None);
    // The decided one is still found by its user code (the page says "already used")...
    assert_eq!(
        s.identity.device_code_by_user_code("BCDFGHJK").await.expect("by user code").as_ref(),
        Some(&stored)
    );
    assert_eq!(s.identity.device_code_by_user_code("BCDFGHJZ").await.expect("by user code"), None);
    s.identity.create_device_code(&clash).await.expect("the user code is free once not pending");
    // ...until the code is drawn again: then the pending one is the one a person means.
    assert_eq!(
        s.identity.device_code_by_user_code("BCDFGHJK").await.expect("by user code").as_ref(),
        Some(&clash)
    );
}

/// A refresh token rotates once: of two concurrent presentations exactly one gets `Rotated` and
/// its successor is stored; the other gets `Reused` and stores nothing.
pub async fn refresh_tokens_rotate_once(s: &Stores) {
    let token = |seed: u8| RefreshToken {
        hash: digest(seed),
        session_id: "fam-1".into(),
        client_id: "tv-app".into(),
        created_at: at(0),
        expires_at: at(86_400),
        used_at: None,
    };
    s.identity.create_refresh_token(&token(20)).await.expect("create_refresh_token");
    assert_eq!(s.identity.refresh_token(digest(20)).await.expect("refresh_token"), Some(token(20)));
    let (t21, t22) = (token(21), token(22));
    let (x, y) = futures::join!(
        s.identity.rotate_refresh_token(digest(20), at(5), &t21),
        s.identity.rotate_refresh_token(digest(20), at(6), &t22)
    );
    let outcomes = [x.expect("rotate"), y.expect("rotate")];
    let rotated = outcomes.iter().filter(|o| matches!(o, RefreshUse::Rotated(_))).count();
    assert_eq!(rotated, 1, "exactly one presentation rotates: {outcomes:?}");
    let stored = [21, 22].map(digest);
    let mut successors = 0;
    for h in stored {
        if let Some(t) = s.identity.refresh_token(h).await.expect("refresh_token") {
            assert_eq!(t.used_at, None);
            successors += 1;
        }
    }
    assert_eq!(successors, 1, "only the winner's successor is stored");
    assert!(matches!(
        s.identity.rotate_refresh_token(digest(99), at(7), &token(23)).await.expect("rotate"),
        RefreshUse::Unknown
    ));
    assert_eq!(s.identity.refresh_token(digest(23)).await.expect("refresh_token"), None);
}

/// External identities are keyed by (issuer, subject): the first sight creates one account and
/// links it, later sights find it, the same subject at another issuer is another account, and two
/// racing first sights end with one account (the loser's is not created).
pub async fn external_identities_link_once_per_issuer_and_subject(s: &Stores) {
    let fresh = || {
        let id = AccountId(Uuid::now_v7());
        let email = Email::parse(&format!("{}@external.invalid", id.0.simple())).expect("email");
        Account { id, email, created_at: at(0) }
    };
    let iss_a = format!("https://idp-a.example/{}", Uuid::now_v7().simple());
    let iss_b = format!("https://idp-b.example/{}", Uuid::now_v7().simple());
    let first = fresh();
    let linked = s.identity.link_external_identity(&iss_a, "user-1", &first).await.expect("link");
    assert_eq!(linked, first.id, "a first sight links the new account");
    assert!(s.accounts.account(first.id).await.expect("account").is_some(), "and creates it");
    let again = fresh();
    assert_eq!(
        s.identity.link_external_identity(&iss_a, "user-1", &again).await.expect("link again"),
        first.id,
        "a later sight finds the same account"
    );
    assert!(s.accounts.account(again.id).await.expect("account").is_none(), "and creates nothing");
    let other = fresh();
    assert_eq!(
        s.identity.link_external_identity(&iss_b, "user-1", &other).await.expect("other issuer"),
        other.id,
        "the same sub at another issuer is another person"
    );

    let (x, y) = (fresh(), fresh());
    let (rx, ry) = futures::join!(
        s.identity.link_external_identity(&iss_a, "user-2", &x),
        s.identity.link_external_identity(&iss_a, "user-2", &y)
    );
    let (rx, ry) = (rx.expect("race x"), ry.expect("race y"));
    assert_eq!(rx, ry, "racing first sights agree on one account");
    let loser = if rx == x.id { &y } else { &x };
    assert!(
        s.accounts.account(loser.id).await.expect("account").is_none(),
        "the loser's account is not kept"
    );
}

/// A shared secret is stored by the first caller and returned to every later one, whatever
/// candidate they bring; racing first callers agree.
pub async fn shared_secrets_are_decided_once(s: &Stores) {
    let name = format!("cursor-{}", Uuid::now_v7().simple());
    let (x, y) =
        futures::join!(s.identity.shared_secret(&name, [1; 32]), s.identity.shared_secret(&name, [2; 32]));
    let (x, y) = (x.expect("shared_secret"), y.expect("shared_secret"));
    assert_eq!(x, y, "racing first callers agree");
    assert!(x == [1; 32] || x == [2; 32]);
    assert_eq!(
        s.identity.shared_secret(&name, [3; 32]).await.expect("again"),
        x,
        "later candidates are ignored"
    );
    let other = s.identity.shared_secret(&format!("{name}-other"), [4; 32]).await.expect("other name");
    assert_eq!(other, [4; 32], "names are independent");
}

/// Signing keys are listed oldest first; adding one keeps only the newest `keep`. Audit entries
/// read back in order from a time on.
pub async fn signing_keys_rotate_and_audit_appends(s: &Stores) {
    let key = |n: i64| SigningKeyRecord {
        kid: format!("kid-{n}"),
        pem: format!("-----BEGIN PRIVATE KEY-----\n{n}\n-----END PRIVATE KEY-----\n"),
        created_at: at(n),
    };
    assert!(s.identity.signing_keys().await.expect("signing_keys").is_empty());
    for n in 1..=3 {
        s.identity.add_signing_key(&key(n), 2).await.expect("add_signing_key");
    }
    assert_eq!(s.identity.signing_keys().await.expect("signing_keys"), vec![key(2), key(3)]);
    assert!(matches!(s.identity.add_signing_key(&key(3), 2).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.identity.signing_keys().await.expect("signing_keys"), vec![key(2), key(3)]);

    let entry = |n: i64, action: &str| AuditEntry {
        at: at(n),
        actor: format!("actor-{n}"),
        action: action.into(),
        detail: format!("{{\"n\":{n}}}"),
        client_addr: (n % 2 == 0).then(|| "192.0.2.1".to_owned()),
    };
    s.identity.audit(&[entry(1, "signin.failed"), entry(2, "refresh.reuse")]).await.expect("audit");
    s.identity.audit(&[entry(3, "profiles_any.access")]).await.expect("audit");
    s.identity.audit(&[]).await.expect("empty audit");
    assert_eq!(
        s.identity.audit_since(at(2), 10).await.expect("audit_since"),
        vec![entry(2, "refresh.reuse"), entry(3, "profiles_any.access")]
    );
    assert_eq!(s.identity.audit_since(at(0), 1).await.expect("audit_since"), vec![entry(1, "signin.failed")]);
}

/// A profile's parental PIN hash is set, replaced, read and removed; a PIN for a missing profile
/// is `NotFound`.
pub async fn profile_pins_round_trip(s: &Stores) {
    let p = crate::fixtures::new_profile(s, 1_700).await;
    assert_eq!(s.identity.profile_pin(p).await.expect("profile_pin"), None);
    s.identity.set_profile_pin(p, "$argon2id$v=19$first", at(1)).await.expect("set_profile_pin");
    s.identity.set_profile_pin(p, "$argon2id$v=19$second", at(2)).await.expect("replace");
    assert_eq!(
        s.identity.profile_pin(p).await.expect("profile_pin").as_deref(),
        Some("$argon2id$v=19$second")
    );
    assert!(
        matches!(
            s.identity.set_profile_pin(ProfileId(Uuid::now_v7()), "x", at(3)).await,
            Err(StoreError::NotFound)
        ),
        "a PIN for a missing profile must be NotFound"
    );
    assert!(s.identity.remove_profile_pin(p).await.expect("remove"));
    assert!(!s.identity.remove_profile_pin(p).await.expect("remove again"), "nothing left to remove");
    assert_eq!(s.identity.profile_pin(p).await.expect("profile_pin"), None);
}
