//! W3C Trace Context (`traceparent`), the one rule for reading and writing it.
//!
//! A request's trace context travels with the events it wrote: through the event log or the
//! outbox row, the NATS message headers, into the apply step, so one trace shows request ->
//! durable append -> relay -> apply (decision 0075). Every transport reads the header with
//! [`TraceContext::parse`]; nothing else parses it.

use std::fmt;

/// A trace id (16 bytes), the id of the span that is the parent of whatever comes next (8 bytes)
/// and the trace flags (bit 0: sampled). Both ids are never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceContext {
    /// A context from its parts; `None` when either id is zero (invalid in the spec).
    #[must_use]
    pub fn new(trace_id: u128, span_id: u64, sampled: bool) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(Self { trace_id, span_id, flags: u8::from(sampled) })
    }

    /// Read a `traceparent` header value: `<version>-<32 hex trace id>-<16 hex parent id>-<2 hex
    /// flags>`, lowercase. Version `ff` is invalid; version `00` has exactly four fields, a later
    /// version may append more (the spec says to read the first four). `None` for anything else,
    /// and then the receiver starts a new trace.
    #[must_use]
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let known = hex(version, 2) && version != "ff" && (version != "00" || parts.next().is_none());
        if !(known && hex(trace, 32) && hex(parent, 16) && hex(flags, 2)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(parent, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self { trace_id, span_id, flags })
    }

    /// The header value (version 00).
    #[must_use]
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }

    /// The trace id as 32 lowercase hex digits (what log lines carry as `trace_id`).
    #[must_use]
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The parent span id as 16 lowercase hex digits.
    #[must_use]
    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The trace id.
    #[must_use]
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The parent span id.
    #[must_use]
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// Whether the caller sampled this trace.
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The same trace with another parent span (the span that hands the context on).
    #[must_use]
    pub fn with_span(self, span_id: u64) -> Self {
        if span_id == 0 { self } else { Self { span_id, ..self } }
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_round_trips() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::parse(h).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id_hex(), "00f067aa0ba902b7");
        assert!(t.sampled());
        assert_eq!(t.traceparent(), h);
        // A later version may add fields; it is written back as version 00.
        let later =
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra").unwrap();
        assert_eq!(later.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!later.sampled());
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "",
            "garbage",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn zero_ids_make_no_context_and_a_new_span_keeps_the_trace() {
        assert!(TraceContext::new(0, 1, true).is_none());
        assert!(TraceContext::new(1, 0, true).is_none());
        let t = TraceContext::new(7, 9, false).unwrap();
        let c = t.with_span(11);
        assert_eq!((c.trace_id(), c.span_id(), c.sampled()), (7, 11, false));
        assert_eq!(t.with_span(0), t);
    }
}
