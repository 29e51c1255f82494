//! Signed-webhook intake next to bearer-key ingest: the same closed-loop client posting 1 KiB
//! events to a running `sluice serve`, either as `POST /v1/events` with an API key or as Standard
//! Webhooks deliveries to `POST /v1/sources/{id}`, each signed on the fly with a fresh
//! `webhook-id` (so none is an idempotent replay). The client's own HMAC is about a microsecond
//! per request, well under the noise of the run.

use crate::stats::percentile;
use sluice_testkit::webhooks;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The body size both modes post.
pub const BODY_BYTES: usize = 1024;

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `Authorization: Bearer <key>` on `POST /v1/events`.
    Bearer {
        /// The API key.
        key: String,
    },
    /// A Standard Webhooks delivery to `POST /v1/sources/{source}`.
    Webhook {
        /// The source id.
        source: String,
        /// Its `whsec_` secret.
        secret: String,
    },
}

/// What to drive.
#[derive(Debug, Clone)]
pub struct Params {
    /// `http://127.0.0.1:PORT` of a running `sluice serve`.
    pub url: String,
    /// Bearer or webhook.
    pub mode: Mode,
    /// Concurrent connections.
    pub conns: usize,
    /// How long to send.
    pub duration: Duration,
}

/// A JSON body of exactly [`BODY_BYTES`]: `head` (an open object), then `"pad"` filling the rest.
fn padded(head: &str) -> String {
    let fixed = head.len() + r#","pad":""}}"#.len();
    format!(r#"{head},"pad":"{}"}}}}"#, "x".repeat(BODY_BYTES.saturating_sub(fixed)))
}

/// Runs the load; returns the JSON report.
pub async fn run(p: Params) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(p.conns)
        .timeout(Duration::from_secs(10))
        .build()?;
    let start = Instant::now();
    let deadline = start + p.duration;
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..p.conns {
        let (client, mode, refused) = (client.clone(), p.mode.clone(), refused.clone());
        let url = match &mode {
            Mode::Bearer { .. } => format!("{}/v1/events", p.url),
            Mode::Webhook { source, .. } => format!("{}/v1/sources/{source}", p.url),
        };
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let mut req = client.post(&url).header("content-type", "application/json");
                match &mode {
                    Mode::Bearer { key } => {
                        let body = padded(&format!(r#"{{"type":"bench.event","data":{{"conn":{c},"n":{n}"#));
                        req = req.bearer_auth(key).body(body);
                    }
                    Mode::Webhook { secret, .. } => {
                        let now = OffsetDateTime::now_utc();
                        let stamp = now
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default();
                        let body = padded(&format!(
                            r#"{{"type":"bench.event","timestamp":"{stamp}","data":{{"conn":{c},"n":{n}"#
                        ));
                        let id = format!("msg_bench_{c}_{n}");
                        for (k, v) in webhooks::standard_webhooks(secret, &id, now.unix_timestamp(), &body) {
                            req = req.header(k, v);
                        }
                        req = req.body(body);
                    }
                }
                let sent = Instant::now();
                match req.send().await {
                    Ok(r) if r.status() == 202 => {
                        let _ = r.bytes().await;
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let secs = start.elapsed().as_secs_f64();
    let accepted = latencies.len();
    Ok(serde_json::json!({
        "bench": "intake",
        "mode": match p.mode { Mode::Bearer { .. } => "bearer", Mode::Webhook { .. } => "webhook" },
        "body_bytes": BODY_BYTES,
        "conns": p.conns,
        "accepted": accepted,
        "refused": refused.load(Ordering::Relaxed),
        "events_per_sec": accepted as f64 / secs,
        "p50_ms": percentile(&mut latencies, 50.0),
        "p99_ms": percentile(&mut latencies, 99.0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_exactly_one_kib_of_json() {
        let b = padded(r#"{"type":"bench.event","data":{"conn":3,"n":12345"#);
        assert_eq!(b.len(), BODY_BYTES);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["data"]["n"], 12345);
    }
}
