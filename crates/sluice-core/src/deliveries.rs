//! The webhook intake use case (S-1, S-5): a provider's delivery to a source's URL in, one event
//! out, stored once however often the provider retries it.
//!
//! The source is looked up by the id in its URL; an unknown, deleted or secretless source and
//! every failed verification are the same [`DeliveryError::Unauthenticated`], so a caller cannot
//! tell a wrong secret from a wrong id. A verified delivery becomes an event of the source's
//! tenant: the provider's JSON body as `data`, the type derived as the provider documents it
//! (see [`crate::webhook`]), and the provider's time as `occurred_at` when it falls inside the
//! accepted window (outside it, the time of receipt, the provider's time staying in `data`). The
//! delivery id makes the request idempotent: a retry with the same id is answered with the same
//! event id and stores nothing twice.
//!
//! Sources are read through a short cache (the hosts give it `auth.cache_secs`, as API keys'):
//! a rotation or a deletion takes effect within it, and a busy source costs one store read per
//! TTL instead of one per delivery.

use crate::cache::ReadThrough;
use crate::clock::Clock;
use crate::event::{Extensions, NewEvent, WebhookOrigin};
use crate::ids::{IdempotencyKey, RequestId, SourceId};
use crate::ingest::{Accepted, Idempotent, IngestContext, IngestError, IngestService};
use crate::payload::Payload;
use crate::ports::{SourceRecord, SourceStore, SourceStoreError};
use crate::webhook::{self, WebhookError};
use futures::FutureExt as _;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a verified delivery led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Stored (or stored already, for a retry): the event's id.
    Accepted(Accepted),
    /// Slack's `url_verification`: answer with this challenge; nothing is stored.
    Challenge(String),
}

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Unknown, deleted or unverifiable: one answer (401) for all; the reason is for the log.
    #[error("the delivery is not authenticated ({0})")]
    Unauthenticated(&'static str),
    /// Verified, but not a body its provider sends (400).
    #[error("{0}")]
    Malformed(String),
    /// Verified, but its derived type or its data breaks the event contract (422).
    #[error("{0}")]
    Invalid(String),
    /// Verified and valid, but it could not be queued (the ingest path's own errors).
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The source store could not be read (503).
    #[error("the source store is unavailable: {0}")]
    Unavailable(String),
}

/// Who delivered, as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    /// The id in the URL, unparsed: a malformed id is refused like an unknown one.
    pub source_id: String,
    /// The request id.
    pub request_id: RequestId,
    /// The caller's address.
    pub source_ip: Option<String>,
    /// The request's trace.
    pub trace: Option<crate::trace::TraceContext>,
}

/// Verifies deliveries against their source and ingests them.
pub struct DeliveryService {
    sources: Arc<dyn SourceStore>,
    ingest: Arc<IngestService>,
    clock: Arc<dyn Clock>,
    cache: ReadThrough<SourceId, Option<Arc<SourceRecord>>, SourceStoreError>,
}

impl std::fmt::Debug for DeliveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryService").finish_non_exhaustive()
    }
}

impl DeliveryService {
    /// Deliveries verified against `sources`, ingested through `ingest`; every delivery reads its
    /// source (see [`DeliveryService::with_cache_ttl`]).
    pub fn new(sources: Arc<dyn SourceStore>, ingest: Arc<IngestService>, clock: Arc<dyn Clock>) -> Self {
        Self {
            sources,
            ingest,
            clock,
            cache: ReadThrough::new(Duration::ZERO),
        }
    }

