//! `sluice cost`: what the deployed AWS shape costs per million events, on the REST API or the
//! HTTP API variant, how far that is from the architecture's floor, and the most one stolen key
//! (or a flood of random keys) can make it cost (D-2, denial of wallet).
//!
//! The model follows one event through the deployed shape: an API Gateway request, the Lambda
//! authorizer (skipped on a cache hit), the ingest function sending to SQS, the event source
//! mapping receiving and deleting in batches, the process function putting each event into
//! DynamoDB, and CloudWatch Logs ingesting what all of them print. Reads (`GET`) are priced on
//! their own, per million reads. Every price comes from the one dated table [`PRICES`]; every
//! quantity is a parameter whose default is the template's default (`infra/template.yaml`) or a
//! measured duration (`docs/benchmarks.md`). Free tiers are ignored: the figures are what a busy
//! account pays.
//!
//! Logs: API Gateway's access log records every request (one short JSON line, in the
//! infrequent-access log class); the functions log at `INFO` only the requests and records that
//! failed (a successful request or record is in the access log and the stored event), and their
//! `SystemLogLevel: WARN` drops Lambda's START, END and REPORT lines.

use clap::{Args as ClapArgs, ValueEnum};
use serde::Serialize;
use std::fmt::Write as _;

/// List prices the model uses: one region, one date. Change them here and nowhere else.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prices {
    /// When these prices were last compared with the public AWS pricing pages.
    pub as_of: &'static str,
    /// The region they apply to.
    pub region: &'static str,
    /// API Gateway REST API, per million requests (first 333 million a month).
    pub apigw_rest_per_million: f64,
    /// API Gateway HTTP API, per million requests of up to 512 KB (first 300 million a month).
    pub apigw_http_per_million: f64,
    /// Lambda on arm64 (Graviton), per GB-second (first 7.5 billion GB-s a month).
    pub lambda_arm64_per_gb_second: f64,
    /// Lambda, per million invocations.
    pub lambda_per_million_requests: f64,
    /// SQS standard queue (fair queues included), per million requests (each 64 KiB chunk of a
    /// request counts as one).
    pub sqs_per_million_requests: f64,
    /// DynamoDB on-demand, per million write request units (1 KB each).
    pub dynamodb_per_million_wru: f64,
    /// DynamoDB on-demand, per million read request units (4 KB strongly consistent each).
    pub dynamodb_per_million_rru: f64,
    /// CloudWatch Logs, standard class, ingestion per GiB (Lambda's first tier).
    pub logs_per_gib: f64,
    /// CloudWatch Logs, infrequent-access class, ingestion per GiB (the API access logs).
    pub logs_infrequent_per_gib: f64,
}

/// The price table: us-east-1 list prices, compared on 2026-12-05 with the AWS pricing pages of
/// API Gateway, Lambda, SQS, DynamoDB (on-demand, after the November 2024 reduction) and
/// CloudWatch. Not fetched at run time: re-check them before quoting a bill.
pub const PRICES: Prices = Prices {
    as_of: "2026-12-05",
    region: "us-east-1",
    apigw_rest_per_million: 3.50,
    apigw_http_per_million: 1.00,
    lambda_arm64_per_gb_second: 0.000_013_333_4,
    lambda_per_million_requests: 0.20,
    sqs_per_million_requests: 0.40,
    dynamodb_per_million_wru: 0.625,
    dynamodb_per_million_rru: 0.125,
    logs_per_gib: 0.50,
    logs_infrequent_per_gib: 0.25,
};

