//! The token deny list and client deletion ([`IdentityStore`](playhead_core::ports::IdentityStore)):
//! entries are kept once and polled while in force; deleting a client revokes its sessions and
//! denies its tokens in one step.

use playhead_core::auth::Scopes;
use playhead_core::identity::{ClientType, DenialKind, GrantType, OAuthClient, Session, TokenDenial};
use playhead_core::ids::AccountId;
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::at;

fn denial(kind: DenialKind, id: &str, revoked_at: i64, until: i64) -> TokenDenial {
    TokenDenial {
        kind,
        id: id.into(),
        client_id: if kind == DenialKind::Client { id.into() } else { "svc".into() },
        revoked_at: at(revoked_at),
        until: at(until),
    }
}

/// A denied `jti` or client is reported while in force (`until` after now) and not after;
/// denying again keeps the first entry; a token is denied by its `jti` or by its client.
pub async fn denied_tokens_are_polled_until_they_expire(s: &Stores) {
    let jti = denial(DenialKind::Token, "jti-1", 10, 1_000);
    let client = denial(DenialKind::Client, "gone", 20, 2_000);
    s.identity.deny_tokens(&jti).await.expect("deny jti");
    s.identity.deny_tokens(&client).await.expect("deny client");
    s.identity.deny_tokens(&denial(DenialKind::Token, "jti-1", 30, 9_000)).await.expect("deny again");
    let mut polled = s.identity.token_denials(at(500)).await.expect("poll");
    polled.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(polled, vec![client.clone(), jti.clone()], "both in force, the first jti entry kept");
    assert_eq!(s.identity.token_denials(at(1_000)).await.expect("poll"), vec![client], "until is exclusive");

    assert!(s.identity.token_denied("jti-1", "svc", at(999)).await.expect("denied"));
    assert!(!s.identity.token_denied("jti-1", "svc", at(1_000)).await.expect("denied"), "expired entry");
    assert!(s.identity.token_denied("jti-2", "gone", at(1_500)).await.expect("denied"), "by client");
    assert!(!s.identity.token_denied("jti-2", "svc", at(500)).await.expect("denied"));
    assert!(!s.identity.token_denied("gone", "svc", at(500)).await.expect("denied"), "kinds stay apart");
}

/// Deleting a client removes it, revokes its live sessions (an earlier revocation keeps its
/// time), leaves other clients' sessions alone and denies its tokens; deleting it again, or a
/// client that never was, changes nothing and answers `false`.
pub async fn deleting_a_client_revokes_its_sessions_and_denies_its_tokens(s: &Stores) {
    let client = |id: &str| OAuthClient {
        client_id: id.into(),
        name: id.into(),
        client_type: ClientType::Confidential,
        secret_hash: Some([7; 32]),
        redirect_uris: vec![],
        grants: vec![GrantType::ClientCredentials, GrantType::DeviceCode],
        scopes: Scopes::parse("history:read").expect("scopes"),
        created_at: at(0),
    };
    let account = AccountId(Uuid::now_v7());
    let session = |id: &str, client_id: &str, revoked_at: Option<i64>| Session {
        id: id.into(),
        account,
        client_id: client_id.into(),
        scopes: Scopes::parse("history:read").expect("scopes"),
        profile: None,
        auth_time: at(1),
        created_at: at(1),
        revoked_at: revoked_at.map(at),
    };
    s.identity.create_client(&client("doomed")).await.expect("create_client");
    s.identity.create_client(&client("kept")).await.expect("create_client");
    for x in [session("d-1", "doomed", None), session("d-2", "doomed", Some(5)), session("k-1", "kept", None)]
    {
        s.identity.create_session(&x).await.expect("create_session");
    }
    let gone = denial(DenialKind::Client, "doomed", 100, 700);
    assert!(s.identity.delete_client(&gone).await.expect("delete_client"));
    assert_eq!(s.identity.client("doomed").await.expect("client"), None);
    assert!(s.identity.client("kept").await.expect("client").is_some());
    let revoked = |id: &'static str| async move {
        s.identity.session(id).await.expect("session").expect("kept").revoked_at
    };
    assert_eq!(revoked("d-1").await, Some(at(100)));
    assert_eq!(revoked("d-2").await, Some(at(5)), "an earlier revocation keeps its time");
    assert_eq!(revoked("k-1").await, None);
    assert!(s.identity.token_denied("any-jti", "doomed", at(600)).await.expect("denied"));
    assert!(!s.identity.token_denied("any-jti", "kept", at(600)).await.expect("denied"));

    let again = denial(DenialKind::Client, "doomed", 200, 9_000);
    assert!(!s.identity.delete_client(&again).await.expect("delete again"));
    assert_eq!(s.identity.token_denials(at(0)).await.expect("poll"), vec![gone], "nothing changed");
    assert!(!s.identity.delete_client(&denial(DenialKind::Client, "never", 1, 2)).await.expect("unknown"));
    assert_eq!(s.identity.token_denials(at(0)).await.expect("poll").len(), 1);
}
