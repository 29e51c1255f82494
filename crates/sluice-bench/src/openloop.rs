//! Request latency at a fixed offered rate, measured open-loop and free of coordinated omission
//! (the approach of `wrk2`).
//!
//! A closed-loop client (`wrk`, or [`crate::intake`]) sends a connection's next request only once
//! the previous one is answered. When the server stalls, the client stalls with it: the requests
//! that would have arrived during the stall are never sent, so the stall shows up as one slow
//! sample instead of the many slow answers real users arriving on their own schedule would have
//! seen. That is *coordinated omission*, and it hides exactly the tail a latency percentile is
//! meant to show.
//!
//! Here the schedule is fixed before the run: request `i` of the run is due at `start + i / rate`,
//! and the requests are dealt round-robin to the connections, each of which sends its own share in
//! order, sleeping until the next one is due when it is early and never skipping one when it is
//! late. Each latency is measured from the request's *intended* send time to its complete
//! response, so time a request spent waiting behind a slow answer counts, as it would for a client
//! that had arrived on time. The latency from the actual send (what a closed-loop generator would
//! report) and the send lag are reported next to it.
//!
//! The timer wakes a connection up to about a millisecond after a request is due (tokio's timer
//! resolution); that lag is part of the measured latency, as it would be in `wrk2`.

use crate::stats::percentile;
use std::time::{Duration, Instant};

/// The event every request posts: the same body as [`crate::e2e`].
const BODY: &str = r#"{"type":"bench.event","data":{"n":1,"user":"u-123","tags":["a","b"],"amount":12.5}}"#;

/// The client's timeout for one request; also how long after the end of the schedule a
/// connection that is still behind keeps sending before it gives up on the rest of its share.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What to drive.
#[derive(Debug, Clone)]
pub struct Params {
    /// `http://127.0.0.1:PORT` of a running `sluice serve`.
    pub url: String,
    /// An API key.
    pub key: String,
    /// Offered load: total requests per second across all connections.
    pub rate: f64,
    /// How long the schedule runs.
    pub duration: Duration,
    /// Concurrent connections.
    pub conns: usize,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// Any other status.
    Refused,
    /// No answer: a connection error or the client's timeout.
    Error,
}

/// One request's times, as offsets from the start of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the schedule said to send it.
    pub intended: Duration,
    /// When it was sent (never before `intended`).
    pub sent: Duration,
    /// When its response was complete, or it failed.
    pub done: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

impl Sample {
    /// Milliseconds from the intended send time to the complete response: the coordinated-omission
    /// free latency.
    pub fn latency_ms(&self) -> f64 {
        ms(self.done.saturating_sub(self.intended))
    }

    /// Milliseconds from the actual send to the complete response: what a closed-loop generator
    /// would report.
    pub fn service_ms(&self) -> f64 {
        ms(self.done.saturating_sub(self.sent))
    }

