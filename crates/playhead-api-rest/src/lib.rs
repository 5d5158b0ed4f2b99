//! Playhead's REST transport: `/v1` JSON over axum, problem+json errors, OpenAPI 3.1 generated
//! from the handlers and served with an offline Swagger UI.
//!
//! The rule here: handlers are thin (parse, call one use case in `playhead-app`, shape the
//! answer). Who may call what is the application's policy table, keyed by operation; errors map
//! to HTTP in exactly one place (`error.rs`). A route is declared once, in [`table`]: its
//! operation, its handler and (through the handler's `#[utoipa::path]`) its OpenAPI entry; the
//! router, the OpenAPI document and the per-route gate are all built from that one list.

mod auth;
mod dto;
mod error;
mod extract;
pub mod middleware;
mod openapi;
mod routes;
mod table;

use std::sync::Arc;
use std::time::Duration;

use async_trait_shim::ReadyFuture;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use playhead_app::App;
use playhead_app::access::Gate;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, Problem};
pub use table::{RouteEntry, table};

mod async_trait_shim {
    //! A boxed future type for the readiness check (keeps the trait object-safe without a macro).
    use std::future::Future;
    use std::pin::Pin;
    /// The future a readiness check returns.
    pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Whether the process can serve traffic (store reachable, consumer alive).
pub trait ReadyCheck: Send + Sync {
    /// `Err(reason)` when not ready.
    fn ready(&self) -> ReadyFuture<'_>;
}

/// Hard limits of the HTTP surface (all configurable; docs/api.md lists them).
#[derive(Debug, Clone)]
pub struct RestLimits {
    /// Largest JSON body.
    pub json_body_bytes: usize,
    /// Deepest JSON nesting.
    pub json_depth: usize,
    /// Most events in one batch.
    pub batch_max: usize,
    /// Largest NDJSON import.
    pub import_body_bytes: usize,
    /// Longest a request may run before it is answered 503 (imports exempt).
    pub request_timeout: Duration,
    /// Requests one principal may have in flight at once.
    pub max_in_flight_per_principal: usize,
    /// Browser origins allowed to call the API (CORS); empty = none.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for RestLimits {
    fn default() -> Self {
        Self {
            json_body_bytes: extract::JSON_BODY_LIMIT,
            json_depth: extract::JSON_DEPTH_LIMIT,
            batch_max: 500,
            import_body_bytes: 256 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_in_flight_per_principal: 32,
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// `1 MiB`, `256 MiB`, `512 KiB`: limits in problem documents read like the docs.
pub fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Shared state of every handler: one pointer. Every middleware layer and extractor clones the
/// state per request, so a state of many fields (the app's ports and caches are each several
/// reference counts) cost a third of a cached read's CPU before it was put behind one `Arc`.
#[derive(Clone)]
pub struct RestState(Arc<RestInner>);

impl std::ops::Deref for RestState {
    type Target = RestInner;
    fn deref(&self) -> &RestInner {
        &self.0
    }
}

/// The fields of [`RestState`].
pub struct RestInner {
    /// The use cases.
    pub app: App,
    /// The gate: authentication, policy, quotas, audit (shared with the other transports).
    pub gate: Arc<Gate>,
    /// Readiness.
    pub ready: Arc<dyn ReadyCheck>,
    /// Hard limits.
    pub limits: Arc<RestLimits>,
    /// Configured deprecations (Deprecation / Sunset / Link headers).
    pub deprecations: Arc<Vec<middleware::Deprecation>>,
    /// Serialized rows (see `routes::rows::RowBodies`).
    row_bodies: routes::rows::RowBodies,
    /// The built-in authorization server.
    pub identity: Arc<playhead_app::identity::AuthServer>,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
}

impl RestState {
    /// State with the given limits and deprecations.
    pub fn new(
        app: App,
        gate: Arc<Gate>,
        ready: Arc<dyn ReadyCheck>,
        limits: RestLimits,
        deprecations: Vec<middleware::Deprecation>,
        identity: Arc<playhead_app::identity::AuthServer>,
        trusted_proxies: Vec<std::net::IpAddr>,
    ) -> Self {
        Self(Arc::new(RestInner {
            app,
            gate,
            ready,
            limits: Arc::new(limits),
            deprecations: Arc::new(deprecations),
            identity,
            trusted_proxies: Arc::new(trusted_proxies),
            row_bodies: routes::rows::RowBodies::default(),
        }))
    }
}

/// The OpenAPI document's frame (info, tags, security schemes); the paths come from the route
/// table. The whole document: [`openapi()`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Playhead",
        description = "Watch history as a service: playback events, resume points, per-play history, Continue watching and Next up.\n\nErrors are RFC 9457 problem+json. Lists are cursor-paginated (limit 1-100, default 20). Send `Authorization: Bearer <access token or API key>`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "playback", description = "Events and resume points"),
        (name = "history", description = "Per-play history"),
        (name = "rows", description = "Continue watching and Next up"),
        (name = "library", description = "Watched marks and My list"),
        (name = "recommendations", description = "Recommendations with reasons, similar titles, feedback"),
        (name = "profiles", description = "Accounts and profiles"),
        (name = "export", description = "An account's data as one JSON archive (playhead.export.v2)"),
        (name = "erasure", description = "Erasing an account or a profile everywhere (a saga with a visible status)"),
        (name = "catalog", description = "Titles"),
        (name = "operations", description = "Health"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (at+jwt) or API key (phk_...)")
                    .build(),
            ),
        );
    }
}

/// Unmatched paths: 404, counted under the `unmatched` route label (never the raw path, which
/// would explode label cardinality and leak ids).
async fn not_found(axum::extract::State(s): axum::extract::State<RestState>, req: Request) -> Response {
    unmatched(&s, req, ApiError::App(playhead_app::AppError::NotFound("route"))).await
}

/// A known path with a method it does not serve (TRACE, say): 405 with `Allow` (axum adds it
/// from the route's methods), never 500.
async fn method_not_allowed(
    axum::extract::State(s): axum::extract::State<RestState>,
    req: Request,
) -> Response {
    unmatched(&s, req, ApiError::MethodNotAllowed).await
}

/// Answer a request no route serves. It passes the gate as [`Operation::Unmatched`] first: it is
/// charged like any read (so probing paths is rate limited) and carries the same
/// `RateLimit-Policy` / `RateLimit` headers as every other answer.
///
/// [`Operation::Unmatched`]: playhead_app::access::Operation::Unmatched
async fn unmatched(s: &RestState, req: Request, answer: ApiError) -> Response {
    let started = std::time::Instant::now();
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
    let headers = req.headers();
    let mut admission = s
        .gate
        .admit(
            playhead_app::access::Operation::Unmatched,
            headers.get(axum::http::header::AUTHORIZATION).map(HeaderValue::as_bytes),
            || routes::oauth::client_addr(s, headers, peer),
        )
        .await;
    let mut res = match admission.refusal.take() {
        Some(refused) => ApiError::App(refused).into_response(),
        None => answer.into_response(),
    };
    if let Some(charged) = admission.charged {
        middleware::rate_limit_headers(res.headers_mut(), &charged);
    }
    middleware::record_red(req.method().as_str(), "unmatched", res.status().as_u16(), started);
    res
}

/// Security headers on every answer; HTML pages without a policy of their own (the docs) get a
/// content security policy that allows only this origin's scripts and styles (Swagger UI's
/// inline bootstrap included). The hosted sign-in pages set a stricter one (no script at all,
/// their one style sheet by hash: `routes/oauth/html.rs`), which is kept.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let html = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    let h = res.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if html && !h.contains_key("content-security-policy") {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
    }
    if html {
        h.insert("cache-control", HeaderValue::from_static("no-store"));
    }
    res
}

