//! `sluice serve`: the whole pipeline in one process, over the embedded SQLite adapters or over
//! SQS and DynamoDB.
//!
//! The gateway (auth, throttling, routers) and the worker pool (the process step) run side by
//! side over the ports ([`Ports`]); only [`open_ports`] knows which adapters are behind them. The
//! worker pool has its own threads, at a lower priority (`worker.nice`): on AWS the ingest and
//! process functions never compete for a CPU, and on one machine accepting events comes first. On
//! the embedded backend the queue and the store are separate SQLite files, as SQS and DynamoDB are
//! separate services; on the AWS backend they are the deployment's real queue, dead-letter queue
//! and tables, so the whole AWS data path can be driven from one machine (against moto, or a
//! sandbox account). [`run`] takes its listener and shutdown signal as arguments so tests can bind
//! port 0 and stop the server when they choose.

use crate::config::{Backend, Config};
use crate::secrets;
use anyhow::Context;
use sluice_aws::secrets::SecretParameters;
use sluice_aws::{AwsResources, DynamoEvents, DynamoIdempotency, DynamoKeys, SqsQueue};
use sluice_core::clock::{Clock, SystemClock};
use sluice_core::cursor::CursorCodec;
use sluice_core::envelope::{Sealer, SigningKey};
use sluice_core::ingest::{Backpressure, IngestService};
use sluice_core::keys::Authenticator;
use sluice_core::oidc::{self, JwtVerifier};
use sluice_core::ports::{EventStore, IdempotencyStore, KeyStore, Queue};
use sluice_core::process::{Processor, WorkerConfig, run_worker};
use sluice_core::query::QueryService;
use sluice_core::validate::{Schemas, Validator};
use sluice_embedded::{EmbeddedQueue, QueueConfig, QueueDb, Redrive, StoreDb};
use sluice_http::{Auth, HttpConfig};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Name of the main queue inside the queue database.
pub const QUEUE: &str = "events";
/// Name of the dead-letter queue.
pub const DLQ: &str = "events-dlq";

/// The opened embedded resources under a data directory.
pub struct Embedded {
    /// The main queue.
    pub queue: EmbeddedQueue,
    /// The dead-letter queue.
    pub dlq: EmbeddedQueue,
    /// The store database (events, idempotency records and API keys); its port adapters come
    /// from [`StoreDb::events`], [`StoreDb::idempotency`] and [`StoreDb::keys`].
    pub store: Arc<StoreDb>,
}

/// Opens (creating if needed) the queue and store files under the configured data directory.
pub fn open_embedded(config: &Config) -> anyhow::Result<Embedded> {
    secrets::create_private_dir(&config.data_dir)?;
    let qdb = QueueDb::open(&config.data_dir.join("queue.db")).context("opening the queue")?;
    let queue = qdb.queue(
        QUEUE,
        QueueConfig {
            redrive: Some(Redrive {
                dead_letter_queue: DLQ.into(),
                max_receive_count: config.queue.max_receive_count,
            }),
            retention: Duration::from_secs(config.queue.retention_secs),
        },
    );
    let dlq = qdb.queue(
        DLQ,
        QueueConfig {
            redrive: None,
            retention: Duration::from_secs(config.queue.dlq_retention_secs),
        },
    );
    let store = StoreDb::open(&config.data_dir.join("store.db")).context("opening the store")?;
    Ok(Embedded { queue, dlq, store })
}

/// The ports a server runs over, whichever adapters implement them.
pub struct Ports {
    /// The main queue.
    pub queue: Arc<dyn Queue>,
    /// The dead-letter queue.
    pub dlq: Arc<dyn Queue>,
    /// Stored events.
    pub events: Arc<dyn EventStore>,
    /// `Idempotency-Key` records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// API key records.
    pub keys: Arc<dyn KeyStore>,
    /// How often the backpressure gauge reads the queue depth. SQS's depth is approximate and
    /// lags, and each read is a billed request, so the AWS backend reads it less often.
    pub depth_poll: Duration,
}

