//! OAuth clients: registration, client authentication (RFC 6749 section 2.3), and what a client
//! may ask for (its grants and its scope ceiling).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use playhead_core::auth::Scopes;
use playhead_core::identity::{ClientType, GrantType, OAuthClient};
use playhead_core::oauth::{OAuthErrorCode, RedirectUri};
use rand::RngCore;
use serde_json::json;

use super::{AuthServer, OAuthError, REDACTED, digest, secret};

/// A newly registered client, and for a confidential one its secret (shown once).
#[derive(Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The client as stored.
    pub client: OAuthClient,
    /// The secret in plain text: give it to the operator, then forget it.
    pub secret: Option<String>,
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client", &self.client)
            .field("secret", &self.secret.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// The credentials a client presented (HTTP Basic or the form): its id, and its secret if it
/// has one.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The `client_id`.
    pub client_id: String,
    /// The `client_secret`; `None` for a public client.
    pub secret: Option<String>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| REDACTED))
            .finish()
    }
}

impl AuthServer {
    /// Register a client. Redirect URIs are checked by their type ([`RedirectUri::parse`]);
    /// the rest of the metadata here.
    pub async fn create_client(
        &self,
        name: &str,
        client_type: ClientType,
        redirect_uris: Vec<RedirectUri>,
        grants: Vec<GrantType>,
        scopes: Scopes,
    ) -> Result<RegisteredClient, OAuthError> {
        let metadata = |d: &str| OAuthError::new(OAuthErrorCode::InvalidClientMetadata, d);
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(metadata("name must be 1-100 characters"));
        }
        if grants.is_empty() {
            return Err(metadata("at least one grant is required"));
        }
        if client_type == ClientType::Public && grants.contains(&GrantType::ClientCredentials) {
            return Err(metadata(
                "client_credentials needs a confidential client (a public client cannot keep a secret)",
            ));
        }
        if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidRedirectUri,
                "authorization_code needs a redirect URI",
            ));
        }
        let secret = (client_type == ClientType::Confidential).then(|| secret("phs_"));
        let client = OAuthClient {
            client_id: format!("phc_{}", client_id()),
            name: name.to_owned(),
            client_type,
            secret_hash: secret.as_deref().map(digest),
            redirect_uris: redirect_uris.iter().map(|u| u.as_str().to_owned()).collect(),
            grants,
            scopes,
            created_at: self.clock.now(),
        };
        self.store.create_client(&client).await?;
        Ok(RegisteredClient { client, secret })
    }

    /// Authenticate a client at the token, device, revoke and introspect endpoints: a
    /// confidential client must present its secret; a public one must not claim one.
    pub(super) async fn authenticate_client(
        &self,
        presented: &ClientAuth,
        addr: Option<&str>,
    ) -> Result<OAuthClient, OAuthError> {
        let bad = || OAuthError::new(OAuthErrorCode::InvalidClient, "client authentication failed");
        let Some(client) = self.store.client(&presented.client_id).await? else {
            return Err(bad());
        };
        match (client.client_type, client.secret_hash, presented.secret.as_deref()) {
            (ClientType::Public, _, None) => Ok(client),
            (ClientType::Confidential, Some(hash), Some(s)) => {
                if bool::from(subtle::ConstantTimeEq::ct_eq(&digest(s)[..], &hash[..])) {
                    Ok(client)
                } else {
                    let actor = format!("client:{}", presented.client_id);
                    self.audit(&actor, "client.auth_failed", json!({}), addr).await;
                    Err(bad())
                }
            }
            _ => Err(bad()),
        }
    }

    /// The client may use `grant`, or `unauthorized_client`.
    pub(super) fn require_grant(client: &OAuthClient, grant: GrantType) -> Result<(), OAuthError> {
        if client.grants.contains(&grant) {
            Ok(())
        } else {
            Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                format!("this client may not use {}", grant.as_str()),
            ))
        }
    }

    /// Requested scopes within the client's; none requested means all of the client's.
    pub(super) fn scopes_for(client: &OAuthClient, requested: Option<&str>) -> Result<Scopes, OAuthError> {
        let Some(req) = requested.filter(|s| !s.trim().is_empty()) else {
            return Ok(client.scopes);
        };
        let asked =
            Scopes::parse(req).map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e.to_string()))?;
        if asked.intersect(client.scopes) != asked {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                "a requested scope is not allowed for this client",
            ));
        }
        Ok(asked)
    }
}

/// A client id's random part (96 bits: ids are public, only unique).
fn client_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_and_issued_secrets_do_not_print() {
        let auth = ClientAuth { client_id: "phc_x".into(), secret: Some("phs_topsecret".into()) };
        let shown = format!("{auth:?}");
        assert!(shown.contains("phc_x") && !shown.contains("topsecret"), "{shown}");
        let registered = RegisteredClient {
            client: OAuthClient {
                client_id: "phc_x".into(),
                name: "TV".into(),
                client_type: ClientType::Confidential,
                secret_hash: Some([0; 32]),
                redirect_uris: vec![],
                grants: vec![GrantType::ClientCredentials],
                scopes: Scopes::empty(),
                created_at: playhead_core::Timestamp(0),
            },
            secret: Some("phs_topsecret".into()),
        };
        let shown = format!("{registered:?}");
        assert!(shown.contains("phc_x") && !shown.contains("topsecret"), "{shown}");
    }
}
