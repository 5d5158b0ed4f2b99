//! The gate in front of every route: one middleware per route, built from the route table with
//! the route's operation known statically (no string matching per request). In order:
//!
//! 1. observe: a span and RED metrics labelled with the route template;
//! 2. admit ([`playhead_app::access::Gate::admit`]): authenticate the bearer, charge the quota,
//!    take an in-flight slot and check the operation's requirement; refusals are answered here
//!    with the quota's `RateLimit-Policy` / `RateLimit` headers (IETF draft) like any answer;
//! 3. versioning: media-type versions (`application/vnd.playhead.v2+json`), 406 for unknown
//!    ones, and the configured Deprecation / Sunset / Link headers;
//! 4. idempotency: Idempotency-Key on POST: replay a completed result, 409 while the first is
//!    running, 422 for the same key with another payload;
//! 5. audit: a service's `profiles:any` use of a profile is recorded with its outcome.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use playhead_app::AppError;
use playhead_app::access::{Charged, Operation, partition_of};
use playhead_core::auth::Principal;
use playhead_core::ports::{IdempotencyBegin, StoredResponse};
use playhead_core::trace::TraceContext;
use sha2::{Digest, Sha256};

use crate::RestState;
use crate::error::ApiError;

/// What the gate of one route knows about it (built once, from the route table).
pub struct RouteInfo {
    /// The operation it serves.
    pub op: Operation,
    /// Its method.
    pub method: Method,
    /// Its template (`/v1/profiles/{profile_id}/history`): the label of its metrics and spans.
    pub path: String,
    /// Representation versions it can produce (`/v1` routes).
    pub versions: &'static [u8],
    /// Its RED metric handles, one pair per answer status, resolved on first use (a registry
    /// lookup hashes the labels and allocates them: done once per route and status, not per
    /// request).
    pub red: RedHandles,
}

impl RouteInfo {
    fn versioned(&self) -> bool {
        self.path.starts_with("/v1/")
    }

    /// Idempotency-Key is a `/v1` contract on POST; OAuth endpoints have their own replay rules
    /// and answers with credentials are never kept.
    fn idempotent(&self) -> bool {
        self.method == Method::POST && self.versioned() && !self.op.requirement().carries_secrets
    }
}

/// The state of one route's gate.
#[derive(Clone)]
pub struct RouteGate {
    /// The handlers' state.
    pub state: RestState,
    /// The route.
    pub route: Arc<RouteInfo>,
}

/// The gate (see the module docs).
pub async fn gate(State(g): State<RouteGate>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = &g.route;
    // Every log line of the request carries these (the JSON logs print the current span): the
    // request id the response echoes, and the W3C trace id the caller sent, or a fresh one.
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let incoming =
        req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(TraceContext::parse);
    let span = tracing::info_span!(
        "http",
        http.method = %route.method,
        http.route = %route.path,
        operation = route.op.name(),
        request_id,
        trace_id = tracing::field::Empty,
        http.status = tracing::field::Empty
    );
    // The context this request hands on (to the events it queues: decision 0075).
    let trace = playhead_app::telemetry::enter(&span, incoming);
    span.record("trace_id", tracing::field::display(trace.trace_id_hex()));
    req.extensions_mut().insert(trace);
    let res = tracing::Instrument::instrument(admitted(&g, req, next), span.clone()).await;
    let status = res.status().as_u16();
    span.record("http.status", status);
    route.red.record(&route.method, &route.path, status, started);
    res
}

/// RED metrics of one answer.
pub(crate) fn record_red(method: &str, route: &str, status: u16, started: Instant) {
    let (requests, duration) = red_handles(method, route, status);
    duration.record(started.elapsed().as_secs_f64());
    requests.increment(1);
}

fn red_handles(method: &str, route: &str, status: u16) -> (metrics::Counter, metrics::Histogram) {
    let labels = [
        metrics::Label::new("method", method.to_owned()),
        metrics::Label::new("route", route.to_owned()),
        metrics::Label::new("status", status.to_string()),
    ];
    (
        metrics::counter!("http_requests_total", labels.to_vec()),
        metrics::histogram!("http_request_duration_seconds", labels.to_vec()),
    )
}

