//! The ingest use case: validate, assign ids, seal envelopes, enqueue durably, answer with ids.
//!
//! Free of HTTP types, so the axum route and the Lambda function share it unchanged.

use crate::clock::Clock;
use crate::envelope::{Envelope, Sealer, VERSION};
use crate::event::NewEvent;
use crate::ids::{EventId, IdempotencyKey, RequestId};
use crate::ports::{
    Claim, ClaimingQueue, IdempotencyRecord, IdempotencyStore, MAX_BATCH, MAX_MESSAGE_BYTES, OutgoingMessage, Queue,
    QueueError, message_size,
};
use crate::tenant::Tenant;
use crate::validate::{ValidationError, Validator};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// How a request body is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Sluice's own shape: one event object or an array of them.
    Native,
    /// One CloudEvent in the JSON event format (structured mode).
    CloudEvent,
    /// A CloudEvents JSON batch.
    CloudEventBatch,
    /// CloudEvents binary mode: the `ce-*` attributes (name without the prefix, value decoded)
    /// and the JSON data as the body.
    CloudEventBinary(Vec<(String, String)>),
}

/// What makes a request idempotent: its key, and what a retry under that key must repeat (the
/// body's digest, or what its events mean) to be answered with the first attempt's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent {
    /// The key, per tenant.
    pub key: IdempotencyKey,
    /// The request's fingerprint.
    pub fingerprint: String,
}

/// Who sent a request and how to trace it.
#[derive(Debug, Clone)]
pub struct IngestContext {
    /// The authenticated tenant.
    pub tenant: Tenant,
    /// The request id.
    pub request_id: RequestId,
    /// The caller's address.
    pub source_ip: Option<String>,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The request's trace: its events carry it to the store.
    pub trace: Option<crate::trace::TraceContext>,
}

/// What the client gets back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Accepted {
    /// `{"id": ...}` for a single event.
    One {
        /// The id.
        id: EventId,
    },
    /// `{"ids": [...]}` for a batch.
    Many {
        /// The ids, in request order.
        ids: Vec<EventId>,
    },
}

impl Accepted {
    /// The ids, in request order.
    pub fn ids(&self) -> &[EventId] {
        match self {
            Accepted::One { id } => std::slice::from_ref(id),
            Accepted::Many { ids } => ids,
        }
    }
}

/// Why ingest refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is invalid (400 or 422).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The idempotency key was used before with another body (422).
    #[error("the idempotency key was used with a different request body")]
    IdempotencyMismatch,
    /// An event does not fit a queue message once sealed (413); nothing was queued or claimed.
    #[error("{what} is larger than {limit} bytes once sealed")]
    TooLarge {
        /// What does not fit: one event in a queue message.
        what: &'static str,
        /// The limit it passes.
        limit: usize,
    },
    /// The queue is over its bound: backpressure (503, D-3).
    #[error("the queue is full")]
    Overloaded,
    /// The queue or idempotency store failed (503).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<QueueError> for IngestError {
    fn from(e: QueueError) -> Self {
        IngestError::Unavailable(e.to_string())
    }
}

/// A queue-depth bound checked on every request (D-3). The depth is refreshed by a poller so the
/// hot path reads an atomic, not the queue.
#[derive(Debug)]
pub struct Backpressure {
    depth: AtomicU64,
    bound: u64,
}

impl Backpressure {
    /// Refuse new events once the queue holds `bound` messages.
    pub fn new(bound: u64) -> Self {
        Self {
            depth: AtomicU64::new(0),
            bound,
        }
    }

    /// Records the latest observed depth.
    pub fn observe(&self, depth: u64) {
        self.depth.store(depth, Ordering::Relaxed);
    }

