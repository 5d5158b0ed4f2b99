//! `/graphql` over HTTP: `POST` (queries and mutations), `GET` (queries only: a mutation over GET
//! could be triggered by a link), the `graphql-ws` / `graphql-transport-ws` WebSocket for
//! subscriptions (a `GET` with `Upgrade: websocket`), and for browsers (a `GET` accepting HTML
//! with no query) a small console served from the binary, under a strict content security policy
//! (no inline script, no other origin).
//!
//! Credentials: the `Authorization` header, as for REST; over a WebSocket, the
//! `connection_init` payload's `Authorization` (browsers cannot set headers on a WebSocket), else
//! the upgrade request's header.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use async_graphql::dataloader::DataLoader;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest as _, FromRequestParts as _, Request, State, WebSocketUpgrade,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use playhead_app::App;
use playhead_app::access::Gate;
use playhead_core::trace::TraceContext;

use crate::loaders::TitleLoader;
use crate::policy::Caller;
use crate::{GraphqlConfig, PlayheadSchema};

/// What the handlers share.
#[derive(Clone)]
pub struct GraphqlState(Arc<Inner>);

struct Inner {
    schema: PlayheadSchema,
    app: App,
    gate: Arc<Gate>,
    trusted_proxies: Vec<IpAddr>,
}

impl GraphqlState {
    /// The endpoint over `app`, admitting through `gate` (the one REST uses), believing
    /// `X-Forwarded-For` only from `trusted_proxies`.
    pub fn new(app: App, gate: Arc<Gate>, config: &GraphqlConfig, trusted_proxies: Vec<IpAddr>) -> Self {
        let schema = crate::schema(app.clone(), gate.clone(), config);
        Self(Arc::new(Inner { schema, app, gate, trusted_proxies }))
    }

    /// The schema (tests execute requests on it directly).
    pub fn schema(&self) -> &PlayheadSchema {
        &self.0.schema
    }

    /// Run one request as `authorization` (a bearer header value) from `client_addr`, without
    /// HTTP: for tests and benchmarks of the schema itself.
    pub async fn execute(
        &self,
        mut req: async_graphql::Request,
        authorization: Option<&str>,
        client_addr: &str,
    ) -> async_graphql::Response {
        self.request_data(
            &mut req.data,
            authorization.map(|a| a.as_bytes().to_vec()),
            client_addr.to_owned(),
        );
        self.0.schema.execute(req).await
    }

    fn client_addr(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
        playhead_app::access::client_address(
            &self.0.trusted_proxies,
            headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()),
            peer.map(|p| p.ip()),
        )
    }

    /// Per-request data: who is calling, and a fresh loader (nothing cached across requests).
    fn request_data(
        &self,
        data: &mut async_graphql::Data,
        authorization: Option<Vec<u8>>,
        client_addr: String,
    ) {
        data.insert(Arc::new(Caller::new(authorization, client_addr)));
        data.insert(DataLoader::new(TitleLoader(self.0.app.clone()), tokio::spawn));
    }
}

/// The `/graphql` routes (merged into the REST listener's router by the binary).
pub fn router(state: GraphqlState, body_bytes: usize) -> Router {
    Router::new()
        .route("/graphql", get(get_graphql).post(post_graphql))
        .route("/graphql/console.js", get(|| asset("text/javascript; charset=utf-8", CONSOLE_JS)))
        .route("/graphql/console.css", get(|| asset("text/css; charset=utf-8", CONSOLE_CSS)))
        .layer(DefaultBodyLimit::max(body_bytes))
        .layer(axum::middleware::from_fn(observe))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

const CONSOLE_HTML: &str = include_str!("../console/index.html");
const CONSOLE_JS: &str = include_str!("../console/console.js");
const CONSOLE_CSS: &str = include_str!("../console/console.css");

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body)
        .into_response()
}

fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

fn authorization(headers: &HeaderMap) -> Option<Vec<u8>> {
    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec())
}

/// A request-level refusal in GraphQL's shape (nothing ran).
fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn post_graphql(State(s): State<GraphqlState>, req: Request) -> Response {
    let (headers, peer) = (req.headers().clone(), peer(&req));
    let trace = req.extensions().get::<TraceContext>().copied();
    let mut gql =
        match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(req, &()).await
        {
            Ok(r) => r.into_inner(),
            Err(e) => return unreadable(&e.0.to_string()),
        };
    // Mutations only come by POST: the events they queue continue this request's trace.
    if let Some(t) = trace {
        gql.data.insert(t);
    }
    execute(&s, gql, &headers, peer).await
}

