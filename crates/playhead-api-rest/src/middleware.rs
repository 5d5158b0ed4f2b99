//! Cross-cutting HTTP behaviour, one middleware each, in the order they run:
//!
//! 1. [`authenticate`]: verify the bearer once and keep the outcome for the handler's `Auth`
//!    extractor (so quotas can be per principal without verifying twice).
//! 2. [`limits`]: per-principal (or per-address) GCRA quotas by route class, with the IETF
//!    `RateLimit-Policy` / `RateLimit` headers on every `/v1` answer and 429 + Retry-After when
//!    exhausted; and a cap on concurrent requests per principal.
//! 3. [`versioning`]: media-type versions (`application/vnd.playhead.v2+json`), 406 for unknown
//!    ones, and the configured Deprecation / Sunset / Link headers.
//! 4. [`idempotency`]: Idempotency-Key on POST: replay a completed result, 409 while the first
//!    is running, 422 for the same key with another payload.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use moka::sync::Cache;
use playhead_app::limits::RouteClass;
use playhead_core::auth::{Principal, Subject};
use playhead_core::ports::{IdempotencyBegin, StoredResponse};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::RestState;
use crate::error::{ApiError, Problem, problem_response};

/// The outcome of authenticating a request, kept in its extensions.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    /// A verified caller.
    Ok(Principal),
    /// Refused: the RFC 6750 error code (if any) and a description.
    Refused(Option<&'static str>, String),
}

/// Routes that are never rate limited (health checks, the API description, docs).
///
/// `/oauth/token` is exempt from the per-address auth quota: a TV polling the device grant and
/// every refresh would otherwise starve sign-ins behind one NAT. Guessing is limited where it
/// can happen instead: sign-in and device-code entry are limited per address and per account
/// inside the identity use cases, and secrets are 256-bit.
fn exempt(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/openapi.json" | "/oauth/token")
        || path.starts_with("/docs")
        || path.starts_with("/.well-known/")
}

/// Verify the bearer (if any) once, for everything downstream.
pub async fn authenticate(State(s): State<RestState>, mut req: Request, next: Next) -> Response {
    if req.headers().contains_key(header::AUTHORIZATION) {
        let (parts, body) = req.into_parts();
        let outcome = match s.auth.authenticate(&parts).await {
            Ok(p) => AuthOutcome::Ok(p),
            Err(ApiError::Unauthorized { error, description }) => AuthOutcome::Refused(error, description),
            Err(other) => return other.into_response(),
        };
        req = Request::from_parts(parts, body);
        req.extensions_mut().insert(outcome);
    }
    next.run(req).await
}

/// Enforce the route table (`playhead_app::policy::ROUTES`) before any handler: a matched route
/// that is not declared is refused (deny by default), a missing credential is 401 and a missing
/// scope 403. Object rules (whose profile) stay in the use cases.
pub async fn route_policy(State(s): State<RestState>, req: Request, next: Next) -> Response {
    use playhead_app::policy::{Requirement, route_requirement};
    let Some(path) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(req).await; // unmatched: 404/405 fallbacks
    };
    if path.starts_with("/docs") || path == "/openapi.json" {
        return next.run(req).await;
    }
    let Some(requirement) = route_requirement(req.method().as_str(), &path) else {
        // A 405 for an undeclared method is the router's job; only declared routes reach here.
        tracing::error!(http.route = %path, http.method = %req.method(), "route has no declared requirement");
        return ApiError::App(playhead_app::AppError::Internal(
            "route without a declared requirement".into(),
        ))
        .into_response();
    };
    let outcome = req.extensions().get::<AuthOutcome>().cloned();
    match requirement {
        Requirement::Public | Requirement::OAuthClient | Requirement::Browser => next.run(req).await,
        Requirement::Authenticated | Requirement::Scope(_) => match outcome {
            Some(AuthOutcome::Ok(p)) => match requirement {
                Requirement::Scope(scope) if !p.scopes.contains(scope) => {
                    ApiError::App(playhead_app::AppError::MissingScope(scope)).into_response()
                }
                _ if path.contains("{profile_id}")
                    && matches!(p.subject, Subject::Service { .. })
                    && p.scopes.contains(playhead_core::auth::Scope::ProfilesAny) =>
                {
                    audited_any_access(&s, &p, &path, req, next).await
                }
                _ => next.run(req).await,
            },
            Some(AuthOutcome::Refused(error, description)) => {
                ApiError::Unauthorized { error, description }.into_response()
            }
            None => ApiError::Unauthorized {
                error: None,
                description: "send Authorization: Bearer <access token or API key>".into(),
            }
            .into_response(),
        },
    }
}

