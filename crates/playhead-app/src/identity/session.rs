//! The token endpoint (RFC 6749 section 3.2): client authentication, then one grant. Sessions
//! (one per sign-in on a device, the `sid` of its access tokens, one refresh-token family),
//! refresh rotation with reuse detection, and client credentials.

use std::fmt;

use playhead_auth::AccessClaims;
use playhead_core::auth::Scopes;
use playhead_core::identity::{
    ClientType, GrantType, OAuthClient, RefreshToken, RefreshUse, ReuseVerdict, Session, judge_reuse,
};
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::oauth::OAuthErrorCode;
use playhead_core::time::Timestamp;
use serde_json::json;

use super::{AuthServer, ClientAuth, OAuthError, REDACTED, digest, secret, secs};

/// A token endpoint success (RFC 6749 section 5.1).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token (a JWT).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The rotated or new refresh token (none for client credentials).
    pub refresh_token: Option<String>,
    /// Granted scopes.
    pub scope: Scopes,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| REDACTED))
            .field("scope", &self.scope)
            .finish()
    }
}

/// A grant presented at the token endpoint, with its parameters.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenGrant {
    /// RFC 8628 section 3.4.
    DeviceCode {
        /// `device_code`.
        device_code: String,
    },
    /// RFC 6749 section 4.1.3 with RFC 7636 section 4.5.
    AuthorizationCode {
        /// `code`.
        code: String,
        /// `redirect_uri`, identical to the authorization request's.
        redirect_uri: String,
        /// `code_verifier`.
        code_verifier: String,
    },
    /// RFC 6749 section 6.
    RefreshToken {
        /// `refresh_token`.
        refresh_token: String,
        /// `scope`: narrower than the session's, or `None` for the same.
        scope: Option<String>,
    },
    /// RFC 6749 section 4.4.
    ClientCredentials {
        /// `scope`: within the client's, or `None` for all of it.
        scope: Option<String>,
    },
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every parameter but the scope is a secret or half of one.
        match self {
            Self::DeviceCode { .. } => f.write_str("DeviceCode"),
            Self::AuthorizationCode { .. } => f.write_str("AuthorizationCode"),
            Self::RefreshToken { scope, .. } => f.debug_struct("RefreshToken").field("scope", scope).finish(),
            Self::ClientCredentials { scope } => {
                f.debug_struct("ClientCredentials").field("scope", scope).finish()
            }
        }
    }
}

impl AuthServer {
    /// The token endpoint: authenticate the client, then run its grant. `grant` is what the
    /// transport parsed, or why it could not; that is answered only to an authenticated client,
    /// so a caller without credentials learns nothing about grants.
    pub async fn token(
        &self,
        presented: &ClientAuth,
        grant: Result<TokenGrant, OAuthError>,
        addr: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate_client(presented, Some(addr)).await?;
        match grant? {
            TokenGrant::DeviceCode { device_code } => {
                self.token_device(&client, &device_code, Some(addr)).await
            }
            TokenGrant::AuthorizationCode { code, redirect_uri, code_verifier } => {
                self.token_code(&client, &code, &redirect_uri, &code_verifier, Some(addr)).await
            }
            TokenGrant::RefreshToken { refresh_token, scope } => {
                self.token_refresh(&client, &refresh_token, scope.as_deref(), Some(addr)).await
            }
            TokenGrant::ClientCredentials { scope } => {
                self.token_client_credentials(&client, scope.as_deref())
            }
        }
    }

    pub(super) async fn start_session(
        &self,
        account: AccountId,
        client: &OAuthClient,
        scopes: Scopes,
        profile: Option<ProfileId>,
        auth_time: Timestamp,
        addr: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let id = uuid::Uuid::new_v4().to_string();
        let tokens =
            self.start_session_with_id(id.clone(), account, client, scopes, profile, auth_time).await?;
        self.touch(&id, addr).await;
        Ok(tokens)
    }

    pub(super) async fn start_session_with_id(
        &self,
        id: String,
        account: AccountId,
        client: &OAuthClient,
        scopes: Scopes,
        profile: Option<ProfileId>,
        auth_time: Timestamp,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.clock.now();
        let session = Session {
            id,
            account,
            client_id: client.client_id.clone(),
            scopes,
            profile,
            auth_time,
            created_at: now,
            revoked_at: None,
        };
        self.store.create_session(&session).await?;
        let refresh = if client.grants.contains(&GrantType::RefreshToken) {
            let (token, record) = self.new_refresh(&session.id, &client.client_id);
            self.store.create_refresh_token(&record).await?;
            Some(token)
        } else {
            None
        };
        self.access_for(&session, refresh)
    }

    fn new_refresh(&self, session_id: &str, client_id: &str) -> (String, RefreshToken) {
        let token = secret("phr_");
        let now = self.clock.now();
        let record = RefreshToken {
            hash: digest(&token),
            session_id: session_id.to_owned(),
            client_id: client_id.to_owned(),
            created_at: now,
            expires_at: Timestamp(now.0 + self.config.refresh_ttl_secs * 1000),
            used_at: None,
        };
        (token, record)
    }

