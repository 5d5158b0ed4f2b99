//! Revocation (RFC 7009) and introspection (RFC 7662) of our own tokens. The transport shapes
//! the introspection answer; this module decides whether a token is active.

use playhead_auth::AccessClaims;
use playhead_core::auth::Scopes;
use playhead_core::ids::AccountId;
use playhead_core::oauth::OAuthErrorCode;
use serde_json::json;

use super::{AuthServer, ClientAuth, OAuthError, TOKEN_LEEWAY_SECS, digest, secs};

/// What introspection found (RFC 7662 section 2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    /// Unknown, expired, used or revoked: `{"active": false}`, nothing more.
    Inactive,
    /// A live refresh token.
    Refresh {
        /// The client it was issued to.
        client_id: String,
        /// Whose session.
        account: AccountId,
        /// The session's scopes.
        scope: Scopes,
        /// Expiry, seconds.
        exp: i64,
        /// Issued at, seconds.
        iat: i64,
        /// The session (`sid`).
        sid: String,
        /// Our issuer.
        iss: String,
    },
    /// A valid access token of ours whose session is not revoked: its claims.
    Access(Box<AccessClaims>),
}

impl AuthServer {
    /// RFC 7009: revoke a refresh token (its whole family) or an access token (its session).
    /// Unknown tokens and tokens of other clients are ignored (200 either way). A `token` the
    /// transport could not read is reported only to an authenticated client.
    pub async fn revoke(
        &self,
        presented: &ClientAuth,
        token: Result<String, OAuthError>,
        addr: &str,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate_client(presented, Some(addr)).await?;
        let token = token?;
        let token = token.as_str();
        let now = self.clock.now();
        let actor = format!("client:{}", client.client_id);
        if let Some(r) = self.store.refresh_token(digest(token)).await? {
            if r.client_id == client.client_id {
                self.store.revoke_session(&r.session_id, now).await?;
                let detail = json!({"sid": r.session_id, "via": "refresh_token"});
                self.audit(&actor, "session.revoked", detail, None).await;
            }
            return Ok(());
        }
        if let Ok(t) = self.verifier(TOKEN_LEEWAY_SECS).verify(token, secs(now))
            && let Some(sid) = t.claims().sid.as_deref().filter(|_| t.claims().client_id == client.client_id)
        {
            self.store.revoke_session(sid, now).await?;
            self.audit(&actor, "session.revoked", json!({"sid": sid, "via": "access_token"}), None).await;
        }
        Ok(())
    }

    /// RFC 7662: whether a token is active, and what it says if so. Confidential clients only;
    /// a `token` the transport could not read is reported only to an authenticated client.
    pub async fn introspect(
        &self,
        presented: &ClientAuth,
        token: Result<String, OAuthError>,
        addr: &str,
    ) -> Result<Introspection, OAuthError> {
        if presented.secret.is_none() {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidClient,
                "introspection needs a confidential client's credentials",
            ));
        }
        self.authenticate_client(presented, Some(addr)).await?;
        let token = token?;
        let token = token.as_str();
        let now = self.clock.now();
        if let Some(r) = self.store.refresh_token(digest(token)).await? {
            let Some(s) = self.store.session(&r.session_id).await? else {
                return Ok(Introspection::Inactive);
            };
            if r.used_at.is_some() || s.revoked_at.is_some() || now >= r.expires_at {
                return Ok(Introspection::Inactive);
            }
            return Ok(Introspection::Refresh {
                client_id: r.client_id,
                account: s.account,
                scope: s.scopes,
                exp: secs(r.expires_at),
                iat: secs(r.created_at),
                sid: s.id,
                iss: self.config.issuer.clone(),
            });
        }
        let Ok(t) = self.verifier(TOKEN_LEEWAY_SECS).verify(token, secs(now)) else {
            return Ok(Introspection::Inactive);
        };
        if let Some(sid) = &t.claims().sid
            && self.store.session(sid).await?.is_some_and(|s| s.revoked_at.is_some())
        {
            return Ok(Introspection::Inactive);
        }
        Ok(Introspection::Access(Box::new(t.claims().clone())))
    }
}
