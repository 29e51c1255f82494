//! `sluice cost`: what the deployed AWS shape costs per million events, and the most an attacker
//! can make it cost per hour under the configured throttles and reserved concurrency (D-2,
//! denial of wallet).
//!
//! The model follows one event through the deployed shape: an API Gateway REST request, the
//! Lambda authorizer (skipped on a cache hit), the ingest function sending to SQS, the event
//! source mapping receiving and deleting in batches, the process function putting each event into
//! DynamoDB, the query function reading, and CloudWatch Logs ingesting what all of them print.
//! Every price comes from the one dated table [`PRICES`]; every quantity is a parameter whose
//! default is the template's default (`infra/template.yaml`) or a measured duration
//! (`docs/benchmarks.md`). Free tiers are ignored: the figures are what a busy account pays.

use clap::Args as ClapArgs;
use serde::Serialize;
use std::fmt::Write as _;

/// List prices the model uses: one region, one date. Change them here and nowhere else.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prices {
    /// When these prices were read off the public AWS pricing pages.
    pub as_of: &'static str,
    /// The region they apply to.
    pub region: &'static str,
    /// API Gateway REST API, per million requests (first 333 million a month).
    pub apigw_rest_per_million: f64,
    /// Lambda on arm64 (Graviton), per GB-second (first 7.5 billion GB-s a month).
    pub lambda_arm64_per_gb_second: f64,
    /// Lambda, per million invocations.
    pub lambda_per_million_requests: f64,
    /// SQS standard queue, per million requests (each 64 KiB chunk of a request counts as one).
    pub sqs_per_million_requests: f64,
    /// DynamoDB on-demand, per million write request units (1 KB each).
    pub dynamodb_per_million_wru: f64,
    /// DynamoDB on-demand, per million read request units (4 KB strongly consistent each).
    pub dynamodb_per_million_rru: f64,
    /// CloudWatch Logs standard ingestion, per GiB.
    pub logs_per_gib: f64,
}

/// The price table: us-east-1 list prices as published on the AWS pricing pages in May 2025
/// (DynamoDB on-demand after the November 2024 reduction). Not fetched at run time: re-check
/// them before quoting a bill.
pub const PRICES: Prices = Prices {
    as_of: "2025-05-01",
    region: "us-east-1",
    apigw_rest_per_million: 3.50,
    lambda_arm64_per_gb_second: 0.000_013_333_4,
    lambda_per_million_requests: 0.20,
    sqs_per_million_requests: 0.40,
    dynamodb_per_million_wru: 0.625,
    dynamodb_per_million_rru: 0.125,
    logs_per_gib: 0.50,
};

/// SQS counts each 64 KiB of a request's payload as one request.
const SQS_CHUNK_BYTES: f64 = 64.0 * 1024.0;
/// SQS's most messages per `SendMessageBatch`.
const SQS_SEND_BATCH: f64 = 10.0;
/// What the envelope (ids, times, request id, source ip) and the message attributes (signature,
/// digest) add to an event's own JSON, in bytes.
const ENVELOPE_OVERHEAD_BYTES: f64 = 700.0;
/// What the stored item adds to the event's data (keys, type, times, request id), in bytes.
const ITEM_OVERHEAD_BYTES: f64 = 250.0;
/// Idle long polling by the event source mapping: 5 pollers, one 20 s receive each, all month.
const IDLE_RECEIVES_PER_MONTH: f64 = 5.0 * 3.0 * 60.0 * 24.0 * 30.0;

