//! The feed: 202 to visible on an open SSE stream (open loop, at a fixed rate), and the read
//! rate of one consumer paging `GET /v1/feed?limit=1000` through a filled feed.

use crate::stats::percentile;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BODY: &str = r#"{"type":"bench.event","data":{"n":1,"user":"u-123","tags":["a","b"],"amount":12.5}}"#;

fn client(conns: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(conns.max(1))
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// The feed's current head: `next_after` of a read from 0 with nothing asked to wait.
async fn head(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<u64> {
    let mut after = 0u64;
    loop {
        let page: serde_json::Value = client
            .get(format!("{url}/v1/feed?after={after}&limit=1000"))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let next = page["next_after"].as_u64().unwrap_or(after);
        if next == after {
            return Ok(after);
        }
        after = next;
    }
}

/// Posts single events at `rate` per second for `secs` over `conns` connections while one SSE
/// stream is open from the current head, and reports the time from each 202 to the moment its
/// entry arrived on the stream.
pub async fn sse_latency(
    url: &str,
    key: &str,
    rate: f64,
    secs: f64,
    conns: usize,
) -> anyhow::Result<serde_json::Value> {
    let client = client(conns + 1)?;
    let after = head(&client, url, key).await?;
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut stream = client
        .get(format!("{url}/v1/feed/stream?after={after}"))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?;
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = String::new();
            while let Ok(Some(chunk)) = stream.chunk().await {
                let now = Instant::now();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    for line in frame.lines() {
                        if let Some(data) = line.strip_prefix("data:")
                            && let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim_start())
                            && let Some(id) = v["id"].as_str()
                            && let Ok(mut s) = seen.lock()
                        {
                            s.insert(id.to_owned(), now);
                        }
                    }
                }
            }
        })
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let mut senders = Vec::new();
    for c in 0..conns {
        let (client, accepted) = (client.clone(), accepted.clone());
        let (post, key) = (format!("{url}/v1/events"), key.to_owned());
        senders.push(tokio::spawn(async move {
            let mut next = start + interval.mul_f64(c as f64 / conns as f64);
            while next < deadline {
                tokio::time::sleep_until(next.into()).await;
                next += interval;
                let r = client
                    .post(&post)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(BODY)
                    .send()
                    .await;
                let at = Instant::now();
                if let Ok(r) = r
                    && r.status() == 202
                    && let Ok(v) = r.json::<serde_json::Value>().await
                    && let Some(id) = v["id"].as_str()
                    && let Ok(mut a) = accepted.lock()
                {
                    a.insert(id.to_owned(), at);
                }
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    // The last entries: wait until every accepted id has arrived, or 10 s.
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        let done = {
            let (a, s) = (
                accepted.lock().map_err(|_| anyhow::anyhow!("poisoned"))?,
                seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?,
            );
            a.keys().all(|id| s.contains_key(id))
        };
        if done || Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.abort();
    let a = accepted.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut lat: Vec<f64> = a
        .iter()
        .filter_map(|(id, at)| {
            s.get(id)
                .map(|seen| seen.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    let missing = a.len() - lat.len();
    Ok(serde_json::json!({
        "bench": "feed_sse",
        "offered_per_sec": rate,
        "accepted": a.len(),
        "missing": missing,
        "p50_ms": percentile(&mut lat, 50.0),
        "p99_ms": percentile(&mut lat, 99.0),
        "max_ms": lat.last().copied(),
    }))
}

/// Fills the feed with `events` (batches of 100), waits until they are all stored, then pages
/// through them with `limit=1000` `runs` times; reports entries per second of each pass.
pub async fn read_rate(url: &str, key: &str, events: usize, runs: usize) -> anyhow::Result<serde_json::Value> {
    let client = client(16)?;
    let start_head = head(&client, url, key).await?;
    let batch: String = format!("[{}]", std::iter::repeat_n(BODY, 100).collect::<Vec<_>>().join(","));
    let mut posts = Vec::new();
    for chunk in 0..events.div_ceil(100) {
        let (client, url, key, body) = (client.clone(), url.to_owned(), key.to_owned(), batch.clone());
        posts.push(tokio::spawn(async move {
            let _ = chunk;
            client
                .post(format!("{url}/v1/events"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
        if posts.len() >= 16 {
            for p in posts.drain(..) {
                anyhow::ensure!(p.await?? == 202, "a batch was refused");
            }
        }
    }
    for p in posts {
        anyhow::ensure!(p.await?? == 202, "a batch was refused");
    }
    let wanted = events.div_ceil(100) * 100;
    let filled = Instant::now() + Duration::from_secs(300);
    loop {
        let h = head(&client, url, key).await?;
        if h >= start_head + wanted as u64 {
            break;
        }
        anyhow::ensure!(Instant::now() < filled, "the feed did not fill: {h} of {wanted}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut rates = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let (mut after, mut n) = (start_head, 0usize);
        loop {
            let page: serde_json::Value = client
                .get(format!("{url}/v1/feed?after={after}&limit=1000"))
                .bearer_auth(key)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let got = page["entries"].as_array().map_or(0, Vec::len);
            let next = page["next_after"].as_u64().unwrap_or(after);
            n += got;
            if got == 0 || next == after {
                break;
            }
            after = next;
        }
        rates.push(n as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "bench": "feed_read",
        "entries": wanted,
        "page": 1000,
        "entries_per_sec": rates.get(rates.len() / 2).copied(),
        "min_entries_per_sec": rates.first().copied(),
        "max_entries_per_sec": rates.last().copied(),
    }))
}
