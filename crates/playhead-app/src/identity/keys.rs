//! Signing keys: kept in the identity store so every replica signs and verifies with one set;
//! the newest signs, the previous one keeps verifying until its tokens expire.

use std::sync::{Arc, RwLock};

use argon2::{Algorithm, Argon2, Params, Version};
use playhead_auth::{KeySet, TokenIssuer, Verifier};
use playhead_core::identity::SigningKeyRecord;
use playhead_core::ports::{AccountStore, Clock, IdentityStore, RateLimiter};
use playhead_core::time::Timestamp;

use super::{AuthServer, IdentityConfig, OAuthError};

/// Signing keys kept in the store: the current one and the previous one (so tokens it signed
/// keep verifying until they expire).
const KEYS_KEPT: usize = 2;

impl AuthServer {
    /// Load (or create, when the store has none) the signing keys and build the server.
    pub async fn open(
        store: Arc<dyn IdentityStore>,
        accounts: Arc<dyn AccountStore>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        config: IdentityConfig,
    ) -> Result<Self, OAuthError> {
        let params = Params::new(config.argon2_m_kib, config.argon2_t, config.argon2_p, None)
            .map_err(|e| OAuthError::Internal(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            // Two replicas starting at once may both add a key: both are kept and the newest signs.
            add_key(store.as_ref(), clock.now()).await?;
            records = store.signing_keys().await?;
        }
        let keys = Arc::new(key_set(&records)?);
        Ok(Self { store, accounts, limiter, clock, config, keys: RwLock::new(keys), argon })
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().map_or_else(|p| p.into_inner().clone(), |k| k.clone())
    }

    /// A verifier for our own access tokens over the current keys.
    pub fn verifier(&self, leeway_secs: u64) -> Verifier {
        Verifier::new(&self.keys(), self.config.issuer.clone(), self.config.audience.clone(), leeway_secs)
    }

    /// Re-read the keys from the store (another replica or the CLI may have rotated). Returns
    /// whether the set changed.
    pub async fn reload_keys(&self) -> Result<bool, OAuthError> {
        self.reload_keys_from(self.store.as_ref()).await
    }

    /// [`Self::reload_keys`] reading through `store`: the same database on another connection
    /// (the revocation poller's own, decision 0115).
    pub async fn reload_keys_from(&self, store: &dyn IdentityStore) -> Result<bool, OAuthError> {
        let records = store.signing_keys().await?;
        if records.is_empty() {
            return Ok(false);
        }
        let fresh = key_set(&records)?;
        let current = self.keys();
        let changed = fresh.kids().ne(current.kids());
        if changed {
            match self.keys.write() {
                Ok(mut k) => *k = Arc::new(fresh),
                Err(p) => *p.into_inner() = Arc::new(fresh),
            }
        }
        Ok(changed)
    }

    /// Add a new signing key (the previous one keeps verifying; older ones are removed).
    pub async fn rotate_keys(&self) -> Result<Arc<KeySet>, OAuthError> {
        add_key(self.store.as_ref(), self.clock.now()).await?;
        self.reload_keys().await?;
        Ok(self.keys())
    }

    /// Signs access tokens with the current key.
    pub(super) fn issuer(&self) -> TokenIssuer {
        TokenIssuer::new(
            self.keys(),
            self.config.issuer.clone(),
            self.config.audience.clone(),
            self.config.access_ttl_secs,
        )
    }
}

async fn add_key(store: &dyn IdentityStore, now: Timestamp) -> Result<(), OAuthError> {
    let (kid, pem) = KeySet::generate_pem().map_err(|e| OAuthError::Internal(e.to_string()))?;
    let existing = store.signing_keys().await?;
    // Strictly after the newest, so a clock step back cannot demote the new key.
    let created_at = Timestamp(existing.last().map_or(now.0, |k| now.0.max(k.created_at.0 + 1)));
    store.add_signing_key(&SigningKeyRecord { kid, pem: pem.to_string(), created_at }, KEYS_KEPT).await?;
    Ok(())
}

fn key_set(records: &[SigningKeyRecord]) -> Result<KeySet, OAuthError> {
    let pems: Vec<&str> = records.iter().map(|r| r.pem.as_str()).collect();
    KeySet::from_pems(&pems).map_err(|e| OAuthError::Internal(e.to_string()))
}