/// The deployed shape and its traffic. Defaults are `infra/template.yaml`'s parameter defaults
/// and the durations measured by `bench/run.sh`.
#[derive(Debug, Clone, ClapArgs, Serialize)]
pub struct Args {
    /// Events a month, for the monthly total.
    #[arg(long, default_value_t = 10_000_000.0)]
    pub events_per_month: f64,
    /// Events per `POST /v1/events` (1 to the batch limit).
    #[arg(long, default_value_t = 1.0)]
    pub events_per_request: f64,
    /// Average size of one event's JSON, in bytes.
    #[arg(long, default_value_t = 512.0)]
    pub event_bytes: f64,
    /// Reads (`GET`) per event written.
    #[arg(long, default_value_t = 0.1)]
    pub queries_per_event: f64,
    /// Share of ingest requests carrying an `Idempotency-Key` (two writes each: claim, complete).
    #[arg(long, default_value_t = 0.0)]
    pub idempotent_share: f64,
    /// Share of authorizer calls answered from API Gateway's authorizer cache.
    #[arg(long, default_value_t = 0.9)]
    pub authorizer_cache_hit: f64,
    /// Records per process invocation (the event source mapping's `BatchSize`).
    #[arg(long, default_value_t = 10.0)]
    pub batch_size: f64,
    /// Authorizer memory, MB.
    #[arg(long, default_value_t = 128.0)]
    pub authorizer_memory_mb: f64,
    /// Ingest function memory, MB.
    #[arg(long, default_value_t = 256.0)]
    pub ingest_memory_mb: f64,
    /// Process function memory, MB.
    #[arg(long, default_value_t = 256.0)]
    pub process_memory_mb: f64,
    /// Query function memory, MB.
    #[arg(long, default_value_t = 256.0)]
    pub query_memory_mb: f64,
    /// Warm authorizer duration, ms (one key lookup).
    #[arg(long, default_value_t = 6.0)]
    pub authorizer_ms: f64,
    /// Warm ingest duration for one event, ms (validation, sealing, one SQS send).
    #[arg(long, default_value_t = 12.0)]
    pub ingest_ms: f64,
    /// Warm ingest duration for a full batch, ms (the attacker's request).
    #[arg(long, default_value_t = 40.0)]
    pub ingest_full_batch_ms: f64,
    /// Warm process duration per batch, ms (concurrent conditional puts).
    #[arg(long, default_value_t = 30.0)]
    pub process_ms: f64,
    /// Warm query duration, ms.
    #[arg(long, default_value_t = 12.0)]
    pub query_ms: f64,
    /// Init duration of a cold start, ms (billed; measured under the Runtime API emulator).
    #[arg(long, default_value_t = 15.0)]
    pub init_ms: f64,
    /// Share of invocations that are cold starts.
    #[arg(long, default_value_t = 0.01)]
    pub cold_start_share: f64,
    /// Access-log bytes per API request.
    #[arg(long, default_value_t = 700.0)]
    pub log_bytes_per_request: f64,
    /// Platform log bytes per invocation (START, END, REPORT).
    #[arg(long, default_value_t = 300.0)]
    pub log_bytes_per_invocation: f64,
    /// Log bytes per processed record.
    #[arg(long, default_value_t = 350.0)]
    pub log_bytes_per_record: f64,
    /// API Gateway throttle of `POST /v1/events`: steady requests per second (`IngestRateLimit`).
    #[arg(long, default_value_t = 100.0)]
    pub throttle_rate: f64,
    /// API Gateway throttle of `POST /v1/events`: burst (`IngestBurstLimit`).
    #[arg(long, default_value_t = 200.0)]
    pub throttle_burst: f64,
    /// Reserved concurrency of the authorizer.
    #[arg(long, default_value_t = 20.0)]
    pub authorizer_reserved: f64,
    /// Reserved concurrency of the ingest function.
    #[arg(long, default_value_t = 50.0)]
    pub ingest_reserved: f64,
    /// Concurrency of the process function: the event source mapping's `MaximumConcurrency`
    /// (`ProcessMaxConcurrency`), which binds before its reserved concurrency.
    #[arg(long, default_value_t = 5.0)]
    pub process_reserved: f64,
    /// Most events in one request (`limits.max_batch`).
    #[arg(long, default_value_t = 100.0)]
    pub max_batch: f64,
    /// Largest request body (`limits.max_body_bytes`; API Gateway's own cap is 10 MB).
    #[arg(long, default_value_t = 262_144.0)]
    pub max_body_bytes: f64,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

impl Default for Args {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: Args,
        }
        // The clap defaults are the single source of the defaults.
        Wrapper::parse_from(["sluice-cost"]).args
    }
}