/// The statuses whose metric handles a route keeps; others are looked up per answer.
const KEPT_STATUSES: [u16; 24] = [
    200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 406, 409, 410, 412, 413, 415, 422, 428, 429, 500, 501,
    503, 504, 302,
];

/// One route's RED metric handles by status (see [`RouteInfo::red`]).
#[derive(Default)]
pub struct RedHandles([std::sync::OnceLock<(metrics::Counter, metrics::Histogram)>; KEPT_STATUSES.len()]);

impl RedHandles {
    fn record(&self, method: &Method, route: &str, status: u16, started: Instant) {
        let Some(slot) = KEPT_STATUSES.iter().position(|s| *s == status) else {
            return record_red(method.as_str(), route, status, started);
        };
        let (requests, duration) = self.0[slot].get_or_init(|| red_handles(method.as_str(), route, status));
        duration.record(started.elapsed().as_secs_f64());
        requests.increment(1);
    }
}

async fn admitted(g: &RouteGate, mut req: Request, next: Next) -> Response {
    let (s, route) = (&g.state, &g.route);
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    // Only the headers (Sync) are borrowed across the await: a request body is not Sync.
    let headers = req.headers();
    let mut admission = s
        .gate
        .admit(route.op, headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes), || {
            crate::routes::oauth::client_addr(s, headers, peer)
        })
        .await;
    let mut res = match admission.refusal.take() {
        Some(e) => ApiError::App(e).into_response(),
        None => {
            let principal = admission.principal.clone();
            if let Some(p) = &principal {
                req.extensions_mut().insert(p.clone());
            }
            let audited = admission.audit.then(|| {
                // /v1/profiles/{profile_id}/...: the id is the fourth segment of the concrete path.
                let profile = req.uri().path().split('/').nth(3).map(str::to_owned);
                (profile, crate::routes::oauth::client_addr(s, req.headers(), peer))
            });
            let res = versioned(s, route, principal.as_ref(), req, next).await;
            if let (Some((profile, addr)), Some(p)) = (audited, &principal) {
                s.gate
                    .audit_profile_access(
                        p,
                        route.op,
                        &route.path,
                        profile.as_deref().unwrap_or_default(),
                        res.status().as_u16(),
                        addr,
                    )
                    .await;
            }
            res
        }
    };
    if let Some(charged) = admission.charged {
        rate_limit_headers(res.headers_mut(), &charged);
    }
    res
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub(crate) fn rate_limit_headers(h: &mut HeaderMap, c: &Charged) {
    let name = c.class.as_str();
    set(h, "ratelimit-policy", format!("\"{name}\";q={};w={}", c.quota.limit, c.quota.window_ms / 1000));
    set(h, "ratelimit", format!("\"{name}\";r={};t={}", c.decision.remaining, secs_up(c.decision.reset_ms)));
}

