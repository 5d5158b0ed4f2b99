//! Access token claims (RFC 9068) and the issuer that signs them.
//!
//! The rules a contributor must keep here:
//! - A person's token has a UUID `sub` (their account id) and always a `sid`, so it can be
//!   revoked with its session. A service's token never has a UUID `sub`: services are named
//!   `client:<client_id>` (and API keys `apikey:<prefix>`), so a service can never pass for an
//!   account. The verifier relies on both.
//! - Claims are signed as they are; checks on what they may contain (scope ceilings, profile
//!   ownership) are made before building them, by the grant that issues them.

use std::sync::Arc;

use playhead_core::auth::Scopes;
use playhead_core::ids::{AccountId, ProfileId};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::keys::{AuthError, KeySet};

/// Prefix of the `sub` of a token issued to an OAuth client for itself (client credentials).
pub const CLIENT_SUBJECT_PREFIX: &str = "client:";

/// The claims of a Playhead access token (RFC 9068 section 2.2, plus `sid` and `profile_id`).
///
/// Times are seconds since the Unix epoch, as JWT NumericDate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessClaims {
    /// Issuer: our authorization server's URL.
    pub iss: String,
    /// Subject: an account id (UUID) or `client:<client_id>`.
    pub sub: String,
    /// Audience: this resource server. After verification, the audience the token was accepted for.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id (a UUID v4 when we issue it).
    pub jti: String,
    /// Sign-in session, for revocation; always present for an account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// What the token allows, serialized as a space-separated string.
    #[serde(serialize_with = "scopes_as_string")]
    pub scope: Scopes,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// The one profile this token may act on, when bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<ProfileId>,
    /// When the person last authenticated interactively (for "recent sign-in" checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

fn scopes_as_string<S: Serializer>(scopes: &Scopes, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(scopes)
}

impl AccessClaims {
    /// Bind the token to one profile (a TV signed in as the kids profile).
    #[must_use]
    pub fn bound_to(mut self, profile: ProfileId) -> Self {
        self.profile_id = Some(profile);
        self
    }

    /// Record when the person authenticated interactively.
    #[must_use]
    pub fn with_auth_time(mut self, auth_time_secs: i64) -> Self {
        self.auth_time = Some(auth_time_secs);
        self
    }
}

/// Builds and signs access tokens for one issuer and audience with a fixed lifetime.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    keys: Arc<KeySet>,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl TokenIssuer {
    /// An issuer signing with `keys`, as `issuer` for `audience`, tokens valid `ttl_secs`.
    pub fn new(
        keys: Arc<KeySet>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl_secs: i64,
    ) -> Self {
        Self { keys, issuer: issuer.into(), audience: audience.into(), ttl_secs }
    }

    /// The key set this issuer signs with.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Claims for a person's token: `sub` = the account id, valid from `now_secs` for the ttl.
    pub fn account_claims(
        &self,
        account: AccountId,
        client_id: &str,
        scopes: Scopes,
        session_id: &str,
        now_secs: i64,
    ) -> AccessClaims {
        let mut claims = self.base_claims(account.to_string(), client_id, scopes, now_secs);
        claims.sid = Some(session_id.to_owned());
        claims
    }

    /// Claims for a service's own token (client credentials): `sub` = `client:<client_id>`, no session.
    pub fn client_claims(&self, client_id: &str, scopes: Scopes, now_secs: i64) -> AccessClaims {
        self.base_claims(format!("{CLIENT_SUBJECT_PREFIX}{client_id}"), client_id, scopes, now_secs)
    }

    fn base_claims(&self, sub: String, client_id: &str, scope: Scopes, now_secs: i64) -> AccessClaims {
        AccessClaims {
            iss: self.issuer.clone(),
            sub,
            aud: self.audience.clone(),
            exp: now_secs.saturating_add(self.ttl_secs),
            iat: now_secs,
            nbf: None,
            jti: Uuid::new_v4().to_string(),
            sid: None,
            scope,
            client_id: client_id.to_owned(),
            profile_id: None,
            auth_time: None,
        }
    }

    /// Sign claims with the current signing key.
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        self.keys.issue(claims)
    }
}

#[cfg(test)]
mod tests {
    use playhead_core::auth::Scope;

    use super::*;

    #[test]
    fn claims_serialize_as_rfc_9068() {
        let issuer =
            TokenIssuer::new(Arc::new(KeySet::ephemeral().unwrap()), "https://ph.example", "playhead", 300);
        let account = AccountId::from_uuid(Uuid::now_v7());
        let profile = ProfileId::from_uuid(Uuid::now_v7());
        let scopes = Scopes::empty().with(Scope::HistoryWrite).with(Scope::HistoryRead);
        let claims = issuer.account_claims(account, "tv-app", scopes, "s-1", 1_000).bound_to(profile);
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["sub"], account.to_string());
        assert_eq!(json["aud"], "playhead");
        assert_eq!(json["exp"], 1_300);
        assert_eq!(json["iat"], 1_000);
        assert_eq!(json["scope"], "history:read history:write");
        assert_eq!(json["sid"], "s-1");
        assert_eq!(json["profile_id"], profile.to_string());
        assert!(json.get("nbf").is_none() && json.get("auth_time").is_none());
        assert_eq!(Uuid::parse_str(json["jti"].as_str().unwrap()).unwrap().get_version_num(), 4);
    }

    #[test]
    fn service_subjects_never_look_like_accounts() {
        let issuer = TokenIssuer::new(Arc::new(KeySet::ephemeral().unwrap()), "iss", "aud", 60);
        let uuid_named_client = Uuid::new_v4().to_string();
        let claims = issuer.client_claims(&uuid_named_client, Scopes::empty(), 0);
        assert!(Uuid::parse_str(&claims.sub).is_err(), "{}", claims.sub);
        assert_eq!(claims.sid, None);
    }
}