    /// Milliseconds the request was sent after it was due.
    pub fn send_lag_ms(&self) -> f64 {
        ms(self.sent.saturating_sub(self.intended))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Requests in a run of `duration` at `rate` per second: every `i` with `i / rate < duration`.
pub fn total_requests(rate: f64, duration: Duration) -> u64 {
    (rate * duration.as_secs_f64()).ceil() as u64
}

/// The intended send times (offsets from the start) of connection `conn`'s share of a run of
/// `total` requests at `rate` per second over `conns` connections: requests `conn`,
/// `conn + conns`, `conn + 2 * conns`, … with request `i` due at `i / rate`. `conns` must be at
/// least 1.
pub fn schedule(rate: f64, total: u64, conns: usize, conn: usize) -> impl Iterator<Item = Duration> {
    (conn as u64..total)
        .step_by(conns.max(1))
        .map(move |i| Duration::from_secs_f64(i as f64 / rate))
}

/// Sends the schedule and returns the JSON report.
pub async fn run(p: Params) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(p.rate.is_finite() && p.rate > 0.0, "--rate must be a positive number");
    anyhow::ensure!(!p.duration.is_zero(), "--secs must be positive");
    anyhow::ensure!(p.conns > 0, "--conns must be at least 1");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(p.conns)
        .timeout(TIMEOUT)
        .build()?;
    let total = total_requests(p.rate, p.duration);
    let url = format!("{}/v1/events", p.url.trim_end_matches('/'));
    let start = Instant::now();
    let give_up = start + p.duration + TIMEOUT;
    let mut tasks = Vec::with_capacity(p.conns);
    for c in 0..p.conns {
        let (client, url, key) = (client.clone(), url.clone(), p.key.clone());
        let (rate, conns) = (p.rate, p.conns);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut unsent = 0u64;
            for intended in schedule(rate, total, conns, c) {
                let due = start + intended;
                let now = Instant::now();
                if now >= give_up {
                    unsent += 1;
                    continue;
                }
                if due > now {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                let outcome = match client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(BODY)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let success = r.status().is_success();
                        match r.bytes().await {
                            Ok(_) if success => Outcome::Ok,
                            Ok(_) => Outcome::Refused,
                            Err(_) => Outcome::Error,
                        }
                    }
                    Err(_) => Outcome::Error,
                };
                samples.push(Sample {
                    intended,
                    sent: sent.duration_since(start),
                    done: Instant::now().duration_since(start),
                    outcome,
                });
            }
            (samples, unsent)
        }));
    }
    let mut samples = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut unsent = 0;
    for t in tasks {
        let (s, u) = t.await?;
        samples.extend(s);
        unsent += u;
    }
    Ok(summarize(&p, &samples, unsent))
}

