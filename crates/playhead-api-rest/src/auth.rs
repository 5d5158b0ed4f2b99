//! Authentication: turns `Authorization: Bearer ...` into a [`Principal`], or a 401 with a
//! WWW-Authenticate challenge (RFC 6750).
//!
//! Verified credentials are cached by the SHA-256 of the presented value (never the value
//! itself) so the Ed25519 check and the API-key lookup are not paid on every request. A cached
//! JWT never outlives its `exp`; a cached API key lives at most [`API_KEY_CACHE_SECS`], which
//! bounds how long a revoked key keeps working on this replica.
//!
//! Tokens from a configured external issuer (a platform's own IdP) are verified with that
//! issuer's key set, fetched from its configured `jwks_uri` only ([`ExternalIssuers`]), and the
//! (issuer, subject) pair is linked to an account of ours on first sight.
//!
//! Revoked sessions are checked on every request, cached or not, against [`Revocations`]: a set
//! of revoked `sid`s refreshed by a background poll (at most every 10 s), so a revocation takes
//! effect within 30 s with no database read per request. When the set has not been refreshed for
//! [`Revocations::MAX_STALENESS`], a person's token is answered 503 + Retry-After instead of being
//! trusted on stale data.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use futures::future::BoxFuture;
use moka::sync::Cache;
use playhead_auth::external::{ExternalKeys, ExternalVerifier, claimed_issuer};
use playhead_auth::{Bearer, TokenError, Verifier, token_digest, verify_api_key};
use playhead_core::auth::{Principal, Role, Subject};
use playhead_core::ids::AccountId;
use playhead_core::ports::{ApiKeyStore, Clock, IdentityStore};
use playhead_core::profile::{Account, Email};

use crate::RestState;
use crate::error::ApiError;

/// How long a verified API key is trusted without a store read.
pub const API_KEY_CACHE_SECS: u64 = 30;
/// How long a verified JWT is cached at most (its own expiry cuts this shorter).
const JWT_CACHE_SECS: u64 = 300;

#[derive(Clone)]
struct CachedPrincipal {
    principal: Principal,
    /// Unix seconds after which the entry must not be used.
    valid_until: i64,
}

/// The revoked sessions this replica knows of, and when it last learned them.
#[derive(Debug)]
pub struct Revocations {
    state: RwLock<(Arc<HashSet<String>>, Option<Instant>)>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

impl Revocations {
    /// Older than this, the set is not trusted (503 instead).
    pub const MAX_STALENESS: Duration = Duration::from_secs(30);

    /// An empty set that has never been refreshed (stale until the first poll).
    pub fn new() -> Self {
        Self { state: RwLock::new((Arc::new(HashSet::new()), None)) }
    }

    /// Replace the set after a successful poll.
    pub fn replace(&self, revoked: HashSet<String>) {
        let fresh = (Arc::new(revoked), Some(Instant::now()));
        match self.state.write() {
            Ok(mut g) => *g = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
    }

    /// Mark one session revoked now (this replica revoked it; others learn at their next poll).
    pub fn add(&self, sid: &str) {
        let mut g = match self.state.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut set = (*g.0).clone();
        set.insert(sid.to_owned());
        g.0 = Arc::new(set);
    }

    /// `Some(true)` revoked, `Some(false)` not, `None` when the set is too stale to say.
    pub fn is_revoked(&self, sid: &str) -> Option<bool> {
        let g = match self.state.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let fresh = g.1.is_some_and(|at| at.elapsed() <= Self::MAX_STALENESS);
        fresh.then(|| g.0.contains(sid))
    }
}

/// Checks bearer credentials.
pub struct Authenticator {
    verifier: RwLock<Arc<Verifier>>,
    /// Our own issuer (`iss` of our tokens): any other `iss` is looked up among `external`.
    issuer: String,
    external: Option<Arc<ExternalIssuers>>,
    revocations: Option<Arc<Revocations>>,
    api_keys: Arc<dyn ApiKeyStore>,
    clock: Arc<dyn Clock>,
    cache: Cache<[u8; 32], CachedPrincipal>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("verifier", &self.verifier).finish_non_exhaustive()
    }
}

fn unauthorized(error: Option<&'static str>, description: impl Into<String>) -> ApiError {
    ApiError::Unauthorized { error, description: description.into() }
}

impl Authenticator {
    /// An authenticator over a token verifier and the API-key store.
    pub fn new(verifier: Verifier, api_keys: Arc<dyn ApiKeyStore>, clock: Arc<dyn Clock>) -> Self {
        let cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(JWT_CACHE_SECS.max(API_KEY_CACHE_SECS)))
            .build();
        let issuer = verifier.issuer().to_owned();
        Self {
            verifier: RwLock::new(Arc::new(verifier)),
            issuer,
            external: None,
            revocations: None,
            api_keys,
            clock,
            cache,
        }
    }

