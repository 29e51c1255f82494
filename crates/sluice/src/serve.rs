//! `sluice serve`: the whole pipeline in one process, over the embedded SQLite adapters or over
//! SQS and DynamoDB.
//!
//! The gateway (auth, throttling, routers) and the worker pool (the process step, whose home is
//! `sluice_host::worker`) run side by side over the ports ([`Ports`]); only [`open_ports`] knows
//! which adapters are behind them. The worker pool has its own threads, at a lower priority
//! (`worker.nice`): on AWS the ingest and process functions never compete for a CPU, and on one
//! machine accepting events comes first. On
//! the embedded backend the queue and the store are separate SQLite files, as SQS and DynamoDB are
//! separate services; on the AWS backend they are the deployment's real queue, dead-letter queue
//! and tables, so the whole AWS data path can be driven from one machine (against moto, or a
//! sandbox account). [`run`] takes its listener and shutdown signal as arguments so tests can bind
//! port 0 and stop the server when they choose.

use crate::config::{Backend, Config};
use crate::secrets;
use anyhow::Context;
use sluice_aws::plans::ApiGatewayPlans;
use sluice_aws::secrets::SecretParameters;
use sluice_aws::{DynamoEvents, DynamoIdempotency, DynamoKeys, DynamoSources, SqsQueue};
use sluice_core::clock::{Clock, SystemClock};
use sluice_core::cursor::CursorCodec;
use sluice_core::deliveries::DeliveryService;
use sluice_core::envelope::{Sealer, SigningKey};
use sluice_core::feed::{FeedService, SweptQueue};
use sluice_core::ingest::{Backpressure, IngestService};
use sluice_core::keys::Authenticator;
use sluice_core::oidc::JwtVerifier;
use sluice_core::ports::{ClaimingQueue, EventStore, IdempotencyStore, KeyStore, Queue, SourceStore, TenantPlans};
use sluice_core::process::Processor;
use sluice_core::query::QueryService;
use sluice_core::validate::Validator;
use sluice_embedded::{EmbeddedQueue, QueueConfig, QueueDb, Redrive, StoreDb};
use sluice_host::Clients;
use sluice_host::files;
use sluice_host::worker::{Worker, WorkerConfig, WorkerPool, poll_depth};
use sluice_http::Auth;
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
    /// The queue database, which also keeps the idempotency records the queue's sends claim
    /// ([`QueueDb::idempotency`]).
    pub queues: Arc<QueueDb>,
    /// The store database (events, API keys, sources); its port adapters come from
    /// [`StoreDb::events`], [`StoreDb::keys`] and [`StoreDb::sources`].
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
    Ok(Embedded {
        queue,
        dlq,
        queues: qdb,
        store,
    })
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
    /// The main queue again, when it claims idempotent requests with their sends (embedded).
    pub claiming: Option<Arc<dyn ClaimingQueue>>,
    /// API key records.
    pub keys: Arc<dyn KeyStore>,
    /// Webhook sources and their secrets.
    pub sources: Arc<dyn SourceStore>,
    /// Tenants' own plans: the store's on the embedded backend (enforced by `sluice serve`), the
    /// REST API's usage plans on AWS when `SLUICE_REST_API_ID` names it (enforced by API
    /// Gateway); `None` on AWS without it.
    pub plans: Option<Arc<dyn TenantPlans>>,
    /// The dead-letter queue's operator tools (the console's dead-letters page).
    pub dead_letters: Arc<dyn crate::admin::dead_letters::DeadLetters>,
    /// The queues an erasure sweeps (the embedded ones; SQS cannot be swept).
    pub swept: Vec<sluice_core::feed::SweptQueue>,
    /// How often the backpressure gauge reads the queue depth. SQS's depth is approximate and
    /// lags, and each read is a billed request, so the AWS backend reads it less often.
    pub depth_poll: Duration,
}