/// Run a service's `profiles:any` request and put who, what, when and from where in the audit log
/// (DESIGN.md: every such access is audited). The entry goes to [`AuditSink`], which writes in
/// batches off the request path.
async fn audited_any_access(s: &RestState, p: &Principal, path: &str, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    // /v1/profiles/{profile_id}/...: the id is the fourth segment of the concrete path.
    let profile = req.uri().path().split('/').nth(3).unwrap_or_default().to_owned();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client_addr = crate::routes::oauth::client_addr(s, req.headers(), peer);
    let actor = match &p.subject {
        Subject::Service { id } => format!("service:{id}"),
        Subject::Account(a) => a.to_string(),
    };
    let res = next.run(req).await;
    let detail = serde_json::json!({
        "method": method, "route": path, "profile_id": profile, "status": res.status().as_u16(),
    });
    s.audit
        .record(playhead_core::identity::AuditEntry {
            at: s.app.clock().now(),
            actor,
            action: "profiles_any.access".into(),
            detail: detail.to_string(),
            client_addr: Some(client_addr),
        })
        .await;
    res
}

/// Audit entries written in batches by a background task, so an audited request pays a channel
/// send, not a database write. A full queue (the store is slow or down) makes requests wait
/// rather than lose entries: an audit log with holes is worse than a slower service.
#[derive(Clone, Debug)]
pub struct AuditSink(tokio::sync::mpsc::Sender<playhead_core::identity::AuditEntry>);

impl AuditSink {
    /// Start the writer (needs a Tokio runtime).
    pub fn spawn(identity: Arc<playhead_app::identity::AuthServer>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel(10_000);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(500);
            while rx.recv_many(&mut batch, 500).await > 0 {
                identity.audit_batch(std::mem::take(&mut batch)).await;
            }
        });
        Self(tx)
    }

    async fn record(&self, entry: playhead_core::identity::AuditEntry) {
        if self.0.send(entry).await.is_err() {
            tracing::error!("audit writer stopped: a profiles:any access was not recorded");
        }
    }
}

/// The class a request is charged to.
pub fn route_class(method: &Method, path: &str) -> RouteClass {
    match (method, path) {
        (&Method::GET | &Method::HEAD, _) => RouteClass::Read,
        (&Method::POST, p) if p.ends_with("/events") => RouteClass::Ingest,
        (&Method::POST, "/v1/titles/import" | "/v1/profiles/{profile_id}/history") => RouteClass::Import,
        _ => RouteClass::Write,
    }
}

/// The quota partition: the principal, or the client address when unauthenticated (taken from
/// X-Forwarded-For only when the peer is a configured trusted proxy, so clients behind a load
/// balancer do not share one quota and nobody else can pick their own address).
fn partition(s: &RestState, req: &Request) -> (String, bool) {
    match req.extensions().get::<AuthOutcome>() {
        Some(AuthOutcome::Ok(p)) => match &p.subject {
            Subject::Account(a) => (format!("acct:{a}"), true),
            Subject::Service { id } => (format!("svc:{id}"), true),
        },
        _ => {
            let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
            (format!("ip:{}", crate::routes::oauth::client_addr(s, req.headers(), peer)), false)
        }
    }
}

/// Concurrent requests in flight per principal.
#[derive(Clone)]
pub struct InFlight {
    max: usize,
    slots: Cache<String, Arc<Semaphore>>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("max", &self.max).finish_non_exhaustive()
    }
}