    /// Also accept access tokens from these external issuers.
    #[must_use]
    pub fn with_external_issuers(mut self, external: Arc<ExternalIssuers>) -> Self {
        self.external = Some(external);
        self
    }

    /// Check every person's token against `revocations` (the binary polls the store into it).
    #[must_use]
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Swap the verifier (after a key rotation). Cached tokens signed by a key no longer in the
    /// set are dropped by `still_valid` on their next use.
    pub fn set_verifier(&self, verifier: Verifier) {
        match self.verifier.write() {
            Ok(mut v) => *v = Arc::new(verifier),
            Err(p) => *p.into_inner() = Arc::new(verifier),
        }
        // Entries were keyed under the old key set: simplest correct move is to forget them.
        self.cache.invalidate_all();
    }

    /// The key ids the current verifier accepts (to notice a rotation).
    pub fn kids(&self) -> Vec<String> {
        self.current_verifier().kids().map(str::to_owned).collect()
    }

    fn current_verifier(&self) -> Arc<Verifier> {
        match self.verifier.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Refuse a revoked session; 503 when the revocation set is too stale to trust.
    fn check_session(&self, principal: &Principal) -> Result<(), ApiError> {
        let (Some(revocations), Some(sid)) = (&self.revocations, principal.session_id.as_deref()) else {
            return Ok(());
        };
        match revocations.is_revoked(sid) {
            Some(false) => Ok(()),
            Some(true) => Err(unauthorized(Some("invalid_token"), "the session was revoked; sign in again")),
            None => Err(ApiError::App(playhead_app::AppError::Unavailable(
                "the revocation list is stale; retry shortly".into(),
            ))),
        }
    }

    /// Authenticate a request's headers.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized(None, "send Authorization: Bearer <access token or API key>"))?
            .to_str()
            .map_err(|_| unauthorized(Some("invalid_request"), "the Authorization header is not ASCII"))?;
        let (scheme, credential) = value
            .split_once(' ')
            .ok_or_else(|| unauthorized(Some("invalid_request"), "use the Bearer scheme"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(Some("invalid_request"), "use the Bearer scheme"));
        }
        let credential = credential.trim();
        let now = self.clock.now();
        let now_secs = now.0.div_euclid(1000);
        let digest = token_digest(credential);
        if let Some(hit) = self.cache.get(&digest) {
            if now_secs < hit.valid_until {
                self.check_session(&hit.principal)?;
                return Ok(hit.principal);
            }
            self.cache.invalidate(&digest);
        }
        let (principal, valid_until) = match Bearer::classify(credential) {
            Bearer::Jwt(jwt) => {
                let cap = now_secs + i64::try_from(JWT_CACHE_SECS).unwrap_or(0);
                // The unverified `iss` only chooses whose keys to try; each verifier checks it
                // again under the signature.
                let external = self
                    .external
                    .as_ref()
                    .and_then(|e| claimed_issuer(jwt).filter(|iss| *iss != self.issuer).map(|iss| (e, iss)));
                if let Some((external, iss)) = external {
                    let (p, exp) = external.authenticate(jwt, &iss, now_secs, now).await?;
                    (p, exp.min(cap))
                } else {
                    let t = self
                        .current_verifier()
                        .verify(jwt, now_secs)
                        .map_err(|e| unauthorized(Some(e.error_code()), e.to_string()))?;
                    (t.principal(), t.expires_at().min(cap))
                }
            }
            Bearer::ApiKey(key) => {
                let record = self
                    .api_keys
                    .api_key(key.prefix())
                    .await
                    .map_err(|e| ApiError::App(e.into()))?
                    .ok_or_else(|| unauthorized(Some("invalid_token"), "unknown API key"))?;
                let p = verify_api_key(&record, credential, now)
                    .map_err(|e| unauthorized(Some("invalid_token"), e.to_string()))?;
                (p, now_secs + i64::try_from(API_KEY_CACHE_SECS).unwrap_or(0))
            }
            Bearer::Unrecognized => {
                return Err(unauthorized(
                    Some("invalid_token"),
                    "the bearer value is neither an access token nor an API key",
                ));
            }
        };
        self.check_session(&principal)?;
        self.cache.insert(digest, CachedPrincipal { principal: principal.clone(), valid_until });
        Ok(principal)
    }
}

