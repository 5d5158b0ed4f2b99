//! Revocation (RFC 7009) and introspection (RFC 7662) of our own tokens. The transport shapes
//! the introspection answer; this module decides whether a token is active.

use playhead_auth::{AccessClaims, Bearer};
use playhead_core::auth::Scopes;
use playhead_core::identity::{DenialKind, TokenDenial};
use playhead_core::ids::AccountId;
use playhead_core::oauth::OAuthErrorCode;
use playhead_core::time::Timestamp;
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
    /// A valid access token of ours that is not revoked (its session, its `jti`, its client):
    /// its claims.
    Access(Box<AccessClaims>),
}

impl AuthServer {
    /// RFC 7009: revoke a refresh token (its whole family), or an access token: a person's with
    /// its session, a service's (client credentials, no session) by its `jti` on the deny list.
    /// Either way the token stops working on every replica within the revocation poll
    /// (30 s at most) and introspection says inactive at once. Unknown tokens and tokens of
    /// other clients are ignored (200 either way). An API key is not an OAuth token and no
    /// client was issued one: `unsupported_token_type` (RFC 7009 section 2.2.1), so the caller
    /// is not told "revoked" for a key that keeps working. A `token` the transport could not
    /// read is reported only to an authenticated client.
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
        if matches!(Bearer::classify(token), Bearer::ApiKey(_)) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnsupportedTokenType,
                "API keys are not OAuth tokens: an operator revokes them (playhead admin api-key revoke)",
            ));
        }
        let Ok(t) = self.verifier(TOKEN_LEEWAY_SECS).verify(token, secs(now)) else {
            return Ok(());
        };
        let claims = t.claims();
        if claims.client_id != client.client_id {
            return Ok(());
        }
        if let Some(sid) = claims.sid.as_deref() {
            self.store.revoke_session(sid, now).await?;
            self.audit(&actor, "session.revoked", json!({"sid": sid, "via": "access_token"}), None).await;
        } else {
            self.store.deny_tokens(&token_denial(claims, now)).await?;
            self.audit(&actor, "token.revoked", json!({"jti": claims.jti}), None).await;
        }
        Ok(())
    }

    /// RFC 7662: whether a token is active, and what it says if so. Confidential clients only;
    /// a `token` the transport could not read is reported only to an authenticated client.
    /// Answered from the store (not the replicas' revocation cache), so it is inactive from the
    /// moment the revocation committed, before the API refuses the token everywhere.
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
        let claims = t.claims();
        if let Some(sid) = &claims.sid
            && self.store.session(sid).await?.is_some_and(|s| s.revoked_at.is_some())
        {
            return Ok(Introspection::Inactive);
        }
        if self.store.token_denied(&claims.jti, &claims.client_id, now).await? {
            return Ok(Introspection::Inactive);
        }
        Ok(Introspection::Access(Box::new(claims.clone())))
    }

    /// Delete an OAuth client (operators): it can no longer authenticate, every session it
    /// started is revoked (its refresh tokens die), and every access token it was issued is
    /// denied until the last of them has expired. `Ok(false)` when there is no such client.
    pub async fn delete_client(&self, client_id: &str, actor: &str) -> Result<bool, OAuthError> {
        let now = self.clock.now();
        let leeway_ms = i64::try_from(TOKEN_LEEWAY_SECS).unwrap_or(0) * 1000;
        let denial = TokenDenial {
            kind: DenialKind::Client,
            id: client_id.to_owned(),
            client_id: client_id.to_owned(),
            revoked_at: now,
            // Tokens issued up to now expire within one lifetime (plus the verifier's leeway).
            until: now.plus_ms(self.config.access_ttl_secs * 1000 + leeway_ms),
        };
        let deleted = self.store.delete_client(&denial).await?;
        if deleted {
            self.audit(actor, "client.deleted", json!({"client_id": client_id}), None).await;
        }
        Ok(deleted)
    }
}

/// The deny-list entry for one access token without a session: it lasts as long as the token
/// could still verify (its `exp` plus the verifier's leeway).
fn token_denial(claims: &AccessClaims, now: Timestamp) -> TokenDenial {
    let leeway = i64::try_from(TOKEN_LEEWAY_SECS).unwrap_or(0);
    TokenDenial {
        kind: DenialKind::Token,
        id: claims.jti.clone(),
        client_id: claims.client_id.clone(),
        revoked_at: now,
        until: Timestamp(claims.exp.saturating_add(leeway).saturating_mul(1000)),
    }
}