impl InFlight {
    /// At most `max` concurrent requests per principal.
    pub fn new(max: usize) -> Self {
        Self { max, slots: Cache::builder().time_to_idle(std::time::Duration::from_secs(600)).build() }
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

fn secs_up(ms: i64) -> i64 {
    (ms.max(0) + 999) / 1000
}

/// Quotas and concurrency.
pub async fn limits(State(s): State<RestState>, req: Request, next: Next) -> Response {
    let Some(path) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(req).await; // unmatched: the 404 fallback is cheap
    };
    if exempt(&path) {
        return next.run(req).await;
    }
    let (key, authenticated) = partition(&s, &req);
    let class = if authenticated { route_class(req.method(), &path) } else { RouteClass::Auth };
    let _permit = if authenticated {
        let sem = s.in_flight.slots.get_with_by_ref(&key, || Arc::new(Semaphore::new(s.in_flight.max)));
        match sem.try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let mut p = Problem::new(
                    "too-many-concurrent-requests",
                    "Too many concurrent requests",
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "at most {} requests may run at once per principal; wait for one to finish",
                        s.in_flight.max
                    ),
                );
                p.limit = Some(format!("{} concurrent requests per principal", s.in_flight.max));
                return problem_response(&p, &[(header::RETRY_AFTER, HeaderValue::from_static("1"))]);
            }
        }
    } else {
        None
    };
    let (decision, quota) = match s.app.charge(&key, class, 1).await {
        Ok(d) => d,
        Err(e) => return ApiError::App(e).into_response(),
    };
    let policy = format!("\"{}\";q={};w={}", class.as_str(), quota.limit, quota.window_ms / 1000);
    let mut res = if decision.allowed {
        next.run(req).await
    } else {
        let retry = secs_up(decision.retry_after_ms).max(1);
        let mut p = Problem::new(
            "quota-exceeded",
            "Quota exceeded",
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "the {} quota of {} requests per {} s is used up; retry after {retry} s (follow the RateLimit header to avoid this)",
                class.as_str(),
                quota.limit,
                quota.window_ms / 1000
            ),
        );
        p.limit =
            Some(format!("{} requests per {} s ({})", quota.limit, quota.window_ms / 1000, class.as_str()));
        problem_response(&p, &[(header::RETRY_AFTER, HeaderValue::from(retry))])
    };
    let h = res.headers_mut();
    set(h, "ratelimit-policy", policy);
    set(
        h,
        "ratelimit",
        format!("\"{}\";r={};t={}", class.as_str(), decision.remaining, secs_up(decision.reset_ms)),
    );
    res
}

/// The representation version a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub u8);

/// Versions each route can produce (v1 everywhere).
fn versions_of(path: &str) -> &'static [u8] {
    match path {
        "/v1/profiles/{profile_id}/history" => &[1, 2],
        _ => &[1],
    }
}

/// Parse `application/vnd.playhead.vN+json` out of an Accept header (the first one wins).
fn requested_version(headers: &HeaderMap) -> Option<Result<u8, String>> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    accept.split(',').map(|m| m.split(';').next().unwrap_or("").trim().to_ascii_lowercase()).find_map(|m| {
        let v = m.strip_prefix("application/vnd.playhead.v")?.strip_suffix("+json")?;
        Some(v.parse::<u8>().map_err(|_| m.clone()))
    })
}

/// A configured deprecation: route template or version, with its dates and documentation link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deprecation {
    /// Route template (`/v1/profiles/{profile_id}/history`); absent = every route.
    #[serde(default)]
    pub route: Option<String>,
    /// Representation version; absent = every version.
    #[serde(default)]
    pub version: Option<u8>,
    /// When it was (or will be) deprecated, Unix seconds (RFC 9745 `Deprecation: @<secs>`).
    pub deprecated_at: i64,
    /// When it stops working, Unix seconds (RFC 8594 `Sunset`).
    #[serde(default)]
    pub sunset_at: Option<i64>,
    /// Where migration is explained (`Link: <...>; rel="deprecation"`).
    #[serde(default)]
    pub link: Option<String>,
}

fn http_date(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc2822).ok())
        .map_or_else(|| secs.to_string(), |s| s.replace("+0000", "GMT"))
}

/// Negotiate the representation version and add deprecation headers.
pub async fn versioning(State(s): State<RestState>, mut req: Request, next: Next) -> Response {
    let Some(path) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(req).await;
    };
    if !path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let supported = versions_of(&path);
    let version = match requested_version(req.headers()) {
        None => 1,
        Some(Ok(v)) if supported.contains(&v) => v,
        Some(asked) => {
            let list = supported
                .iter()
                .map(|v| format!("application/vnd.playhead.v{v}+json"))
                .collect::<Vec<_>>()
                .join(", ");
            let asked = match asked {
                Ok(v) => format!("v{v}"),
                Err(m) => m,
            };
            let p = Problem::new(
                "not-acceptable",
                "Not acceptable",
                StatusCode::NOT_ACCEPTABLE,
                format!("{asked} is not available for this route; supported: application/json, {list}"),
            );
            return problem_response(&p, &[]);
        }
    };
    req.extensions_mut().insert(ApiVersion(version));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if supported.len() > 1 {
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    if let Some(d) = s
        .deprecations
        .iter()
        .find(|d| d.route.as_deref().is_none_or(|r| r == path) && d.version.is_none_or(|v| v == version))
    {
        set(h, "deprecation", format!("@{}", d.deprecated_at));
        if let Some(sunset) = d.sunset_at {
            set(h, "sunset", http_date(sunset));
        }
        if let Some(link) = &d.link {
            set(h, "link", format!("<{link}>; rel=\"deprecation\"; type=\"text/html\""));
        }
    }
    res
}