/// One priced line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// What is billed.
    pub item: &'static str,
    /// How many units.
    pub quantity: f64,
    /// The unit.
    pub unit: &'static str,
    /// US dollars.
    pub usd: f64,
}

/// A priced bill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bill {
    /// The lines.
    pub lines: Vec<Line>,
}

impl Bill {
    /// The sum of every line.
    pub fn total(&self) -> f64 {
        self.lines.iter().map(|l| l.usd).sum()
    }
}

/// Traffic to price: how many of each thing happen.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Traffic {
    events: f64,
    requests: f64,
    queries: f64,
    event_bytes: f64,
    events_per_request: f64,
    ingest_ms: f64,
    authorizer_cache_hit: f64,
}

fn gb(mb: f64) -> f64 {
    mb / 1024.0
}

/// Write request units for one item of `bytes`.
fn wru(bytes: f64) -> f64 {
    (bytes / 1024.0).ceil().max(1.0)
}

/// Prices `t` through the shape `a`.
fn price(a: &Args, p: &Prices, t: Traffic) -> Bill {
    let api_requests = t.requests + t.queries;
    let authorizer = api_requests * (1.0 - t.authorizer_cache_hit);
    let ingest = t.requests;
    let process = t.events / a.batch_size;
    let query = t.queries;
    let cold = a.cold_start_share * a.init_ms;
    let gbs = |inv: f64, mb: f64, ms: f64| inv * gb(mb) * (ms + cold) / 1000.0;
    let lambda_gbs = [
        (
            "Lambda authorizer",
            gbs(authorizer, a.authorizer_memory_mb, a.authorizer_ms),
        ),
        ("Lambda ingest", gbs(ingest, a.ingest_memory_mb, t.ingest_ms)),
        ("Lambda process", gbs(process, a.process_memory_mb, a.process_ms)),
        ("Lambda query", gbs(query, a.query_memory_mb, a.query_ms)),
    ];
    let invocations = authorizer + ingest + process + query;

    // SQS: each request sends its events in batches of 10, each batch billed per 64 KiB.
    let message_bytes = t.event_bytes + ENVELOPE_OVERHEAD_BYTES;
    let per_send = t.events_per_request.min(SQS_SEND_BATCH);
    let sends_per_request =
        (t.events_per_request / SQS_SEND_BATCH).ceil() * (per_send * message_bytes / SQS_CHUNK_BYTES).ceil();
    let sends = t.requests * sends_per_request;
    let receives = process * (a.batch_size * message_bytes / SQS_CHUNK_BYTES).ceil();
    let deletes = process;

    let event_wru = t.events * wru(t.event_bytes + ITEM_OVERHEAD_BYTES);
    let idempotency_wru = t.requests * a.idempotent_share * 2.0;
    // A key lookup per authorizer call and a strongly consistent read per query, each < 4 KB.
    let rru = authorizer + query * ((t.event_bytes + ITEM_OVERHEAD_BYTES) / 4096.0).ceil().max(1.0);

    let log_bytes = api_requests * a.log_bytes_per_request
        + invocations * a.log_bytes_per_invocation
        + t.events * a.log_bytes_per_record;
    let log_gib = log_bytes / (1024.0 * 1024.0 * 1024.0);

    let mut lines = vec![Line {
        item: "API Gateway REST requests",
        quantity: api_requests,
        unit: "requests",
        usd: api_requests * p.apigw_rest_per_million / 1e6,
    }];
    for (item, g) in lambda_gbs {
        lines.push(Line {
            item,
            quantity: g,
            unit: "GB-s",
            usd: g * p.lambda_arm64_per_gb_second,
        });
    }
    lines.extend([
        Line {
            item: "Lambda invocations",
            quantity: invocations,
            unit: "invocations",
            usd: invocations * p.lambda_per_million_requests / 1e6,
        },
        Line {
            item: "SQS send/receive/delete",
            quantity: sends + receives + deletes,
            unit: "requests",
            usd: (sends + receives + deletes) * p.sqs_per_million_requests / 1e6,
        },
        Line {
            item: "DynamoDB writes (events + idempotency)",
            quantity: event_wru + idempotency_wru,
            unit: "WRU",
            usd: (event_wru + idempotency_wru) * p.dynamodb_per_million_wru / 1e6,
        },
        Line {
            item: "DynamoDB reads (keys + queries)",
            quantity: rru,
            unit: "RRU",
            usd: rru * p.dynamodb_per_million_rru / 1e6,
        },
        Line {
            item: "CloudWatch Logs ingestion",
            quantity: log_gib,
            unit: "GiB",
            usd: log_gib * p.logs_per_gib,
        },
    ]);
    Bill { lines }
}

