//! The authorization code grant with PKCE (RFC 6749 section 4.1, RFC 7636 S256 only): checking
//! an authorization request, issuing a code on consent, and exchanging it once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use playhead_core::auth::Scopes;
use playhead_core::identity::{AuthCode, CodeUse, GrantType, OAuthClient};
use playhead_core::ids::ProfileId;
use playhead_core::oauth::{OAuthErrorCode, RedirectUri};
use playhead_core::time::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{AuthServer, AuthorizeError, OAuthError, TokenResponse, WebUser, digest, secret};

/// An authorization request's parameters as sent (RFC 6749 section 4.1.1, RFC 7636 section
/// 4.3); a missing one is empty or `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeParams {
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri`.
    pub redirect_uri: String,
    /// `response_type`.
    pub response_type: String,
    /// `scope`.
    pub scope: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `state`.
    pub state: Option<String>,
}

/// A checked authorization request, ready for consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// The client.
    pub client: OAuthClient,
    /// The redirect URI as requested: one of the client's (on loopback, on any port).
    pub redirect_uri: RedirectUri,
    /// Requested scopes (within the client's).
    pub scopes: Scopes,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// Echoed back.
    pub state: Option<String>,
}

impl AuthServer {
    /// Check an authorization request. Errors before the redirect URI is known to be the
    /// client's are shown to the person, never redirected (RFC 6749 section 4.1.2.1).
    pub async fn check_authorize(&self, p: &AuthorizeParams) -> Result<AuthorizeRequest, AuthorizeError> {
        let show = |e: OAuthError| AuthorizeError::ShowToPerson(e);
        let client = self
            .store
            .client(&p.client_id)
            .await
            .map_err(|e| show(e.into()))?
            .ok_or_else(|| show(OAuthError::invalid_request("unknown client_id")))?;
        let redirect_uri = RedirectUri::parse(&p.redirect_uri)
            .map_err(|e| show(OAuthError::invalid_request(format!("redirect_uri {e}"))))?;
        if !registered_uris(&client).any(|r| r.matches(&redirect_uri)) {
            return Err(show(OAuthError::invalid_request(
                "redirect_uri is not registered for this client (exact match; any port on loopback)",
            )));
        }
        // From here on errors go back to the client's redirect URI.
        let back = |error: OAuthError| AuthorizeError::RedirectToClient {
            redirect_uri: redirect_uri.clone(),
            error,
            state: p.state.clone(),
        };
        if p.response_type != "code" {
            return Err(back(OAuthError::new(
                OAuthErrorCode::UnsupportedResponseType,
                "only response_type=code",
            )));
        }
        Self::require_grant(&client, GrantType::AuthorizationCode).map_err(back)?;
        let scopes = Self::scopes_for(&client, p.scope.as_deref()).map_err(back)?;
        let challenge = p
            .code_challenge
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| back(OAuthError::invalid_request("code_challenge is required (PKCE)")))?;
        if p.code_challenge_method.as_deref() != Some("S256") {
            return Err(back(OAuthError::invalid_request(
                "code_challenge_method must be S256 (plain is not accepted)",
            )));
        }
        if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
            return Err(back(OAuthError::invalid_request(
                "code_challenge must be a base64url SHA-256 (43 characters)",
            )));
        }
        Ok(AuthorizeRequest {
            client,
            redirect_uri: redirect_uri.clone(),
            scopes,
            code_challenge: challenge.to_owned(),
            state: p.state.clone(),
        })
    }

    /// The person approved: issue a code. Binding it to a profile with a parental PIN needs that
    /// PIN.
    pub async fn issue_code(
        &self,
        user: &WebUser,
        req: &AuthorizeRequest,
        profile: Option<ProfileId>,
        pin: Option<&str>,
        addr: &str,
    ) -> Result<String, super::PinRefusal> {
        let profile = self.own_profile(user.account, profile).await?;
        if let Some(p) = profile {
            self.check_pin(&user.account.to_string(), p, pin, addr).await?;
        }
        let code = secret("pha_");
        let now = self.clock.now();
        self.store
            .create_auth_code(&AuthCode {
                hash: digest(&code),
                client_id: req.client.client_id.clone(),
                account: user.account,
                redirect_uri: req.redirect_uri.as_str().to_owned(),
                code_challenge: req.code_challenge.clone(),
                scopes: req.scopes,
                profile,
                auth_time: user.auth_time,
                session_id: uuid::Uuid::new_v4().to_string(),
                expires_at: Timestamp(now.0 + self.config.code_ttl_secs * 1000),
                used_at: None,
            })
            .await?;
        Ok(code)
    }

    /// The token endpoint's authorization_code grant.
    pub(super) async fn token_code(
        &self,
        client: &OAuthClient,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        addr: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::AuthorizationCode)?;
        let invalid = |d: &str| OAuthError::new(OAuthErrorCode::InvalidGrant, d);
        let now = self.clock.now();
        let found = match self.store.consume_auth_code(digest(code), now).await? {
            CodeUse::Fresh(c) => c,
            CodeUse::Reused(c) => {
                // RFC 6749 section 4.1.2: a code used twice revokes what it issued.
                self.store.revoke_session(&c.session_id, now).await?;
                self.audit(
                    &c.account.to_string(),
                    "code.reuse",
                    json!({"client_id": c.client_id, "sid": c.session_id}),
                    addr,
                )
                .await;
                return Err(invalid("authorization code already used; its tokens are revoked"));
            }
            CodeUse::Unknown => return Err(invalid("unknown authorization code")),
        };
        if found.client_id != client.client_id {
            return Err(invalid("the code was issued to another client"));
        }
        if now >= found.expires_at {
            return Err(invalid("authorization code expired"));
        }
        // RFC 6749 section 4.1.3: identical to the authorization request's, port included.
        if found.redirect_uri != redirect_uri {
            return Err(invalid("redirect_uri does not match the authorization request"));
        }
        if !pkce_matches(verifier, &found.code_challenge) {
            return Err(invalid("code_verifier does not match the code_challenge"));
        }
        let tokens = self
            .start_session_with_id(
                found.session_id.clone(),
                found.account,
                client,
                found.scopes,
                found.profile,
                found.auth_time,
            )
            .await?;
        self.touch(&found.session_id, addr).await;
        Ok(tokens)
    }
}

/// A client's registered redirect URIs. One stored before the checks of [`RedirectUri::parse`]
/// that no longer passes them matches nothing (and is logged: the operator should re-register).
fn registered_uris(client: &OAuthClient) -> impl Iterator<Item = RedirectUri> + '_ {
    client.redirect_uris.iter().filter_map(|u| match RedirectUri::parse(u) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(client.id = %client.client_id, error = %e, "a registered redirect URI is no longer accepted; it matches nothing");
            None
        }
    })
}

/// PKCE S256 (RFC 7636 section 4.6): BASE64URL(SHA256(verifier)) == challenge, and the
/// verifier is 43-128 characters of the unreserved set.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed
        && subtle::ConstantTimeEq::ct_eq(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(!pkce_matches("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    }
}
