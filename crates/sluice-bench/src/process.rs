//! The process step alone: a queue pre-filled with sealed envelopes, the same worker pool as
//! `sluice serve` (or the Lambda's batch handler on moto), timed until the queue is empty and
//! every event is stored once. On moto the point is correctness, not speed: moto is a Python
//! process, so its rate says nothing about SQS or DynamoDB.

use sluice_core::clock::{Clock, SystemClock};
use sluice_core::envelope::{Envelope, Sealer, VERSION};
use sluice_core::ids::{EventId, RequestId};
use sluice_core::ports::{EventStore, OutgoingMessage, Queue};
use sluice_core::process::Processor;
use sluice_core::tenant::Tenant;
use sluice_core::validate::Validator;
use sluice_host::worker::{Worker, WorkerConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::watch;

/// Sealed messages for `n` distinct events of tenant `bench`, with their ids.
fn messages(sealer: &Sealer, n: usize) -> anyhow::Result<(Vec<EventId>, Vec<OutgoingMessage>)> {
    let now = OffsetDateTime::now_utc();
    let tenant = Tenant::parse("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut id = EventId::new_at(now);
    let mut ids = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let env = Envelope {
            traceparent: None,
            idempotency_key: None,
            v: VERSION,
            id,
            tenant: tenant.clone(),
            event_type: sluice_core::event::EventType::parse("bench.event").map_err(|e| anyhow::anyhow!("{e}"))?,
            data: serde_json::json!({"n": i, "user": "u-123", "tags": ["a", "b"], "amount": 12.5}).into(),
            occurred_at: now,
            received_at: now,
            request_id: RequestId::generate(),
            source_ip: Some("127.0.0.1".into()),
            subject: None,
            webhook: None,
            extensions: Default::default(),
        };
        ids.push(id);
        out.push(sealer.seal(&env).map_err(|e| anyhow::anyhow!("{e}"))?);
        id = id.successor().unwrap_or_else(|| EventId::new_at(now));
    }
    Ok((ids, out))
}

async fn fill(queue: &Arc<dyn Queue>, msgs: Vec<OutgoingMessage>) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for chunk in msgs.chunks(10) {
        let q = queue.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move { q.send_batch(chunk).await }));
        if tasks.len() >= 64 {
            for t in tasks.drain(..) {
                t.await??;
            }
        }
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Drains the queue with `workers` pollers; returns (seconds, dead-lettered count).
async fn drain(
    queue: Arc<dyn Queue>,
    dlq: Arc<dyn Queue>,
    store: Arc<dyn EventStore>,
    sealer: Arc<Sealer>,
    workers: usize,
    batch_size: usize,
    timeout: Duration,
) -> anyhow::Result<(f64, u64)> {
    let processor = Arc::new(Processor::new(store, sealer, Arc::new(Validator::default())));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = Worker {
        queue: queue.clone(),
        dlq: dlq.clone(),
        processor,
        clock,
        config: WorkerConfig {
            workers,
            batch_size,
            wait: Duration::from_secs(1),
            visibility: Duration::from_secs(30),
            max_backoff: Duration::from_secs(60),
        },
    };
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| tokio::spawn(worker.clone().run(stop_rx.clone())))
        .collect();
    let elapsed = loop {
        let asked = Instant::now();
        if queue.depth().await?.total() == 0 {
            break start.elapsed().as_secs_f64();
        }
        anyhow::ensure!(start.elapsed() < timeout, "the queue did not drain within {timeout:?}");
        // Counting a deep queue walks its index: polled every 5 ms, the count itself took a
        // third of a core from the step being timed. So, as sluice serve's depth gauge does, wait
        // 50 times as long as the count took; counts get cheap, and polls close, as it drains.
        tokio::time::sleep((asked.elapsed() * 50).max(Duration::from_millis(5))).await;
    };
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
    Ok((elapsed, dlq.depth().await?.total()))
}

/// Checks every id is stored exactly once (a `get` per id; the conditional put makes a second
/// copy impossible, so "once" is "present").
async fn verify(store: &dyn EventStore, ids: &[EventId]) -> anyhow::Result<usize> {
    let tenant = Tenant::parse("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut missing = 0;
    for id in ids {
        if store.get(&tenant, id).await?.is_none() {
            missing += 1;
        }
    }
    Ok(missing)
}

/// The embedded process step over `events` records in fresh files under `dir`.
pub async fn embedded(
    dir: &Path,
    events: usize,
    workers: usize,
    batch_size: usize,
) -> anyhow::Result<serde_json::Value> {
    use sluice_embedded::{QueueConfig, QueueDb, Redrive, StoreDb};
    let qdb = QueueDb::open(&dir.join("queue.db"))?;
    let queue: Arc<dyn Queue> = Arc::new(qdb.queue(
        "events",
        QueueConfig {
            redrive: Some(Redrive {
                dead_letter_queue: "events-dlq".into(),
                max_receive_count: 5,
            }),
            ..QueueConfig::default()
        },
    ));
    let dlq: Arc<dyn Queue> = Arc::new(qdb.queue("events-dlq", QueueConfig::default()));
    let store = Arc::new(StoreDb::open(&dir.join("store.db"))?.events());
    let sealer = Arc::new(sluice_cpu::sealer()?);
    let (ids, msgs) = messages(&sealer, events)?;
    fill(&queue, msgs).await?;
    let (secs, dead) = drain(
        queue,
        dlq,
        store.clone(),
        sealer,
        workers,
        batch_size,
        Duration::from_secs(300),
    )
    .await?;
    let missing = verify(store.as_ref(), &ids).await?;
    Ok(serde_json::json!({
        "bench": "process", "backend": "embedded", "events": events, "workers": workers,
        "batch_size": batch_size, "seconds": secs, "records_per_sec": events as f64 / secs,
        "dead_lettered": dead, "missing": missing, "correct": missing == 0 && dead == 0,
    }))
}

/// The same step on SQS and DynamoDB as moto serves them, over a fresh queue and tables.
pub async fn moto(events: usize, workers: usize, batch_size: usize) -> anyhow::Result<serde_json::Value> {
    use sluice_aws::provision::QueueSettings;
    use sluice_aws::testing::Moto;
    use sluice_aws::{DynamoEvents, SqsQueue};
    let moto = Moto::start().await?;
    let res = moto.provision_fresh(QueueSettings::default()).await?;
    let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(moto.sqs(), res.queue_url.clone()));
    let dlq: Arc<dyn Queue> = Arc::new(SqsQueue::new(moto.sqs(), res.dlq_url.clone()));
    let store = Arc::new(DynamoEvents::new(moto.dynamodb(), &res.table));
    let sealer = Arc::new(sluice_cpu::sealer()?);
    let (ids, msgs) = messages(&sealer, events)?;
    fill(&queue, msgs).await?;
    let (secs, dead) = drain(
        queue,
        dlq,
        store.clone(),
        sealer,
        workers,
        batch_size,
        Duration::from_secs(300),
    )
    .await?;
    let missing = verify(store.as_ref(), &ids).await?;
    Ok(serde_json::json!({
        "bench": "process", "backend": "moto", "events": events, "workers": workers,
        "batch_size": batch_size, "seconds": secs, "records_per_sec": events as f64 / secs,
        "dead_lettered": dead, "missing": missing, "correct": missing == 0 && dead == 0,
    }))
}
