//! The process step's home on `sluice serve`: the poller loop over a queue, the threads it runs
//! on, and the gauge that keeps ingest's backpressure close to the queue's depth.
//!
//! The Lambda process function needs none of this: the SQS event source mapping polls for it and
//! hands it a batch. What both do with a batch is [`crate::settle`].

use crate::settle::{SettlePolicy, process_batch};
use sluice_core::clock::Clock;
use sluice_core::ingest::Backpressure;
use sluice_core::ports::{Queue, QueueDepth, QueueError};
use sluice_core::process::Processor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How the worker pool polls.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Concurrent pollers.
    pub workers: usize,
    /// Records per receive (1 to 10).
    pub batch_size: usize,
    /// Long-poll wait.
    pub wait: Duration,
    /// Visibility timeout of a received batch.
    pub visibility: Duration,
    /// Longest backoff before a failed record is retried.
    pub max_backoff: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            batch_size: 10,
            wait: Duration::from_secs(1),
            visibility: Duration::from_secs(30),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// What one poller works with.
#[derive(Clone)]
pub struct Worker {
    /// The queue polled.
    pub queue: Arc<dyn Queue>,
    /// Where permanent failures go.
    pub dlq: Arc<dyn Queue>,
    /// The process step's rules.
    pub processor: Arc<Processor>,
    /// Dead-letter timestamps.
    pub clock: Arc<dyn Clock>,
    /// How to poll.
    pub config: WorkerConfig,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Runs one poller until `shutdown` turns true; the batch in hand is always finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Self {
            queue,
            dlq,
            processor,
            clock,
            config,
        } = self;
        let policy = SettlePolicy::LocalBackoff {
            queue: queue.as_ref(),
            max_backoff: config.max_backoff,
        };
        let mut idle_backoff = Duration::from_millis(50);
        while !*shutdown.borrow() {
            let received = tokio::select! {
                r = queue.receive(config.batch_size, config.wait, config.visibility) => r,
                _ = shutdown.changed() => break,
            };
            let batch = match received {
                Ok(b) => {
                    idle_backoff = Duration::from_millis(50);
                    b
                }
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed; backing off");
                    tokio::time::sleep(idle_backoff).await;
                    idle_backoff = (idle_backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if !batch.is_empty() {
                process_batch(&processor, dlq.as_ref(), policy, &batch, clock.as_ref()).await;
            }
        }
    }
}

/// `workers` pollers on threads of their own (see [`process_runtime`]); none when it is 0, which
/// pauses the process step while ingest keeps queueing.
pub struct WorkerPool {
    runtime: Option<tokio::runtime::Runtime>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("workers", &self.tasks.len())
            .finish()
    }
}

impl WorkerPool {
    /// Starts `worker.config.workers` pollers, `nice` steps below the calling thread's priority;
    /// they stop when `shutdown` turns true.
    pub fn start(worker: &Worker, nice: u8, shutdown: &watch::Receiver<bool>) -> std::io::Result<Self> {
        let workers = worker.config.workers;
        if workers == 0 {
            tracing::warn!("worker.workers is 0: the process step is paused; accepted events stay queued");
            return Ok(Self {
                runtime: None,
                tasks: Vec::new(),
            });
        }
        let runtime = process_runtime(workers, nice)?;
        let tasks = (0..workers)
            .map(|_| runtime.spawn(worker.clone().run(shutdown.clone())))
            .collect();
        Ok(Self {
            runtime: Some(runtime),
            tasks,
        })
    }

    /// Waits for every poller to finish the batch in hand (call after `shutdown` turned true).
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        // Every worker has returned; what is left on those threads is idle connection upkeep.
        if let Some(rt) = self.runtime {
            rt.shutdown_background();
        }
    }
}

/// The process step's threads: as many as it has workers, at most one per CPU, each `nice`
/// steps below the thread that starts them.
fn process_runtime(workers: usize, nice: u8) -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.clamp(1, cpus))
        .thread_name("sluice-process")
        .enable_all()
        .on_thread_start(move || lower_priority(nice))
        .build()
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
pub async fn poll_depth(
    queue: Arc<dyn Queue>,
    dlq: Arc<dyn Queue>,
    bp: Arc<Backpressure>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let started = tokio::time::Instant::now();
        match queue.depth().await {
            Ok(d) => {
                bp.observe(d.total());
                gauges("main", d, queue.oldest_age().await);
            }
            Err(e) => tracing::warn!(error = %e, "could not read the queue depth"),
        }
        if let Ok(d) = dlq.depth().await {
            gauges("dlq", d, dlq.oldest_age().await);
        }
        tokio::select! {
            () = tokio::time::sleep(gauge_wait(every, started.elapsed())) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sets the queue gauges of `queue` (`main` or `dlq`).
fn gauges(queue: &'static str, d: QueueDepth, oldest: Result<Option<Duration>, QueueError>) {
    use sluice_core::metrics::{QUEUE_DEPTH, QUEUE_IN_FLIGHT, QUEUE_OLDEST_AGE};
    metrics::gauge!(QUEUE_DEPTH, "queue" => queue).set(d.visible as f64);
    metrics::gauge!(QUEUE_IN_FLIGHT, "queue" => queue).set(d.in_flight as f64);
    if let Ok(age) = oldest {
        metrics::gauge!(QUEUE_OLDEST_AGE, "queue" => queue).set(age.unwrap_or_default().as_secs_f64());
    }
}

/// How long the gauge waits after a read that took `took`: `every`, or longer when reading is
/// slow, so the gauge never costs more than 1/[`GAUGE_COST_RATIO`] of one core.
fn gauge_wait(every: Duration, took: Duration) -> Duration {
    every.max(took.saturating_mul(GAUGE_COST_RATIO))
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