/// The bill for one million events of ordinary traffic.
pub fn per_million(a: &Args, p: &Prices) -> Bill {
    let events = 1e6;
    price(
        a,
        p,
        Traffic {
            events,
            requests: events / a.events_per_request,
            queries: events * a.queries_per_event,
            event_bytes: a.event_bytes,
            events_per_request: a.events_per_request,
            ingest_ms: a.ingest_ms,
            authorizer_cache_hit: a.authorizer_cache_hit,
        },
    )
}

/// Costs that do not scale with events: the event source mapping's idle long polls.
pub fn fixed_monthly(p: &Prices) -> f64 {
    IDLE_RECEIVES_PER_MONTH * p.sqs_per_million_requests / 1e6
}

/// What one hour of the worst attack costs, and how it is bounded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstCase {
    /// Which attack is the worst.
    pub attack: &'static str,
    /// Requests the throttle lets through in an hour (burst plus steady rate).
    pub throttled_requests: f64,
    /// Requests the reserved concurrency of the function in the path can serve in an hour.
    pub concurrency_cap: f64,
    /// Requests billed: the smaller of the two.
    pub requests: f64,
    /// Events those requests carry.
    pub events: f64,
    /// Hours the process function needs, at its reserved concurrency, to drain the backlog.
    pub drain_hours: f64,
    /// The bill the hour of attack causes, backlog included.
    pub bill: Bill,
}

