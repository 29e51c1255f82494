//! The process step's rules: queue records in, events in the store exactly once.
//!
//! Semantics follow a Lambda SQS consumer with `ReportBatchItemFailures`: the records of a batch
//! are checked one by one and written to the store together, each gets its own [`Outcome`], a panic
//! in one is caught and becomes that record's failure, and only records that succeeded are deleted.
//! Retryable failures stay in the queue and come back after a backoff; permanent ones (a record
//! that can never succeed) go to the dead-letter queue at once with the reason. Because the store
//! write is a conditional put on the event id, a redelivered record stores nothing twice.
//!
//! What a host does with the outcomes (delete, back off, report batch item failures) and the loop
//! that polls a queue live in `sluice-host`, which both hosts share.

use crate::envelope::{Envelope, Sealer, attr};
use crate::event::StoredEvent;
use crate::feed::{Retention, subject_digest};
use crate::ports::{EventStore, OutgoingMessage, PutOutcome, ReceivedMessage, StoreError};
use crate::validate::Validator;
use futures::FutureExt as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Newly stored.
    Stored,
    /// Already stored by an earlier delivery: success, nothing written.
    Duplicate,
    /// About a subject erased after the event was accepted: dropped, never stored (success).
    Erased,
    /// Failed for now (store unavailable, a panic): leave it for redelivery.
    Retry(String),
    /// Can never succeed (bad signature, invalid envelope): dead-letter it now.
    Permanent(String),
}

impl Outcome {
    /// Whether the record is done and may be deleted from the queue.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Stored | Outcome::Duplicate | Outcome::Erased)
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::Erased => "erased",
            Outcome::Retry(_) => "retry",
            Outcome::Permanent(_) => "dead_lettered",
        }
    }
}

/// Verifies, re-validates and stores records.
pub struct Processor {
    store: Arc<dyn EventStore>,
    sealer: Arc<Sealer>,
    validator: Arc<Validator>,
    retention: Retention,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").finish_non_exhaustive()
    }
}

impl Processor {
    /// A processor writing to `store`.
    pub fn new(store: Arc<dyn EventStore>, sealer: Arc<Sealer>, validator: Arc<Validator>) -> Self {
        Self {
            store,
            sealer,
            validator,
            retention: Retention::default(),
        }
    }

    /// Stored events expire by `retention` (default: [`Retention::default`]).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Everything before the store: the envelope's signature and shape, and the event contract
    /// again (T-2). A record that fails here can never succeed: its outcome is permanent.
    fn prepare(&self, msg: &ReceivedMessage) -> Result<StoredEvent, Outcome> {
        let env = self
            .sealer
            .open(msg)
            .map_err(|e| Outcome::Permanent(format!("envelope rejected: {e}")))?;
        if let Err(v) = self.validator.recheck(&env.event_type, &env.data) {
            let first = v
                .first()
                .map(|v| format!("{} {}", v.pointer, v.message))
                .unwrap_or_default();
            return Err(Outcome::Permanent(format!("event no longer valid: {first}")));
        }
        let mut event = stored_event(env);
        event.expires_at = self.retention.expires_at(&event.event_type, event.received_at);
        Ok(event)
    }

    /// Whether the event is about a subject erased after it was accepted: it must not be
    /// stored, whether it was queued or dead-lettered when the erasure ran.
    async fn erased(&self, event: &StoredEvent) -> Result<bool, StoreError> {
        let Some(subject) = &event.subject else {
            return Ok(false);
        };
        let until = self.store.erased_until(&event.tenant, &subject_digest(subject)).await?;
        Ok(until.is_some_and(|t| event.received_at < t))
    }

