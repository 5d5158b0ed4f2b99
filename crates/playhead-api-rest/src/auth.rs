//! Authentication: turns `Authorization: Bearer ...` into a [`Principal`], or a 401 with a
//! WWW-Authenticate challenge (RFC 6750).
//!
//! Verified credentials are cached by the SHA-256 of the presented value (never the value
//! itself) so the Ed25519 check and the API-key lookup are not paid on every request. A cached
//! JWT never outlives its `exp`; a cached API key lives at most [`API_KEY_CACHE_SECS`], which
//! bounds how long a revoked key keeps working on this replica.
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
use moka::sync::Cache;
use playhead_auth::{Bearer, Verifier, token_digest, verify_api_key};
use playhead_core::auth::Principal;
use playhead_core::ports::{ApiKeyStore, Clock};

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
        Self { verifier: RwLock::new(Arc::new(verifier)), revocations: None, api_keys, clock, cache }
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
                let t = self
                    .current_verifier()
                    .verify(jwt, now_secs)
                    .map_err(|e| unauthorized(Some(e.error_code()), e.to_string()))?;
                let until = t.expires_at().min(now_secs + i64::try_from(JWT_CACHE_SECS).unwrap_or(0));
                (t.principal(), until)
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