/// SQS counts each 64 KiB of a request's payload as one request.
const SQS_CHUNK_BYTES: f64 = 64.0 * 1024.0;
/// SQS's most messages per `SendMessageBatch`.
const SQS_SEND_BATCH: f64 = 10.0;
/// What the envelope (ids, times, request id, source ip) and the message attributes (signature,
/// tenant, event id) add to an event's own JSON, in bytes.
const ENVELOPE_OVERHEAD_BYTES: f64 = 700.0;
/// What the stored item adds to the event's data (keys, type, times, request id), in bytes.
const ITEM_OVERHEAD_BYTES: f64 = 250.0;
/// What CloudWatch Logs bills per log event beyond its message.
const LOG_EVENT_OVERHEAD_BYTES: f64 = 26.0;
/// Idle long polling by the event source mapping: 5 pollers, one 20 s receive each, all month.
const IDLE_RECEIVES_PER_MONTH: f64 = 5.0 * 3.0 * 60.0 * 24.0 * 30.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Which API Gateway the template deploys (`ApiType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// The REST API: usage plans per tenant, request validation, WAF, X-Ray.
    Rest,
    /// The HTTP API: cheaper requests, route-level limits only.
    Http,
}

impl Api {
    fn per_million(self, p: &Prices) -> f64 {
        match self {
            Api::Rest => p.apigw_rest_per_million,
            Api::Http => p.apigw_http_per_million,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Api::Rest => "REST",
            Api::Http => "HTTP",
        }
    }

    /// Bytes of one access log line for a 202 of `POST /v1/events`, as the template formats it
    /// (`infra/README.md`), plus CloudWatch's per-event overhead.
    fn access_log_bytes(self) -> f64 {
        match self {
            Api::Rest => 243.0 + LOG_EVENT_OVERHEAD_BYTES,
            Api::Http => 271.0 + LOG_EVENT_OVERHEAD_BYTES,
        }
    }
}

/// The deployed shape and its traffic. Defaults are `infra/template.yaml`'s parameter defaults
/// and the durations measured by `bench/run.sh`.
#[derive(Debug, Clone, ClapArgs, Serialize)]
pub struct Args {
    /// The API variant (`ApiType`).
    #[arg(long, value_enum, default_value_t = Api::Rest)]
    pub api: Api,
    /// Events a month, for the monthly total.
    #[arg(long, default_value_t = 10_000_000.0)]
    pub events_per_month: f64,
    /// Events per `POST /v1/events` (1 to the batch limit).
    #[arg(long, default_value_t = 1.0)]
    pub events_per_request: f64,
    /// Average size of one event's JSON, in bytes.
    #[arg(long, default_value_t = 512.0)]
    pub event_bytes: f64,
    /// Reads (`GET`) per event written, for the monthly total (priced per million reads).
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
    /// Share of events with a `subject` (each costs the process step one read of its erasure
    /// marker).
    #[arg(long, default_value_t = 0.0)]
    pub subject_share: f64,
    /// Partitions per tenant in the events table (the template's `EventShards`).
    #[arg(long, default_value_t = 32.0)]
    pub event_shards: f64,
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
    /// Warm ingest duration for a full batch (`--max-batch` events), ms; a request of n events
    /// takes the straight line between the two.
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
    /// Access-log bytes per API request (default: the template's line for the chosen API).
    #[arg(long)]
    pub log_bytes_per_request: Option<f64>,
    /// Function log bytes per successful request or record (0 at the template's INFO level).
    #[arg(long, default_value_t = 0.0)]
    pub log_bytes_per_success: f64,
    /// Share of requests and of records that fail and are logged in full.
    #[arg(long, default_value_t = 0.01)]
    pub failure_share: f64,
    /// Function log bytes per failed request or record.
    #[arg(long, default_value_t = 600.0)]
    pub log_bytes_per_failure: f64,
    /// `POST /v1/events`'s method throttle: steady requests per second (`IngestRateLimit`).
    #[arg(long, default_value_t = 100.0)]
    pub throttle_rate: f64,
    /// `POST /v1/events`'s method throttle: burst (`IngestBurstLimit`).
    #[arg(long, default_value_t = 200.0)]
    pub throttle_burst: f64,
    /// The default usage plan's rate per tenant (`TenantRateLimit`; REST API only).
    #[arg(long, default_value_t = 10.0)]
    pub tenant_rate: f64,
    /// The default usage plan's burst per tenant (`TenantBurstLimit`).
    #[arg(long, default_value_t = 20.0)]
    pub tenant_burst: f64,
    /// The default usage plan's requests per UTC day per tenant (`TenantQuotaPerDay`).
    #[arg(long, default_value_t = 20_000.0)]
    pub tenant_quota_per_day: f64,
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
    /// Largest request body (`limits.max_body_bytes`).
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

impl Args {
    fn access_log_bytes(&self) -> f64 {
        self.log_bytes_per_request
            .unwrap_or_else(|| self.api.access_log_bytes())
    }

    /// Warm ingest duration of a request of `n` events.
    fn ingest_ms_for(&self, n: f64) -> f64 {
        let span = (self.max_batch - 1.0).max(1.0);
        self.ingest_ms + (self.ingest_full_batch_ms - self.ingest_ms) * ((n - 1.0) / span).clamp(0.0, 1.0)
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

/// Intake traffic to price: how many of each thing happen.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Traffic {
    events: f64,
    requests: f64,
    event_bytes: f64,
    events_per_request: f64,
}

fn gb(mb: f64) -> f64 {
    mb / 1024.0
}

/// Write units one stored event costs on the feed's layout: the slot holding the event, its id
/// pointer, and `1 / batch` of the per-tenant counter update that hands the batch its seqs
/// (`sluice-aws/src/dynamo/feed.rs`). 3 at one event per batch, 2.1 at ten, for events up to
/// 774 B (1 KB with the item's attribute names).
pub fn feed_wcu_per_event(event_bytes: f64, batch: f64) -> f64 {
    wru(event_bytes + ITEM_OVERHEAD_BYTES) + 1.0 + 1.0 / batch.max(1.0)
}

/// The most events per second one tenant can store on DynamoDB: every partition key takes at
/// most 1,000 write units a second; a tenant's slots and pointers spread over `shards`
/// partitions each, and its counter is one item updated once per batch.
pub fn tenant_ceiling_per_sec(event_bytes: f64, shards: f64, batch: f64) -> f64 {
    let by_shards = 1000.0 * shards / wru(event_bytes + ITEM_OVERHEAD_BYTES);
    let by_counter = 1000.0 * batch.max(1.0);
    by_shards.min(by_counter)
}

/// Write request units for one item of `bytes`.
fn wru(bytes: f64) -> f64 {
    (bytes / 1024.0).ceil().max(1.0)
}

/// Billed GB-seconds of `invocations` of a function of `mb` taking `ms` (plus cold starts).
fn gbs(a: &Args, invocations: f64, mb: f64, ms: f64) -> f64 {
    invocations * gb(mb) * (ms + a.cold_start_share * a.init_ms) / 1000.0
}

/// Prices intake traffic `t` through the shape `a`.
fn price(a: &Args, p: &Prices, t: Traffic) -> Bill {
    let authorizer = t.requests * (1.0 - a.authorizer_cache_hit);
    let process = t.events / a.batch_size;
    let lambda_gbs = [
        (
            "Lambda authorizer",
            gbs(a, authorizer, a.authorizer_memory_mb, a.authorizer_ms),
        ),
        (
            "Lambda ingest",
            gbs(a, t.requests, a.ingest_memory_mb, a.ingest_ms_for(t.events_per_request)),
        ),
        ("Lambda process", gbs(a, process, a.process_memory_mb, a.process_ms)),
    ];
    let invocations = authorizer + t.requests + process;

    // SQS: each request sends its events in batches of 10, each batch billed per 64 KiB.
    let message_bytes = t.event_bytes + ENVELOPE_OVERHEAD_BYTES;
    let per_send = t.events_per_request.min(SQS_SEND_BATCH);
    let sends_per_request =
        (t.events_per_request / SQS_SEND_BATCH).ceil() * (per_send * message_bytes / SQS_CHUNK_BYTES).ceil();
    let sends = t.requests * sends_per_request;
    let receives = process * (a.batch_size * message_bytes / SQS_CHUNK_BYTES).ceil();
    let deletes = process;

    // Each event: its feed slot (the event itself), its id pointer (one unit), and its share of
    // the batch's one feed counter update (see `feed_wcu_per_event`).
    let event_wru = t.events * feed_wcu_per_event(t.event_bytes, a.batch_size);
    let idempotency_wru = t.requests * a.idempotent_share * 2.0;
    // A key lookup per authorizer call, under 4 KB; the process step reads the erasure marker
    // of each event that has a subject.
    let rru = authorizer + t.events * a.subject_share;

    let access_gib = t.requests * a.access_log_bytes() / GIB;
    let function_log_bytes = (t.requests + t.events)
        * (a.failure_share * a.log_bytes_per_failure + (1.0 - a.failure_share) * a.log_bytes_per_success);
    let function_gib = function_log_bytes / GIB;

    let mut lines = vec![Line {
        item: match a.api {
            Api::Rest => "API Gateway REST requests",
            Api::Http => "API Gateway HTTP requests",
        },
        quantity: t.requests,
        unit: "requests",
        usd: t.requests * a.api.per_million(p) / 1e6,
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
            item: "DynamoDB writes (events + feed + idempotency)",
            quantity: event_wru + idempotency_wru,
            unit: "WRU",
            usd: (event_wru + idempotency_wru) * p.dynamodb_per_million_wru / 1e6,
        },
        Line {
            item: "DynamoDB reads (key lookups)",
            quantity: rru,
            unit: "RRU",
            usd: rru * p.dynamodb_per_million_rru / 1e6,
        },
        Line {
            item: "Logs: API access log (infrequent access)",
            quantity: access_gib,
            unit: "GiB",
            usd: access_gib * p.logs_infrequent_per_gib,
        },
        Line {
            item: "Logs: functions (failures in full)",
            quantity: function_gib,
            unit: "GiB",
            usd: function_gib * p.logs_per_gib,
        },
    ]);
    Bill { lines }
}

/// The bill for one million events of ordinary traffic, reads excluded.
pub fn per_million(a: &Args, p: &Prices) -> Bill {
    let events = 1e6;
    price(
        a,
        p,
        Traffic {
            events,
            requests: events / a.events_per_request,
            event_bytes: a.event_bytes,
            events_per_request: a.events_per_request,
        },
    )
}

/// The bill for one million reads (`GET /v1/events/{id}` or a page of a list).
pub fn per_million_reads(a: &Args, p: &Prices) -> Bill {
    let reads = 1e6;
    let authorizer = reads * (1.0 - a.authorizer_cache_hit);
    let g = gbs(a, reads, a.query_memory_mb, a.query_ms) + gbs(a, authorizer, a.authorizer_memory_mb, a.authorizer_ms);
    let rru = authorizer + reads * ((a.event_bytes + ITEM_OVERHEAD_BYTES) / 4096.0).ceil().max(1.0);
    let log_gib = reads * a.access_log_bytes() / GIB;
    Bill {
        lines: vec![
            Line {
                item: "API Gateway requests",
                quantity: reads,
                unit: "requests",
                usd: reads * a.api.per_million(p) / 1e6,
            },
            Line {
                item: "Lambda query and authorizer",
                quantity: g,
                unit: "GB-s",
                usd: g * p.lambda_arm64_per_gb_second,
            },
            Line {
                item: "Lambda invocations",
                quantity: reads + authorizer,
                unit: "invocations",
                usd: (reads + authorizer) * p.lambda_per_million_requests / 1e6,
            },
            Line {
                item: "DynamoDB reads (items + key lookups)",
                quantity: rru,
                unit: "RRU",
                usd: rru * p.dynamodb_per_million_rru / 1e6,
            },
            Line {
                item: "Logs: API access log (infrequent access)",
                quantity: log_gib,
                unit: "GiB",
                usd: log_gib * p.logs_infrequent_per_gib,
            },
        ],
    }
}

/// The floor of this architecture for a million single events: an HTTP API request, an ingest
/// and a tenth of a process invocation, an SQS send and the batch's share of a receive and a
/// delete, and the feed's 2.1 DynamoDB write units per event (slot, id pointer, a tenth of a
/// counter update); nothing for compute time, the authorizer or logs. About $3.0.
pub fn floor_per_million(p: &Prices) -> f64 {
    let events = 1e6;
    p.apigw_http_per_million
        + 1.1 * p.lambda_per_million_requests
        + 1.2 * p.sqs_per_million_requests
        + p.dynamodb_per_million_wru * feed_wcu_per_event(0.0, 10.0) * events / 1e6
}

/// Costs that do not scale with events: the event source mapping's idle long polls.
pub fn fixed_monthly(p: &Prices) -> f64 {
    IDLE_RECEIVES_PER_MONTH * p.sqs_per_million_requests / 1e6
}

/// What an attack costs, and what bounds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attack {
    /// The attack.
    pub attack: &'static str,
    /// What limits the requests billed.
    pub bound: &'static str,
    /// Requests billed in the worst hour.
    pub requests_per_hour: f64,
    /// Requests billed in the worst UTC day.
    pub requests_per_day: f64,
    /// Events those requests carry in an hour.
    pub events_per_hour: f64,
    /// Hours the process function needs, at its concurrency, to drain an hour's backlog.
    pub drain_hours: f64,
    /// The bill of the worst hour, backlog included.
    pub hour: Bill,
    /// The worst UTC day, in US dollars.
    pub usd_per_day: f64,
}

/// Requests a token bucket of `rate` and `burst` lets through in `secs`.
fn bucket(rate: f64, burst: f64, secs: f64) -> f64 {
    burst + rate * secs
}

/// One stolen key sending full batches of the largest events the body limit allows: every
/// request runs everything downstream. On the REST API its tenant's usage plan bounds it (the
/// default plan's rate, burst and daily quota); on the HTTP API only the route throttle and the
/// ingest function's reserved concurrency do.
pub fn stolen_key(a: &Args, p: &Prices) -> Attack {
    let per_hour = |reserved: f64, ms: f64| reserved * 3600.0 * 1000.0 / ms.max(1.0);
    let concurrency = per_hour(a.ingest_reserved, a.ingest_full_batch_ms);
    let route_hour = bucket(a.throttle_rate, a.throttle_burst, 3600.0).min(concurrency);
    let route_day = bucket(a.throttle_rate, a.throttle_burst, 86_400.0).min(concurrency * 24.0);
    let (bound, hour, day) = match a.api {
        Api::Rest => {
            let plan_hour = bucket(a.tenant_rate, a.tenant_burst, 3600.0).min(a.tenant_quota_per_day);
            let plan_day = bucket(a.tenant_rate, a.tenant_burst, 86_400.0).min(a.tenant_quota_per_day);
            (
                "the tenant's usage plan (rate, burst, quota per day)",
                plan_hour.min(route_hour),
                plan_day.min(route_day),
            )
        }
        Api::Http => (
            "the route throttle and reserved concurrency only (HTTP APIs have no usage plans)",
            route_hour,
            route_day,
        ),
    };
    let event_bytes = (a.max_body_bytes / a.max_batch).max(1.0);
    let bill = |requests: f64| {
        price(
            a,
            p,
            Traffic {
                events: requests * a.max_batch,
                requests,
                event_bytes,
                events_per_request: a.max_batch,
            },
        )
    };
    let drain_per_hour = per_hour(a.process_reserved, a.process_ms) * a.batch_size;
    Attack {
        attack: "one stolen key, full batches of the largest events",
        bound,
        requests_per_hour: hour,
        requests_per_day: day,
        events_per_hour: hour * a.max_batch,
        drain_hours: hour * a.max_batch / drain_per_hour,
        hour: bill(hour),
        usd_per_day: bill(day).total(),
    }
}

/// Random keys: every request misses the authorizer cache and runs the authorizer; nothing
/// reaches the queue. Bounded by the method throttle and the authorizer's reserved concurrency.
/// API Gateway says it does not bill requests its authorizer refuses; they are counted anyway,
/// as an upper bound.
pub fn random_keys(a: &Args, p: &Prices) -> Attack {
    let concurrency = a.authorizer_reserved * 3600.0 * 1000.0 / a.authorizer_ms.max(1.0);
    let hour = bucket(a.throttle_rate, a.throttle_burst, 3600.0).min(concurrency);
    let day = bucket(a.throttle_rate, a.throttle_burst, 86_400.0).min(concurrency * 24.0);
    let bill = |requests: f64| {
        let g = gbs(a, requests, a.authorizer_memory_mb, a.authorizer_ms);
        let access_gib = requests * a.access_log_bytes() / GIB;
        let function_gib = requests * a.log_bytes_per_failure / GIB;
        Bill {
            lines: vec![
                Line {
                    item: "API Gateway requests",
                    quantity: requests,
                    unit: "requests",
                    usd: requests * a.api.per_million(p) / 1e6,
                },
                Line {
                    item: "Lambda authorizer",
                    quantity: g,
                    unit: "GB-s",
                    usd: g * p.lambda_arm64_per_gb_second,
                },
                Line {
                    item: "Lambda invocations",
                    quantity: requests,
                    unit: "invocations",
                    usd: requests * p.lambda_per_million_requests / 1e6,
                },
                Line {
                    item: "DynamoDB reads (key lookups)",
                    quantity: requests,
                    unit: "RRU",
                    usd: requests * p.dynamodb_per_million_rru / 1e6,
                },
                Line {
                    item: "Logs (access log, refusals in full)",
                    quantity: access_gib + function_gib,
                    unit: "GiB",
                    usd: access_gib * p.logs_infrequent_per_gib + function_gib * p.logs_per_gib,
                },
            ],
        }
    };
    Attack {
        attack: "random keys (authorizer cache misses)",
        bound: "the method throttle and the authorizer's reserved concurrency",
        requests_per_hour: hour,
        requests_per_day: day,
        events_per_hour: 0.0,
        drain_hours: 0.0,
        hour: bill(hour),
        usd_per_day: bill(day).total(),
    }
}

/// One row of the shapes table: an API variant at a batch size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shape {
    /// The API variant.
    pub api: Api,
    /// Events per request.
    pub events_per_request: f64,
    /// US dollars per million events.
    pub usd_per_million: f64,
    /// That over [`floor_per_million`].
    pub ratio_to_floor: f64,
}

/// Both variants at 1 and 10 events per request, the rest of `a` unchanged.
pub fn shapes(a: &Args, p: &Prices) -> Vec<Shape> {
    let floor = floor_per_million(p);
    let mut out = Vec::new();
    for api in [Api::Rest, Api::Http] {
        for n in [1.0, 10.0] {
            let shape = Args {
                api,
                events_per_request: n,
                ..a.clone()
            };
            let usd = per_million(&shape, p).total();
            out.push(Shape {
                api,
                events_per_request: n,
                usd_per_million: usd,
                ratio_to_floor: usd / floor,
            });
        }
    }
    out
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

fn attack(out: &mut String, w: &Attack) {
    let _ = writeln!(out, "{}, bounded by {}:", w.attack, w.bound);
    let _ = writeln!(
        out,
        "  {:.0} requests in the worst hour ({:.0} events), {:.0} in the worst UTC day",
        w.requests_per_hour, w.events_per_hour, w.requests_per_day
    );
    if w.events_per_hour > 0.0 {
        let _ = writeln!(
            out,
            "  the process function drains an hour's backlog in {:.1} h at its concurrency",
            w.drain_hours
        );
    }
    table(out, &w.hour);
    let _ = writeln!(
        out,
        "  = ${:.2} per hour, ${:.2} per day",
        w.hour.total(),
        w.usd_per_day
    );
}

/// Renders the whole report as text.
pub fn report(a: &Args, p: &Prices) -> String {
    let per = per_million(a, p);
    let reads = per_million_reads(a, p);
    let fixed = fixed_monthly(p);
    let monthly =
        per.total() * a.events_per_month / 1e6 + reads.total() * a.events_per_month * a.queries_per_event / 1e6 + fixed;
    let floor = floor_per_million(p);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Prices: {} list prices as of {} (free tiers ignored).",
        p.region, p.as_of
    );
    let _ = writeln!(
        out,
        "\nPer million events on the {} API ({} per request, {} B each, {:.0}% authorizer cache hits):",
        a.api.label(),
        a.events_per_request,
        a.event_bytes,
        a.authorizer_cache_hit * 100.0
    );
    table(&mut out, &per);
    let _ = writeln!(
        out,
        "  {:.2}x the architecture's floor of ${floor:.2} per million single events",
        per.total() / floor
    );
    let _ = writeln!(
        out,
        "\nDynamoDB per stored event ({} B): {:.1} write units at 1 event per batch, {:.1} at 10, {:.2} at {}; \
         one tenant can store at most {:.0} events/s with {} shards and batches of {} \
         (1,000 units/s per partition key: min(1,000 x shards / units per slot, 1,000 x batch)).",
        a.event_bytes,
        feed_wcu_per_event(a.event_bytes, 1.0),
        feed_wcu_per_event(a.event_bytes, 10.0),
        feed_wcu_per_event(a.event_bytes, a.batch_size),
        a.batch_size,
        tenant_ceiling_per_sec(a.event_bytes, a.event_shards, a.batch_size),
        a.event_shards,
        a.batch_size
    );
    let _ = writeln!(out, "\nPer million reads:");
    table(&mut out, &reads);
    let _ = writeln!(
        out,
        "\nMonthly at {:.0} events and {} reads per event: ${monthly:.2} (including ${fixed:.2} of idle SQS polling).",
        a.events_per_month, a.queries_per_event
    );
    let _ = writeln!(out, "\nShapes (per million events; floor ${floor:.2}):");
    let _ = writeln!(
        out,
        "  {:<6} {:>18} {:>12} {:>10}",
        "api", "events/request", "USD", "x floor"
    );
    for s in shapes(a, p) {
        let _ = writeln!(
            out,
            "  {:<6} {:>18} {:>12.4} {:>10.2}",
            s.api.label(),
            s.events_per_request,
            s.usd_per_million,
            s.ratio_to_floor
        );
    }
    let _ = writeln!(out, "\nWorst cases (D-2):");
    for api in [Api::Rest, Api::Http] {
        let shape = Args { api, ..a.clone() };
        let _ = writeln!(out, "\n[{} API]", api.label());
        attack(&mut out, &stolen_key(&shape, p));
    }
    let _ = writeln!(out, "\n[{} API]", a.api.label());
    attack(&mut out, &random_keys(a, p));
    out
}

/// `sluice cost`: prints the report.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1.0..=args.max_batch.max(1.0)).contains(&args.events_per_request),
        "--events-per-request must be 1 to --max-batch"
    );
    anyhow::ensure!(
        (1.0..=10_000.0).contains(&args.batch_size),
        "--batch-size must be 1 to 10000"
    );
    anyhow::ensure!(
        (1.0..=256.0).contains(&args.event_shards),
        "--event-shards must be 1 to 256"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.authorizer_cache_hit)
            && (0.0..=1.0).contains(&args.idempotent_share)
            && (0.0..=1.0).contains(&args.cold_start_share)
            && (0.0..=1.0).contains(&args.failure_share)
            && (0.0..=1.0).contains(&args.subject_share),
        "shares must be between 0 and 1"
    );
    if args.json {
        let v = serde_json::json!({
            "prices": PRICES,
            "args": args,
            "per_million_events": per_million(&args, &PRICES),
            "per_million_events_usd": per_million(&args, &PRICES).total(),
            "per_million_reads_usd": per_million_reads(&args, &PRICES).total(),
            "floor_per_million_usd": floor_per_million(&PRICES),
            "feed_wcu_per_event": {
                "batch_1": feed_wcu_per_event(args.event_bytes, 1.0),
                "batch_10": feed_wcu_per_event(args.event_bytes, 10.0),
                "this_batch_size": feed_wcu_per_event(args.event_bytes, args.batch_size),
            },
            "tenant_ceiling_events_per_sec": tenant_ceiling_per_sec(args.event_bytes, args.event_shards, args.batch_size),
            "shapes": shapes(&args, &PRICES),
            "fixed_monthly_usd": fixed_monthly(&PRICES),
            "stolen_key": stolen_key(&args, &PRICES),
            "random_keys": random_keys(&args, &PRICES),
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

    const GBS: f64 = 0.000_013_333_4;

    /// The defaults, priced by hand line by line: REST, one event of 512 B per request.
    #[test]
    fn one_million_single_events_on_rest_price_as_computed_by_hand() {
        let bill = per_million(&Args::default(), &PRICES);
        // 1e6 requests x $3.50/M.
        assert!(close(line(&bill, "API Gateway REST requests").usd, 3.50));
        // Authorizer: 10% misses = 1e5 calls x 0.125 GB x (6 + 1% x 15) ms = 76.875 GB-s.
        assert!(close(line(&bill, "Lambda authorizer").quantity, 76.875));
        // Ingest: 1e6 x 0.25 GB x 12.15 ms = 3037.5 GB-s; process: 1e5 x 0.25 x 30.15 ms = 753.75.
        assert!(close(line(&bill, "Lambda ingest").quantity, 3037.5));
        assert!(close(line(&bill, "Lambda process").quantity, 753.75));
        // Invocations: 1e5 + 1e6 + 1e5 = 1.2e6 x $0.20/M.
        assert!(close(line(&bill, "Lambda invocations").usd, 0.24));
        // SQS: 1e6 sends + 1e5 receives + 1e5 deletes = 1.2e6 x $0.40/M.
        assert!(close(line(&bill, "SQS send/receive/delete").usd, 0.48));
        // DynamoDB: per event a slot (762 B: one WRU), an id pointer and a tenth of a counter
        // update (2.1 WRU), one RRU per authorizer call.
        assert!(close(
            line(&bill, "DynamoDB writes (events + feed + idempotency)").usd,
            2.1 * 0.625
        ));
        assert!(close(line(&bill, "DynamoDB reads (key lookups)").usd, 0.0125));
        // Access log: 1e6 x (243 + 26) B in the infrequent-access class at $0.25/GiB.
        let access = 269e6 / GIB * 0.25;
        assert!(close(
            line(&bill, "Logs: API access log (infrequent access)").usd,
            access
        ));
        // Functions: 1% of 1e6 requests and of 1e6 records fail, 600 B each, at $0.50/GiB.
        let functions = 0.01 * 2e6 * 600.0 / GIB * 0.5;
        assert!(close(line(&bill, "Logs: functions (failures in full)").usd, functions));
        let by_hand = 3.50 + (76.875 + 3037.5 + 753.75) * GBS + 0.24 + 0.48 + 2.1 * 0.625 + 0.0125 + access + functions;
        assert!((bill.total() - by_hand).abs() < 1e-9, "{} vs {by_hand}", bill.total());
        // The target: REST at one event per request at most $5.00 per million before the feed,
        // whose ordered, deduplicated writes add 1.1 WRU ($0.6875) per event.
        assert!(bill.total() <= 5.00 + 0.6875, "{}", bill.total());
    }

    /// The four shapes against their targets and the floor, each total by hand.
    #[test]
    fn each_shape_meets_its_target_and_is_priced_as_by_hand() {
        let floor = 1.00 + 1.1 * 0.20 + 1.2 * 0.40 + 2.1 * 0.625;
        assert!(close(floor_per_million(&PRICES), floor));
        assert!(
            (2.9..3.1).contains(&floor),
            "the issue's floor of about $2.3, plus the feed's writes: {floor}"
        );
        // What does not depend on the API or the batch size, per million events.
        let process = 753.75 * GBS;
        let writes = 2.1 * 0.625;
        let record_logs = 0.01 * 1e6 * 600.0 / GIB * 0.5;
        // Per request: API, authorizer (10% misses: 0.0125 GB x 6.15 ms + an RRU), ingest
        // (0.25 GB x its duration), invocations (ingest + misses), SQS sends, access log, failed
        // requests' log lines.
        let per_request = |api_usd: f64, ingest_ms: f64, access_bytes: f64, sends: f64| {
            api_usd / 1e6
                + 0.1 * (0.125 * 6.15 / 1000.0 * GBS + 0.125 / 1e6)
                + 0.25 * (ingest_ms + 0.15) / 1000.0 * GBS
                + 1.1 * 0.20 / 1e6
                + sends * 0.40 / 1e6
                + access_bytes / GIB * 0.25
                + 0.01 * 600.0 / GIB * 0.5
        };
        // Per batch of 10 records: one process invocation, a receive and a delete.
        let batches = 1e5 * (0.20 + 2.0 * 0.40) / 1e6;
        let fixed = process + writes + record_logs + batches;
        // 10 events per request: 12 + 28 x 9/99 ms of ingest, one send of 10 x 1212 B.
        let ten_ms = 12.0 + 28.0 * 9.0 / 99.0;
        let expected = [
            // Each target as set before the feed, plus its $0.6875 of writes per million.
            (
                Api::Rest,
                1.0,
                fixed + 1e6 * per_request(3.50, 12.0, 269.0, 1.0),
                5.6875,
            ),
            (
                Api::Rest,
                10.0,
                fixed + 1e5 * per_request(3.50, ten_ms, 269.0, 1.0),
                1.9375,
            ),
            (
                Api::Http,
                1.0,
                fixed + 1e6 * per_request(1.00, 12.0, 297.0, 1.0),
                3.6875,
            ),
            (
                Api::Http,
                10.0,
                fixed + 1e5 * per_request(1.00, ten_ms, 297.0, 1.0),
                1.9375,
            ),
        ];
        let got = shapes(&Args::default(), &PRICES);
        for ((api, n, usd, target), s) in expected.into_iter().zip(&got) {
            assert_eq!((s.api, s.events_per_request), (api, n));
            assert!(
                (s.usd_per_million - usd).abs() < 1e-9,
                "{api:?} x{n}: {} vs {usd}",
                s.usd_per_million
            );
            assert!(
                s.usd_per_million <= target,
                "{api:?} x{n}: {} over {target}",
                s.usd_per_million
            );
            assert!(close(s.ratio_to_floor, usd / floor));
        }
    }

    #[test]
    fn batching_requests_divides_the_per_request_costs() {
        let a = Args {
            events_per_request: 100.0,
            ..Args::default()
        };
        let bill = per_million(&a, &PRICES);
        // 1e4 requests; each sends 10 batches of 10 x 1212 B (one 64 KiB chunk each).
        assert!(close(line(&bill, "API Gateway REST requests").quantity, 1e4));
        assert!(close(line(&bill, "SQS send/receive/delete").quantity, 1e5 + 1e5 + 1e5));
        // Writes do not shrink: a slot and a pointer per event, a counter update per batch.
        assert!(close(
            line(&bill, "DynamoDB writes (events + feed + idempotency)").quantity,
            2.1e6
        ));
    }

    #[test]
    fn idempotency_keys_cost_two_writes_per_request_and_cold_starts_bill_init() {
        let a = Args {
            idempotent_share: 1.0,
            cold_start_share: 0.1,
            init_ms: 20.0,
            ..Args::default()
        };
        let bill = per_million(&a, &PRICES);
        assert!(close(
            line(&bill, "DynamoDB writes (events + feed + idempotency)").quantity,
            2.1e6 + 2e6
        ));
        // Ingest: 1e6 x 0.25 GB x (12 + 0.1 x 20) ms = 3500 GB-s.
        assert!(close(line(&bill, "Lambda ingest").quantity, 3500.0));
    }

    /// D-4: the feed's write units per event and one tenant's ceiling, as `feed.rs` derives
    /// them: a slot and a pointer per event and a counter update per batch; each partition key
    /// takes 1,000 units a second.
    #[test]
    fn d4_one_tenant_stores_ten_thousand_events_a_second_at_the_defaults() {
        let a = Args::default();
        assert!(close(feed_wcu_per_event(512.0, 1.0), 3.0));
        assert!(close(feed_wcu_per_event(512.0, 10.0), 2.1));
        // A 2 KB event fills a 3-unit slot.
        assert!(close(feed_wcu_per_event(2048.0, 10.0), 4.1));
        // The defaults: 32 shards, batches of 10: the counter binds at 10,000 events/s.
        assert!(close(
            tenant_ceiling_per_sec(a.event_bytes, a.event_shards, a.batch_size),
            10_000.0
        ));
        // One shard: the slots' partition binds at 1,000; large events lower it.
        assert!(close(tenant_ceiling_per_sec(512.0, 1.0, 10.0), 1_000.0));
        assert!(close(tenant_ceiling_per_sec(2048.0, 8.0, 100.0), 8_000.0 / 3.0));
        // Before the feed one tenant was one partition key: about 1,000 events/s whatever the
        // shards; now 16 shards and batches of 100 reach 16,000.
        assert!(close(tenant_ceiling_per_sec(512.0, 16.0, 100.0), 16_000.0));
    }

    /// D-2 on the REST API: the default usage plan bounds one stolen key to its daily quota,
    /// under $6 a day; each request is a full batch of 100 events of 2,621 B, priced by hand.
    #[test]
    fn d2_one_stolen_keys_worst_day_is_its_tenants_quota_and_under_six_dollars() {
        let w = stolen_key(&Args::default(), &PRICES);
        // The quota (20,000) binds before the plan's bucket (20 + 10 x 3600 = 36,020 an hour).
        assert!(close(w.requests_per_hour, 20_000.0));
        assert!(close(w.requests_per_day, 20_000.0));
        assert!(close(w.events_per_hour, 2_000_000.0));
        // One request: API $3.50/M; ingest 0.25 GB x 40.15 ms; authorizer misses; 10 process
        // batches (0.25 GB x 30.15 ms each); invocations 1 + 0.1 + 10; SQS 10 sends (10 x 3321 B,
        // one chunk each) + 10 receives + 10 deletes; 100 slots of 2871 B = 3 WRU each, 100 pointers
        // and 10 counter updates; an access
        // line; 1% of 101 requests and records logged in full.
        let request = 3.50 / 1e6
            + (0.25 * 40.15 / 1000.0 + 0.1 * 0.125 * 6.15 / 1000.0 + 10.0 * 0.25 * 30.15 / 1000.0) * GBS
            + 11.1 * 0.20 / 1e6
            + 30.0 * 0.40 / 1e6
            + 410.0 * 0.625 / 1e6
            + 0.1 * 0.125 / 1e6
            + 269.0 / GIB * 0.25
            + 0.01 * 101.0 * 600.0 / GIB * 0.5;
        assert!(
            (w.usd_per_day - 20_000.0 * request).abs() < 1e-9,
            "{} vs {}",
            w.usd_per_day,
            20_000.0 * request
        );
        assert!(w.usd_per_day < 6.0, "{}", w.usd_per_day);
        assert!(close(w.hour.total(), w.usd_per_day), "the day's quota fits in an hour");
    }

    /// D-2 on the HTTP API: no usage plans, so only the route throttle and the reserved
    /// concurrency bound a stolen key, and the report says so.
    #[test]
    fn d2_on_the_http_api_only_the_route_throttle_bounds_a_stolen_key() {
        let a = Args {
            api: Api::Http,
            ..Args::default()
        };
        let w = stolen_key(&a, &PRICES);
        // The throttle (200 + 100 x 3600) binds before concurrency (50 x 3.6e6 / 40 = 4.5e6).
        assert!(close(w.requests_per_hour, 360_200.0));
        assert!(close(w.requests_per_day, 200.0 + 100.0 * 86_400.0));
        assert!(w.bound.contains("no usage plans"));
        assert!(w.usd_per_day > 100.0 * stolen_key(&Args::default(), &PRICES).usd_per_day);
        let text = report(&Args::default(), &PRICES);
        assert!(text.contains("HTTP APIs have no usage plans"), "{text}");
        assert!(text.contains(PRICES.as_of));
    }

    #[test]
    fn d2_a_bigger_plan_raises_the_worst_case_and_concurrency_caps_it() {
        let big = Args {
            tenant_quota_per_day: 1e9,
            tenant_rate: 1e6,
            tenant_burst: 1e6,
            ..Args::default()
        };
        let w = stolen_key(&big, &PRICES);
        // Now the method throttle binds: 200 + 100 x 3600.
        assert!(close(w.requests_per_hour, 360_200.0));
        let tiny_concurrency = Args {
            ingest_reserved: 0.1,
            ..big
        };
        // 0.1 x 3.6e6 / 40 = 9000 an hour.
        assert!(close(stolen_key(&tiny_concurrency, &PRICES).requests_per_hour, 9_000.0));
    }

    #[test]
    fn d2_random_keys_are_bounded_by_the_method_throttle() {
        let w = random_keys(&Args::default(), &PRICES);
        assert!(close(w.requests_per_hour, 360_200.0));
        assert_eq!(w.events_per_hour, 0.0);
        assert!(close(line(&w.hour, "Lambda invocations").quantity, 360_200.0));
    }

    #[test]
    fn reads_are_priced_on_their_own() {
        let r = per_million_reads(&Args::default(), &PRICES);
        // 1e6 reads + 1e5 authorizer misses; one RRU per 762 B item plus one per key lookup.
        assert!(close(line(&r, "Lambda invocations").quantity, 1.1e6));
        assert!(close(line(&r, "DynamoDB reads (items + key lookups)").quantity, 1.1e6));
        assert!(close(line(&r, "API Gateway requests").usd, 3.50));
    }

    #[test]
    fn nonsense_parameters_are_refused() {
        for a in [
            Args {
                authorizer_cache_hit: 1.5,
                ..Args::default()
            },
            Args {
                events_per_request: 0.0,
                ..Args::default()
            },
            Args {
                events_per_request: 101.0,
                ..Args::default()
            },
            Args {
                failure_share: -0.1,
                ..Args::default()
            },
        ] {
            assert!(run(a).is_err());
        }
    }
}
