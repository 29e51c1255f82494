//! What a host does with a processed batch: one settle function, with a named policy per host.
//!
//! Both hosts agree on what an [`Outcome`] means: stored and duplicate records are done; a
//! permanent failure goes to the dead-letter queue at once with its reason and is then done,
//! unless that send fails, in which case it stays for redelivery so nothing is lost; a retryable
//! failure stays for redelivery. They differ only in who deletes and how a retry is delayed, which
//! is exactly what [`SettlePolicy`] names.

use futures::future::join_all;
use sluice_core::clock::Clock;
use sluice_core::ports::{MAX_BATCH, Queue, ReceiptHandle, ReceivedMessage};
use sluice_core::process::{Outcome, Processor, backoff, dead_letter, log_outcome};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How a host settles records.
#[derive(Clone, Copy)]
pub enum SettlePolicy<'a> {
    /// `sluice serve`'s worker pool: the host deletes every finished record itself (one delete
    /// batch, one commit) and delays a retry with exponential backoff ([`backoff`]) by changing
    /// its visibility, so a failing record is not retried in a hot loop.
    LocalBackoff {
        /// The queue the batch came from.
        queue: &'a dyn Queue,
        /// The longest backoff.
        max_backoff: Duration,
    },
    /// A Lambda SQS consumer with `ReportBatchItemFailures`: the event source mapping deletes
    /// every record not reported, and a reported one comes back after the queue's visibility
    /// timeout (and moves to the DLQ after `maxReceiveCount`, the redrive policy).
    BatchItemFailures,
}

impl std::fmt::Debug for SettlePolicy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LocalBackoff { max_backoff, .. } => f
                .debug_struct("LocalBackoff")
                .field("max_backoff", max_backoff)
                .finish_non_exhaustive(),
            Self::BatchItemFailures => f.write_str("BatchItemFailures"),
        }
    }
}

/// Processes `batch`, logs each record's outcome and settles it under `policy`.
///
/// Returns the message ids left for redelivery: under [`SettlePolicy::BatchItemFailures`] the
/// batch item failures to report; under [`SettlePolicy::LocalBackoff`] the records not deleted.
pub async fn process_batch(
    processor: &Processor,
    dlq: &dyn Queue,
    policy: SettlePolicy<'_>,
    batch: &[ReceivedMessage],
    clock: &dyn Clock,
) -> Vec<String> {
    let started = Instant::now();
    let outcomes = processor.process_batch(batch).await;
    for (msg, outcome) in batch.iter().zip(&outcomes) {
        log_outcome(msg, outcome, started);
    }
    settle(policy, dlq, batch, &outcomes, clock.now()).await
}

/// Settles already processed records (`outcomes[i]` is `batch[i]`'s) under `policy`; returns the
/// message ids left for redelivery.
///
/// Dead-lettering and backoffs run concurrently (a durable queue commits concurrent calls
/// together, and a batch of poison records then costs one DLQ round trip, not ten).
pub async fn settle(
    policy: SettlePolicy<'_>,
    dlq: &dyn Queue,
    batch: &[ReceivedMessage],
    outcomes: &[Outcome],
    now: OffsetDateTime,
) -> Vec<String> {
    let mut finished = join_all(
        batch
            .iter()
            .zip(outcomes)
            .map(|(msg, outcome)| finish_one(policy, dlq, msg, outcome, now)),
    )
    .await;
    // A record without an outcome is not finished: it must come back, never be dropped.
    finished.resize(batch.len(), false);
    let deleted = match policy {
        SettlePolicy::LocalBackoff { queue, .. } => delete_finished(queue, batch, &finished).await,
        // The event source mapping deletes what is not reported.
        SettlePolicy::BatchItemFailures => finished,
    };
    batch
        .iter()
        .zip(deleted)
        .filter(|(_, deleted)| !deleted)
        .map(|(m, _)| m.message_id.clone())
        .collect()
}

/// Everything but the delete for one record; true when it may be deleted (stored, duplicate, or
/// dead-lettered).
async fn finish_one(
    policy: SettlePolicy<'_>,
    dlq: &dyn Queue,
    msg: &ReceivedMessage,
    outcome: &Outcome,
    now: OffsetDateTime,
) -> bool {
    match outcome {
        Outcome::Stored | Outcome::Duplicate | Outcome::Erased => true,
        Outcome::Permanent(reason) => match dlq.send(dead_letter(msg, reason, now)).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(message_id = %msg.message_id, error = %e, "could not dead-letter a record; it will be retried");
                false
            }
        },
        Outcome::Retry(_) => {
            if let SettlePolicy::LocalBackoff { queue, max_backoff } = policy {
                let delay = backoff(msg.receive_count, max_backoff);
                if let Err(e) = queue.change_visibility(&msg.receipt, delay).await {
                    tracing::debug!(message_id = %msg.message_id, error = %e, "could not set retry backoff");
                }
            }
            false
        }
    }
}

/// Deletes the finished records in batches of at most [`MAX_BATCH`]; true for each one deleted.
async fn delete_finished(queue: &dyn Queue, batch: &[ReceivedMessage], finished: &[bool]) -> Vec<bool> {
    let done: Vec<(usize, &ReceivedMessage)> = batch
        .iter()
        .zip(finished)
        .enumerate()
        .filter(|(_, (_, finished))| **finished)
        .map(|(i, (m, _))| (i, m))
        .collect();
    let mut deleted = vec![false; batch.len()];
    for chunk in done.chunks(MAX_BATCH) {
        let receipts: Vec<ReceiptHandle> = chunk.iter().map(|(_, m)| m.receipt.clone()).collect();
        for ((i, msg), result) in chunk.iter().zip(queue.delete_batch(&receipts).await) {
            match result {
                Ok(()) => deleted[*i] = true,
                // The record will be redelivered; the conditional put makes that harmless.
                Err(e) => tracing::warn!(
                    message_id = %msg.message_id, error = %e, "delete failed; the record will be redelivered"
                ),
            }
        }
    }
    deleted
}