fn set(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Milliseconds to whole seconds, rounded up (a client waiting 0 s would retry too early).
pub(crate) fn secs_up(ms: i64) -> i64 {
    (ms.max(0) + 999) / 1000
}

/// Negotiate the representation version, run the handler (through idempotency where it
/// applies), and add the version's headers.
async fn versioned(
    s: &RestState,
    route: &RouteInfo,
    principal: Option<&Principal>,
    mut req: Request,
    next: Next,
) -> Response {
    if !route.versioned() {
        return next.run(req).await;
    }
    let supported = route.versions;
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
            return ApiError::NotAcceptable(format!(
                "{asked} is not available for this route; supported: application/json, {list}"
            ))
            .into_response();
        }
    };
    req.extensions_mut().insert(ApiVersion(version));
    let mut res = match principal {
        Some(p) if route.idempotent() => idempotent(s, p, req, next).await,
        _ => next.run(req).await,
    };
    let h = res.headers_mut();
    if supported.len() > 1 {
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    if let Some(d) = s.deprecations.iter().find(|d| {
        d.route.as_deref().is_none_or(|r| r == route.path) && d.version.is_none_or(|v| v == version)
    }) {
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

/// The representation version a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub u8);

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

/// Statuses whose responses are replayed for a retry: success and deterministic client errors.
/// Not stored (the key stays free for a real retry): 401, 403, 406, 409, 412, 428, 429, 5xx.
fn storable(status: StatusCode) -> bool {
    status.is_success() || matches!(status.as_u16(), 400 | 404 | 405 | 410 | 413 | 415 | 422)
}

/// Largest body an idempotent request may carry (imports are larger; they are spooled to disk).
const IDEMPOTENT_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// Honour Idempotency-Key on a POST by `principal` (the gate calls this only for operations
/// whose answers carry no secrets: the idempotency table must not become a credential store).
async fn idempotent(s: &RestState, principal: &Principal, req: Request, next: Next) -> Response {
    let Some(raw_key) = req.headers().get("idempotency-key") else {
        return next.run(req).await;
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
    let scoped = format!("{}:{key}", partition_of(principal));
    let (parts, body) = req.into_parts();
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    h.update([0]);
    // The media type decides how the body is read and Accept which representation answers: the
    // same bytes under another Content-Type or Accept are another request, never a replay.
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        h.update(parts.headers.get(&name).map_or(&b""[..], |v| v.as_bytes()));
        h.update([0]);
    }
    let spooled = match spool(body, &mut h).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let fingerprint: [u8; 32] = h.finalize().into();
    match s.app.idempotency_begin(&scoped, fingerprint).await {
        Err(e) => ApiError::App(e).into_response(),
        Ok(IdempotencyBegin::InFlight) => ApiError::IdempotencyKeyInUse.into_response(),
        Ok(IdempotencyBegin::Mismatch) => ApiError::IdempotencyKeyReused.into_response(),
        Ok(IdempotencyBegin::Completed(stored)) => replay(stored),
        Ok(IdempotencyBegin::Started) => {
            let body = match spooled.into_body().await {
                Ok(b) => b,
                Err(e) => {
                    release(s, &scoped, fingerprint).await;
                    return e.into_response();
                }
            };
            let res = next.run(Request::from_parts(parts, body)).await;
            let status = res.status();
            if !storable(status) {
                release(s, &scoped, fingerprint).await;
                return res;
            }
            let (rparts, rbody) = res.into_parts();
            let body = match axum::body::to_bytes(rbody, usize::MAX).await {
                Ok(b) => b,
                Err(e) => {
                    // Never store (and later replay) a body we could not read: free the key so
                    // the client's retry runs again.
                    release(s, &scoped, fingerprint).await;
                    return ApiError::App(AppError::Internal(format!(
                        "reading the response body of an idempotent request failed: {e}"
                    )))
                    .into_response();
                }
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
                tracing::error!(error = %e, "storing an idempotent response failed; a retry will run again");
            }
            Response::from_parts(rparts, Body::from(body))
        }
    }
}

/// Free an idempotency key after an outcome that must not be replayed.
async fn release(s: &RestState, scoped: &str, fingerprint: [u8; 32]) {
    if let Err(e) = s.app.idempotency_release(scoped, fingerprint).await {
        tracing::error!(error = %e, "releasing an idempotency key failed; it frees itself when its lease ends");
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
                .map_err(|e| ApiError::App(AppError::Unavailable(format!("spooling: {e}"))))?,
            None if mem.len() + chunk.len() > IN_MEMORY_BODY => {
                let mut f = tempfile::NamedTempFile::new()
                    .map_err(|e| ApiError::App(AppError::Unavailable(format!("spooling: {e}"))))?;
                f.write_all(&mem)
                    .and_then(|()| f.write_all(&chunk))
                    .map_err(|e| ApiError::App(AppError::Unavailable(format!("spooling: {e}"))))?;
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
                let file = tokio::fs::File::open(f.path())
                    .await
                    .map_err(|e| ApiError::App(AppError::Unavailable(format!("spooling: {e}"))))?;
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