    /// Keeps each source read for `ttl`: a rotation or deletion takes effect within it.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = ReadThrough::new(ttl);
        self
    }

    /// The source `id`, through the cache; `None` when there is no such source.
    async fn source(&self, id: &SourceId) -> Result<Option<Arc<SourceRecord>>, DeliveryError> {
        let store = Arc::clone(&self.sources);
        let key = id.clone();
        self.cache
            .get(id, move || {
                async move {
                    match store.get(&key).await {
                        Ok(r) => Ok(r.map(Arc::new)),
                        Err(SourceStoreError::NotFound) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                .boxed()
            })
            .await
            .map_err(|e| match e {
                SourceStoreError::NotFound => DeliveryError::Unauthenticated("no such source"),
                SourceStoreError::Unavailable(m) => DeliveryError::Unavailable(m),
            })
    }

    /// The ingest service behind it (its validator sizes the transport's body limit).
    pub fn ingest(&self) -> &IngestService {
        &self.ingest
    }

    /// Verifies and ingests one delivery. `headers` has lower-case names, one value each.
    pub async fn deliver(
        &self,
        ctx: DeliveryContext,
        headers: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Result<Delivered, DeliveryError> {
        let id = SourceId::parse(&ctx.source_id).map_err(|_| DeliveryError::Unauthenticated("not a source id"))?;
        let now = self.clock.now();
        let validator = self.ingest.validator();
        let limits = validator.limits();
        let was_cached = self.cache.contains(&id);
        let mut checked = check(self.source(&id).await?, headers, body, now, limits.max_depth);
        if was_cached && matches!(checked, Err(DeliveryError::Unauthenticated(_))) {
            // The cached record may predate a rotation: a provider signing with the new secret
            // must not wait out the cache. One fresh read, and only after a failure, which the
            // transport has already limited per source and per address.
            self.cache.forget(&id);
            checked = check(self.source(&id).await?, headers, body, now, limits.max_depth);
        }
        let (source, verified) = checked?;
        if let Some(challenge) = verified.challenge {
            return Ok(Delivered::Challenge(challenge));
        }
        // The body passed the strict reader, so its text is the payload as sent; the parsed
        // tree was only for the provider's fields.
        let data = std::str::from_utf8(body)
            .ok()
            .and_then(|text| Payload::from_json(text.to_owned()).ok())
            .unwrap_or_else(|| Payload::from_value(&verified.data));
        if let Err(violations) = validator.recheck(&verified.event_type, &data) {
            let first = violations
                .first()
                .map(|v| format!("{} {}", v.pointer, v.message))
                .unwrap_or_default();
            return Err(DeliveryError::Invalid(format!(
                "the delivery breaks its type's schema: {first}"
            )));
        }
        let window =
            (now - Duration::from_secs(limits.max_past_secs))..=(now + Duration::from_secs(limits.max_future_secs));
        let occurred_at = verified.occurred_at.filter(|t| window.contains(t));
        // The source and the provider's delivery id name the delivery: the same pair is the
        // same request, whatever the provider's retries look like on the wire.
        let digest = crate::text::hex_digest(&Sha256::digest(
            format!("{}\n{}", source.id, verified.delivery_id).as_bytes(),
        ));
        let key = IdempotencyKey::parse(&format!("delivery:{digest}"))
            .map_err(|_| DeliveryError::Malformed("the delivery id cannot name a request".into()))?;
        let ingest_ctx = IngestContext {
            tenant: source.tenant.clone(),
            request_id: ctx.request_id,
            source_ip: ctx.source_ip,
            idempotency_key: None,
            trace: ctx.trace,
        };
        let idempotent = Idempotent {
            key,
            fingerprint: crate::text::hex_digest(&Sha256::digest(body)),
        };
        let event = NewEvent {
            event_type: verified.event_type,
            data,
            occurred_at,
            subject: None,
            webhook: Some(WebhookOrigin {
                source_id: source.id.clone(),
                delivery_id: verified.delivery_id,
            }),
            extensions: Extensions::new(),
        };
        let accepted = self
            .ingest
            .accept(&ingest_ctx, vec![event], true, Some(idempotent), now)
            .await?;
        Ok(Delivered::Accepted(accepted))
    }
}

/// Verifies a delivery against its source, handing the source back with what the delivery says:
/// an unknown, deleted or secretless source and every failed check are the same
/// [`DeliveryError::Unauthenticated`].
fn check(
    source: Option<Arc<SourceRecord>>,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    now: time::OffsetDateTime,
    max_depth: usize,
) -> Result<(Arc<SourceRecord>, webhook::Verified), DeliveryError> {
    let source = source.ok_or(DeliveryError::Unauthenticated("no such source"))?;
    let secrets = source.live_secrets(now);
    if secrets.is_empty() {
        return Err(DeliveryError::Unauthenticated(
            "the source is deleted or has no live secret",
        ));
    }
    let verified = webhook::verify(&source.kind, &secrets, headers, body, now, max_depth).map_err(|e| match e {
        WebhookError::Unauthenticated(why) => DeliveryError::Unauthenticated(why),
        WebhookError::Malformed(m) => DeliveryError::Malformed(m),
        WebhookError::InvalidType(t) => {
            DeliveryError::Invalid(format!("the delivery's event type {t:?} is not a valid event type"))
        }
    })?;
    Ok((source, verified))
}