/// The most an attacker can make the deployment cost with one hour of traffic, under the stage
/// throttle and the reserved concurrency. Two attacks are priced and the dearer one returned:
/// a stolen key sending full batches of the largest events (everything downstream runs), and
/// random keys (every request misses the authorizer cache and runs the authorizer). API Gateway
/// says it does not bill requests its authorizer refuses; they are counted anyway, as an upper
/// bound.
pub fn worst_case_hour(a: &Args, p: &Prices) -> WorstCase {
    let throttled = a.throttle_burst + a.throttle_rate * 3600.0;
    let per_hour = |reserved: f64, ms: f64| reserved * 3600.0 * 1000.0 / ms.max(1.0);

    // Stolen key: full batches of the largest events the body limit allows.
    let cap = per_hour(a.ingest_reserved, a.ingest_full_batch_ms);
    let requests = throttled.min(cap);
    let events = requests * a.max_batch;
    let event_bytes = (a.max_body_bytes / a.max_batch).max(1.0);
    let stolen = price(
        a,
        p,
        Traffic {
            events,
            requests,
            queries: 0.0,
            event_bytes,
            events_per_request: a.max_batch,
            ingest_ms: a.ingest_full_batch_ms,
            authorizer_cache_hit: a.authorizer_cache_hit,
        },
    );
    let drain_per_hour = per_hour(a.process_reserved, a.process_ms) * a.batch_size;
    let stolen = WorstCase {
        attack: "stolen key, full batches of the largest events",
        throttled_requests: throttled,
        concurrency_cap: cap,
        requests,
        events,
        drain_hours: events / drain_per_hour,
        bill: stolen,
    };

    // Random keys: only the authorizer runs; nothing reaches the queue.
    let cap = per_hour(a.authorizer_reserved, a.authorizer_ms);
    let requests = throttled.min(cap);
    let authorizer_calls = requests;
    let g = authorizer_calls * gb(a.authorizer_memory_mb) * (a.authorizer_ms + a.cold_start_share * a.init_ms) / 1000.0;
    let log_gib = requests * (a.log_bytes_per_request + a.log_bytes_per_invocation) / (1024.0 * 1024.0 * 1024.0);
    let random = WorstCase {
        attack: "random keys (authorizer cache misses)",
        throttled_requests: throttled,
        concurrency_cap: cap,
        requests,
        events: 0.0,
        drain_hours: 0.0,
        bill: Bill {
            lines: vec![
                Line {
                    item: "API Gateway REST requests",
                    quantity: requests,
                    unit: "requests",
                    usd: requests * p.apigw_rest_per_million / 1e6,
                },
                Line {
                    item: "Lambda authorizer",
                    quantity: g,
                    unit: "GB-s",
                    usd: g * p.lambda_arm64_per_gb_second,
                },
                Line {
                    item: "Lambda invocations",
                    quantity: authorizer_calls,
                    unit: "invocations",
                    usd: authorizer_calls * p.lambda_per_million_requests / 1e6,
                },
                Line {
                    item: "DynamoDB reads (keys + queries)",
                    quantity: authorizer_calls,
                    unit: "RRU",
                    usd: authorizer_calls * p.dynamodb_per_million_rru / 1e6,
                },
                Line {
                    item: "CloudWatch Logs ingestion",
                    quantity: log_gib,
                    unit: "GiB",
                    usd: log_gib * p.logs_per_gib,
                },
            ],
        },
    };
    if stolen.bill.total() >= random.bill.total() {
        stolen
    } else {
        random
    }
}

fn table(out: &mut String, bill: &Bill) {
    let _ = writeln!(out, "  {:<42} {:>16} {:<12} {:>12}", "item", "quantity", "unit", "USD");
    for l in &bill.lines {
        let _ = writeln!(
            out,
            "  {:<42} {:>16.2} {:<12} {:>12.4}",
            l.item, l.quantity, l.unit, l.usd
        );
    }
    let _ = writeln!(out, "  {:<42} {:>16} {:<12} {:>12.4}", "total", "", "", bill.total());
}

/// Renders the whole report as text.
pub fn report(a: &Args, p: &Prices) -> String {
    let per = per_million(a, p);
    let fixed = fixed_monthly(p);
    let monthly = per.total() * a.events_per_month / 1e6 + fixed;
    let worst = worst_case_hour(a, p);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Prices: {} list prices as of {} (free tiers ignored).",
        p.region, p.as_of
    );
    let _ = writeln!(
        out,
        "\nPer million events ({} per request, {} B each, {:.0}% authorizer cache hits, {} queries per event):",
        a.events_per_request,
        a.event_bytes,
        a.authorizer_cache_hit * 100.0,
        a.queries_per_event
    );
    table(&mut out, &per);
    let _ = writeln!(
        out,
        "\nMonthly at {:.0} events: ${monthly:.2} (including ${fixed:.2} of idle SQS polling).",
        a.events_per_month
    );
    let _ = writeln!(
        out,
        "\nWorst case an attacker can force per hour (D-2): {}",
        worst.attack
    );
    let _ = writeln!(
        out,
        "  throttle lets {:.0} requests through (burst {} + {} rps x 3600); reserved concurrency serves {:.0}; billed {:.0} requests, {:.0} events",
        worst.throttled_requests,
        a.throttle_burst,
        a.throttle_rate,
        worst.concurrency_cap,
        worst.requests,
        worst.events
    );
    if worst.events > 0.0 {
        let _ = writeln!(
            out,
            "  the process function drains that backlog in {:.1} h at its reserved concurrency",
            worst.drain_hours
        );
    }
    table(&mut out, &worst.bill);
    let _ = writeln!(
        out,
        "  = ${:.2} per hour of attack, ${:.2} per day",
        worst.bill.total(),
        worst.bill.total() * 24.0
    );
    out
}

