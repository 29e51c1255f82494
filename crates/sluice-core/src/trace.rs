//! Trace context: the W3C `traceparent` of a request, carried with its events through the
//! queue to the store, so the access log line, the queue message, the process log line and the
//! stored event share one trace id. On AWS the same trace travels as X-Ray's `AWSTraceHeader`
//! (X-Ray trace ids are W3C trace ids written differently: `1-<8 hex>-<24 hex>`).

/// One position in a trace: the trace, the span that is the parent of what comes next, and
/// whether the trace is sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    parent_id: String,
    sampled: bool,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn not_zero(s: &str) -> bool {
    s.bytes().any(|b| b != b'0')
}

impl TraceContext {
    /// A `traceparent` header value (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`),
    /// if it is one: lowercase hex, no all-zero id, not version `ff`. Later versions are read
    /// by their version-00 prefix, as the specification asks.
    pub fn parse_traceparent(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.splitn(5, '-');
        let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let rest = parts.next();
        if !is_hex(version, 2) || version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        if !is_hex(trace_id, 32) || !is_hex(parent_id, 16) || !is_hex(flags, 2) {
            return None;
        }
        if !not_zero(trace_id) || !not_zero(parent_id) {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace, sampled.
    pub fn generate() -> Self {
        Self {
            trace_id: hex::encode(rand::random::<[u8; 16]>()),
            parent_id: Self::span_id(),
            sampled: true,
        }
    }

    fn span_id() -> String {
        loop {
            let id = hex::encode(rand::random::<[u8; 8]>());
            if not_zero(&id) {
                return id;
            }
        }
    }

    /// The same trace, with a new span as the parent of what comes next (this hop's own span).
    pub fn child(&self) -> Self {
        Self {
            parent_id: Self::span_id(),
            ..self.clone()
        }
    }

    /// The trace id, 32 lowercase hex.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The `traceparent` header value (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            self.parent_id,
            if self.sampled { "01" } else { "00" }
        )
    }

    /// The X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`), SQS's `AWSTraceHeader`.
    pub fn xray_header(&self) -> String {
        format!(
            "Root=1-{}-{};Parent={};Sampled={}",
            &self.trace_id[..8],
            &self.trace_id[8..],
            self.parent_id,
            u8::from(self.sampled)
        )
    }

    /// An X-Ray trace header (`Root=1-<8>-<24>;Parent=<16>;Sampled=0|1`, in any order; `Parent`
    /// and `Sampled` optional), if it is one.
    pub fn from_xray_header(value: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, true);
        for part in value.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v),
                Some(("Parent", v)) => parent = Some(v),
                Some(("Sampled", v)) => sampled = v != "0",
                _ => {}
            }
        }
        let mut r = root?.splitn(3, '-');
        let (one, time, id) = (r.next()?, r.next()?, r.next()?);
        let trace_id = format!("{time}{id}");
        if one != "1" || !is_hex(time, 8) || !is_hex(id, 24) || !not_zero(&trace_id) {
            return None;
        }
        let parent_id = match parent {
            Some(p) if is_hex(p, 16) && not_zero(p) => p.to_owned(),
            Some(_) => return None,
            None => Self::span_id(),
        };
        Some(Self {
            trace_id,
            parent_id,
            sampled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn r1_traceparent_round_trips_and_bad_ones_are_refused() {
        let t = TraceContext::parse_traceparent(EXAMPLE).unwrap();
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.traceparent(), EXAMPLE);
        let child = t.child();
        assert_eq!(child.trace_id(), t.trace_id());
        assert_ne!(child.traceparent(), EXAMPLE, "a new parent span");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse_traceparent(bad), None, "{bad}");
        }
        // A later version with more fields is read by its prefix.
        assert!(TraceContext::parse_traceparent(&format!("01{}-more", &EXAMPLE[2..])).is_some());
        let fresh = TraceContext::generate();
        assert_eq!(TraceContext::parse_traceparent(&fresh.traceparent()), Some(fresh));
    }

    #[test]
    fn r1_xray_headers_carry_the_same_trace() {
        let t = TraceContext::parse_traceparent(EXAMPLE).unwrap();
        let xray = t.xray_header();
        assert_eq!(
            xray,
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
        );
        assert_eq!(TraceContext::from_xray_header(&xray), Some(t.clone()));
        let lambda = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:0";
        assert_eq!(
            TraceContext::from_xray_header(lambda).unwrap().trace_id(),
            "5759e988bd862e3fe1be46a994272793"
        );
        for bad in [
            "",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Parent=53995c3f42cd8ad8",
        ] {
            assert_eq!(TraceContext::from_xray_header(bad), None, "{bad}");
        }
    }
}
