//! Per-event CPU: the work the ingest step does on every event before it touches the queue,
//! strict JSON validation and envelope sealing (serialise, HMAC-SHA256, SHA-256 digest), looped
//! so `valgrind --tool=callgrind` can count instructions. `bench/run.sh` runs it at two
//! iteration counts and divides the difference, which cancels start-up costs.

use sluice_core::envelope::{Envelope, Sealer, SigningKey, VERSION};
use sluice_core::ids::{EventId, RequestId};
use sluice_core::ports::OutgoingMessage;
use sluice_core::tenant::Tenant;
use sluice_core::validate::{Limits, Schemas, Validator};
use std::time::Instant;
use time::OffsetDateTime;

/// A sealer with a fixed 32-byte key, as `sluice serve` has after its first start.
pub fn sealer() -> anyhow::Result<Sealer> {
    let key = SigningKey::new("bench-1", vec![7u8; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    Sealer::new(vec![key], Limits::default().max_depth).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A single-event request body of about `bytes` bytes: an order-like object whose `items` array
/// grows to the size, so the parser sees realistic nesting, numbers and strings.
pub fn event_body(bytes: usize) -> String {
    let mut items = Vec::new();
    let mut body = String::new();
    for i in 0.. {
        items.push(format!(
            r#"{{"sku":"sku-{i:06}","name":"item number {i}","qty":{q},"price":{p}.5,"tags":["a","b"]}}"#,
            q = i % 7 + 1,
            p = i % 100
        ));
        body = format!(
            r#"{{"type":"order.created","occurred_at":null,"data":{{"order":"ord-42","customer":{{"id":"c-1","tier":"gold"}},"items":[{}]}}}}"#,
            items.join(",")
        );
        if body.len() >= bytes {
            break;
        }
    }
    body.replace(r#""occurred_at":null,"#, "")
}

/// Validates `body` and seals every event in it, as ingest does; returns the sealed messages.
pub fn ingest_work(validator: &Validator, sealer: &Sealer, body: &[u8]) -> anyhow::Result<Vec<OutgoingMessage>> {
    let now = OffsetDateTime::now_utc();
    let submission = validator
        .parse_body(body, now)
        .map_err(|e| anyhow::anyhow!("the benchmark body is invalid: {e}"))?;
    let tenant = Tenant::parse("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let request_id = RequestId::generate();
    let mut out = Vec::new();
    for e in submission.events() {
        let env = Envelope {
            traceparent: None,
            idempotency_key: None,
            v: VERSION,
            id: EventId::new_at(now),
            tenant: tenant.clone(),
            event_type: e.event_type.clone(),
            data: e.data.clone(),
            occurred_at: e.occurred_at.unwrap_or(now),
            received_at: now,
            request_id: request_id.clone(),
            source_ip: Some("127.0.0.1".into()),
            subject: None,
            webhook: None,
            extensions: Default::default(),
        };
        out.push(sealer.seal(&env).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    Ok(out)
}

/// Runs the work `iterations` times on a `size`-byte event; returns the JSON report (wall time
/// per event is indicative only; callgrind's instruction count is the measurement).
pub fn run(size: usize, iterations: u64) -> anyhow::Result<serde_json::Value> {
    let validator = Validator::new(Limits::default(), Schemas::none());
    let sealer = sealer()?;
    let body = event_body(size);
    let start = Instant::now();
    let mut sealed_bytes = 0usize;
    for _ in 0..iterations {
        let msgs = ingest_work(&validator, &sealer, std::hint::black_box(body.as_bytes()))?;
        sealed_bytes += msgs.iter().map(|m| m.body.len()).sum::<usize>();
    }
    let elapsed = start.elapsed();
    Ok(serde_json::json!({
        "bench": "cpu",
        "event_bytes": body.len(),
        "iterations": iterations,
        "sealed_bytes": sealed_bytes,
        "ns_per_event": if iterations == 0 { 0.0 } else { elapsed.as_nanos() as f64 / iterations as f64 },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_asked_size_and_pass_validation() {
        let validator = Validator::new(Limits::default(), Schemas::none());
        let sealer = sealer().unwrap();
        for size in [1024, 64 * 1024] {
            let body = event_body(size);
            assert!(body.len() >= size && body.len() < size + 200, "{}", body.len());
            let msgs = ingest_work(&validator, &sealer, body.as_bytes()).unwrap();
            assert_eq!(msgs.len(), 1);
            assert!(msgs[0].body.len() > size);
        }
    }
}
