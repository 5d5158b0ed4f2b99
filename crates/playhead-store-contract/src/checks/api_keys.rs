//! [`ApiKeyStore`](playhead_core::ports::ApiKeyStore): keys found by prefix, unique prefixes,
//! revocation.

use playhead_core::StoreError;
use playhead_core::auth::{Scope, Scopes};
use playhead_core::ports::ApiKeyRecord;

use crate::Stores;
use crate::fixtures::at;

fn key(prefix: &str, scopes: Scopes) -> ApiKeyRecord {
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xa5; // every byte different, some above 0x7f
    }
    ApiKeyRecord {
        prefix: prefix.to_owned(),
        name: format!("key {prefix}"),
        hash,
        scopes,
        created_at: at(0),
        revoked_at: None,
    }
}

/// A key reads back whole by prefix (any set of scopes, including none); a second key with the
/// same prefix is `Conflict` and changes nothing; revoking sets `revoked_at` and keeps the rest;
/// revoking an unknown prefix is `NotFound`.
pub async fn api_keys_are_found_by_prefix_and_revocable(s: &Stores) {
    let scoped = key("ph_live_a1", Scopes::parse("history:read catalog:write").expect("scopes"));
    let all = key("ph_live_b2", Scope::ALL.into_iter().collect());
    let none = ApiKeyRecord { revoked_at: Some(at(5)), ..key("ph_live_c3", Scopes::empty()) };
    for k in [&scoped, &all, &none] {
        s.api_keys.create_api_key(k).await.expect("create_api_key");
        assert_eq!(s.api_keys.api_key(&k.prefix).await.expect("api_key").as_ref(), Some(k));
    }

    let impostor = ApiKeyRecord { name: "impostor".into(), hash: [0; 32], ..scoped.clone() };
    assert!(
        matches!(s.api_keys.create_api_key(&impostor).await, Err(StoreError::Conflict(_))),
        "a duplicate prefix must be Conflict"
    );
    assert_eq!(s.api_keys.api_key(&scoped.prefix).await.expect("api_key"), Some(scoped.clone()));
    assert_eq!(s.api_keys.api_key("ph_live_zz").await.expect("api_key"), None);
    assert_eq!(
        s.api_keys.api_key("ph_live_a").await.expect("api_key"),
        None,
        "a prefix of a prefix is no match"
    );

    assert!(
        matches!(s.api_keys.revoke_api_key("ph_live_zz", at(10)).await, Err(StoreError::NotFound)),
        "revoking an unknown key must be NotFound"
    );
    s.api_keys.revoke_api_key(&scoped.prefix, at(10)).await.expect("revoke_api_key");
    let revoked = s.api_keys.api_key(&scoped.prefix).await.expect("api_key");
    assert_eq!(revoked, Some(ApiKeyRecord { revoked_at: Some(at(10)), ..scoped }));
    assert_eq!(s.api_keys.api_key(&all.prefix).await.expect("api_key"), Some(all), "other keys untouched");
}
