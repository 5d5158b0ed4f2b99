//! Authentication: turns the value of an `Authorization` header (REST) or `authorization`
//! metadata entry (gRPC) into a [`Principal`], or an [`AppError::Unauthenticated`] carrying the
//! RFC 6750 error code every transport reports in its own way.
//!
//! Verified credentials are cached by the SHA-256 of the presented value (never the value
//! itself) so the Ed25519 check and the API-key lookup are not paid on every request. A cached
//! JWT never outlives its `exp`; a cached API key lives at most [`API_KEY_CACHE_SECS`], which
//! bounds how long a revoked key keeps working on this replica.
//!
//! Tokens from a configured external issuer (a platform's own IdP) are verified with that
//! issuer's key set ([`super::external::ExternalIssuers`]).
//!
//! Revocations are checked on every request, cached or not, against [`Revocations`]: the revoked
//! `sid`s, the denied `jti`s (service tokens revoked by RFC 7009) and the deleted clients,
//! refreshed by a background poll (at most every 10 s), so a revocation takes effect within 30 s
//! with no database read per request. When the set has not been refreshed for
//! [`Revocations::MAX_STALENESS`], any access token of ours is answered 503 + Retry-After instead
//! of being trusted on stale data (API keys have their own bound, [`API_KEY_CACHE_SECS`]).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use playhead_auth::external::claimed_issuer;
use playhead_auth::{Bearer, Verifier, token_digest, verify_api_key};
use playhead_core::auth::Principal;
use playhead_core::identity::{DenialKind, TokenDenial};
use playhead_core::oauth::OAuthErrorCode;
use playhead_core::ports::{ApiKeyStore, Clock};

use super::external::ExternalIssuers;
use crate::AppError;

/// How long a verified API key is trusted without a store read.
pub const API_KEY_CACHE_SECS: u64 = 30;
/// How long a verified JWT is cached at most (its own expiry cuts this shorter).
const JWT_CACHE_SECS: u64 = 300;

/// What to tell a caller that sent no credential at all.
pub const MISSING_CREDENTIAL: &str = "send Authorization: Bearer <access token or API key>";

#[derive(Clone)]
struct CachedPrincipal {
    principal: Principal,
    /// What names the token on the deny list (our own access tokens only).
    token: Option<TokenRef>,
    /// Unix seconds after which the entry must not be used.
    valid_until: i64,
}

/// What an access token of ours can be revoked by besides its session: its `jti`, and its
/// client (a deleted client takes every token it was issued with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    /// The token's `jti`.
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
}

/// What is revoked: sessions (`sid`), single access tokens (`jti`) and deleted clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedSet {
    /// Revoked sessions.
    pub sessions: HashSet<String>,
    /// Denied access tokens, by `jti`.
    pub tokens: HashSet<String>,
    /// Deleted clients: every token issued to one is refused.
    pub clients: HashSet<String>,
}

impl RevokedSet {
    /// The set from revoked session ids and the deny-list entries in force.
    pub fn new(sessions: impl IntoIterator<Item = String>, denials: Vec<TokenDenial>) -> Self {
        let mut set = Self { sessions: sessions.into_iter().collect(), ..Self::default() };
        for d in denials {
            match d.kind {
                DenialKind::Token => set.tokens.insert(d.id),
                DenialKind::Client => set.clients.insert(d.id),
            };
        }
        set
    }

    /// Why the credential is revoked, if it is.
    fn reason(&self, sid: Option<&str>, token: Option<&TokenRef>) -> Option<&'static str> {
        if sid.is_some_and(|s| self.sessions.contains(s)) {
            return Some("the session was revoked; sign in again");
        }
        let t = token?;
        if self.clients.contains(&t.client_id) {
            Some("the client this token was issued to was deleted")
        } else if self.tokens.contains(&t.jti) {
            Some("the access token was revoked")
        } else {
            None
        }
    }
}

/// The revocations this replica knows of, and when it last learned them.
#[derive(Debug)]
pub struct Revocations {
    state: RwLock<(Arc<RevokedSet>, Option<Instant>)>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

/// What the revocation list says of one credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationVerdict {
    /// Not revoked.
    Valid,
    /// Revoked, and why.
    Revoked(&'static str),
    /// The list is too stale to say.
    Unknown,
}

impl Revocations {
    /// Older than this, the set is not trusted (503 instead).
    pub const MAX_STALENESS: Duration = Duration::from_secs(30);

    /// An empty set that has never been refreshed (stale until the first poll).
    pub fn new() -> Self {
        Self { state: RwLock::new((Arc::new(RevokedSet::default()), None)) }
    }

    /// Replace the set after a successful poll.
    pub fn replace(&self, revoked: RevokedSet) {
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
        set.sessions.insert(sid.to_owned());
        g.0 = Arc::new(set);
    }

    /// `Some(true)` revoked, `Some(false)` not, `None` when the set is too stale to say.
    pub fn is_revoked(&self, sid: &str) -> Option<bool> {
        match self.verdict(Some(sid), None) {
            RevocationVerdict::Valid => Some(false),
            RevocationVerdict::Revoked(_) => Some(true),
            RevocationVerdict::Unknown => None,
        }
    }