/// Opens the configured backend's adapters.
pub async fn open_ports(config: &Config) -> anyhow::Result<Ports> {
    match config.backend {
        Backend::Embedded => {
            let Embedded { queue, dlq, store } = open_embedded(config)?;
            Ok(Ports {
                queue: Arc::new(queue),
                dlq: Arc::new(dlq),
                events: Arc::new(store.events()),
                idempotency: Arc::new(store.idempotency()),
                keys: Arc::new(store.keys()),
                depth_poll: Duration::from_millis(250),
            })
        }
        Backend::Aws => open_aws().await,
    }
}

/// The AWS adapters over the resources the environment names (`SLUICE_QUEUE_URL`,
/// `SLUICE_DLQ_URL`, `SLUICE_TABLE`, `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_KEYS_TABLE`), with one SDK
/// configuration (region, credentials, `AWS_ENDPOINT_URL`) and one client per service, shared.
pub async fn open_aws() -> anyhow::Result<Ports> {
    let resources = AwsResources::from_env().context("the aws backend needs its resource names")?;
    let sdk = sluice_aws::sdk_config().await;
    if sdk.region().is_none() {
        anyhow::bail!("the aws backend needs a region: set AWS_REGION");
    }
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    tracing::info!(queue_url = %resources.queue_url, table = %resources.table, "aws backend");
    Ok(Ports {
        queue: Arc::new(SqsQueue::new(sqs.clone(), &resources.queue_url)),
        dlq: Arc::new(SqsQueue::new(sqs, &resources.dlq_url)),
        events: Arc::new(DynamoEvents::new(dynamodb.clone(), &resources.table)),
        idempotency: Arc::new(DynamoIdempotency::new(dynamodb.clone(), &resources.idempotency_table)),
        keys: Arc::new(DynamoKeys::new(dynamodb, &resources.keys_table)),
        depth_poll: Duration::from_secs(5),
    })
}

/// The SSM parameter holding the envelope signing key ring (the Lambda functions' variable).
pub const SIGNING_KEY_PARAM_VAR: &str = "SLUICE_SIGNING_KEY_PARAM";
/// The SSM parameter holding the cursor key.
pub const CURSOR_KEY_PARAM_VAR: &str = "SLUICE_CURSOR_KEY_PARAM";

/// The envelope signing keys (signer first) and the cursor key.
///
/// On the AWS backend, `SLUICE_SIGNING_KEY_PARAM` and `SLUICE_CURSOR_KEY_PARAM` name SSM
/// parameters as the Lambda functions read them (see `sluice_aws::secrets`), so the local gateway
/// and worker can share a queue and cursors with a deployment. Unset, and always on the embedded
/// backend, the keys are local files under `<data dir>/secrets/`.
pub async fn load_keys(config: &Config) -> anyhow::Result<(Vec<SigningKey>, Vec<u8>)> {
    let param = |var: &str| match config.backend {
        Backend::Aws => std::env::var(var).ok().filter(|v| !v.trim().is_empty()),
        Backend::Embedded => None,
    };
    let (signing_param, cursor_param) = (param(SIGNING_KEY_PARAM_VAR), param(CURSOR_KEY_PARAM_VAR));
    let ssm = if signing_param.is_some() || cursor_param.is_some() {
        let sdk = sluice_aws::sdk_config().await;
        Some(SecretParameters::new(aws_sdk_ssm::Client::new(&sdk)))
    } else {
        None
    };
    let secret_dir = config.data_dir.join("secrets");
    let signing = match (&ssm, signing_param) {
        (Some(ssm), Some(name)) => ssm.signing_keys(&name).await?,
        _ => vec![SigningKey::new(
            "local-1",
            secrets::load_or_create(&secret_dir, "signing.key")?,
        )?],
    };
    let cursor = match (&ssm, cursor_param) {
        (Some(ssm), Some(name)) => ssm.cursor_key(&name).await?,
        _ => secrets::load_or_create(&secret_dir, "cursor.key")?,
    };
    Ok((signing, cursor))
}

