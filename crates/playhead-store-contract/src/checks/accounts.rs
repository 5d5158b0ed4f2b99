//! [`AccountStore`](playhead_core::ports::AccountStore): accounts, profiles, the per-account
//! profile limit and optimistic concurrency on profile updates.

use playhead_core::StoreError;
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::profile::{Account, Email, Profile, ProfileName};
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::at;

fn account(n: u128, email: &str) -> Account {
    Account {
        id: AccountId(Uuid::from_u128(n)),
        email: Email::parse(email).expect("e-mail"),
        created_at: at(0),
    }
}

fn profile(n: u128, account: AccountId, created_ms: i64) -> Profile {
    Profile {
        id: ProfileId(Uuid::from_u128(n)),
        account_id: account,
        name: ProfileName::parse(&format!("Profile {n}")).expect("name"),
        kids: false,
        maturity_limit: None,
        private: false,
        history_paused: false,
        keep_resume_points_while_paused: false,
        version: 1,
        created_at: at(created_ms),
    }
}

/// An account reads back by id and by e-mail; a second account with the same e-mail is
/// `Conflict("email")` and is not stored; unknown lookups are `None`.
pub async fn account_round_trips_and_email_is_unique(s: &Stores) {
    let ann = account(1, "ann@example.com");
    s.accounts.create_account(&ann).await.expect("create_account");
    assert_eq!(s.accounts.account(ann.id).await.expect("account"), Some(ann.clone()));
    assert_eq!(s.accounts.account_by_email(&ann.email).await.expect("by e-mail"), Some(ann.clone()));

    let twin = account(2, "ann@example.com");
    match s.accounts.create_account(&twin).await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "email"),
        other => panic!("a taken e-mail must be Conflict(\"email\"), got {other:?}"),
    }
    assert_eq!(s.accounts.account(twin.id).await.expect("account"), None);
    assert_eq!(s.accounts.account_by_email(&ann.email).await.expect("by e-mail"), Some(ann));

    let nobody = Email::parse("nobody@example.com").expect("e-mail");
    assert_eq!(s.accounts.account_by_email(&nobody).await.expect("by e-mail"), None);
    assert_eq!(s.accounts.account(AccountId(Uuid::from_u128(3))).await.expect("account"), None);
}

/// Profiles keep every field, and `profiles_of` lists an account's profiles oldest first (not in
/// insertion order) and nobody else's.
pub async fn profiles_round_trip_oldest_first(s: &Stores) {
    let a = account(1, "a@example.com");
    let b = account(2, "b@example.com");
    s.accounts.create_account(&a).await.expect("create_account");
    s.accounts.create_account(&b).await.expect("create_account");
    let kid = Profile {
        kids: true,
        maturity_limit: Some(7),
        private: true,
        history_paused: true,
        keep_resume_points_while_paused: true,
        version: 4,
        ..profile(10, a.id, 2_000)
    };
    let adult = Profile { maturity_limit: Some(0), ..profile(11, a.id, 0) };
    let teen = Profile { maturity_limit: Some(21), ..profile(12, a.id, 1_000) };
    let other = profile(13, b.id, 500);
    for p in [&kid, &adult, &teen, &other] {
        s.accounts.create_profile(p, 5).await.expect("create_profile");
    }
    assert_eq!(s.accounts.profile(kid.id).await.expect("profile"), Some(kid.clone()));
    assert_eq!(s.accounts.profiles_of(a.id).await.expect("profiles_of"), vec![adult, teen, kid]);
    assert_eq!(s.accounts.profiles_of(b.id).await.expect("profiles_of"), vec![other]);
    assert_eq!(s.accounts.profiles_of(AccountId(Uuid::from_u128(3))).await.expect("profiles_of"), vec![]);
    assert_eq!(s.accounts.profile(ProfileId(Uuid::from_u128(99))).await.expect("profile"), None);
}

/// An account at the maximum gets `Conflict("profile limit")` and the profile is not stored;
/// other accounts are not affected.
pub async fn profile_limit_is_a_conflict(s: &Stores) {
    let a = account(1, "a@example.com");
    let b = account(2, "b@example.com");
    s.accounts.create_account(&a).await.expect("create_account");
    s.accounts.create_account(&b).await.expect("create_account");
    for n in 0..3 {
        s.accounts.create_profile(&profile(10 + n, a.id, 0), 3).await.expect("under the limit");
    }
    let fourth = profile(20, a.id, 0);
    match s.accounts.create_profile(&fourth, 3).await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "profile limit"),
        other => panic!("the fourth of three profiles must be Conflict(\"profile limit\"), got {other:?}"),
    }
    assert_eq!(s.accounts.profile(fourth.id).await.expect("profile"), None);
    assert_eq!(s.accounts.profiles_of(a.id).await.expect("profiles_of").len(), 3);
    s.accounts.create_profile(&profile(30, b.id, 0), 3).await.expect("another account has its own limit");
}

/// `update_profile` replaces the mutable fields only when the stored version is the expected one;
/// a stale version is `PreconditionFailed` and changes nothing; an unknown profile is `NotFound`.
pub async fn update_profile_checks_the_version(s: &Stores) {
    let a = account(1, "a@example.com");
    s.accounts.create_account(&a).await.expect("create_account");
    let original = profile(10, a.id, 0);
    s.accounts.create_profile(&original, 5).await.expect("create_profile");

    let renamed = Profile {
        name: ProfileName::parse("Kim").expect("name"),
        kids: true,
        maturity_limit: Some(12),
        private: true,
        history_paused: true,
        keep_resume_points_while_paused: false,
        version: 2,
        ..original.clone()
    };
    s.accounts.update_profile(&renamed, 1).await.expect("update at the right version");
    assert_eq!(s.accounts.profile(original.id).await.expect("profile"), Some(renamed.clone()));

    let stale = Profile { name: ProfileName::parse("Lee").expect("name"), version: 3, ..renamed.clone() };
    assert!(
        matches!(s.accounts.update_profile(&stale, 1).await, Err(StoreError::PreconditionFailed)),
        "a stale expected version must be PreconditionFailed"
    );
    assert_eq!(s.accounts.profile(original.id).await.expect("profile"), Some(renamed.clone()));

    // Identity fields are not "mutable fields": they stay as created.
    let moved = Profile {
        account_id: AccountId(Uuid::from_u128(2)),
        created_at: at(9_999),
        version: 3,
        ..renamed.clone()
    };
    s.accounts.update_profile(&moved, 2).await.expect("update");
    let stored = s.accounts.profile(original.id).await.expect("profile").expect("still there");
    assert_eq!((stored.account_id, stored.created_at, stored.version), (a.id, original.created_at, 3));

    let ghost = profile(99, a.id, 0);
    assert!(
        matches!(s.accounts.update_profile(&ghost, 1).await, Err(StoreError::NotFound)),
        "updating a missing profile must be NotFound"
    );
}
