//! Trace context across the queue (issue #15, decision 0075).
//!
//! A request's W3C trace context is stored with the events it queued, handed to NATS in message
//! headers, and continued by the apply step, so one trace shows request -> durable append ->
//! relay -> apply. Two cases, one code path:
//! - **An OpenTelemetry layer is installed** (the binary's `telemetry.otlp_endpoint`): spans join
//!   the caller's trace through `tracing-opentelemetry`, and the context handed on names the span
//!   that hands it on, so the exported spans nest.
//! - **None is** (the default): no span is recorded anywhere, but the trace id still travels (the
//!   caller's, or a fresh one) and every log line of the request and of its events' apply step
//!   carries it, which is what joins the logs of one request across replicas.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use playhead_core::trace::TraceContext;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Join `span` to the caller's trace (when one was sent) and return the context the request
/// hands on: the same trace, with `span` as the parent of what follows. Without an
/// OpenTelemetry layer, a fresh span id stands for the request (a fresh trace when none was sent).
pub fn enter(span: &Span, incoming: Option<TraceContext>) -> TraceContext {
    if let Some(parent) = incoming {
        // A no-op without an OpenTelemetry layer (nothing records the span then).
        let _ = span.set_parent(otel_context(parent));
    }
    exported(span).unwrap_or_else(|| match incoming {
        Some(t) => t.with_span(fresh_span_id()),
        None => fresh(),
    })
}

/// A span continuing `trace` (its parent is the span that handed the context on), for work done
/// later or elsewhere: the relay's publish, the apply step. Returns the span and the context it
/// hands on (see [`enter`]).
pub fn continue_trace(span: Span, trace: TraceContext) -> (Span, TraceContext) {
    let _ = span.set_parent(otel_context(trace));
    let handed = exported(&span).unwrap_or(trace);
    (span, handed)
}

/// A new trace (a request that sent no valid `traceparent`): random ids, not sampled by the
/// caller. Drawn from the thread-local generator, not the kernel: this runs on every request.
fn fresh() -> TraceContext {
    loop {
        let trace_id = rand::random::<u128>();
        if let Some(t) = TraceContext::new(trace_id, fresh_span_id(), false) {
            return t;
        }
    }
}

fn fresh_span_id() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

/// The span's own OpenTelemetry ids, when a layer records it.
fn exported(span: &Span) -> Option<TraceContext> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    TraceContext::new(
        u128::from_be_bytes(sc.trace_id().to_bytes()),
        u64::from_be_bytes(sc.span_id().to_bytes()),
        sc.is_sampled(),
    )
}

fn otel_context(t: TraceContext) -> opentelemetry::Context {
    let flags = if t.sampled() { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let sc = SpanContext::new(
        TraceId::from_bytes(t.trace_id().to_be_bytes()),
        SpanId::from_bytes(t.span_id().to_be_bytes()),
        flags,
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_layer_the_callers_trace_id_travels_with_a_new_parent() {
        let caller = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let handed = enter(&tracing::info_span!("http"), Some(caller));
        assert_eq!(handed.trace_id(), caller.trace_id());
        assert_ne!(handed.span_id(), caller.span_id(), "the request is a span of its own");
        assert!(handed.sampled(), "the caller's sampling decision is kept");
        let (_, next) = continue_trace(tracing::info_span!("apply"), handed);
        assert_eq!(next, handed);
    }

    #[test]
    fn a_request_without_a_trace_starts_its_own() {
        let a = enter(&tracing::info_span!("http"), None);
        let b = enter(&tracing::info_span!("http"), None);
        assert_ne!(a.trace_id(), b.trace_id());
    }
}
