//! The built-in OAuth 2.0 authorization server's use cases: clients, sign-in, the device and
//! authorization-code grants, refresh rotation, client credentials, revocation, introspection
//! and signing-key rotation. Transports (the REST `/oauth` routes and hosted pages) only parse
//! and render; every decision is made here or in `playhead_core::identity`.
//!
//! The rules a contributor must keep here:
//! - Secrets (codes, refresh tokens, client secrets, cookies) are 256-bit random values shown to
//!   their holder once; only their SHA-256 is stored. Passwords are argon2id.
//! - Errors are [`OAuthError`]s whose `error` is an RFC 6749/8628 code and whose description is
//!   safe to show: never a secret, never whether an e-mail address has an account.
//! - Storage failures are `Unavailable` (503 with Retry-After), never an OAuth 4xx.
//! - Every failure a guesser could learn from (sign-in, device codes, client secrets, refresh
//!   reuse) is audit-logged with who, what, when and from where, and never the secret.

use std::sync::{Arc, RwLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use playhead_auth::{AccessClaims, KeySet, TokenIssuer, Verifier};
use playhead_core::StoreError;
use playhead_core::auth::{Scope, Scopes};
use playhead_core::identity::{
    AuditEntry, AuthCode, ClientType, CodeUse, DeviceCode, DevicePoll, DeviceStatus, GrantType, OAuthClient,
    RefreshToken, RefreshUse, ReuseVerdict, Session, SigningKeyRecord, USER_CODE_ALPHABET, WebSession,
    judge_reuse, normalize_user_code,
};
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::ports::{AccountStore, Clock, IdentityStore, RateLimiter};
use playhead_core::profile::Email;
use playhead_core::rate::Quota;
use playhead_core::time::Timestamp;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Signing keys kept in the store: the current one and the previous one (so tokens it signed
/// keep verifying until they expire).
pub const KEYS_KEPT: usize = 2;

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

/// An OAuth error (RFC 6749 section 5.2, RFC 8628 section 3.5), or a failure of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// A protocol error: the `error` code and a safe description.
    #[error("{error}: {description}")]
    Protocol {
        /// RFC 6749 / 8628 error code.
        error: &'static str,
        /// Safe to show.
        description: String,
    },
    /// Too many attempts: wait this many seconds.
    #[error("too many attempts")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Storage is down: 503.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug.
    #[error("internal: {0}")]
    Internal(String),
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self::Protocol { error, description: description.into() }
    }

    /// The `error` code, or `server_error`/`temporarily_unavailable`/`slow_down` for ours.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Protocol { error, .. } => error,
            Self::RateLimited { .. } => "slow_down",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Full => Self::Unavailable("storage is full".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// A token endpoint success (RFC 6749 section 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// What /oauth/device_authorization returns (RFC 8628 section 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// The secret the device polls with.
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    /// Seconds until both expire.
    pub expires_in: i64,
    /// Polling interval.
    pub interval: i64,
}

/// A checked authorization request (RFC 6749 section 4.1.1 with PKCE), ready for consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// The client.
    pub client: OAuthClient,
    /// Exactly one of the client's registered URIs.
    pub redirect_uri: String,
    /// Requested scopes (within the client's).
    pub scopes: Scopes,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// Echoed back.
    pub state: Option<String>,
}

/// A browser signed in on the hosted pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUser {
    /// Who.
    pub account: AccountId,
    /// When they typed their password.
    pub auth_time: Timestamp,
    /// SHA-256 of the cookie (CSRF tokens are derived from it).
    pub session_hash: [u8; 32],
}

/// Introspection (RFC 7662): `None` means `{"active": false}`.
pub type Introspection = Option<serde_json::Value>;

