//! The built-in OAuth 2.0 authorization server's use cases: clients, sign-in, the device and
//! authorization-code grants, refresh rotation, client credentials, revocation, introspection
//! and signing-key rotation. Transports (the REST `/oauth` routes and hosted pages) only parse
//! and render; every decision is made here or in `playhead_core::identity`.
//!
//! One file per part of the protocol: `clients` (registration and client authentication),
//! `signin` (passwords, browser sessions, attempt limits), `device` (RFC 8628),
//! `code` (RFC 6749 section 4.1 with PKCE), `session` (the token endpoint, sessions and refresh
//! rotation), `introspect` (RFC 7009 and RFC 7662) and `keys` (signing keys).
//!
//! The rules a contributor must keep here:
//! - Secrets (codes, refresh tokens, client secrets, cookies) are 256-bit random values shown to
//!   their holder once; only their SHA-256 is stored. Passwords are argon2id. A type that carries
//!   one to its holder redacts it in `Debug`.
//! - Errors are [`OAuthError`]s with an [`OAuthErrorCode`] and a description that is safe to
//!   show: never a secret, never whether an e-mail address has an account.
//! - Storage failures are `Unavailable` (503 with Retry-After), never an OAuth 4xx.
//! - Every failure a guesser could learn from (sign-in, device codes, client secrets, refresh
//!   reuse) is audit-logged with who, what, when and from where, and never the secret.

mod clients;
mod code;
mod device;
mod devices;
mod error;
mod introspect;
mod keys;
mod pin;
mod session;
mod signin;

use std::sync::{Arc, RwLock};

use argon2::Argon2;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use playhead_auth::KeySet;
use playhead_core::identity::AuditEntry;
use playhead_core::ports::{AccountStore, Clock, IdentityStore, RateLimiter};
use playhead_core::time::Timestamp;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use clients::{ClientAuth, RegisteredClient};
pub use code::{AuthorizeParams, AuthorizeRequest};
pub use device::{DeviceConsent, DeviceGrant, DeviceRefusal, UserCodeProblem};
pub use devices::DeviceSession;
pub use error::{AuthorizeError, OAuthError};
pub use introspect::Introspection;
pub use pin::PinRefusal;
pub use playhead_core::oauth::{OAuthErrorCode, RedirectUri};
pub use session::{TokenGrant, TokenResponse};
pub use signin::{SignedIn, WebUser};

/// Leeway for the time claims of tokens (clock differences between issuer and replicas): at
/// revocation and introspection here, and for every request the resource server verifies.
pub const TOKEN_LEEWAY_SECS: u64 = 30;

/// Tunables of the authorization server (the binary fills them from config).
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Our issuer URL (`iss`), also the base of the metadata's endpoint URLs.
    pub issuer: String,
    /// The audience our access tokens are for.
    pub audience: String,
    /// Access token lifetime (default 10 minutes).
    pub access_ttl_secs: i64,
    /// Refresh token lifetime (each rotation restarts it).
    pub refresh_ttl_secs: i64,
    /// Authorization code lifetime.
    pub code_ttl_secs: i64,
    /// Device code lifetime (RFC 8628 example: 1800).
    pub device_ttl_secs: i64,
    /// Initial device polling interval.
    pub device_interval_secs: i64,
    /// Browser session lifetime.
    pub web_session_ttl_secs: i64,
    /// argon2id memory cost in KiB.
    pub argon2_m_kib: u32,
    /// argon2id iterations.
    pub argon2_t: u32,
    /// argon2id parallelism.
    pub argon2_p: u32,
    /// Sign-in and device-code attempts per client address per minute.
    pub attempts_per_addr_per_min: u32,
    /// Failed sign-ins per account per 15 minutes before it is locked out for a while.
    pub failures_per_account_per_15min: u32,
    /// How long after a rotation the same client may present the old refresh token again.
    pub refresh_reuse_grace_ms: i64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            audience: "playhead".into(),
            access_ttl_secs: 600,
            refresh_ttl_secs: 30 * 86_400,
            code_ttl_secs: 60,
            device_ttl_secs: 1_800,
            device_interval_secs: 5,
            web_session_ttl_secs: 86_400,
            // OWASP's argon2id baseline (19 MiB, t=2, p=1).
            argon2_m_kib: 19_456,
            argon2_t: 2,
            argon2_p: 1,
            attempts_per_addr_per_min: 20,
            failures_per_account_per_15min: 10,
            refresh_reuse_grace_ms: playhead_core::identity::REFRESH_REUSE_GRACE_MS,
        }
    }
}

/// The authorization server.
pub struct AuthServer {
    store: Arc<dyn IdentityStore>,
    accounts: Arc<dyn AccountStore>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    config: IdentityConfig,
    keys: RwLock<Arc<KeySet>>,
    argon: Argon2<'static>,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer").field("config", &self.config).finish_non_exhaustive()
    }
}

impl AuthServer {
    /// The configuration.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// The store (for the revocation poll).
    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    async fn audit(&self, actor: &str, action: &str, detail: serde_json::Value, addr: Option<&str>) {
        let entry = AuditEntry {
            at: self.clock.now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail: detail.to_string(),
            client_addr: addr.map(str::to_owned),
        };
        tracing::info!(audit.actor = %entry.actor, audit.action = %entry.action, audit.detail = %entry.detail, client.addr = ?entry.client_addr, "audit");
        if let Err(e) = self.store.audit(&[entry]).await {
            // The log line above keeps the record; a lost row must not fail the request.
            tracing::warn!(error = %e, "audit log write failed");
        }
    }

    /// Record a `profiles:any` access (batched by the caller; see the REST layer).
    pub async fn audit_batch(&self, entries: Vec<AuditEntry>) {
        if let Err(e) = self.store.audit(&entries).await {
            tracing::warn!(error = %e, entries = entries.len(), "audit log write failed");
        }
    }
}

/// A random secret: `prefix` + base64url of 32 bytes (256 bits).
fn secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a presented secret: how it is stored and looked up.
fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whole seconds (JWT time claims).
fn secs(t: Timestamp) -> i64 {
    t.0.div_euclid(1000)
}

/// `[redacted]` for a secret field in `Debug` output, so a logged value never shows it.
const REDACTED: &str = "[redacted]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (secret("phr_"), secret("phr_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 43);
    }
}
