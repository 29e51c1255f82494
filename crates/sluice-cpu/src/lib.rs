//! Per-event CPU: the work the ingest step does on every event before it touches the queue, strict
//! JSON validation and envelope sealing ([`sluice_core::ingest::seal_all`]: serialise, HMAC-SHA256),
//! looped so `valgrind --tool=callgrind` can count instructions. Runs at two iteration counts are
//! differenced, which cancels start-up costs (`bench/run.sh` and `scripts/check-instructions.sh`).

use sluice_core::envelope::{Sealer, SigningKey};
use sluice_core::ids::RequestId;
use sluice_core::ingest::{IngestContext, seal_all};
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
    let head = r#"{"type":"order.created","data":{"order":"ord-42","customer":{"id":"c-1","tier":"gold"},"items":["#;
    let tail = "]}}";
    let mut body = head.to_owned();
    for i in 0.. {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"sku":"sku-{i:06}","name":"item number {i}","qty":{q},"price":{p}.5,"tags":["a","b"]}}"#,
            q = i % 7 + 1,
            p = i % 100
        ));
        if body.len() + tail.len() >= bytes {
            break;
        }
    }
    body.push_str(tail);
    body
}

/// What one request carries besides its body, as the gateway fills it in.
pub fn context() -> anyhow::Result<IngestContext> {
    Ok(IngestContext {
        tenant: Tenant::parse("bench").map_err(|e| anyhow::anyhow!("{e}"))?,
        request_id: RequestId::generate(),
        source_ip: Some("127.0.0.1".into()),
        idempotency_key: None,
        trace: None,
    })
}

/// Validates `body` and seals every event in it, as ingest does; returns the sealed messages.
pub fn ingest_work(
    validator: &Validator,
    sealer: &Sealer,
    ctx: &IngestContext,
    body: &[u8],
) -> anyhow::Result<Vec<OutgoingMessage>> {
    let now = OffsetDateTime::now_utc();
    let (events, _) = validator
        .parse_body(body, now)
        .map_err(|e| anyhow::anyhow!("the benchmark body is invalid: {e}"))?
        .into_events();
    let (_, messages) = seal_all(sealer, ctx, events, None, now).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(messages)
}

/// Runs the work `iterations` times on a `size`-byte event; returns the JSON report (wall time
/// per event is indicative only; callgrind's instruction count is the measurement).
pub fn run(size: usize, iterations: u64) -> anyhow::Result<serde_json::Value> {
    let validator = Validator::new(Limits::default(), Schemas::none());
    let sealer = sealer()?;
    let ctx = context()?;
    let body = event_body(size);
    let start = Instant::now();
    let mut sealed_bytes = 0usize;
    for _ in 0..iterations {
        let msgs = ingest_work(&validator, &sealer, &ctx, std::hint::black_box(body.as_bytes()))?;
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
    fn bodies_have_the_asked_size_pass_validation_and_seal_their_data_as_sent() {
        let validator = Validator::new(Limits::default(), Schemas::none());
        let sealer = sealer().unwrap();
        let ctx = context().unwrap();
        for size in [1024, 64 * 1024] {
            let body = event_body(size);
            assert!(body.len() >= size && body.len() < size + 200, "{}", body.len());
            let msgs = ingest_work(&validator, &sealer, &ctx, body.as_bytes()).unwrap();
            assert_eq!(msgs.len(), 1);
            let data_start = body.find(r#""data":"#).unwrap() + 7;
            let data = &body[data_start..body.len() - 1];
            assert!(msgs[0].body.contains(data), "the payload is sealed byte for byte");
            let opened = sealer.open_parts(&msgs[0].body, &msgs[0].attributes).unwrap();
            assert_eq!(opened.data.get(), data);
        }
    }
}