    fn access_for(
        &self,
        session: &Session,
        refresh_token: Option<String>,
    ) -> Result<TokenResponse, OAuthError> {
        let issuer = self.issuer();
        let mut claims = issuer
            .account_claims(
                session.account,
                &session.client_id,
                session.scopes,
                &session.id,
                secs(self.clock.now()),
            )
            .with_auth_time(secs(session.auth_time));
        if let Some(p) = session.profile {
            claims = claims.bound_to(p);
        }
        self.sign(&claims, session.scopes, refresh_token)
    }

    fn sign(
        &self,
        claims: &AccessClaims,
        scope: Scopes,
        refresh_token: Option<String>,
    ) -> Result<TokenResponse, OAuthError> {
        let access_token = self.issuer().issue(claims).map_err(|e| OAuthError::Internal(e.to_string()))?;
        Ok(TokenResponse { access_token, expires_in: self.config.access_ttl_secs, refresh_token, scope })
    }

    /// The refresh_token grant: rotation, reuse detection, 10 s grace.
    async fn token_refresh(
        &self,
        client: &OAuthClient,
        refresh_token: &str,
        scope: Option<&str>,
        addr: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::RefreshToken)?;
        let invalid = |d: &str| OAuthError::new(OAuthErrorCode::InvalidGrant, d);
        let now = self.clock.now();
        let hash = digest(refresh_token);
        // Read first to know the family for the successor; the rotation itself is conditional.
        let Some(current) = self.store.refresh_token(hash).await? else {
            return Err(invalid("unknown refresh token"));
        };
        if current.client_id != client.client_id {
            return Err(invalid("the refresh token was issued to another client"));
        }
        let Some(session) = self.store.session(&current.session_id).await? else {
            return Err(invalid("unknown session"));
        };
        if session.revoked_at.is_some() {
            return Err(invalid("the session was revoked; sign in again"));
        }
        if now >= current.expires_at {
            return Err(invalid("refresh token expired; sign in again"));
        }
        // RFC 6749 section 6: a narrower scope may be asked for, never a wider one.
        let scopes = match scope.filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let asked = Scopes::parse(s)
                    .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e.to_string()))?;
                if asked.intersect(session.scopes) != asked {
                    return Err(OAuthError::new(
                        OAuthErrorCode::InvalidScope,
                        "a refresh cannot widen the scope",
                    ));
                }
                asked
            }
            None => session.scopes,
        };
        let (token, successor) = self.new_refresh(&session.id, &client.client_id);
        match self.store.rotate_refresh_token(hash, now, &successor).await? {
            RefreshUse::Rotated(_) => {}
            RefreshUse::Reused(used) => {
                match judge_reuse(&used, &client.client_id, now, self.config.refresh_reuse_grace_ms) {
                    ReuseVerdict::Grace => {
                        self.store.create_refresh_token(&successor).await?;
                        self.audit(
                            &session.account.to_string(),
                            "refresh.reuse_grace",
                            json!({"sid": session.id, "client_id": client.client_id}),
                            addr,
                        )
                        .await;
                    }
                    ReuseVerdict::RevokeFamily => {
                        self.store.revoke_session(&session.id, now).await?;
                        self.audit(
                            &session.account.to_string(),
                            "refresh.reuse_revoked_family",
                            json!({"sid": session.id, "client_id": client.client_id}),
                            addr,
                        )
                        .await;
                        return Err(invalid("refresh token already used; the whole session is revoked"));
                    }
                }
            }
            RefreshUse::Unknown => return Err(invalid("unknown refresh token")),
        }
        self.touch(&session.id, addr).await;
        let narrowed = Session { scopes, ..session };
        self.access_for(&narrowed, Some(token))
    }

    /// The client_credentials grant (confidential clients only).
    fn token_client_credentials(
        &self,
        client: &OAuthClient,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        if client.client_type != ClientType::Confidential {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "client_credentials needs a confidential client",
            ));
        }
        Self::require_grant(client, GrantType::ClientCredentials)?;
        let scopes = Self::scopes_for(client, scope)?;
        let claims = self.issuer().client_claims(&client.client_id, scopes, secs(self.clock.now()));
        self.sign(&claims, scopes, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_grants_do_not_print_their_secrets() {
        let t = TokenResponse {
            access_token: "eyJaccess".into(),
            expires_in: 600,
            refresh_token: Some("phr_refreshsecret".into()),
            scope: Scopes::empty(),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("eyJaccess") && !shown.contains("refreshsecret"), "{shown}");
        for g in [
            TokenGrant::DeviceCode { device_code: "phd_secret1".into() },
            TokenGrant::AuthorizationCode {
                code: "pha_secret2".into(),
                redirect_uri: "http://127.0.0.1/cb".into(),
                code_verifier: "secret3".into(),
            },
            TokenGrant::RefreshToken { refresh_token: "phr_secret4".into(), scope: None },
        ] {
            assert!(!format!("{g:?}").contains("secret"), "{g:?}");
        }
    }
}
