//! End to end: events per second from `POST /v1/events` to a stored record, and the time from
//! each 202 to the moment its record is readable.
//!
//! Connections post one event at a time, closed-loop (as fast as answers come) or open-loop at a
//! fixed total rate. A separate thread reads the store file directly through a read-only SQLite
//! connection every millisecond, looking up the ids still pending: polling `GET` per event would
//! itself be most of the load.

use crate::stats::percentile;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to drive.
#[derive(Debug, Clone)]
pub struct Params {
    /// `http://127.0.0.1:PORT` of a running `sluice serve`.
    pub url: String,
    /// An API key of tenant `tenant`.
    pub key: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// The server's `store.db`.
    pub store: PathBuf,
    /// Concurrent connections.
    pub conns: usize,
    /// How long to send.
    pub duration: Duration,
    /// Total requests per second across connections; `None` sends as fast as answers come.
    pub rate: Option<f64>,
    /// How long to wait after the load for the last records.
    pub settle: Duration,
}

const BODY: &str = r#"{"type":"bench.event","data":{"n":1,"user":"u-123","tags":["a","b"],"amount":12.5}}"#;

/// Runs the load and the watcher; returns the JSON report.
pub async fn run(p: Params) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(p.conns)
        .timeout(Duration::from_secs(10))
        .build()?;
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let watcher = {
        let store = p.store.clone();
        let tenant = p.tenant.clone();
        let settle = p.settle;
        std::thread::spawn(move || watch(&store, &tenant, &rx, settle))
    };
    let start = Instant::now();
    let deadline = start + p.duration;
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..p.conns {
        let client = client.clone();
        let tx = tx.clone();
        let url = format!("{}/v1/events", p.url);
        let key = p.key.clone();
        let refused = refused.clone();
        let interval = p.rate.map(|r| Duration::from_secs_f64(p.conns as f64 / r));
        tasks.push(tokio::spawn(async move {
            // Stagger open-loop senders so their requests do not arrive in lockstep.
            let mut next = start + interval.map_or(Duration::ZERO, |i| i.mul_f64(c as f64 / p.conns as f64));
            while Instant::now() < deadline {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let r = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(BODY)
                    .send()
                    .await;
                let accepted_at = Instant::now();
                match r {
                    Ok(r) if r.status() == 202 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        if let Some(id) = v["id"].as_str() {
                            let _ = tx.send((id.to_owned(), accepted_at));
                        }
                    }
                    _ => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    drop(tx);
    for t in tasks {
        t.await?;
    }
    let send_secs = start.elapsed().as_secs_f64();
    let w = tokio::task::spawn_blocking(move || watcher.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the watcher panicked"))??;
    let mut lat = w.latencies_ms;
    let stored = lat.len();
    let e2e_secs = w
        .last_stored
        .map_or(send_secs, |t| t.duration_since(start).as_secs_f64());
    Ok(serde_json::json!({
        "bench": "e2e",
        "conns": p.conns,
        "target_rate": p.rate,
        "accepted": w.accepted,
        "refused": refused.load(std::sync::atomic::Ordering::Relaxed),
        "stored": stored,
        "not_stored": w.accepted - stored,
        "ingest_per_sec": w.accepted as f64 / send_secs,
        "e2e_per_sec": stored as f64 / e2e_secs,
        "p50_ms": percentile(&mut lat, 50.0),
        "p99_ms": percentile(&mut lat, 99.0),
        "max_ms": percentile(&mut lat, 100.0),
    }))
}

struct Watched {
    accepted: usize,
    latencies_ms: Vec<f64>,
    last_stored: Option<Instant>,
}

fn watch(
    store: &std::path::Path,
    tenant: &str,
    rx: &mpsc::Receiver<(String, Instant)>,
    settle: Duration,
) -> anyhow::Result<Watched> {
    let conn = Connection::open_with_flags(
        store,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut pending: HashMap<String, Instant> = HashMap::new();
    let mut out = Watched {
        accepted: 0,
        latencies_ms: Vec::new(),
        last_stored: None,
    };
    let mut senders_done_at: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok((id, t)) => {
                    out.accepted += 1;
                    pending.insert(id, t);
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    senders_done_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        if !pending.is_empty() {
            let ids: Vec<String> = pending.keys().cloned().collect();
            for chunk in ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!("SELECT id FROM events WHERE tenant = ? AND id IN ({marks})");
                let mut stmt = conn.prepare_cached(&sql)?;
                let mut args: Vec<&dyn rusqlite::ToSql> = vec![&tenant];
                args.extend(chunk.iter().map(|s| s as &dyn rusqlite::ToSql));
                let found: Vec<String> = stmt
                    .query_map(args.as_slice(), |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let now = Instant::now();
                for id in found {
                    if let Some(t) = pending.remove(&id) {
                        out.latencies_ms.push(now.duration_since(t).as_secs_f64() * 1000.0);
                        out.last_stored = Some(now);
                    }
                }
            }
        }
        if let Some(done) = senders_done_at
            && (pending.is_empty() || done.elapsed() > settle)
        {
            return Ok(out);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