/// Opens the configured backend's adapters.
pub async fn open_ports(config: &Config) -> anyhow::Result<Ports> {
    match config.backend {
        Backend::Embedded => {
            let Embedded {
                queue,
                dlq,
                queues,
                store,
            } = open_embedded(config)?;
            let dead_letters = Arc::new(crate::admin::dead_letters::EmbeddedDeadLetters {
                dlq: dlq.clone(),
                main: QUEUE.to_owned(),
            });
            let queue = Arc::new(queue);
            let dlq = Arc::new(dlq);
            let swept = vec![
                SweptQueue {
                    queue: queue.clone(),
                    dead_letter: false,
                },
                SweptQueue {
                    queue: dlq.clone(),
                    dead_letter: true,
                },
            ];
            Ok(Ports {
                queue: queue.clone(),
                claiming: Some(queue),
                dlq,
                events: Arc::new(store.events()),
                idempotency: Arc::new(queues.idempotency()),
                keys: Arc::new(store.keys()),
                sources: Arc::new(store.sources()),
                plans: Some(Arc::new(store.plans())),
                dead_letters,
                swept,
                depth_poll: Duration::from_millis(250),
            })
        }
        Backend::Aws => open_aws(config).await,
    }
}

/// The configuration's AWS settings; [`Config::load_with`] reads them for the AWS backend.
fn aws_settings(config: &Config) -> anyhow::Result<&crate::config::AwsSettings> {
    config
        .aws
        .as_ref()
        .context("the aws backend's settings were not loaded with the configuration")
}

/// The SDK clients over the standard AWS configuration (region, credentials,
/// `AWS_ENDPOINT_URL`), built once, as the Lambda functions build theirs.
pub(crate) async fn aws_clients() -> anyhow::Result<Clients> {
    let clients = Clients::from_env().await;
    if clients.sdk().region().is_none() {
        anyhow::bail!("the aws backend needs a region: set AWS_REGION");
    }
    Ok(clients)
}

/// The AWS adapters over the deployment's resources (`SLUICE_QUEUE_URL`, `SLUICE_DLQ_URL`,
/// `SLUICE_TABLE`, `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_KEYS_TABLE`), one client per service, shared.
pub async fn open_aws(config: &Config) -> anyhow::Result<Ports> {
    let settings = aws_settings(config)?;
    let resources = &settings.resources;
    let clients = aws_clients().await?;
    let plans = settings.gateway.as_ref().map(|g| -> Arc<dyn TenantPlans> {
        Arc::new(ApiGatewayPlans::from_sdk(
            clients.sdk(),
            &g.rest_api_id,
            &g.stage,
            &g.default_usage_plan_id,
        ))
    });
    let sqs = clients.sqs();
    let dynamodb = clients.dynamodb();
    tracing::info!(queue_url = %resources.queue_url, table = %resources.table, "aws backend");
    let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(sqs.clone(), &resources.queue_url));
    let dlq: Arc<dyn Queue> = Arc::new(SqsQueue::new(sqs, &resources.dlq_url));
    Ok(Ports {
        dead_letters: Arc::new(crate::admin::dead_letters::QueueDeadLetters {
            dlq: dlq.clone(),
            main: queue.clone(),
        }),
        queue,
        dlq,
        events: Arc::new(
            DynamoEvents::new(dynamodb.clone(), &resources.table)
                .with_shards(settings.event_shards)
                .with_slot_retention(sluice_host::env::longest_retention(&config.retention.rule()?)),
        ),
        idempotency: Arc::new(DynamoIdempotency::new(dynamodb.clone(), &resources.idempotency_table)),
        // DynamoDB and SQS have no write spanning both: ingest claims, then sends.
        claiming: None,
        keys: Arc::new(DynamoKeys::new(dynamodb.clone(), &resources.keys_table)),
        sources: Arc::new(DynamoSources::new(dynamodb, &resources.sources_table)),
        plans,
        swept: Vec::new(),
        depth_poll: Duration::from_secs(5),
    })
}