/// Fetches a JSON Web Key Set document (the binary does it over HTTPS; tests may serve one).
pub trait JwksFetcher: Send + Sync {
    /// GET `uri` and return the body. The error text is logged, never sent to clients.
    fn fetch<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<String, String>>;
}

/// How often an unknown `kid` may trigger a refetch of one issuer's key set: a stream of tokens
/// with made-up key ids must not turn us into a load generator against the IdP.
pub const JWKS_MIN_REFETCH: Duration = Duration::from_secs(60);

struct IssuerState {
    verifier: ExternalVerifier,
    keys: RwLock<Option<(Arc<ExternalKeys>, Instant)>>,
    /// Held while fetching (one fetch at a time per issuer); holds when the last attempt started.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

/// The configured external issuers, their cached key sets, and the links from their subjects to
/// our accounts.
pub struct ExternalIssuers {
    issuers: Vec<IssuerState>,
    fetcher: Arc<dyn JwksFetcher>,
    store: Arc<dyn IdentityStore>,
    /// (issuer index, subject) -> account: a link never changes once made.
    linked: Cache<(usize, String), AccountId>,
    min_refetch: Duration,
}

impl std::fmt::Debug for ExternalIssuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.issuers.iter().map(|i| i.verifier.issuer())).finish()
    }
}

impl ExternalIssuers {
    /// Trust these issuers; keys are fetched with `fetcher`, links kept in `store`.
    pub fn new(
        verifiers: Vec<ExternalVerifier>,
        fetcher: Arc<dyn JwksFetcher>,
        store: Arc<dyn IdentityStore>,
    ) -> Self {
        let issuers = verifiers
            .into_iter()
            .map(|verifier| IssuerState {
                verifier,
                keys: RwLock::new(None),
                last_attempt: tokio::sync::Mutex::new(None),
            })
            .collect();
        Self {
            issuers,
            fetcher,
            store,
            linked: Cache::builder().max_capacity(100_000).build(),
            min_refetch: JWKS_MIN_REFETCH,
        }
    }

    /// Change the refetch floor. For tests that watch a rotation without waiting a minute; the
    /// binary always keeps [`JWKS_MIN_REFETCH`].
    #[must_use]
    pub fn with_min_refetch(mut self, min_refetch: Duration) -> Self {
        self.min_refetch = min_refetch;
        self
    }

    /// Fetch every issuer's keys (at start, so the first requests need not wait). Failures are
    /// logged; such an issuer's tokens are answered 503 until a fetch succeeds.
    pub async fn prefetch(&self) {
        for issuer in &self.issuers {
            self.refresh(issuer, Duration::ZERO).await;
        }
    }