    /// Counts messages just sent, so a burst between polls is still bounded.
    pub fn add(&self, n: u64) {
        self.depth.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether `n` more messages would exceed the bound.
    pub fn would_exceed(&self, n: u64) -> bool {
        self.depth.load(Ordering::Relaxed).saturating_add(n) > self.bound
    }
}

/// Gives `events`, received at `now`, consecutive ids and seals each into a queue message: the
/// CPU work of ingest between the validated body and the queue, and all of it (the per-event CPU
/// benchmark runs exactly this).
pub fn seal_all(
    sealer: &Sealer,
    ctx: &IngestContext,
    events: Vec<NewEvent>,
    idempotency_key: Option<&IdempotencyKey>,
    now: OffsetDateTime,
) -> Result<(Vec<EventId>, Vec<OutgoingMessage>), IngestError> {
    let mut ids = Vec::with_capacity(events.len());
    let mut next = EventId::new_at(now);
    let mut messages = Vec::with_capacity(events.len());
    let traceparent = ctx.trace.as_ref().map(crate::trace::TraceContext::traceparent);
    // By value: each event's payload moves into its envelope instead of being deep-copied.
    for e in events {
        let id = next;
        next = id.successor().unwrap_or_else(|| EventId::new_at(now));
        ids.push(id);
        let env = Envelope {
            v: VERSION,
            id,
            tenant: ctx.tenant.clone(),
            event_type: e.event_type,
            data: e.data,
            occurred_at: e.occurred_at.unwrap_or(now),
            received_at: now,
            request_id: ctx.request_id.clone(),
            source_ip: ctx.source_ip.clone(),
            subject: e.subject,
            webhook: e.webhook,
            extensions: e.extensions,
            traceparent: traceparent.clone(),
            idempotency_key: idempotency_key.cloned(),
        };
        let message = sealer.seal(&env).map_err(|e| IngestError::Unavailable(e.to_string()))?;
        // Measured before anything is sent: a message the queue would refuse is the client's to
        // fix (413), never an outage to retry (T-1).
        if message_size(&message) > MAX_MESSAGE_BYTES {
            return Err(IngestError::TooLarge {
                what: "an event",
                limit: MAX_MESSAGE_BYTES,
            });
        }
        messages.push(message);
    }
    Ok((ids, messages))
}

/// The ingest use case.
pub struct IngestService {
    validator: Arc<Validator>,
    queue: Arc<dyn Queue>,
    idempotency: Arc<dyn IdempotencyStore>,
    sealer: Arc<Sealer>,
    clock: Arc<dyn Clock>,
    idempotency_ttl: Duration,
    backpressure: Option<Arc<Backpressure>>,
    claiming: Option<Arc<dyn ClaimingQueue>>,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestService").finish_non_exhaustive()
    }
}

