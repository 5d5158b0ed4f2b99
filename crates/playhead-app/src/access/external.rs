//! Tokens from a platform's own IdP (external issuers, decision 0021): configured trust, keys
//! fetched only from each issuer's configured `jwks_uri`, identities keyed by (issuer, subject)
//! and linked to an account of ours on first sight (through [`crate::accounts`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use playhead_auth::TokenError;
use playhead_auth::external::{ExternalKeys, ExternalVerifier};
use playhead_core::auth::{Principal, Role, Subject};
use playhead_core::ids::AccountId;
use playhead_core::ports::IdentityStore;

use super::authn::refused;
use crate::AppError;

/// What a [`JwksFetcher`] returns (the same type as `futures::future::BoxFuture`).
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// Fetches a JSON Web Key Set document (the binary does it over HTTPS; tests may serve one).
pub trait JwksFetcher: Send + Sync {
    /// GET `uri` and return the body. The error text is logged, never sent to clients.
    fn fetch<'a>(&'a self, uri: &'a str) -> FetchFuture<'a>;
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
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        claimed: &str,
        now_secs: i64,
        now: playhead_core::Timestamp,
    ) -> Result<(Principal, i64), AppError> {
        let refuse = |e: TokenError| refused(e.error_code(), e.to_string());
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
            return Err(AppError::Unavailable(
                "the token's issuer keys could not be fetched; retry shortly".into(),
            ));
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
    ) -> Result<AccountId, AppError> {
        let key = (index, subject.to_owned());
        if let Some(id) = self.linked.get(&key) {
            return Ok(id);
        }
        let linked = crate::accounts::provision_external_identity(&*self.store, issuer, subject, now).await?;
        self.linked.insert(key, linked);
        Ok(linked)
    }
}