/// `sluice cost`: prints the report.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events_per_request >= 1.0,
        "--events-per-request must be at least 1"
    );
    anyhow::ensure!(
        (1.0..=10_000.0).contains(&args.batch_size),
        "--batch-size must be 1 to 10000"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.authorizer_cache_hit)
            && (0.0..=1.0).contains(&args.idempotent_share)
            && (0.0..=1.0).contains(&args.cold_start_share),
        "shares must be between 0 and 1"
    );
    if args.json {
        let v = serde_json::json!({
            "prices": PRICES,
            "args": args,
            "per_million_events": per_million(&args, &PRICES),
            "per_million_events_usd": per_million(&args, &PRICES).total(),
            "fixed_monthly_usd": fixed_monthly(&PRICES),
            "worst_case_hour": worst_case_hour(&args, &PRICES),
        });
        println!("{v:#}");
    } else {
        print!("{}", report(&args, &PRICES));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    fn line<'a>(bill: &'a Bill, item: &str) -> &'a Line {
        bill.lines.iter().find(|l| l.item == item).unwrap()
    }

    /// A shape simple enough to price by hand.
    fn simple() -> Args {
        Args {
            events_per_request: 1.0,
            event_bytes: 512.0,
            queries_per_event: 0.0,
            idempotent_share: 0.0,
            authorizer_cache_hit: 0.5,
            batch_size: 10.0,
            authorizer_memory_mb: 128.0,
            ingest_memory_mb: 128.0,
            process_memory_mb: 128.0,
            query_memory_mb: 128.0,
            authorizer_ms: 5.0,
            ingest_ms: 10.0,
            process_ms: 50.0,
            init_ms: 0.0,
            cold_start_share: 0.0,
            log_bytes_per_request: 1000.0,
            log_bytes_per_invocation: 0.0,
            log_bytes_per_record: 0.0,
            ..Args::default()
        }
    }

    #[test]
    fn one_million_single_events_price_as_computed_by_hand() {
        let bill = per_million(&simple(), &PRICES);
        // 1e6 requests x $3.50/M.
        assert!(close(line(&bill, "API Gateway REST requests").usd, 3.50));
        // Authorizer: 0.5e6 calls x 0.125 GB x 0.005 s = 312.5 GB-s.
        assert!(close(line(&bill, "Lambda authorizer").quantity, 312.5));
        assert!(close(line(&bill, "Lambda authorizer").usd, 312.5 * 0.000_013_333_4));
        // Ingest: 1e6 x 0.125 x 0.010 = 1250 GB-s; process: 1e5 batches x 0.125 x 0.05 = 625 GB-s.
        assert!(close(line(&bill, "Lambda ingest").quantity, 1250.0));
        assert!(close(line(&bill, "Lambda process").quantity, 625.0));
        // Invocations: 0.5e6 + 1e6 + 1e5 = 1.6e6 x $0.20/M.
        assert!(close(line(&bill, "Lambda invocations").usd, 0.32));
        // SQS: 1e6 sends + 1e5 receives + 1e5 deletes = 1.2e6 x $0.40/M.
        assert!(close(line(&bill, "SQS send/receive/delete").usd, 0.48));
        // DynamoDB: one WRU per event (762 B items), one RRU per key lookup.
        assert!(close(line(&bill, "DynamoDB writes (events + idempotency)").usd, 0.625));
        assert!(close(line(&bill, "DynamoDB reads (keys + queries)").usd, 0.0625));
        // Logs: 1e9 bytes = 0.931 GiB x $0.50.
        assert!(close(
            line(&bill, "CloudWatch Logs ingestion").usd,
            1e9 / 1_073_741_824.0 * 0.5
        ));
        let by_hand =
            3.50 + (312.5 + 1250.0 + 625.0) * 0.000_013_333_4 + 0.32 + 0.48 + 0.625 + 0.0625 + 0.465_661_287_3;
        assert!((bill.total() - by_hand).abs() < 1e-6, "{} vs {by_hand}", bill.total());
    }

    #[test]
    fn batching_requests_divides_the_per_request_costs() {
        let mut a = simple();
        a.events_per_request = 100.0;
        let bill = per_million(&a, &PRICES);
        // 1e4 requests; each sends 10 batches of 10 x 1212 B (one 64 KiB chunk each).
        assert!(close(line(&bill, "API Gateway REST requests").quantity, 1e4));
        assert!(close(line(&bill, "SQS send/receive/delete").quantity, 1e5 + 1e5 + 1e5));
        // Writes do not shrink: one item per event.
        assert!(close(
            line(&bill, "DynamoDB writes (events + idempotency)").quantity,
            1e6
        ));
    }

    #[test]
    fn idempotency_keys_cost_two_writes_per_request_and_cold_starts_bill_init() {
        let mut a = simple();
        a.idempotent_share = 1.0;
        a.cold_start_share = 0.1;
        a.init_ms = 20.0;
        let bill = per_million(&a, &PRICES);
        assert!(close(
            line(&bill, "DynamoDB writes (events + idempotency)").quantity,
            3e6
        ));
        // Ingest: 1e6 x 0.125 GB x (10 + 0.1 x 20) ms = 1500 GB-s.
        assert!(close(line(&bill, "Lambda ingest").quantity, 1500.0));
    }

    #[test]
    fn d2_the_worst_hour_is_bounded_by_the_throttle_and_reserved_concurrency() {
        let mut a = simple();
        a.throttle_rate = 10.0;
        a.throttle_burst = 20.0;
        a.max_batch = 100.0;
        a.max_body_bytes = 102_400.0;
        a.ingest_reserved = 10.0;
        a.ingest_full_batch_ms = 40.0;
        a.process_reserved = 5.0;
        let w = worst_case_hour(&a, &PRICES);
        assert_eq!(w.attack, "stolen key, full batches of the largest events");
        // The throttle (20 + 36 000) binds before concurrency (10 x 3.6e6 / 40 = 900 000).
        assert!(close(w.throttled_requests, 36_020.0));
        assert!(close(w.concurrency_cap, 900_000.0));
        assert!(close(w.requests, 36_020.0));
        assert!(close(w.events, 3_602_000.0));
        // 1024 B events + 250 B of item = 2 WRU each.
        assert!(close(
            line(&w.bill, "DynamoDB writes (events + idempotency)").quantity,
            7_204_000.0
        ));
        // Process drains 5 x 3.6e6 / 50 x 10 = 3.6e6 events an hour.
        assert!(close(w.drain_hours, 3_602_000.0 / 3_600_000.0));
        // API Gateway: 36 020 x $3.50/M.
        assert!(close(
            line(&w.bill, "API Gateway REST requests").usd,
            36_020.0 * 3.5 / 1e6
        ));

        // With a tiny ingest concurrency, concurrency binds instead.
        a.ingest_reserved = 0.1;
        let w = worst_case_hour(&a, &PRICES);
        assert!(close(w.requests, 9_000.0));
    }

    #[test]
    fn d2_raising_the_throttle_raises_the_worst_case_and_the_report_says_so() {
        let a = Args::default();
        let mut b = Args::default();
        b.throttle_rate *= 10.0;
        b.ingest_reserved *= 10.0;
        let (wa, wb) = (worst_case_hour(&a, &PRICES), worst_case_hour(&b, &PRICES));
        assert!(wb.bill.total() > wa.bill.total() * 5.0);
        let text = report(&a, &PRICES);
        assert!(text.contains(PRICES.as_of));
        assert!(text.contains("per hour of attack"));
    }

    #[test]
    fn nonsense_parameters_are_refused() {
        let a = Args {
            authorizer_cache_hit: 1.5,
            ..Args::default()
        };
        assert!(run(a).is_err());
        let a = Args {
            events_per_request: 0.0,
            ..Args::default()
        };
        assert!(run(a).is_err());
    }
}