impl IngestService {
    /// Wires the use case to its ports.
    pub fn new(
        validator: Arc<Validator>,
        queue: Arc<dyn Queue>,
        idempotency: Arc<dyn IdempotencyStore>,
        sealer: Arc<Sealer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            validator,
            queue,
            idempotency,
            sealer,
            clock,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            backpressure: None,
            claiming: None,
        }
    }

    /// Claims and sends idempotent requests in one step through `queue`, which must be the
    /// service's queue and keep the records of its idempotency store (see [`ClaimingQueue`]).
    pub fn with_claiming_queue(mut self, queue: Arc<dyn ClaimingQueue>) -> Self {
        self.claiming = Some(queue);
        self
    }

    /// Refuse work beyond a queue-depth bound.
    pub fn with_backpressure(mut self, bp: Arc<Backpressure>) -> Self {
        self.backpressure = Some(bp);
        self
    }

    /// The validator in use (its limits size the transport's body limit).
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Validates `body` and enqueues its events; `Ok` means every event is durably in the queue.
    pub async fn ingest(&self, ctx: &IngestContext, body: &[u8]) -> Result<Accepted, IngestError> {
        self.ingest_as(ctx, &Format::Native, body).await
    }

    /// Like [`IngestService::ingest`] for a body in `format`. A CloudEvents request is
    /// idempotent by its `source` + `id` pairs (see [`crate::cloudevents::CloudEvents::idempotency_key`]) unless the
    /// client sent its own `Idempotency-Key`, which then wins; either way the request's
    /// fingerprint is what its events mean, not its bytes.
    pub async fn ingest_as(&self, ctx: &IngestContext, format: &Format, body: &[u8]) -> Result<Accepted, IngestError> {
        let now = self.clock.now();
        let (events, single, key, fingerprint) = match format {
            Format::Native => {
                let (events, single) = self.validator.parse_body(body, now)?.into_events();
                (events, single, ctx.idempotency_key.clone(), None)
            }
            Format::CloudEvent | Format::CloudEventBatch | Format::CloudEventBinary(_) => {
                let ces = match format {
                    Format::CloudEvent => self.validator.parse_cloudevent(body, now)?,
                    Format::CloudEventBinary(attrs) => self.validator.parse_cloudevent_binary(attrs, body, now)?,
                    _ => self.validator.parse_cloudevent_batch(body, now)?,
                };
                let key = ctx.idempotency_key.clone().or_else(|| ces.idempotency_key());
                let fingerprint = ces.fingerprint();
                (ces.events, ces.single, key, Some(fingerprint))
            }
        };
        let idempotent = key.map(|key| Idempotent {
            key,
            fingerprint: fingerprint.unwrap_or_else(|| crate::text::hex_digest(&Sha256::digest(body))),
        });
        self.accept(ctx, events, single, idempotent, now).await
    }

    /// Seals, queues and answers for events already validated (by [`IngestService::ingest_as`],
    /// or derived from a verified webhook delivery), received at `now`; `ctx.idempotency_key` is
    /// not read here, `idempotent` says whether and how the request is idempotent.
    pub async fn accept(
        &self,
        ctx: &IngestContext,
        events: Vec<NewEvent>,
        single: bool,
        idempotent: Option<Idempotent>,
        now: OffsetDateTime,
    ) -> Result<Accepted, IngestError> {
        if let Some(bp) = &self.backpressure
            && bp.would_exceed(events.len() as u64)
        {
            return Err(IngestError::Overloaded);
        }
        let (ids, messages) = seal_all(&self.sealer, ctx, events, idempotent.as_ref().map(|i| &i.key), now)?;
        let accepted = match (single, ids.first()) {
            (true, Some(id)) => Accepted::One { id: *id },
            _ => Accepted::Many { ids },
        };
        let Some(Idempotent { key, fingerprint }) = idempotent else {
            self.send_all(messages).await?;
            return Ok(accepted);
        };
        let key = &key;
        let record = IdempotencyRecord {
            tenant: ctx.tenant.clone(),
            key: key.clone(),
            fingerprint,
            ids: accepted.ids().to_vec(),
            single: matches!(accepted, Accepted::One { .. }),
            completed: false,
            expires_at: now + self.idempotency_ttl,
        };
        let claim = match &self.claiming {
            Some(queue) => {
                let claim = queue.claim_and_send(&record, now, &messages).await?;
                if claim == Claim::Claimed {
                    // Sent, and the record completed, with the claim.
                    self.queued(messages.len());
                    return Ok(accepted);
                }
                claim
            }
            None => self
                .idempotency
                .claim(&record, now)
                .await
                .map_err(|e| IngestError::Unavailable(e.to_string()))?,
        };
        let (accepted, messages) = match claim {
            Claim::Claimed => (accepted, messages),
            Claim::Existing(prior) if prior.fingerprint != record.fingerprint => {
                return Err(IngestError::IdempotencyMismatch);
            }
            Claim::Existing(prior) => {
                let accepted = if prior.single {
                    Accepted::One {
                        id: prior
                            .ids
                            .first()
                            .copied()
                            .ok_or_else(|| IngestError::Unavailable("empty idempotency record".into()))?,
                    }
                } else {
                    Accepted::Many { ids: prior.ids.clone() }
                };
                if prior.completed {
                    return Ok(accepted);
                }
                // The first attempt may have died between claim and send. The fingerprint says
                // these are its events: send them again under its ids, and the store's
                // conditional put keeps each event once.
                let messages = self.reseal(messages, &prior.ids)?;
                (accepted, messages)
            }
        };
        self.send_all(messages).await?;
        self.idempotency
            .complete(&ctx.tenant, key)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        Ok(accepted)
    }

    /// `messages` sealed again under `ids`, one each, in order.
    fn reseal(&self, messages: Vec<OutgoingMessage>, ids: &[EventId]) -> Result<Vec<OutgoingMessage>, IngestError> {
        if messages.len() != ids.len() {
            return Err(IngestError::Unavailable(
                "an idempotency record's ids do not match its request".into(),
            ));
        }
        let unavailable = |e: crate::envelope::EnvelopeError| IngestError::Unavailable(e.to_string());
        messages
            .into_iter()
            .zip(ids)
            .map(|(m, id)| {
                let mut env = self.sealer.open_parts(&m.body, &m.attributes).map_err(unavailable)?;
                env.id = *id;
                self.sealer.seal(&env).map_err(unavailable)
            })
            .collect()
    }

    async fn send_all(&self, messages: Vec<OutgoingMessage>) -> Result<(), IngestError> {
        let n = messages.len();
        let mut chunks = Vec::new();
        let mut it = messages.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(MAX_BATCH).collect::<Vec<_>>());
        }
        // Concurrent chunks share one group commit in the embedded queue and overlap round trips on SQS.
        let results = futures::future::join_all(chunks.into_iter().map(|c| self.queue.send_batch(c))).await;
        for r in results {
            r?;
        }
        self.queued(n);
        Ok(())
    }

    /// Counts `n` messages just queued towards the backpressure bound.
    fn queued(&self, n: usize) {
        if let Some(bp) = &self.backpressure {
            bp.add(n as u64);
        }
    }
}