/// Statuses whose responses are replayed for a retry: success and deterministic client errors.
/// Not stored (the key stays free for a real retry): 401, 403, 406, 409, 412, 428, 429, 5xx.
fn storable(status: StatusCode) -> bool {
    status.is_success() || matches!(status.as_u16(), 400 | 404 | 405 | 410 | 413 | 415 | 422)
}

/// Answers that hold credentials (tokens, client secrets, API keys) are never stored for replay:
/// the idempotency table would become a second credential store.
fn carries_secrets(path: &str) -> bool {
    path.starts_with("/oauth/") || path.contains("/api-keys") || path.contains("/clients")
}

fn idempotency_problem(status: StatusCode, slug: &str, title: &str, detail: &str) -> Response {
    problem_response(&Problem::new(slug, title, status, detail), &[])
}

/// Largest body an idempotent request may carry (imports are larger; they are spooled to disk).
const IDEMPOTENT_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// Honour Idempotency-Key on POST.
pub async fn idempotency(State(s): State<RestState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    // Idempotency-Key is a `/v1` contract; OAuth endpoints have their own replay rules.
    if !req.uri().path().starts_with("/v1/") || carries_secrets(req.uri().path()) {
        return next.run(req).await;
    }
    let Some(AuthOutcome::Ok(principal)) = req.extensions().get::<AuthOutcome>().cloned() else {
        return next.run(req).await; // the handler answers 401; nothing to remember
    };
    let key = match raw_key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_owned(),
        _ => {
            return ApiError::BadParam(playhead_core::FieldError::new(
                "Idempotency-Key",
                "invalid",
                "must be 1-255 visible ASCII characters (a UUID is ideal)",
            ))
            .into_response();
        }
    };
    let who = match &principal.subject {
        Subject::Account(a) => format!("acct:{a}"),
        Subject::Service { id } => format!("svc:{id}"),
    };
    let scoped = format!("{who}:{key}");
    let (parts, body) = req.into_parts();
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    h.update([0]);
    let spooled = match spool(body, &mut h).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let fingerprint: [u8; 32] = h.finalize().into();
    match s.app.idempotency_begin(&scoped, fingerprint).await {
        Err(e) => ApiError::App(e).into_response(),
        Ok(IdempotencyBegin::InFlight) => idempotency_problem(
            StatusCode::CONFLICT,
            "idempotency-key-in-use",
            "Request in progress",
            "a request with this Idempotency-Key is still being processed; retry later",
        ),
        Ok(IdempotencyBegin::Mismatch) => idempotency_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            "this Idempotency-Key was used for a different request; use a new key for a new request",
        ),
        Ok(IdempotencyBegin::Completed(stored)) => replay(stored),
        Ok(IdempotencyBegin::Started) => {
            let body = match spooled.into_body().await {
                Ok(b) => b,
                Err(e) => return e.into_response(),
            };
            let res = next.run(Request::from_parts(parts, body)).await;
            let status = res.status();
            if !storable(status) {
                if let Err(e) = s.app.idempotency_release(&scoped, fingerprint).await {
                    tracing::error!(error = %e, "releasing an idempotency key failed");
                }
                return res;
            }
            let (rparts, rbody) = res.into_parts();
            let body = match axum::body::to_bytes(rbody, usize::MAX).await {
                Ok(b) => b,
                Err(_) => Bytes::new(),
            };
            let headers: Vec<(String, String)> = rparts
                .headers
                .iter()
                .filter(|(n, _)| {
                    !matches!(n.as_str(), "date" | "ratelimit" | "ratelimit-policy" | "content-length")
                })
                .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_owned(), v.to_owned())))
                .collect();
            let stored = StoredResponse { status: status.as_u16(), headers, body: body.to_vec() };
            if let Err(e) = s.app.idempotency_complete(&scoped, fingerprint, &stored).await {
                tracing::error!(error = %e, "storing an idempotent response failed");
            }
            Response::from_parts(rparts, Body::from(body))
        }
    }
}

