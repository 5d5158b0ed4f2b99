//! The gate in front of every gRPC call (one axum middleware over all services): find the
//! method in the table (UNIMPLEMENTED when it is not there), then [`Gate::admit`] with the
//! `authorization` metadata: authentication, quota, in-flight slot and the operation's
//! requirement, before the request message is read. A refusal is answered here as a
//! trailers-only status; an admitted call carries its [`Call`] (principal, operation, the
//! in-flight permit) to the handler in the request's extensions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use playhead_app::access::{Admission, Gate};
use playhead_core::trace::TraceContext;
use tonic::Status;

use crate::GrpcState;
use crate::table::{self, Method};

/// An admitted call, as its handler sees it.
pub(crate) struct Call {
    /// Its table entry.
    pub method: &'static Method,
    /// The client's address (audit entries).
    pub client_addr: String,
    /// The gate's decision; holding it holds the in-flight slot (a stream keeps it until it ends).
    pub admission: Admission,
    /// The trace context the call hands on (to the events it queues: decision 0075), from the
    /// caller's `traceparent` metadata when it sent a valid one.
    pub trace: TraceContext,
}

/// The gate (see the module docs).
pub(crate) async fn gate(State(s): State<GrpcState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let Some(method) = table::method(&path) else {
        // Unknown method, or a service added without a table entry: never reached.
        return answer(
            Status::unimplemented(format!("{path} is not a method of this server")),
            "unmatched",
            started,
        );
    };
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let headers = req.headers();
    let client_addr = playhead_app::access::client_address(
        &s.trusted_proxies,
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()),
        peer,
    );
    let mut admission =
        Gate::admit(&s.gate, method.op, headers.get("authorization").map(HeaderValue::as_bytes), || {
            client_addr.clone()
        })
        .await;
    if let Some(refusal) = admission.refusal.take() {
        return answer(crate::error::status(refusal), method.path, started);
    }
    let incoming =
        req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(TraceContext::parse);
    let span = tracing::info_span!(
        "grpc",
        rpc.method = %method.path,
        operation = method.op.name(),
        trace_id = tracing::field::Empty
    );
    let trace = playhead_app::telemetry::enter(&span, incoming);
    span.record("trace_id", tracing::field::display(trace.trace_id_hex()));
    req.extensions_mut().insert(Arc::new(Call { method, client_addr, admission, trace }));
    let res = tracing::Instrument::instrument(next.run(req), span).await;
    record(method.path, grpc_status(&res), started);
    res
}

/// A refusal as a trailers-only response.
fn answer(status: Status, label: &str, started: Instant) -> Response {
    let res = status.into_http::<axum::body::Body>();
    record(label, grpc_status(&res), started);
    res
}

/// The status of a trailers-only answer (an error before any message); "0" when it came in the
/// trailers of a body (the common, successful case).
fn grpc_status(res: &Response) -> String {
    res.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned()
}

/// RED metrics per method (never the raw path of an unknown method: label cardinality).
fn record(method: &str, status: String, started: Instant) {
    metrics::histogram!("grpc_server_handling_seconds", "method" => method.to_owned(), "status" => status.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("grpc_server_handled_total", "method" => method.to_owned(), "status" => status)
        .increment(1);
}
