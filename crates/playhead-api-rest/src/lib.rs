//! Playhead's REST transport: `/v1` JSON over axum, problem+json errors, OpenAPI 3.1 generated
//! from the handlers and served with an offline Swagger UI.
//!
//! The rule here: handlers are thin (parse, authenticate, call one use case in `playhead-app`,
//! shape the answer). Authorization decisions live in the application's policy module; errors
//! map to HTTP in exactly one place (`error.rs`). Every route is listed once in [`router`] and
//! once in [`ApiDoc`]; a test checks the two lists agree.

pub mod auth;
pub mod dto;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait_shim::ReadyFuture;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use playhead_app::App;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

pub use auth::Authenticator;
pub use error::ApiError;
use openapi::Common as CommonResponses;

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
    /// Bearer authentication.
    pub auth: Arc<Authenticator>,
    /// Readiness.
    pub ready: Arc<dyn ReadyCheck>,
    /// Hard limits.
    pub limits: Arc<RestLimits>,
    /// Requests in flight per principal.
    pub in_flight: middleware::InFlight,
    /// Configured deprecations (Deprecation / Sunset / Link headers).
    pub deprecations: Arc<Vec<middleware::Deprecation>>,
    /// Serialized rows (see [`routes::rows::RowBodies`]).
    pub row_bodies: routes::rows::RowBodies,
    /// The audit log writer for `profiles:any` accesses.
    pub audit: middleware::AuditSink,
    /// The built-in authorization server.
    pub identity: Arc<playhead_app::identity::AuthServer>,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
}

impl RestState {
    /// State with the given limits and deprecations.
    pub fn new(
        app: App,
        auth: Arc<Authenticator>,
        ready: Arc<dyn ReadyCheck>,
        limits: RestLimits,
        deprecations: Vec<middleware::Deprecation>,
        identity: Arc<playhead_app::identity::AuthServer>,
        trusted_proxies: Vec<std::net::IpAddr>,
    ) -> Self {
        let in_flight = middleware::InFlight::new(limits.max_in_flight_per_principal);
        let identity_for_audit = identity.clone();
        Self(Arc::new(RestInner {
            app,
            auth,
            ready,
            limits: Arc::new(limits),
            in_flight,
            deprecations: Arc::new(deprecations),
            identity,
            trusted_proxies: Arc::new(trusted_proxies),
            row_bodies: routes::rows::RowBodies::default(),
            audit: middleware::AuditSink::spawn(identity_for_audit),
        }))
    }
}

/// The OpenAPI document of the REST API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Playhead",
        description = "Watch history as a service: playback events, resume points, per-play history, Continue watching and Next up.\n\nErrors are RFC 9457 problem+json. Lists are cursor-paginated (limit 1-100, default 20). Send `Authorization: Bearer <access token or API key>`.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::health::livez, routes::health::readyz,
        routes::accounts::me, routes::accounts::create_profile, routes::accounts::get_profile, routes::accounts::patch_profile,
        routes::titles::put_title, routes::titles::patch_title, routes::titles::get_title, routes::titles::list_titles, routes::titles::import_titles,
        routes::events::post_events,
        routes::progress::get_progress, routes::progress::put_progress,
        routes::history::get_history, routes::history::post_history, routes::history::delete_play,
        routes::rows::continue_watching, routes::rows::hide, routes::rows::next_up,
        routes::recs::recommendations, routes::recs::similar, routes::recs::feedback, routes::recs::impressions,
        routes::admin::create_client,
    ),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "playback", description = "Events and resume points"),
        (name = "history", description = "Per-play history"),
        (name = "rows", description = "Continue watching and Next up"),
        (name = "recommendations", description = "Recommendations with reasons, similar titles, feedback"),
        (name = "profiles", description = "Accounts and profiles"),
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

/// RED metrics and a span per request, labelled with the route template (never the raw path,
/// which would explode label cardinality and leak ids).
async fn observe(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("http", http.method = %method, http.route = %route, http.status = tracing::field::Empty);
    let res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = res.status().as_u16();
    span.record("http.status", status);
    let secs = started.elapsed().as_secs_f64();
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .record(secs);
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status.to_string()).increment(1);
    res
}

async fn not_found() -> Response {
    ApiError::App(playhead_app::AppError::NotFound("route")).into_response()
}

