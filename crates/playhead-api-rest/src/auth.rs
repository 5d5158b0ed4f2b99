//! Authentication: turns `Authorization: Bearer ...` into a [`Principal`], or a 401 with a
//! WWW-Authenticate challenge (RFC 6750).
//!
//! Verified credentials are cached by the SHA-256 of the presented value (never the value
//! itself) so the Ed25519 check and the API-key lookup are not paid on every request. A cached
//! JWT never outlives its `exp`; a cached API key lives at most [`API_KEY_CACHE_SECS`], which
//! bounds how long a revoked key keeps working on this replica.

use std::sync::Arc;
use std::time::Duration;

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

/// Checks bearer credentials.
pub struct Authenticator {
    verifier: Verifier,
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
        Self { verifier, api_keys, clock, cache }
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
                return Ok(hit.principal);
            }
            self.cache.invalidate(&digest);
        }
        let (principal, valid_until) = match Bearer::classify(credential) {
            Bearer::Jwt(jwt) => {
                let t = self
                    .verifier
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
