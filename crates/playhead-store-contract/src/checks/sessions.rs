//! The devices list of [`IdentityStore`](playhead_core::ports::IdentityStore): session activity
//! (first address kept, last seen never moving back), live sessions of one account only, and
//! "sign out everywhere" revoking exactly the live ones but the one kept.

use playhead_core::auth::Scopes;
use playhead_core::identity::Session;
use playhead_core::ids::AccountId;
use playhead_core::profile::{Account, Email};
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::at;

async fn account(s: &Stores) -> AccountId {
    let id = AccountId(Uuid::now_v7());
    let email = Email::parse(&format!("{}@example.com", id.0.simple())).expect("email");
    s.accounts.create_account(&Account { id, email, created_at: at(0) }).await.expect("create_account");
    id
}

fn session(id: &str, account: AccountId, created: i64) -> Session {
    Session {
        id: id.into(),
        account,
        client_id: "tv-app".into(),
        scopes: Scopes::parse("history:read").expect("scopes"),
        profile: None,
        auth_time: at(created),
        created_at: at(created),
        revoked_at: None,
    }
}

/// Activity: the first address stays, the latest use wins (an older touch arriving late changes
/// nothing), a never-touched session was last seen when it started; only live sessions of the
/// account are listed, most recently seen first.
pub async fn session_activity_lists_live_devices_latest_first(s: &Stores) {
    let a = account(s).await;
    let b = account(s).await;
    for x in [session("d-1", a, 10), session("d-2", a, 20), session("d-3", a, 30), session("d-b", b, 5)] {
        s.identity.create_session(&x).await.expect("create_session");
    }
    s.identity.touch_session("d-1", at(10), Some("10.0.0.1")).await.expect("touch");
    s.identity.touch_session("d-1", at(500), Some("10.0.0.2")).await.expect("touch later");
    s.identity.touch_session("d-1", at(400), Some("10.0.0.3")).await.expect("touch late arrival");
    s.identity.touch_session("d-2", at(40), None).await.expect("touch without address");
    s.identity.touch_session("nobody", at(40), None).await.expect("unknown ids are ignored");
    s.identity.revoke_session("d-3", at(50)).await.expect("revoke");

    let live = s.identity.live_sessions(a).await.expect("live");
    let ids: Vec<&str> = live.iter().map(|l| l.session.id.as_str()).collect();
    assert_eq!(ids, ["d-1", "d-2"]);
    assert_eq!(live[0].session, session("d-1", a, 10));
    assert_eq!(live[0].first_addr.as_deref(), Some("10.0.0.1"));
    assert_eq!(live[0].last_addr.as_deref(), Some("10.0.0.2"));
    assert_eq!(live[0].last_seen_at, at(500));
    assert_eq!((live[1].last_seen_at, live[1].first_addr.as_deref()), (at(40), None));
    let other = s.identity.live_sessions(b).await.expect("b");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].last_seen_at, at(5), "never touched: last seen at its start");
}

/// Sign out everywhere revokes the account's live sessions but the one kept, and no other
/// account's; the revocation poll sees them; a second call revokes nothing.
pub async fn revoking_all_sessions_spares_only_the_kept_one(s: &Stores) {
    let a = account(s).await;
    let b = account(s).await;
    for x in [session("r-1", a, 10), session("r-2", a, 20), session("r-3", a, 30), session("r-b", b, 5)] {
        s.identity.create_session(&x).await.expect("create_session");
    }
    s.identity.revoke_session("r-3", at(60)).await.expect("revoke one first");
    let mut revoked = s.identity.revoke_account_sessions(a, at(100), Some("r-2")).await.expect("revoke all");
    revoked.sort();
    assert_eq!(revoked, ["r-1"]);
    assert_eq!(s.identity.session("r-3").await.expect("r-3").and_then(|x| x.revoked_at), Some(at(60)));
    let ids: Vec<String> =
        s.identity.live_sessions(a).await.expect("live").into_iter().map(|l| l.session.id).collect();
    assert_eq!(ids, ["r-2"]);
    assert_eq!(s.identity.revoke_account_sessions(a, at(200), None).await.expect("rest"), ["r-2"]);
    assert!(s.identity.revoke_account_sessions(a, at(300), None).await.expect("none left").is_empty());
    assert!(s.identity.live_sessions(a).await.expect("live").is_empty());
    assert_eq!(s.identity.live_sessions(b).await.expect("b").len(), 1);
    let mut polled = s.identity.revoked_sessions_since(at(100)).await.expect("poll");
    polled.sort();
    assert_eq!(polled, ["r-1", "r-2"]);
}