/// Bodies up to this size stay in memory; larger ones (imports) are spooled to a temp file.
const IN_MEMORY_BODY: usize = 1024 * 1024;

/// A request body read once (to fingerprint it) and handed on unchanged.
enum Spooled {
    Memory(Bytes),
    File(tempfile::NamedTempFile),
}

/// Read the body, hashing it, keeping small bodies in memory and spooling large ones to disk.
async fn spool(body: Body, hasher: &mut Sha256) -> Result<Spooled, ApiError> {
    use futures::StreamExt;
    use std::io::Write;
    let mut stream = body.into_data_stream();
    let mut mem: Vec<u8> = Vec::new();
    let mut file: Option<tempfile::NamedTempFile> = None;
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::Malformed(format!("reading the body failed: {e}")))?;
        total += chunk.len();
        if total > IDEMPOTENT_BODY_LIMIT {
            return Err(ApiError::TooLarge { limit: "256 MiB body".into() });
        }
        hasher.update(&chunk);
        match &mut file {
            Some(f) => f
                .write_all(&chunk)
                .map_err(|e| ApiError::App(playhead_app::AppError::Unavailable(format!("spooling: {e}"))))?,
            None if mem.len() + chunk.len() > IN_MEMORY_BODY => {
                let mut f = tempfile::NamedTempFile::new().map_err(|e| {
                    ApiError::App(playhead_app::AppError::Unavailable(format!("spooling: {e}")))
                })?;
                f.write_all(&mem).and_then(|()| f.write_all(&chunk)).map_err(|e| {
                    ApiError::App(playhead_app::AppError::Unavailable(format!("spooling: {e}")))
                })?;
                mem.clear();
                file = Some(f);
            }
            None => mem.extend_from_slice(&chunk),
        }
    }
    Ok(match file {
        Some(f) => Spooled::File(f),
        None => Spooled::Memory(Bytes::from(mem)),
    })
}

impl Spooled {
    /// A body that yields the same bytes again.
    async fn into_body(self) -> Result<Body, ApiError> {
        match self {
            Spooled::Memory(b) => Ok(Body::from(b)),
            Spooled::File(f) => {
                // The open handle keeps the data readable after the temp file's name is removed.
                let file = tokio::fs::File::open(f.path()).await.map_err(|e| {
                    ApiError::App(playhead_app::AppError::Unavailable(format!("spooling: {e}")))
                })?;
                drop(f);
                Ok(Body::from_stream(tokio_util::io::ReaderStream::new(file)))
            }
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let mut res = Response::new(Body::from(stored.body));
    *res.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut seen: HashMap<String, ()> = HashMap::new();
    for (n, v) in stored.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(&v)) {
            if seen.insert(n.as_str().to_owned(), ()).is_some() {
                res.headers_mut().append(n, v);
            } else {
                res.headers_mut().insert(n, v);
            }
        }
    }
    res.headers_mut()
        .insert(HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_classes() {
        assert_eq!(route_class(&Method::GET, "/v1/titles"), RouteClass::Read);
        assert_eq!(route_class(&Method::POST, "/v1/profiles/{profile_id}/events"), RouteClass::Ingest);
        assert_eq!(route_class(&Method::POST, "/v1/titles/import"), RouteClass::Import);
        assert_eq!(route_class(&Method::POST, "/v1/profiles/{profile_id}/history"), RouteClass::Import);
        assert_eq!(route_class(&Method::PUT, "/v1/titles/{title_id}"), RouteClass::Write);
    }

    #[test]
    fn versions_are_read_from_accept() {
        let mut h = HeaderMap::new();
        assert_eq!(requested_version(&h), None);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, application/vnd.playhead.v2+json;q=0.9"),
        );
        assert_eq!(requested_version(&h), Some(Ok(2)));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/vnd.playhead.vX+json"));
        assert!(matches!(requested_version(&h), Some(Err(_))));
    }

    #[test]
    fn answers_with_secrets_are_never_kept() {
        assert!(carries_secrets("/oauth/token"));
        assert!(carries_secrets("/v1/admin/api-keys"));
        assert!(!carries_secrets("/v1/profiles/x/events"));
    }

    #[test]
    fn only_deterministic_outcomes_are_stored() {
        for s in [200, 201, 202, 204, 400, 404, 413, 422] {
            assert!(storable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [401, 403, 406, 409, 412, 428, 429, 500, 503] {
            assert!(!storable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn http_dates_are_imf_fixdate_like() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