fn unreadable(why: &str) -> Response {
    if why.contains("length limit") {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "the request body is larger than the limit",
        );
    }
    refusal(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("not a GraphQL request: {why}"))
}

async fn get_graphql(State(s): State<GraphqlState>, req: Request) -> Response {
    let headers = req.headers().clone();
    let wants_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_upgrade {
        return websocket(s, req).await;
    }
    let has_query = req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("query=")));
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if !has_query && wants_html {
        return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], CONSOLE_HTML).into_response();
    }
    let peer = peer(&req);
    let gql = match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(req, &())
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => return unreadable(&e.0.to_string()),
    };
    // Only queries over GET: a link or an image tag must never change anything.
    if let Ok(doc) = async_graphql::parser::parse_query(&gql.query)
        && doc.operations.iter().any(|(_, op)| op.node.ty != OperationType::Query)
    {
        let mut res = refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "mutations need POST; subscriptions need the WebSocket",
        );
        res.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return res;
    }
    execute(&s, gql, &headers, peer).await
}

async fn execute(
    s: &GraphqlState,
    gql: async_graphql::Request,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Response {
    let mut gql = gql;
    s.request_data(&mut gql.data, authorization(headers), s.client_addr(headers, peer));
    let response = s.0.schema.execute(gql).await;
    // Quotas and outages answer in the body (other fields may have succeeded) and, as REST
    // does, with Retry-After: the longest wait any refused field asked for.
    let retry_after = response
        .errors
        .iter()
        .filter_map(|e| e.extensions.as_ref()?.get("retryAfter"))
        .filter_map(|v| match v {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .max();
    let mut res = GraphQLResponse::from(response).into_response();
    if let Some(secs) = retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

async fn websocket(s: GraphqlState, req: Request) -> Response {
    let peer = peer(&req);
    let (mut parts, _) = req.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(p) => p,
        Err(_) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Sec-WebSocket-Protocol must be graphql-transport-ws or graphql-ws",
            );
        }
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let header_auth = authorization(&parts.headers);
    let addr = s.client_addr(&parts.headers, peer);
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
        let schema = s.0.schema.clone();
        GraphQLWebSocket::new(socket, schema, protocol)
            .on_connection_init(move |payload: serde_json::Value| async move {
                // The payload's credential wins: a browser cannot set headers on a WebSocket.
                let from_payload = ["Authorization", "authorization"]
                    .iter()
                    .find_map(|k| payload.get(*k).and_then(|v| v.as_str()).map(|v| v.as_bytes().to_vec()));
                let credential = from_payload.or(header_auth);
                // A bad credential ends the connection at once rather than at the first subscribe.
                if let Some(c) = &credential {
                    s.0.gate.authenticator().authenticate(c).await.map_err(crate::error::map)?;
                }
                let mut data = async_graphql::Data::default();
                s.request_data(&mut data, credential, addr);
                Ok(data)
            })
            .serve()
            .await;
    })
}

/// Spans and RED metrics for `/graphql` (route label fixed: never the raw query).
async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http",
        http.method = %method,
        http.route = "/graphql",
        trace_id = tracing::field::Empty,
        http.status = tracing::field::Empty
    );
    // The context this request hands on (to the events a recordEvents mutation queues).
    let incoming =
        req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(TraceContext::parse);
    let trace = playhead_app::telemetry::enter(&span, incoming);
    span.record("trace_id", tracing::field::display(trace.trace_id_hex()));
    req.extensions_mut().insert(trace);
    let res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = res.status().as_u16();
    span.record("http.status", status);
    let (method, status) = (method_label(&method), status.to_string());
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => "/graphql", "status" => status.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("http_requests_total", "method" => method, "route" => "/graphql", "status" => status)
        .increment(1);
    res
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        _ => "OTHER",
    }
}

/// The headers REST sends on every answer, and for the console a policy that allows only this
/// origin's script and style files (no inline code at all) and requests to this origin.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
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
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