    /// Processes a batch: one [`Outcome`] per record, in order.
    ///
    /// The records whose envelope and contract check pass are written with one
    /// [`EventStore::put_batch_if_absent`]. A panic is contained to its record: one while
    /// preparing fails that record; one inside the batch write makes the batch's records be
    /// written again one by one, so only the record that panics fails (a write that did land
    /// first comes back as a duplicate, which is a success).
    pub async fn process_batch(&self, batch: &[ReceivedMessage]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut prepared = Vec::with_capacity(batch.len());
        for (i, msg) in batch.iter().enumerate() {
            match std::panic::catch_unwind(AssertUnwindSafe(|| self.prepare(msg))) {
                Ok(Ok(event)) => prepared.push((i, event)),
                Ok(Err(outcome)) => outcomes[i] = Some(outcome),
                Err(_) => outcomes[i] = Some(panicked()),
            }
        }
        // The erasure markers of the batch's subjects, read together: on DynamoDB each is a
        // round trip, and one after another they would add up on every batch.
        let erased = futures::future::join_all(prepared.iter().map(|(_, e)| self.erased(e))).await;
        let mut events = Vec::with_capacity(prepared.len());
        let mut positions = Vec::with_capacity(prepared.len());
        for ((i, event), erased) in prepared.into_iter().zip(erased) {
            match erased {
                Ok(false) => {
                    events.push(event);
                    positions.push(i);
                }
                // The record's own log line says `erased`.
                Ok(true) => outcomes[i] = Some(Outcome::Erased),
                Err(e) => outcomes[i] = Some(put_outcome(Err(e))),
            }
        }
        if !events.is_empty() {
            let written = match AssertUnwindSafe(self.store.put_batch_if_absent(&events))
                .catch_unwind()
                .await
            {
                Ok(results) => results.into_iter().map(put_outcome).collect(),
                Err(_) => self.put_one_by_one(&events).await,
            };
            for (i, outcome) in positions.into_iter().zip(written) {
                outcomes[i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            // Only a store that answers fewer results than events leaves a gap: retry those.
            .map(|o| o.unwrap_or_else(|| Outcome::Retry("the store gave no answer for this record".into())))
            .collect()
    }

    async fn put_one_by_one(&self, events: &[StoredEvent]) -> Vec<Outcome> {
        // Collected into a Vec of async blocks rather than a lazy `map` with a closure over the
        // unwind result: that closure trips rustc's higher-ranked lifetime inference and makes
        // the future not provably `Send`, so `run_worker` could not be `tokio::spawn`ed.
        let futures: Vec<_> = events
            .iter()
            .map(|e| async move {
                match AssertUnwindSafe(self.store.put_if_absent(e)).catch_unwind().await {
                    Ok(r) => put_outcome(r),
                    Err(_) => panicked(),
                }
            })
            .collect();
        futures::future::join_all(futures).await
    }
}

fn panicked() -> Outcome {
    Outcome::Retry("the record's processing panicked".into())
}

/// What a conditional put's result means for the record.
fn put_outcome(result: Result<PutOutcome, StoreError>) -> Outcome {
    match result {
        Ok(PutOutcome::Created) => Outcome::Stored,
        Ok(PutOutcome::AlreadyExists) => Outcome::Duplicate,
        Err(StoreError::Unavailable(m)) => Outcome::Retry(format!("store unavailable: {m}")),
        Err(StoreError::Corrupt(m)) => Outcome::Retry(format!("store error: {m}")),
    }
}

fn stored_event(env: Envelope) -> StoredEvent {
    StoredEvent {
        id: env.id,
        tenant: env.tenant,
        event_type: env.event_type,
        data: env.data,
        occurred_at: env.occurred_at,
        received_at: env.received_at,
        request_id: env.request_id,
        subject: env.subject,
        webhook: env.webhook,
        extensions: env.extensions,
        seq: 0,
        expires_at: None,
        idempotency_key: env.idempotency_key,
        trace_id: env
            .traceparent
            .as_deref()
            .and_then(crate::trace::TraceContext::parse_traceparent)
            .map(|t| t.trace_id().to_owned()),
    }
}

/// The dead-letter copy of a record: same body and attributes, plus why and when.
pub fn dead_letter(msg: &ReceivedMessage, reason: &str, at: OffsetDateTime) -> OutgoingMessage {
    let mut attributes = msg.attributes.clone();
    let mut reason = reason.to_owned();
    crate::text::truncate_at_char_boundary(&mut reason, 512);
    attributes.insert(attr::DLQ_REASON.into(), reason);
    attributes.insert(attr::DLQ_AT.into(), at.format(&Rfc3339).unwrap_or_default());
    OutgoingMessage {
        body: msg.body.clone(),
        attributes,
        group: msg.group.clone(),
    }
}

/// Exponential backoff for a record's `receive_count`-th failure: 1 s, 2 s, 4 s, … capped.
pub fn backoff(receive_count: u32, cap: Duration) -> Duration {
    let secs = 1u64 << receive_count.saturating_sub(1).min(16);
    Duration::from_secs(secs).min(cap)
}

/// Counts the record's outcome and, when newly stored, the time from its 202 (the envelope's
/// `received_at`) to now, when it became readable.
fn record_outcome(msg: &ReceivedMessage, outcome: &Outcome) {
    let label = match outcome {
        Outcome::Stored => "stored",
        Outcome::Duplicate => "duplicate",
        Outcome::Erased => "erased",
        Outcome::Retry(_) => "retried",
        Outcome::Permanent(_) => "dead_lettered",
    };
    metrics::counter!(crate::metrics::STORED, "outcome" => label).increment(1);
    if *outcome == Outcome::Stored
        && let Some(received) = msg
            .attributes
            .get(attr::RECEIVED_AT)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    {
        let secs = (OffsetDateTime::now_utc() - received).as_seconds_f64().max(0.0);
        metrics::histogram!(crate::metrics::STORED_LATENCY).record(secs);
    }
}

/// The trace id in the record's `traceparent` attribute, for its log line.
fn trace_id(msg: &ReceivedMessage) -> Option<String> {
    msg.attributes
        .get(attr::TRACEPARENT)
        .and_then(|t| crate::trace::TraceContext::parse_traceparent(t))
        .map(|t| t.trace_id().to_owned())
}

/// The log target of the per-record lines.
pub const RECORD_TARGET: &str = "sluice::record";

/// The per-record log line: request id, tenant, event id, outcome and latency, never the body.
/// Shared by every host of the process step so their logs read the same. A stored record is
/// `INFO`, a failed one `WARN` (target [`RECORD_TARGET`]).
pub fn log_outcome(msg: &ReceivedMessage, outcome: &Outcome, started: Instant) {
    let a = |k: &str| msg.attributes.get(k).map(String::as_str).unwrap_or("");
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    record_outcome(msg, outcome);
    match outcome {
        Outcome::Stored | Outcome::Duplicate | Outcome::Erased => tracing::info!(
            target: RECORD_TARGET,
            request_id = a(attr::REQUEST_ID), trace_id = trace_id(msg), tenant = a(attr::TENANT), event_id = a(attr::EVENT_ID),
            message_id = %msg.message_id, receive_count = msg.receive_count, outcome = outcome.label(), latency_ms,
            "record processed"
        ),
        Outcome::Retry(reason) | Outcome::Permanent(reason) => tracing::warn!(
            target: RECORD_TARGET,
            request_id = a(attr::REQUEST_ID), trace_id = trace_id(msg), tenant = a(attr::TENANT), event_id = a(attr::EVENT_ID),
            message_id = %msg.message_id, receive_count = msg.receive_count, outcome = outcome.label(), reason = %reason, latency_ms,
            "record failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(1, cap), Duration::from_secs(1));
        assert_eq!(backoff(2, cap), Duration::from_secs(2));
        assert_eq!(backoff(4, cap), Duration::from_secs(8));
        assert_eq!(backoff(40, cap), cap);
        assert_eq!(backoff(0, cap), Duration::from_secs(1));
    }
}