/// The JWT verifier of `[auth.oidc]`, if configured; its JWKS file is read once, here.
pub fn jwt_verifier(config: &Config) -> anyhow::Result<Option<Arc<JwtVerifier>>> {
    let Some(settings) = &config.auth.oidc else {
        return Ok(None);
    };
    let jwks = oidc::read_jwks_file(&settings.jwks_file)?;
    let verifier = JwtVerifier::new(settings.oidc_config()?, &jwks).context("auth.oidc")?;
    tracing::info!(issuer = %verifier.config().issuer, kids = ?verifier.key_ids(), "OIDC JWTs accepted");
    Ok(Some(Arc::new(verifier)))
}

/// Runs the server on `listener` until `shutdown` completes, then drains: stop accepting, finish
/// in-flight requests, let every worker finish the batch in hand.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Ports {
        queue,
        dlq,
        events,
        idempotency,
        keys,
        depth_poll,
    } = open_ports(&config).await?;
    let jwt = jwt_verifier(&config)?;
    let (signing, cursor_key) = load_keys(&config).await?;
    let sealer = Arc::new(Sealer::new(signing, config.limits.max_depth)?);
    let cursors = CursorCodec::new(cursor_key);

    let schemas = match &config.schema_dir {
        Some(dir) => Schemas::load_dir(dir)?,
        None => Schemas::none(),
    }
    .require_schema(config.require_schema);
    let validator = Arc::new(Validator::new(config.limits.clone(), schemas));

    let backpressure = Arc::new(Backpressure::new(config.queue.max_depth));
    let ingest = Arc::new(
        IngestService::new(
            validator.clone(),
            queue.clone(),
            idempotency,
            sealer.clone(),
            clock.clone(),
        )
        .with_backpressure(backpressure.clone()),
    );
    let query = Arc::new(QueryService::new(events.clone(), cursors));
    let authenticator = Arc::new(Authenticator::new(
        keys,
        clock.clone(),
        Duration::from_secs(config.auth.cache_secs),
    ));
    let http = HttpConfig {
        max_body_bytes: config.limits.max_body_bytes,
        rate_per_sec: config.throttle.rate_per_sec,
        burst: config.throttle.burst,
        global_rate_per_sec: config.throttle.global_rate_per_sec,
        global_burst: config.throttle.global_burst,
        auth_failures_per_minute: config.throttle.auth_failures_per_minute,
        auth_failure_burst: config.throttle.auth_failure_burst,
        max_in_flight: config.throttle.max_in_flight,
        max_in_flight_bytes: config.throttle.max_in_flight_bytes,
        body_timeout: Duration::from_secs(config.throttle.body_timeout_secs),
    };
    let app = sluice_http::app(
        ingest,
        query,
        Auth::Local {
            keys: authenticator,
            jwt,
        },
        &http,
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let poller = tokio::spawn(poll_depth(queue.clone(), backpressure, depth_poll, stop_rx.clone()));
    let processor = Arc::new(Processor::new(events, sealer, validator));
    let worker_config = WorkerConfig {
        workers: config.worker.workers,
        batch_size: config.worker.batch_size,
        wait: Duration::from_secs(1),
        visibility: Duration::from_secs(config.queue.visibility_timeout_secs),
        max_backoff: Duration::from_secs(config.worker.max_backoff_secs),
    };
    let process_rt = (worker_config.workers > 0)
        .then(|| process_runtime(worker_config.workers, config.worker.nice))
        .transpose()?;
    let workers: Vec<_> = process_rt
        .iter()
        .flat_map(|rt| std::iter::repeat_n(rt.handle(), worker_config.workers))
        .map(|rt| {
            rt.spawn(run_worker(
                queue.clone(),
                dlq.clone(),
                processor.clone(),
                worker_config.clone(),
                clock.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();

    if worker_config.workers == 0 {
        tracing::warn!("worker.workers is 0: the process step is paused; accepted events stay queued");
    }
    let addr = listener.local_addr()?;
    let backend = format!("{:?}", config.backend).to_ascii_lowercase();
    tracing::info!(%addr, %backend, data_dir = %config.data_dir.display(), workers = worker_config.workers, "sluice listening");
    let limits = crate::listen::ConnectionLimits {
        header_timeout: Duration::from_secs(config.throttle.header_timeout_secs),
        max_connections: config.throttle.max_connections,
        max_per_address: config.throttle.max_connections_per_address,
    };
    let served = crate::listen::serve_http(listener, app, limits, shutdown).await;
    tracing::info!("no longer accepting; finishing the records in hand");
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    // Every worker has returned; what is left on those threads is idle connection upkeep.
    if let Some(rt) = process_rt {
        rt.shutdown_background();
    }
    let _ = poller.await;
    tracing::info!("sluice stopped");
    served.context("serving HTTP")
}

/// The process step's threads: as many as it has workers, at most one per CPU, each `nice`
/// steps below the thread that starts them.
fn process_runtime(workers: usize, nice: u8) -> anyhow::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.clamp(1, cpus))
        .thread_name("sluice-process")
        .enable_all()
        .on_thread_start(move || lower_priority(nice))
        .build()
        .context("starting the process step's threads")
}

/// Lowers the calling thread's priority by `nice` steps (at most to 19, the lowest).
///
/// On Linux a thread id given to `setpriority` names that one thread, not the whole process, so
/// the gateway's threads keep their priority. Raising it back would need privileges, and a
/// failure leaves the thread as it was: slower ingest under load, never a lost event. Elsewhere
/// thread priorities are not per thread, so nothing changes.
#[cfg(target_os = "linux")]
fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    let result = rustix::process::getpriority_process(Some(tid))
        .and_then(|now| rustix::process::setpriority_process(Some(tid), now.saturating_add(i32::from(nice)).min(19)));
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not lower the process step's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: u8) {}

/// The backpressure gauge waits at least this many times as long as its last read took.
const GAUGE_COST_RATIO: u32 = 50;

/// Keeps the backpressure gauge close to the queue's real depth (D-3): on SQS that is
/// `ApproximateNumberOfMessages` plus `ApproximateNumberOfMessagesNotVisible`.
///
/// Reading the depth of the embedded queue counts its rows, so a deep backlog takes tens of
/// milliseconds of a core per read, the very time ingest needs most. The reads are therefore
/// spaced by [`gauge_wait`]. The bound still holds between reads: every send adds to the gauge at
/// once (`Backpressure::add`); only the process step's deletes wait for the next read.
async fn poll_depth(queue: Arc<dyn Queue>, bp: Arc<Backpressure>, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let started = tokio::time::Instant::now();
        match queue.depth().await {
            Ok(d) => bp.observe(d.total()),
            Err(e) => tracing::warn!(error = %e, "could not read the queue depth"),
        }
        tokio::select! {
            () = tokio::time::sleep(gauge_wait(every, started.elapsed())) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How long the gauge waits after a read that took `took`: `every`, or longer when reading is
/// slow, so the gauge never costs more than 1/[`GAUGE_COST_RATIO`] of one core.
fn gauge_wait(every: Duration, took: Duration) -> Duration {
    every.max(took.saturating_mul(GAUGE_COST_RATIO))
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_gauge_backs_off_when_reading_the_depth_is_slow() {
        let every = Duration::from_millis(250);
        assert_eq!(
            gauge_wait(every, Duration::from_micros(300)),
            every,
            "a shallow queue: every tick"
        );
        assert_eq!(gauge_wait(every, Duration::from_millis(5)), every);
        // A million-message backlog counted in 40 ms: read every 2 s, 2% of one core.
        assert_eq!(gauge_wait(every, Duration::from_millis(40)), Duration::from_secs(2));
        assert_eq!(gauge_wait(every, Duration::MAX), Duration::MAX);
    }
}
