//! `sluice serve`: the whole pipeline in one process over the embedded SQLite adapters.
//!
//! The gateway (auth, throttling, routers) and the worker pool (the process step) run side by
//! side; the queue and the store are separate SQLite files, as SQS and DynamoDB are separate
//! services. [`run`] takes its listener and shutdown signal as arguments so tests can bind port 0
//! and stop the server when they choose.

use crate::config::Config;
use crate::secrets;
use anyhow::Context;
use sluice_core::clock::{Clock, SystemClock};
use sluice_core::cursor::CursorCodec;
use sluice_core::envelope::{Sealer, SigningKey};
use sluice_core::ingest::{Backpressure, IngestService};
use sluice_core::keys::Authenticator;
use sluice_core::ports::{EventStore, IdempotencyStore, KeyStore, Queue};
use sluice_core::process::{Processor, WorkerConfig, run_worker};
use sluice_core::query::QueryService;
use sluice_core::validate::{Schemas, Validator};
use sluice_embedded::{EmbeddedQueue, QueueConfig, QueueDb, Redrive, StoreDb};
use sluice_http::{Auth, HttpConfig};
use std::future::Future;
use std::net::SocketAddr;
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
    /// Events, idempotency records and API keys.
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

/// Runs the server on `listener` until `shutdown` completes, then drains: stop accepting, finish
/// in-flight requests, let every worker finish the batch in hand.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Embedded { queue, dlq, store } = open_embedded(&config)?;
    let queue: Arc<dyn Queue> = Arc::new(queue);
    let dlq: Arc<dyn Queue> = Arc::new(dlq);
    let secret_dir = config.data_dir.join("secrets");
    let signing = SigningKey::new("local-1", secrets::load_or_create(&secret_dir, "signing.key")?)?;
    let sealer = Arc::new(Sealer::new(vec![signing], config.limits.max_depth)?);
    let cursors = CursorCodec::new(secrets::load_or_create(&secret_dir, "cursor.key")?);

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
            store.clone() as Arc<dyn IdempotencyStore>,
            sealer.clone(),
            clock.clone(),
        )
        .with_backpressure(backpressure.clone()),
    );
    let query = Arc::new(QueryService::new(store.clone() as Arc<dyn EventStore>, cursors));
    let authenticator = Arc::new(Authenticator::new(
        store.clone() as Arc<dyn KeyStore>,
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
    };
    let app = sluice_http::app(ingest, query, Auth::api_keys(authenticator), &http);

    let (stop_tx, stop_rx) = watch::channel(false);
    let poller = tokio::spawn(poll_depth(queue.clone(), backpressure, stop_rx.clone()));
    let processor = Arc::new(Processor::new(store.clone() as Arc<dyn EventStore>, sealer, validator));
    let worker_config = WorkerConfig {
        workers: config.worker.workers,
        batch_size: config.worker.batch_size,
        wait: Duration::from_secs(1),
        visibility: Duration::from_secs(config.queue.visibility_timeout_secs),
        max_backoff: Duration::from_secs(config.worker.max_backoff_secs),
    };
    let workers: Vec<_> = (0..worker_config.workers)
        .map(|_| {
            tokio::spawn(run_worker(
                queue.clone(),
                dlq.clone(),
                processor.clone(),
                worker_config.clone(),
                clock.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();

    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), workers = worker_config.workers, "sluice listening");
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await;
    tracing::info!("no longer accepting; finishing the records in hand");
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    let _ = poller.await;
    tracing::info!("sluice stopped");
    served.context("serving HTTP")
}

/// Keeps the backpressure gauge close to the queue's real depth (D-3).
async fn poll_depth(queue: Arc<dyn Queue>, bp: Arc<Backpressure>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match queue.depth().await {
            Ok(d) => bp.observe(d.total()),
            Err(e) => tracing::warn!(error = %e, "could not read the queue depth"),
        }
    }
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