/// A random secret: `prefix` + base64url of 32 bytes (256 bits).
fn secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a presented secret: how it is stored and looked up.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn user_code() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // 256 is not a multiple of 20: reject the top 16 values so every letter is equally likely.
    let mut out = String::with_capacity(8);
    let mut more = [0u8; 1];
    for mut b in bytes {
        while b >= 240 {
            rand::rngs::OsRng.fill_bytes(&mut more);
            b = more[0];
        }
        out.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
    }
    out
}

/// PKCE S256 (RFC 7636 section 4.6): BASE64URL(SHA256(verifier)) == challenge, and the
/// verifier is 43-128 characters of the unreserved set.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed
        && subtle::ConstantTimeEq::ct_eq(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
        .into()
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

fn secs(t: Timestamp) -> i64 {
    t.0.div_euclid(1000)
}

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

    /// The configuration.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// The store (for the revocation poll).
    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
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
        let records = self.store.signing_keys().await?;
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

    fn issuer(&self) -> TokenIssuer {
        TokenIssuer::new(
            self.keys(),
            self.config.issuer.clone(),
            self.config.audience.clone(),
            self.config.access_ttl_secs,
        )
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

    // ----- clients -----

    /// Register a client. Returns it and, for a confidential client, its secret (shown once).
    pub async fn create_client(
        &self,
        name: &str,
        client_type: ClientType,
        redirect_uris: Vec<String>,
        grants: Vec<GrantType>,
        scopes: Scopes,
    ) -> Result<(OAuthClient, Option<String>), OAuthError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(OAuthError::new("invalid_client_metadata", "name must be 1-100 characters"));
        }
        if grants.is_empty() {
            return Err(OAuthError::new("invalid_client_metadata", "at least one grant is required"));
        }
        if client_type == ClientType::Public && grants.contains(&GrantType::ClientCredentials) {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "client_credentials needs a confidential client (a public client cannot keep a secret)",
            ));
        }
        if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(OAuthError::new("invalid_redirect_uri", "authorization_code needs a redirect URI"));
        }
        for uri in &redirect_uris {
            let ok = (uri.starts_with("https://")
                || uri.starts_with("http://127.0.0.1")
                || uri.starts_with("http://localhost")
                || uri.starts_with("http://[::1]"))
                && !uri.contains('#')
                && uri.len() <= 2000;
            if !ok {
                return Err(OAuthError::new(
                    "invalid_redirect_uri",
                    "redirect URIs must be https (or http on loopback) without a fragment",
                ));
            }
        }
        let secret = (client_type == ClientType::Confidential).then(|| secret("phs_"));
        let client = OAuthClient {
            client_id: format!("phc_{}", secret_id()),
            name: name.to_owned(),
            client_type,
            secret_hash: secret.as_deref().map(digest),
            redirect_uris,
            grants,
            scopes,
            created_at: self.clock.now(),
        };
        self.store.create_client(&client).await?;
        Ok((client, secret))
    }

    /// Find a client by id (public lookup: pages and the authorize endpoint).
    pub async fn client(&self, client_id: &str) -> Result<Option<OAuthClient>, OAuthError> {
        Ok(self.store.client(client_id).await?)
    }

    /// Authenticate a client at the token, revoke and introspect endpoints: a confidential client
    /// must present its secret; a public one must not claim one.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: Option<&str>,
        addr: Option<&str>,
    ) -> Result<OAuthClient, OAuthError> {
        let bad = || OAuthError::new("invalid_client", "client authentication failed");
        let Some(client) = self.store.client(client_id).await? else {
            return Err(bad());
        };
        match (client.client_type, client.secret_hash, secret) {
            (ClientType::Public, _, None) => Ok(client),
            (ClientType::Confidential, Some(hash), Some(s)) => {
                if bool::from(subtle::ConstantTimeEq::ct_eq(&digest(s)[..], &hash[..])) {
                    Ok(client)
                } else {
                    self.audit(&format!("client:{client_id}"), "client.auth_failed", json!({}), addr).await;
                    Err(bad())
                }
            }
            _ => Err(bad()),
        }
    }

    fn require_grant(client: &OAuthClient, grant: GrantType) -> Result<(), OAuthError> {
        if client.grants.contains(&grant) {
            Ok(())
        } else {
            Err(OAuthError::new("unauthorized_client", format!("this client may not use {}", grant.as_str())))
        }
    }

    /// Requested scopes within the client's; none requested means all of the client's.
    fn scopes_for(client: &OAuthClient, requested: Option<&str>) -> Result<Scopes, OAuthError> {
        let Some(req) = requested.filter(|s| !s.trim().is_empty()) else {
            return Ok(client.scopes);
        };
        let asked = Scopes::parse(req).map_err(|e| OAuthError::new("invalid_scope", e.to_string()))?;
        if asked.intersect(client.scopes) != asked {
            return Err(OAuthError::new("invalid_scope", "a requested scope is not allowed for this client"));
        }
        Ok(asked)
    }

    // ----- sign-in -----

    /// Set an account's password (argon2id with the configured parameters).
    pub async fn set_password(&self, account: AccountId, password: &str) -> Result<(), OAuthError> {
        if password.chars().count() < 8 || password.len() > 1024 {
            return Err(OAuthError::new("invalid_request", "password must be 8-1024 characters"));
        }
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let phc = self
            .argon
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| OAuthError::Internal(format!("argon2: {e}")))?
            .to_string();
        self.store.set_password(account, &phc).await.map_err(|e| match e {
            StoreError::NotFound => OAuthError::new("invalid_request", "no such account"),
            other => other.into(),
        })
    }

    async fn charge(&self, key: String, quota: Quota) -> Result<(), OAuthError> {
        let d = self.limiter.check(&key, quota, 1, self.clock.now()).await?;
        if d.allowed {
            Ok(())
        } else {
            Err(OAuthError::RateLimited {
                retry_after_secs: u64::try_from(d.retry_after_ms.max(0) / 1000 + 1).unwrap_or(1),
            })
        }
    }

    /// Charge one attempt to the client address (sign-in and device-code entry share it).
    pub async fn charge_address(&self, addr: &str) -> Result<(), OAuthError> {
        self.charge(
            format!("signin:addr:{addr}"),
            Quota { limit: self.config.attempts_per_addr_per_min.max(1), window_ms: 60_000 },
        )
        .await
    }

    /// Check an e-mail and password. Rate limited per client address and, for failures, per
    /// account (a locked-out account waits even with the right password: backoff).
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        addr: &str,
    ) -> Result<(String, WebUser), OAuthError> {
        self.charge_address(addr).await?;
        let refused = || OAuthError::new("access_denied", "wrong e-mail address or password");
        let account = match Email::parse(email) {
            Ok(e) => self.accounts.account_by_email(&e).await?,
            Err(_) => None,
        };
        let phc = match &account {
            Some(a) => self.store.password(a.id).await?,
            None => None,
        };
        let account_key = format!("signin:acct:{}", email.trim().to_ascii_lowercase());
        let fail_quota =
            Quota { limit: self.config.failures_per_account_per_15min.max(1), window_ms: 15 * 60_000 };
        // Peek: a locked-out account is refused before the (slow) password check.
        let peek = self.limiter.check(&account_key, fail_quota, 0, self.clock.now()).await?;
        if !peek.allowed || peek.remaining == 0 {
            self.audit(email, "signin.locked", json!({}), Some(addr)).await;
            return Err(OAuthError::RateLimited {
                retry_after_secs: u64::try_from(peek.reset_ms.max(0) / 1000 + 1).unwrap_or(1),
            });
        }
        let ok = match (&account, &phc) {
            (Some(_), Some(phc)) => PasswordHash::new(phc)
                .map(|h| self.argon.verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false),
            _ => {
                // Spend the same time as a real check so response times do not reveal accounts.
                let salt = SaltString::generate(&mut rand::rngs::OsRng);
                let _ = self.argon.hash_password(password.as_bytes(), &salt);
                false
            }
        };
        let Some(account) = account.filter(|_| ok) else {
            let _ = self.limiter.check(&account_key, fail_quota, 1, self.clock.now()).await?;
            self.audit(email, "signin.failed", json!({"reason": "bad credentials"}), Some(addr)).await;
            return Err(refused());
        };
        let now = self.clock.now();
        let cookie = secret("phw_");
        let web = WebSession {
            hash: digest(&cookie),
            account: account.id,
            auth_time: now,
            expires_at: Timestamp(now.0 + self.config.web_session_ttl_secs * 1000),
            revoked_at: None,
        };
        self.store.create_web_session(&web).await?;
        self.audit(&account.id.to_string(), "signin.ok", json!({}), Some(addr)).await;
        Ok((cookie, WebUser { account: account.id, auth_time: now, session_hash: web.hash }))
    }

    /// The browser behind a session cookie, if it is signed in.
    pub async fn web_user(&self, cookie: &str) -> Result<Option<WebUser>, OAuthError> {
        let hash = digest(cookie);
        let now = self.clock.now();
        Ok(self
            .store
            .web_session(hash)
            .await?
            .filter(|w| w.revoked_at.is_none() && now < w.expires_at)
            .map(|w| WebUser { account: w.account, auth_time: w.auth_time, session_hash: hash }))
    }

    /// Sign a browser out.
    pub async fn sign_out(&self, cookie: &str) -> Result<(), OAuthError> {
        Ok(self.store.revoke_web_session(digest(cookie), self.clock.now()).await?)
    }

    /// The profile a person may bind a token to: theirs, or an error.
    async fn own_profile(
        &self,
        account: AccountId,
        profile: Option<ProfileId>,
    ) -> Result<Option<ProfileId>, OAuthError> {
        let Some(p) = profile else { return Ok(None) };
        match self.accounts.profile(p).await? {
            Some(found) if found.account_id == account => Ok(Some(p)),
            _ => Err(OAuthError::new("invalid_request", "no such profile in your account")),
        }
    }

    // ----- device grant (RFC 8628) -----

    /// Start a device authorization.
    pub async fn device_authorization(
        &self,
        client: &OAuthClient,
        scope: Option<&str>,
    ) -> Result<DeviceGrant, OAuthError> {
        Self::require_grant(client, GrantType::DeviceCode)?;
        let scopes = Self::scopes_for(client, scope)?;
        let now = self.clock.now();
        for _ in 0..5 {
            let device_code = secret("phd_");
            let code = DeviceCode {
                hash: digest(&device_code),
                user_code: user_code(),
                client_id: client.client_id.clone(),
                scopes,
                expires_at: Timestamp(now.0 + self.config.device_ttl_secs * 1000),
                interval_secs: self.config.device_interval_secs,
                last_poll_at: None,
                status: DeviceStatus::Pending,
                version: 1,
            };
            match self.store.create_device_code(&code).await {
                Ok(()) => {
                    return Ok(DeviceGrant {
                        device_code,
                        user_code: playhead_core::identity::display_user_code(&code.user_code),
                        expires_in: self.config.device_ttl_secs,
                        interval: code.interval_secs,
                    });
                }
                // 20^8 codes: a clash with a pending one is rare; draw again.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(OAuthError::Internal("could not draw a free user code".into()))
    }

    /// Look up a pending device authorization by what a person typed (rate limited per address).
    pub async fn pending_device(
        &self,
        typed: &str,
        addr: &str,
    ) -> Result<(DeviceCode, OAuthClient), OAuthError> {
        self.charge_address(addr).await?;
        let not_found = || {
            OAuthError::new(
                "invalid_request",
                "that code is not valid (check it, or start again on the device)",
            )
        };
        let Some(code) = normalize_user_code(typed) else {
            self.audit("anonymous", "device.bad_code", json!({"reason": "malformed"}), Some(addr)).await;
            return Err(not_found());
        };
        let found = self.store.pending_device_code(&code).await?;
        let Some(device) = found.filter(|d| self.clock.now() < d.expires_at) else {
            self.audit("anonymous", "device.bad_code", json!({"reason": "unknown or expired"}), Some(addr))
                .await;
            return Err(not_found());
        };
        let client = self.store.client(&device.client_id).await?.ok_or_else(not_found)?;
        Ok((device, client))
    }

    /// A signed-in person approves or denies a device (this consumes the user code).
    pub async fn decide_device(
        &self,
        user: &WebUser,
        typed: &str,
        approve: bool,
        profile: Option<ProfileId>,
        addr: &str,
    ) -> Result<(), OAuthError> {
        let (device, _client) = self.pending_device(typed, addr).await?;
        let profile = if approve { self.own_profile(user.account, profile).await? } else { None };
        let mut next = device.clone();
        next.version += 1;
        next.status = if approve {
            DeviceStatus::Approved { account: user.account, profile, auth_time: user.auth_time }
        } else {
            DeviceStatus::Denied
        };
        self.store.update_device_code(&next, device.version).await.map_err(|e| match e {
            StoreError::PreconditionFailed => {
                OAuthError::new("invalid_request", "this code was just used; start again on the device")
            }
            other => other.into(),
        })?;
        let action = if approve { "device.approved" } else { "device.denied" };
        self.audit(&user.account.to_string(), action, json!({"client_id": device.client_id}), Some(addr))
            .await;
        Ok(())
    }

    /// The token endpoint's device_code grant: one poll.
    pub async fn token_device(
        &self,
        client: &OAuthClient,
        device_code: &str,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::DeviceCode)?;
        let invalid = || OAuthError::new("invalid_grant", "unknown device_code");
        let Some(device) = self.store.device_code(digest(device_code)).await? else {
            return Err(invalid());
        };
        if device.client_id != client.client_id {
            return Err(invalid());
        }
        let (answer, next) = device.poll(self.clock.now());
        if let Some(next) = next {
            self.store.update_device_code(&next, device.version).await.map_err(|e| match e {
                // Another poll changed it first: this one was too fast.
                StoreError::PreconditionFailed => OAuthError::new("slow_down", "poll more slowly"),
                other => other.into(),
            })?;
        }
        match answer {
            DevicePoll::Issue { account, profile, auth_time } => {
                self.start_session(account, client, device.scopes, profile, auth_time).await
            }
            DevicePoll::Pending => {
                Err(OAuthError::new("authorization_pending", "waiting for the person to approve"))
            }
            DevicePoll::SlowDown => {
                Err(OAuthError::new("slow_down", "poll more slowly: the interval grew by 5 seconds"))
            }
            DevicePoll::Denied => Err(OAuthError::new("access_denied", "the person denied the request")),
            DevicePoll::Expired => {
                Err(OAuthError::new("expired_token", "the device code expired; start again"))
            }
        }
    }

    // ----- authorization code + PKCE -----

    /// Check an authorization request (RFC 6749 section 4.1.1 parameters, as sent). Errors before the redirect URI is known to be the client's
    /// are shown to the person, never redirected (RFC 6749 section 4.1.2.1).
    #[expect(
        clippy::too_many_arguments,
        reason = "the request's parameters, one each, as RFC 6749 names them"
    )]
    pub async fn check_authorize(
        &self,
        client_id: &str,
        redirect_uri: &str,
        response_type: &str,
        scope: Option<&str>,
        code_challenge: Option<&str>,
        code_challenge_method: Option<&str>,
        state: Option<&str>,
    ) -> Result<AuthorizeRequest, (OAuthError, bool)> {
        let client = self
            .store
            .client(client_id)
            .await
            .map_err(|e| (e.into(), false))?
            .ok_or_else(|| (OAuthError::new("invalid_request", "unknown client_id"), false))?;
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err((
                OAuthError::new(
                    "invalid_request",
                    "redirect_uri is not registered for this client (exact match)",
                ),
                false,
            ));
        }
        // From here on errors go back to the client's redirect URI.
        if response_type != "code" {
            return Err((OAuthError::new("unsupported_response_type", "only response_type=code"), true));
        }
        Self::require_grant(&client, GrantType::AuthorizationCode).map_err(|e| (e, true))?;
        let scopes = Self::scopes_for(&client, scope).map_err(|e| (e, true))?;
        let challenge = code_challenge
            .filter(|c| !c.is_empty())
            .ok_or_else(|| (OAuthError::new("invalid_request", "code_challenge is required (PKCE)"), true))?;
        if code_challenge_method != Some("S256") {
            return Err((
                OAuthError::new(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)",
                ),
                true,
            ));
        }
        if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
            return Err((
                OAuthError::new(
                    "invalid_request",
                    "code_challenge must be a base64url SHA-256 (43 characters)",
                ),
                true,
            ));
        }
        Ok(AuthorizeRequest {
            client,
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            code_challenge: challenge.to_owned(),
            state: state.map(str::to_owned),
        })
    }

    /// The person approved: issue a code.
    pub async fn issue_code(
        &self,
        user: &WebUser,
        req: &AuthorizeRequest,
        profile: Option<ProfileId>,
    ) -> Result<String, OAuthError> {
        let profile = self.own_profile(user.account, profile).await?;
        let code = secret("pha_");
        let now = self.clock.now();
        self.store
            .create_auth_code(&AuthCode {
                hash: digest(&code),
                client_id: req.client.client_id.clone(),
                account: user.account,
                redirect_uri: req.redirect_uri.clone(),
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
    pub async fn token_code(
        &self,
        client: &OAuthClient,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        addr: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::AuthorizationCode)?;
        let invalid = |d: &str| OAuthError::new("invalid_grant", d.to_owned());
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
        if found.redirect_uri != redirect_uri {
            return Err(invalid("redirect_uri does not match the authorization request"));
        }
        if !pkce_matches(verifier, &found.code_challenge) {
            return Err(invalid("code_verifier does not match the code_challenge"));
        }
        self.start_session_with_id(
            found.session_id.clone(),
            found.account,
            client,
            found.scopes,
            found.profile,
            found.auth_time,
        )
        .await
    }

    // ----- sessions, refresh -----

    async fn start_session(
        &self,
        account: AccountId,
        client: &OAuthClient,
        scopes: Scopes,
        profile: Option<ProfileId>,
        auth_time: Timestamp,
    ) -> Result<TokenResponse, OAuthError> {
        self.start_session_with_id(
            uuid::Uuid::new_v4().to_string(),
            account,
            client,
            scopes,
            profile,
            auth_time,
        )
        .await
    }

    async fn start_session_with_id(
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

    /// The token endpoint's refresh_token grant: rotation, reuse detection, 10 s grace.
    pub async fn token_refresh(
        &self,
        client: &OAuthClient,
        refresh_token: &str,
        scope: Option<&str>,
        addr: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::RefreshToken)?;
        let invalid = |d: &str| OAuthError::new("invalid_grant", d.to_owned());
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
                let asked = Scopes::parse(s).map_err(|e| OAuthError::new("invalid_scope", e.to_string()))?;
                if asked.intersect(session.scopes) != asked {
                    return Err(OAuthError::new("invalid_scope", "a refresh cannot widen the scope"));
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
        let narrowed = Session { scopes, ..session };
        self.access_for(&narrowed, Some(token))
    }

    /// The token endpoint's client_credentials grant (confidential clients only).
    pub async fn token_client_credentials(
        &self,
        client: &OAuthClient,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        if client.client_type != ClientType::Confidential {
            return Err(OAuthError::new(
                "unauthorized_client",
                "client_credentials needs a confidential client",
            ));
        }
        Self::require_grant(client, GrantType::ClientCredentials)?;
        let scopes = Self::scopes_for(client, scope)?;
        let claims = self.issuer().client_claims(&client.client_id, scopes, secs(self.clock.now()));
        self.sign(&claims, scopes, None)
    }

    // ----- revocation and introspection -----

    /// RFC 7009: revoke a refresh token (its whole family) or an access token (its session).
    /// Unknown tokens and tokens of other clients are ignored (200 either way).
    pub async fn revoke(
        &self,
        client: &OAuthClient,
        token: &str,
        leeway_secs: u64,
    ) -> Result<(), OAuthError> {
        let now = self.clock.now();
        if let Some(r) = self.store.refresh_token(digest(token)).await? {
            if r.client_id == client.client_id {
                self.store.revoke_session(&r.session_id, now).await?;
                self.audit(
                    &format!("client:{}", client.client_id),
                    "session.revoked",
                    json!({"sid": r.session_id, "via": "refresh_token"}),
                    None,
                )
                .await;
            }
            return Ok(());
        }
        if let Ok(t) = self.verifier(leeway_secs).verify(token, secs(now))
            && let Some(sid) = t.claims().sid.as_deref().filter(|_| t.claims().client_id == client.client_id)
        {
            self.store.revoke_session(sid, now).await?;
            self.audit(
                &format!("client:{}", client.client_id),
                "session.revoked",
                json!({"sid": sid, "via": "access_token"}),
                None,
            )
            .await;
        }
        Ok(())
    }

    /// RFC 7662: whether a token is active, and its claims if so.
    pub async fn introspect(&self, token: &str, leeway_secs: u64) -> Result<Introspection, OAuthError> {
        let now = self.clock.now();
        if let Some(r) = self.store.refresh_token(digest(token)).await? {
            let Some(s) = self.store.session(&r.session_id).await? else { return Ok(None) };
            if r.used_at.is_some() || s.revoked_at.is_some() || now >= r.expires_at {
                return Ok(None);
            }
            return Ok(Some(json!({
                "active": true, "token_type": "refresh_token", "client_id": r.client_id, "sub": s.account.to_string(),
                "scope": s.scopes.to_string(), "exp": secs(r.expires_at), "iat": secs(r.created_at), "sid": s.id,
                "iss": self.config.issuer,
            })));
        }
        let Ok(t) = self.verifier(leeway_secs).verify(token, secs(now)) else { return Ok(None) };
        let c = t.claims();
        if let Some(sid) = &c.sid
            && self.store.session(sid).await?.is_some_and(|s| s.revoked_at.is_some())
        {
            return Ok(None);
        }
        let mut out = json!({
            "active": true, "token_type": "access_token", "client_id": c.client_id, "sub": c.sub, "scope": c.scope.to_string(),
            "exp": c.exp, "iat": c.iat, "iss": c.iss, "aud": c.aud, "jti": c.jti,
        });
        if let Some(sid) = &c.sid {
            out["sid"] = json!(sid);
        }
        if let Some(p) = c.profile_id {
            out["profile_id"] = json!(p.to_string());
        }
        Ok(Some(out))
    }

    /// Record a `profiles:any` access (batched by the caller; see the REST layer).
    pub async fn audit_batch(&self, entries: Vec<AuditEntry>) {
        if let Err(e) = self.store.audit(&entries).await {
            tracing::warn!(error = %e, entries = entries.len(), "audit log write failed");
        }
    }

    /// Scopes a viewer's app may hold (helper for the CLI default).
    pub fn viewer_scopes() -> Scopes {
        Scope::VIEWER.into_iter().collect()
    }
}

fn secret_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
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

    #[test]
    fn user_codes_use_the_alphabet() {
        for _ in 0..100 {
            let c = user_code();
            assert_eq!(normalize_user_code(&c).as_deref(), Some(c.as_str()));
        }
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (secret("phr_"), secret("phr_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 43);
    }
}