/// The report over every request: latency percentiles over all responses (2xx or not; requests
/// that got no answer are counted as errors and have no latency), from the intended send time.
pub fn summarize(p: &Params, samples: &[Sample], unsent: u64) -> serde_json::Value {
    let answered: Vec<&Sample> = samples.iter().filter(|s| s.outcome != Outcome::Error).collect();
    let count = |o: Outcome| samples.iter().filter(|s| s.outcome == o).count();
    let ok = count(Outcome::Ok);
    let mut lat: Vec<f64> = answered.iter().map(|s| s.latency_ms()).collect();
    let mut service: Vec<f64> = answered.iter().map(|s| s.service_ms()).collect();
    let mut lag: Vec<f64> = samples.iter().map(Sample::send_lag_ms).collect();
    // Achieved over the schedule, or longer when the last answers came after it ended.
    let last = samples.iter().map(|s| s.done).max().unwrap_or_default();
    let elapsed = last.max(p.duration).as_secs_f64();
    serde_json::json!({
        "bench": "openloop",
        "rate": p.rate,
        "secs": p.duration.as_secs_f64(),
        "conns": p.conns,
        "scheduled": samples.len() as u64 + unsent,
        "sent": samples.len(),
        "unsent": unsent,
        "ok": ok,
        "refused": count(Outcome::Refused),
        "errors": count(Outcome::Error),
        "achieved_per_sec": ok as f64 / elapsed,
        "p50_ms": percentile(&mut lat, 50.0),
        "p90_ms": percentile(&mut lat, 90.0),
        "p99_ms": percentile(&mut lat, 99.0),
        "p999_ms": percentile(&mut lat, 99.9),
        "max_ms": percentile(&mut lat, 100.0),
        "service_p50_ms": percentile(&mut service, 50.0),
        "service_p99_ms": percentile(&mut service, 99.0),
        "service_max_ms": percentile(&mut service, 100.0),
        "send_lag_p99_ms": percentile(&mut lag, 99.0),
        "send_lag_max_ms": percentile(&mut lag, 100.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(rate: f64, secs: f64, conns: usize) -> Params {
        Params {
            url: String::new(),
            key: String::new(),
            rate,
            duration: Duration::from_secs_f64(secs),
            conns,
        }
    }

    #[test]
    fn the_schedule_deals_every_request_once_round_robin() {
        let (rate, conns) = (100.0, 3);
        let total = total_requests(rate, Duration::from_secs(1));
        assert_eq!(total, 100);
        assert_eq!(total_requests(500.0, Duration::from_secs(3)), 1500);
        assert_eq!(total_requests(2.5, Duration::from_secs(1)), 3); // 0, 0.4 and 0.8 s
        let shares: Vec<Vec<Duration>> = (0..conns).map(|c| schedule(rate, total, conns, c).collect()).collect();
        assert_eq!(shares[1][..2], [Duration::from_millis(10), Duration::from_millis(40)]);
        assert_eq!(shares.iter().map(Vec::len).collect::<Vec<_>>(), [34, 33, 33]);
        for share in &shares {
            assert!(share.windows(2).all(|w| w[0] < w[1]), "each connection sends in order");
        }
        let mut all: Vec<Duration> = shares.concat();
        all.sort();
        let expected: Vec<Duration> = (0..100).map(|i| Duration::from_secs_f64(f64::from(i) / rate)).collect();
        assert_eq!(all, expected);
    }

    /// One connection at 100 requests/s for 2 s against a server that answers in 1 ms, except once
    /// at 0.5 s when it stalls for a second. The requests due during the stall go out late, back to
    /// back, once it ends: measured from their intended times the stall shows in a tenth of the
    /// answers and more; measured from the actual sends (coordinated omission) it is one slow answer.
    #[test]
    fn a_stall_counts_for_every_request_due_during_it() {
        let p = params(100.0, 2.0, 1);
        let mut free_at = Duration::ZERO;
        let samples: Vec<Sample> = schedule(p.rate, total_requests(p.rate, p.duration), 1, 0)
            .map(|intended| {
                let sent = intended.max(free_at);
                let service = if intended == Duration::from_millis(500) {
                    Duration::from_secs(1)
                } else {
                    Duration::from_millis(1)
                };
                free_at = sent + service;
                Sample {
                    intended,
                    sent,
                    done: free_at,
                    outcome: Outcome::Ok,
                }
            })
            .collect();
        let r = summarize(&p, &samples, 0);
        assert_eq!(r["sent"], 200);
        assert_eq!(r["ok"], 200);
        let (p90, p99, max) = (
            r["p90_ms"].as_f64().unwrap(),
            r["p99_ms"].as_f64().unwrap(),
            r["max_ms"].as_f64().unwrap(),
        );
        assert!(p90 > 500.0, "p90 from intended times: {p90}");
        assert!(p99 > 900.0, "p99 from intended times: {p99}");
        assert!((max - 1000.0).abs() < 1e-6, "max: {max}");
        let service_p99 = r["service_p99_ms"].as_f64().unwrap();
        assert!((service_p99 - 1.0).abs() < 1e-6, "p99 from actual sends: {service_p99}");
        assert!(r["send_lag_max_ms"].as_f64().unwrap() > 900.0);
        // All 200 answered within the 2 s schedule plus the catch-up.
        let achieved = r["achieved_per_sec"].as_f64().unwrap();
        assert!(achieved > 95.0 && achieved <= 100.0, "achieved: {achieved}");
    }

    #[test]
    fn refusals_have_latencies_and_errors_do_not() {
        let p = params(10.0, 1.0, 1);
        let at = |ms: u64, outcome| Sample {
            intended: Duration::from_millis(ms),
            sent: Duration::from_millis(ms),
            done: Duration::from_millis(ms + 5),
            outcome,
        };
        let samples = [
            at(0, Outcome::Ok),
            at(100, Outcome::Refused),
            Sample {
                done: Duration::from_millis(10_200),
                ..at(200, Outcome::Error)
            },
        ];
        let r = summarize(&p, &samples, 2);
        assert_eq!(
            (r["ok"].as_u64(), r["refused"].as_u64(), r["errors"].as_u64()),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(
            (r["sent"].as_u64(), r["unsent"].as_u64(), r["scheduled"].as_u64()),
            (Some(3), Some(2), Some(5))
        );
        assert_eq!(r["max_ms"].as_f64(), Some(5.0));
    }
}