async fn method_not_allowed() -> Response {
    let p = serde_json::json!({
        "type": "/problems/method-not-allowed", "title": "Method not allowed", "status": 405,
        "detail": "this route does not support that method"
    });
    let mut res = (StatusCode::METHOD_NOT_ALLOWED, p.to_string()).into_response();
    res.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(error::PROBLEM_JSON));
    res
}

/// Security headers on every answer; HTML pages (the docs) also get a content security policy
/// that allows only this origin's scripts and styles (Swagger UI's inline bootstrap included).
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
    if html {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
        h.insert("cache-control", HeaderValue::from_static("no-store"));
    }
    res
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

/// The routes served outside the OpenAPI document (method, template): the authorization server.
pub const OAUTH_ROUTES: &[(&str, &str)] = &[
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/device_authorization"),
    ("POST", "/oauth/revoke"),
    ("POST", "/oauth/introspect"),
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/authorize"),
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("GET", "/device"),
    ("POST", "/device"),
    ("POST", "/signout"),
];

/// The authorization server's endpoints and hosted pages (outside `/v1`: OAuth error format,
/// no idempotency keys, no API versioning). Listed in [`OAUTH_ROUTES`] too.
fn oauth_routes() -> Router<RestState> {
    use routes::oauth;
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(oauth::metadata))
        .route("/.well-known/openid-configuration", get(oauth::metadata))
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/device_authorization", post(oauth::device_authorization))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/authorize", get(oauth::authorize_page).post(oauth::authorize_submit))
        .route("/signin", get(oauth::signin_page).post(oauth::signin_submit))
        .route("/device", get(oauth::device_page).post(oauth::device_submit))
        .route("/signout", post(oauth::signout))
}

/// The whole HTTP surface.
pub fn router(state: RestState) -> Router {
    let v1 = Router::new()
        .route("/v1/me", get(routes::accounts::me))
        .route("/v1/accounts/{account_id}/profiles", post(routes::accounts::create_profile))
        .route(
            "/v1/profiles/{profile_id}",
            get(routes::accounts::get_profile).patch(routes::accounts::patch_profile),
        )
        .route("/v1/titles", get(routes::titles::list_titles))
        .route(
            "/v1/titles/{title_id}",
            put(routes::titles::put_title).get(routes::titles::get_title).patch(routes::titles::patch_title),
        )
        .route("/v1/profiles/{profile_id}/events", post(routes::events::post_events))
        .route(
            "/v1/profiles/{profile_id}/progress/{title_id}",
            get(routes::progress::get_progress).put(routes::progress::put_progress),
        )
        .route(
            "/v1/profiles/{profile_id}/history",
            get(routes::history::get_history).post(routes::history::post_history),
        )
        .route(
            "/v1/profiles/{profile_id}/history/{play_id}",
            axum::routing::delete(routes::history::delete_play),
        )
        .route("/v1/profiles/{profile_id}/continue-watching", get(routes::rows::continue_watching))
        .route(
            "/v1/profiles/{profile_id}/continue-watching/{title_id}",
            axum::routing::delete(routes::rows::hide),
        )
        .route("/v1/profiles/{profile_id}/next-up", get(routes::rows::next_up))
        .route("/v1/profiles/{profile_id}/recommendations", get(routes::recs::recommendations))
        .route("/v1/profiles/{profile_id}/feedback", post(routes::recs::feedback))
        .route("/v1/profiles/{profile_id}/impressions", post(routes::recs::impressions))
        .route("/v1/titles/{title_id}/similar", get(routes::recs::similar))
        .route("/v1/admin/clients", post(routes::admin::create_client))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.limits.request_timeout,
        ));
    // The import streams up to 256 MiB: it gets no request timeout, only its own size limit.
    let import = Router::new().route("/v1/titles/import", post(routes::titles::import_titles));
    let request_id = HeaderName::from_static("x-request-id");
    let cors = cors(&state.limits.cors_allowed_origins);
    let router = Router::new()
        .route("/livez", get(routes::health::livez))
        .route("/readyz", get(routes::health::readyz))
        .merge(v1)
        .merge(import)
        .merge(oauth_routes())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        // Innermost first: idempotency sees only requests that passed quotas and negotiation.
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::idempotency))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::versioning))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::route_policy))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::limits))
        .layer(axum::middleware::from_fn_with_state(state, middleware::authenticate))
        .layer(axum::middleware::from_fn(observe))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    match cors {
        Some(c) => router.layer(c),
        None => router,
    }
}