    fn keys(issuer: &IssuerState) -> Option<(Arc<ExternalKeys>, Instant)> {
        match issuer.keys.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Refetch unless an attempt started within `min_interval` (callers that waited on the lock
    /// then see the keys the other fetch installed).
    async fn refresh(&self, issuer: &IssuerState, min_interval: Duration) {
        let mut last = issuer.last_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < min_interval) {
            return;
        }
        *last = Some(Instant::now());
        let uri = &issuer.verifier.config().jwks_uri;
        match self.fetcher.fetch(uri).await.and_then(|body| ExternalKeys::from_jwks(&body)) {
            Ok(keys) => {
                tracing::info!(
                    issuer = issuer.verifier.issuer(),
                    kids = ?keys.kids().collect::<Vec<_>>(),
                    "external issuer keys fetched"
                );
                let fresh = Some((Arc::new(keys), Instant::now()));
                match issuer.keys.write() {
                    Ok(mut k) => *k = fresh,
                    Err(p) => *p.into_inner() = fresh,
                }
            }
            Err(e) => {
                metrics::counter!("playhead_jwks_fetch_failures_total").increment(1);
                tracing::warn!(issuer = issuer.verifier.issuer(), error = %e, "fetching external issuer keys failed");
            }
        }
    }

    /// Verify an external token that claims issuer `claimed` (unverified: it only picks which
    /// keys to try) and resolve its principal; returns it with the token's `exp`.
    async fn authenticate(
        &self,
        token: &str,
        claimed: &str,
        now_secs: i64,
        now: playhead_core::Timestamp,
    ) -> Result<(Principal, i64), ApiError> {
        let refuse = |e: TokenError| unauthorized(Some(e.error_code()), e.to_string());
        let Some((index, issuer)) =
            self.issuers.iter().enumerate().find(|(_, i)| i.verifier.issuer() == claimed)
        else {
            return Err(refuse(TokenError::WrongIssuer));
        };
        let max_age = Duration::from_secs(issuer.verifier.config().jwks_max_age_secs);
        match Self::keys(issuer) {
            None => self.refresh(issuer, self.min_refetch).await,
            Some((_, fetched)) if fetched.elapsed() > max_age => self.refresh(issuer, self.min_refetch).await,
            Some(_) => {}
        }
        let Some((keys, _)) = Self::keys(issuer) else {
            // We could not learn the issuer's keys: our failure, not the caller's.
            return Err(ApiError::App(playhead_app::AppError::Unavailable(
                "the token's issuer keys could not be fetched; retry shortly".into(),
            )));
        };
        let verified = match issuer.verifier.verify(token, &keys, now_secs) {
            // The issuer may have rotated: refetch (at most once a minute) and try once more.
            Err(TokenError::UnknownKey) => {
                self.refresh(issuer, self.min_refetch).await;
                let keys = Self::keys(issuer).map_or(keys, |(k, _)| k);
                issuer.verifier.verify(token, &keys, now_secs)
            }
            other => other,
        }
        .map_err(refuse)?;
        let subject = if verified.role == Role::Service {
            Subject::Service { id: format!("{}#{}", verified.issuer, verified.subject) }
        } else {
            Subject::Account(self.account_for(index, &verified.issuer, &verified.subject, now).await?)
        };
        let principal = Principal {
            subject,
            scopes: verified.scopes,
            bound_profile: None,
            // Sessions at the IdP are the IdP's to revoke (short token lifetimes bound it).
            session_id: None,
            auth_time: verified.auth_time,
        };
        Ok((principal, verified.expires_at))
    }

    async fn account_for(
        &self,
        index: usize,
        issuer: &str,
        subject: &str,
        now: playhead_core::Timestamp,
    ) -> Result<AccountId, ApiError> {
        let key = (index, subject.to_owned());
        if let Some(id) = self.linked.get(&key) {
            return Ok(id);
        }
        let id = AccountId(uuid::Uuid::now_v7());
        // The address is a placeholder under the reserved `.invalid` TLD (RFC 2606): unique,
        // never deliverable, never equal to a real person's sign-in e-mail.
        let email = Email::parse(&format!("{}@external.invalid", id.0.simple())).map_err(|_| {
            ApiError::App(playhead_app::AppError::Unavailable(
                "could not make an account for the external identity".into(),
            ))
        })?;
        let account = Account { id, email, created_at: now };
        let linked = self
            .store
            .link_external_identity(issuer, subject, &account)
            .await
            .map_err(|e| ApiError::App(e.into()))?;
        if linked == id {
            tracing::info!(issuer, account = %linked, "external identity linked to a new account");
        }
        self.linked.insert(key, linked);
        Ok(linked)
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<RestState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &RestState) -> Result<Self, Self::Rejection> {
        // The authenticate middleware has usually decided already; verify here only when it
        // did not run (e.g. a router built without it in a test).
        match parts.extensions.get::<crate::middleware::AuthOutcome>() {
            Some(crate::middleware::AuthOutcome::Ok(p)) => Ok(Auth(p.clone())),
            Some(crate::middleware::AuthOutcome::Refused(error, description)) => {
                Err(ApiError::Unauthorized { error: *error, description: description.clone() })
            }
            None => state.auth.authenticate(parts).await.map(Auth),
        }
    }
}