    /// Whether a credential with this session and token reference is revoked.
    pub fn verdict(&self, sid: Option<&str>, token: Option<&TokenRef>) -> RevocationVerdict {
        let g = match self.state.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.1.is_none_or(|at| at.elapsed() > Self::MAX_STALENESS) {
            return RevocationVerdict::Unknown;
        }
        g.0.reason(sid, token).map_or(RevocationVerdict::Valid, RevocationVerdict::Revoked)
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

/// A refused credential: the RFC 6750 code and a safe description.
pub(crate) fn refused(code: OAuthErrorCode, description: impl Into<String>) -> AppError {
    AppError::Unauthenticated { code: Some(code), description: description.into() }
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

    /// Sessions this replica just revoked: refused here at once (other replicas learn them at
    /// their next poll of the store).
    pub fn note_revoked(&self, sids: &[String]) {
        if let Some(r) = &self.revocations {
            for sid in sids {
                r.add(sid);
            }
        }
    }

    /// Swap the verifier (after a key rotation). Cached tokens signed by a key no longer in the
    /// set are dropped with the rest of the cache.
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

    /// Refuse a revoked session, token or client; 503 when the revocation set is too stale to
    /// trust. Credentials that nothing here can revoke (API keys, external issuers' tokens
    /// without a session) pass.
    fn check_revoked(&self, principal: &Principal, token: Option<&TokenRef>) -> Result<(), AppError> {
        let Some(revocations) = &self.revocations else {
            return Ok(());
        };
        let sid = principal.session_id.as_deref();
        if sid.is_none() && token.is_none() {
            return Ok(());
        }
        match revocations.verdict(sid, token) {
            RevocationVerdict::Valid => Ok(()),
            RevocationVerdict::Revoked(why) => Err(refused(OAuthErrorCode::InvalidToken, why)),
            RevocationVerdict::Unknown => {
                Err(AppError::Unavailable("the revocation list is stale; retry shortly".into()))
            }
        }
    }

    /// Authenticate the value of an `Authorization` header (`Bearer <token or API key>`; the
    /// scheme is case-insensitive, RFC 9110 11.1).
    pub async fn authenticate(&self, authorization: &[u8]) -> Result<Principal, AppError> {
        let value = std::str::from_utf8(authorization).ok().filter(|v| v.is_ascii()).ok_or_else(|| {
            refused(OAuthErrorCode::InvalidRequest, "the Authorization header is not ASCII")
        })?;
        let (scheme, credential) = value
            .split_once(' ')
            .ok_or_else(|| refused(OAuthErrorCode::InvalidRequest, "use the Bearer scheme"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(refused(OAuthErrorCode::InvalidRequest, "use the Bearer scheme"));
        }
        self.authenticate_bearer(credential.trim()).await
    }

    /// Authenticate a bearer credential (an access token or an API key).
    pub async fn authenticate_bearer(&self, credential: &str) -> Result<Principal, AppError> {
        let now = self.clock.now();
        let now_secs = now.0.div_euclid(1000);
        let digest = token_digest(credential);
        if let Some(hit) = self.cache.get(&digest) {
            if now_secs < hit.valid_until {
                self.check_revoked(&hit.principal, hit.token.as_ref())?;
                return Ok(hit.principal);
            }
            self.cache.invalidate(&digest);
        }
        let (principal, token, valid_until) = match Bearer::classify(credential) {
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
                    (p, None, exp.min(cap))
                } else {
                    let t = self
                        .current_verifier()
                        .verify(jwt, now_secs)
                        .map_err(|e| refused(e.error_code(), e.to_string()))?;
                    let token =
                        TokenRef { jti: t.claims().jti.clone(), client_id: t.claims().client_id.clone() };
                    (t.principal(), Some(token), t.expires_at().min(cap))
                }
            }
            Bearer::ApiKey(key) => {
                let record = self
                    .api_keys
                    .api_key(key.prefix())
                    .await?
                    .ok_or_else(|| refused(OAuthErrorCode::InvalidToken, "unknown API key"))?;
                let p = verify_api_key(&record, credential, now)
                    .map_err(|e| refused(OAuthErrorCode::InvalidToken, e.to_string()))?;
                (p, None, now_secs + i64::try_from(API_KEY_CACHE_SECS).unwrap_or(0))
            }
            Bearer::Unrecognized => {
                return Err(refused(
                    OAuthErrorCode::InvalidToken,
                    "the bearer value is neither an access token nor an API key",
                ));
            }
        };
        self.check_revoked(&principal, token.as_ref())?;
        self.cache.insert(digest, CachedPrincipal { principal: principal.clone(), token, valid_until });
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use playhead_core::Timestamp;

    use super::*;

    fn denial(kind: DenialKind, id: &str) -> TokenDenial {
        TokenDenial {
            kind,
            id: id.into(),
            client_id: id.into(),
            revoked_at: Timestamp(0),
            until: Timestamp(1),
        }
    }

    #[test]
    fn a_token_is_revoked_by_its_session_its_jti_or_its_client_and_the_list_can_be_too_stale() {
        let r = Revocations::new();
        let token = |jti: &str, client: &str| TokenRef { jti: jti.into(), client_id: client.into() };
        assert_eq!(r.verdict(None, Some(&token("j", "c"))), RevocationVerdict::Unknown, "never polled");
        r.replace(RevokedSet::new(
            ["s-1".to_owned()],
            vec![denial(DenialKind::Token, "j-1"), denial(DenialKind::Client, "gone")],
        ));
        let revoked = |sid: Option<&str>, t: TokenRef| {
            matches!(r.verdict(sid, Some(&t)), RevocationVerdict::Revoked(_))
        };
        assert!(revoked(Some("s-1"), token("j", "c")));
        assert!(revoked(None, token("j-1", "c")));
        assert!(revoked(None, token("j", "gone")));
        assert!(!revoked(Some("s-2"), token("j", "c")));
        assert!(!revoked(None, token("gone", "j-1")), "a jti and a client id are never confused");
    }
}