/// Request ids: random (version 4) UUIDs drawn from the thread-local generator. tower-http's
/// `MakeRequestUuid` asks the kernel for 16 bytes on every request (a `getrandom` syscall on the
/// read path, issue 12); the ids look the same and are as unpredictable for correlation.
#[derive(Clone, Copy)]
struct FastRequestId;

impl tower_http::request_id::MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).ok().map(RequestId::new)
    }
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    if origins.is_empty() {
        return None;
    }
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let h = HeaderName::from_static;
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                h("authorization"),
                h("content-type"),
                h("accept"),
                h("idempotency-key"),
                h("if-match"),
                h("if-none-match"),
            ])
            .expose_headers([
                h("etag"),
                h("location"),
                h("retry-after"),
                h("ratelimit"),
                h("ratelimit-policy"),
                h("idempotent-replayed"),
                h("deprecation"),
                h("sunset"),
                h("link"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The whole OpenAPI document: the frame from [`ApiDoc`] and every documented route of [`table`],
/// completed with what the gate adds to every operation (`openapi.rs`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut router = utoipa_axum::router::OpenApiRouter::<RestState>::with_openapi(ApiDoc::openapi());
    for entry in table() {
        router = entry.register(router, None);
    }
    let (_, mut doc) = router.split_for_parts();
    utoipa::Modify::modify(&openapi::Common, &mut doc);
    doc
}

/// The whole HTTP surface.
pub fn router(state: RestState) -> Router {
    let mut routes = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi());
    for entry in table() {
        routes = entry.register(routes, Some(&state));
    }
    let (routes, mut doc) = routes.split_for_parts();
    utoipa::Modify::modify(&openapi::Common, &mut doc);
    let request_id = HeaderName::from_static("x-request-id");
    let cors = cors(&state.limits.cors_allowed_origins);
    let router = routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(security_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, FastRequestId));
    match cors {
        Some(c) => router.layer(c),
        None => router,
    }
}