/// The envelope signing keys (signer first) and the cursor key.
///
/// On the AWS backend, `SLUICE_SIGNING_KEY_PARAM` and `SLUICE_CURSOR_KEY_PARAM` name SSM
/// parameters as the Lambda functions read them (see `sluice_aws::secrets`), so the local gateway
/// and worker can share a queue and cursors with a deployment. Unset, and always on the embedded
/// backend, the keys are local files under `<data dir>/secrets/`.
pub async fn load_keys(config: &Config) -> anyhow::Result<(Vec<SigningKey>, Vec<u8>)> {
    let (signing_param, cursor_param) = match (config.backend, &config.aws) {
        (Backend::Aws, Some(aws)) => (aws.signing_key_param.clone(), aws.cursor_key_param.clone()),
        _ => (None, None),
    };
    let ssm = if signing_param.is_some() || cursor_param.is_some() {
        Some(SecretParameters::new(aws_clients().await?.ssm()))
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
    let jwks = files::read_jwks_file(&settings.jwks_file).context("auth.oidc.jwks_file")?;
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
        claiming,
        keys,
        sources,
        plans,
        dead_letters,
        swept,
        depth_poll,
    } = open_ports(&config).await?;
    // One store for the process step and the routes, so a stored entry wakes waiting readers.
    let notifying = sluice_host::feed::NotifyingStore::new(events);
    let feed_notify = notifying.notify();
    let events: Arc<dyn EventStore> = Arc::new(notifying);
    let retention = config.retention.rule()?;
    let jwt = jwt_verifier(&config)?;
    let (signing, cursor_key) = load_keys(&config).await?;
    let sealer = Arc::new(Sealer::new(signing, config.limits.max_depth)?);
    let cursors = CursorCodec::new(cursor_key);

    let schemas = files::schemas(config.schema_dir.as_deref(), config.require_schema).context("schema_dir")?;
    let validator = Arc::new(Validator::new(config.limits.clone(), schemas));

    let backpressure = Arc::new(Backpressure::new(config.queue.max_depth));
    let feed = Arc::new(
        FeedService::new(events.clone(), retention.clone(), clock.clone())
            .with_idempotency(idempotency.clone())
            .with_swept_queues(sealer.clone(), swept),
    );
    let mut ingest = IngestService::new(
        validator.clone(),
        queue.clone(),
        idempotency,
        sealer.clone(),
        clock.clone(),
    )
    .with_backpressure(backpressure.clone());
    if let Some(claiming) = claiming {
        ingest = ingest.with_claiming_queue(claiming);
    }
    let ingest = Arc::new(ingest);
    let query = Arc::new(QueryService::new(events.clone(), cursors));
    let admin_keys = keys.clone();
    let admin_sources = sources.clone();
    let authenticator = Arc::new(Authenticator::new(
        keys,
        clock.clone(),
        Duration::from_secs(config.auth.cache_secs),
    ));
    // Sources are cached as long as keys: a rotation or deletion counts within auth.cache_secs.
    let deliveries = Arc::new(
        DeliveryService::new(sources, ingest.clone(), clock.clone())
            .with_cache_ttl(Duration::from_secs(config.auth.cache_secs)),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    // The admin listener first: metrics are recorded from the first request on.
    let prometheus = sluice_host::metrics::install_prometheus().context("installing the metrics recorder")?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding the admin listener {}", config.admin.listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let admin_state = Arc::new(crate::admin::AdminState {
        prometheus: prometheus.clone(),
        tokens: crate::admin::tokens::TokenFile::new(&config.data_dir),
        sessions: crate::admin::Sessions::default(),
        queue: queue.clone(),
        dlq: dlq.clone(),
        dead_letters,
        query: query.clone(),
        keys: admin_keys,
        sources: admin_sources,
        plans: plans.clone(),
    });
    let upkeep = tokio::spawn(crate::admin::upkeep(prometheus, stop_rx.clone()));
    let admin = {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            axum::serve(admin_listener, crate::admin::router(admin_state))
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await
        })
    };
    // On AWS API Gateway enforces the usage plans; here the server does, from its store.
    let plan_refresher = match (&plans, config.backend) {
        (Some(plans), Backend::Embedded) => Some(
            spawn_plan_refresher(
                plans.clone(),
                config.throttle.plan_book.clone(),
                Duration::from_secs(config.auth.cache_secs.max(1)),
                stop_rx.clone(),
            )
            .await,
        ),
        _ => None,
    };
    let app = sluice_http::app(
        ingest,
        query,
        sluice_http::FeedState::new(feed, Some(feed_notify), config.feed.settings()),
        deliveries,
        Auth::Local {
            keys: authenticator,
            jwt,
        },
        &config.throttle,
    );

    let poller = tokio::spawn(poll_depth(
        queue.clone(),
        dlq.clone(),
        backpressure,
        depth_poll,
        stop_rx.clone(),
    ));
    let worker = Worker {
        queue: queue.clone(),
        dlq,
        processor: Arc::new(Processor::new(events, sealer, validator).with_retention(retention)),
        clock,
        config: WorkerConfig {
            workers: config.worker.workers,
            batch_size: config.worker.batch_size,
            wait: Duration::from_secs(1),
            visibility: Duration::from_secs(config.queue.visibility_timeout_secs),
            max_backoff: Duration::from_secs(config.worker.max_backoff_secs),
        },
    };
    let pool =
        WorkerPool::start(&worker, config.worker.nice, &stop_rx).context("starting the process step's threads")?;
    let addr = listener.local_addr()?;
    let backend = format!("{:?}", config.backend).to_ascii_lowercase();
    // The admin lines first: "sluice listening" is the line that says the server is ready.
    tracing::info!(addr = %admin_addr, "admin listening (metrics at /metrics)");
    tracing::info!(url = %format!("http://{admin_addr}/console"), "console (log in with a token from `sluice admin token create`)");
    tracing::info!(%addr, %backend, data_dir = %config.data_dir.display(), workers = config.worker.workers, "sluice listening");
    let limits = crate::listen::ConnectionLimits {
        header_timeout: config.throttle.header_timeout,
        max_connections: config.throttle.max_connections,
        max_per_address: config.throttle.max_connections_per_address,
    };
    let served = crate::listen::serve_http(listener, app, limits, shutdown).await;
    tracing::info!("no longer accepting; finishing the records in hand");
    let _ = stop_tx.send(true);
    pool.join().await;
    let _ = poller.await;
    let _ = upkeep.await;
    if let Ok(Err(e)) = admin.await {
        tracing::warn!(error = %e, "the admin listener failed");
    }
    if let Some(refresher) = plan_refresher {
        let _ = refresher.await;
    }
    tracing::info!("sluice stopped");
    served.context("serving HTTP")
}

/// Loads the store's tenant plans into `book` now, then again every `every` until `stop`: a plan
/// set with `sluice tenants limits set` applies within `auth.cache_secs`, as a revoked key does.
/// A failed read keeps the plans last read (and logs why).
async fn spawn_plan_refresher(
    plans: Arc<dyn TenantPlans>,
    book: sluice_http::PlanBook,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    async fn load(plans: &dyn TenantPlans, book: &sluice_http::PlanBook) {
        match plans.list().await {
            Ok(list) => book.replace(list.into_iter().map(|(t, l)| (t.as_str().to_owned(), l)).collect()),
            Err(e) => tracing::warn!(error = %e, "tenant plans could not be read; keeping the last ones"),
        }
    }
    load(plans.as_ref(), &book).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(every) => load(plans.as_ref(), &book).await,
            }
        }
    })
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
