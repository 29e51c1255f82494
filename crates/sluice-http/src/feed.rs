//! Events out over HTTP: `GET /v1/feed` (long-poll), `GET /v1/feed/stream` (Server-Sent
//! Events), `DELETE /v1/events/{id}`, `POST /v1/erasures` and `GET /v1/erasures/{id}`: thin
//! adapters over [`FeedService`]. Every route is tenant-scoped by the principal (I-3): another
//! tenant's event or erasure is a 404 like an absent one, and a feed holds only the caller's
//! entries.

use crate::ingest::{principal, request_id};
use crate::problem::{Code, Problem};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use sluice_core::feed::{FeedParams, FeedService, FeedServiceError, parse_feed_params};
use sluice_core::ports::{FeedEntry, FeedPage, FeedQuery, StoreError};
use sluice_core::{RequestId, Tenant};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// Seconds a client should wait after a 503 from the store.
const STORE_RETRY_AFTER: u64 = 5;
/// The largest erasure request body.
const MAX_ERASURE_BODY: usize = 4096;

/// How the feed routes wait and how many streams they allow.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// How often a waiting read looks again when nothing wakes it (a store other processes
    /// write, as on AWS).
    pub poll: Duration,
    /// Open streams per tenant; one more gets 429 (D-2).
    pub max_streams_per_tenant: usize,
    /// A stream whose client has not taken an entry for this long is closed; it resumes by
    /// `Last-Event-ID` (D-2).
    pub slow_consumer: Duration,
    /// Entries a stream holds for its client before it counts as slow.
    pub stream_buffer: usize,
    /// Comment lines that keep an idle stream open through proxies.
    pub heartbeat: Duration,
    /// The longest a long-poll waits, whatever `wait` asks (at most 20 s).
    pub max_wait: Duration,
}

impl Default for FeedSettings {
    /// Poll every 250 ms, 8 streams per tenant, 10 s to take an entry, 256 buffered, a
    /// heartbeat every 15 s, long-polls of up to 20 s.
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            max_streams_per_tenant: 8,
            slow_consumer: Duration::from_secs(10),
            stream_buffer: 256,
            heartbeat: Duration::from_secs(15),
            max_wait: Duration::from_secs(sluice_core::feed::MAX_WAIT_SECS),
        }
    }
}

/// The feed routes' state: the use case, what wakes waiting reads, and the open streams.
pub struct FeedState {
    service: Arc<FeedService>,
    /// Woken when the host stores or deletes events (`sluice serve`); `None` on Lambda, where
    /// another process writes and reads poll.
    notify: Option<Arc<Notify>>,
    settings: FeedSettings,
    streams: Mutex<HashMap<Tenant, usize>>,
}

impl std::fmt::Debug for FeedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedState").finish_non_exhaustive()
    }
}

impl FeedState {
    /// The routes' state over `service`; `notify` wakes waiting reads when the host writes.
    pub fn new(service: Arc<FeedService>, notify: Option<Arc<Notify>>, settings: FeedSettings) -> Arc<Self> {
        Arc::new(Self {
            service,
            notify,
            settings,
            streams: Mutex::new(HashMap::new()),
        })
    }

    /// Reads once, and again whenever woken or every poll interval, until an entry exists or
    /// `deadline` passes.
    async fn read_until(
        &self,
        tenant: &Tenant,
        query: &FeedQuery,
        deadline: Instant,
    ) -> Result<FeedPage, FeedServiceError> {
        loop {
            let wake_at = |now: Instant| deadline.min(now + self.settings.poll);
            match &self.notify {
                Some(n) => {
                    // Registered before the read, so a write landing between the read and the
                    // wait still wakes it.
                    let notified = n.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    let page = self.service.read(tenant, query).await?;
                    if !page.entries.is_empty() || Instant::now() >= deadline {
                        return Ok(page);
                    }
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(wake_at(Instant::now())) => {}
                    }
                }
                None => {
                    let page = self.service.read(tenant, query).await?;
                    if !page.entries.is_empty() || Instant::now() >= deadline {
                        return Ok(page);
                    }
                    tokio::time::sleep_until(wake_at(Instant::now())).await;
                }
            }
        }
    }
}

fn feed_problem(e: FeedServiceError, request_id: &RequestId) -> Problem {
    match e {
        FeedServiceError::InvalidParameter { name, message } => {
            Problem::new(Code::InvalidParameter).detail(format!("{name}: {message}"))
        }
        FeedServiceError::NotFound => Problem::new(Code::NotFound).detail("no such resource"),
        FeedServiceError::Expired { earliest_after } => Problem::new(Code::FeedExpired)
            .detail(format!(
                "entries after this point have expired; continue with after={earliest_after}"
            ))
            .earliest_after(earliest_after),
        FeedServiceError::Store(StoreError::Corrupt(reason)) => {
            tracing::error!(target: "sluice::http", request_id = %request_id, %reason, "corrupt item in the event store");
            Problem::new(Code::Internal)
        }
        FeedServiceError::Store(StoreError::Unavailable(reason)) => {
            tracing::error!(target: "sluice::http", request_id = %request_id, %reason, "event store unavailable");
            Problem::new(Code::StoreUnavailable)
                .detail("the feed cannot be read right now; retry later")
                .retry_after(STORE_RETRY_AFTER)
        }
        FeedServiceError::Queue(e) => {
            tracing::error!(target: "sluice::http", request_id = %request_id, error = %e, "queue unavailable during an erasure");
            Problem::new(Code::QueueUnavailable)
                .detail("the erasure could not finish; repeat it later")
                .retry_after(STORE_RETRY_AFTER)
        }
    }
}

/// The query parameters named in `allowed`, each at most once, no others (the list and feed
/// routes share it).
pub(crate) fn params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&'static str],
) -> Result<HashMap<&'static str, String>, Problem> {
    let invalid = |detail: String| Problem::new(Code::InvalidParameter).detail(detail);
    let Query(pairs) = query.map_err(|_| invalid("the query string is not valid UTF-8 form encoding".into()))?;
    let mut out = HashMap::new();
    for (name, value) in pairs {
        let Some(&known) = allowed.iter().find(|a| **a == name) else {
            let names = match allowed.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            };
            return Err(invalid(format!("unknown query parameter; the parameters are {names}")));
        };
        if out.insert(known, value).is_some() {
            return Err(invalid("each query parameter may appear at most once".into()));
        }
    }
    Ok(out)
}

/// `GET /v1/feed?after=&limit=&type=&wait=`.
pub(crate) async fn get_feed(
    State(state): State<Arc<FeedState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    mut req: Request,
) -> Result<Response, Problem> {
    let principal = principal(req.extensions_mut())?;
    let request_id = request_id(req.extensions_mut());
    let p = params(query, &["after", "limit", "type", "wait"])?;
    let read = parse_feed_params(&FeedParams {
        after: p.get("after").map(String::as_str),
        limit: p.get("limit").map(String::as_str),
        ty: p.get("type").map(String::as_str),
        wait: p.get("wait").map(String::as_str),
    })
    .map_err(|e| feed_problem(e, &request_id))?;
    let deadline = Instant::now() + read.wait.min(state.settings.max_wait);
    let page = state
        .read_until(&principal.tenant, &read.query, deadline)
        .await
        .map_err(|e| feed_problem(e, &request_id))?;
    Ok(Json(page).into_response())
}

/// Counts a tenant's open streams; the count goes down when the stream ends.
struct StreamSlot {
    state: Arc<FeedState>,
    tenant: Tenant,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut streams) = self.state.streams.lock()
            && let Some(n) = streams.get_mut(&self.tenant)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.tenant);
            }
        }
    }
}

fn take_stream_slot(state: &Arc<FeedState>, tenant: &Tenant) -> Option<StreamSlot> {
    let mut streams = state.streams.lock().ok()?;
    let n = streams.entry(tenant.clone()).or_insert(0);
    if *n >= state.settings.max_streams_per_tenant {
        return None;
    }
    *n += 1;
    Some(StreamSlot {
        state: Arc::clone(state),
        tenant: tenant.clone(),
    })
}

/// The SSE event of one entry: `id:` its seq, `event:` `event` or `tombstone`.
fn sse_event(entry: &FeedEntry) -> Option<Event> {
    let kind = match entry {
        FeedEntry::Event(_) => "event",
        FeedEntry::Tombstone(_) => "tombstone",
    };
    Event::default()
        .id(entry.seq().to_string())
        .event(kind)
        .json_data(entry)
        .ok()
}

/// Where a stream starts: `Last-Event-ID` (a reconnecting browser) wins over `?after=`.
fn stream_after(headers: &HeaderMap, after: Option<&str>) -> Result<Option<String>, Problem> {
    match headers.get("last-event-id") {
        None => Ok(after.map(str::to_owned)),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|s| s.parse::<u64>().is_ok())
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| Problem::new(Code::InvalidHeader).detail("Last-Event-ID must be a seq this stream sent")),
    }
}

/// `GET /v1/feed/stream?after=&type=`: every entry after `after` (or `Last-Event-ID`), then
/// each new one as it is stored.
pub(crate) async fn stream_feed(
    State(state): State<Arc<FeedState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    mut req: Request,
) -> Result<Response, Problem> {
    let principal = principal(req.extensions_mut())?;
    let request_id = request_id(req.extensions_mut());
    if state.notify.is_none() {
        // A host without a live store (Lambda, whose responses API Gateway buffers) cannot
        // stream; it serves the long-poll.
        return Err(Problem::new(Code::NotFound).detail("streams are served by sluice serve; use GET /v1/feed?wait="));
    }
    let p = params(query, &["after", "type"])?;
    let after = stream_after(req.headers(), p.get("after").map(String::as_str))?;
    let read = parse_feed_params(&FeedParams {
        after: after.as_deref(),
        limit: Some("1000"),
        ty: p.get("type").map(String::as_str),
        wait: None,
    })
    .map_err(|e| feed_problem(e, &request_id))?;
    // The first page is read before answering, so a 410 or a 503 is a status, not a stream
    // that ends at once.
    let first = state
        .service
        .read(&principal.tenant, &read.query)
        .await
        .map_err(|e| feed_problem(e, &request_id))?;
    let Some(slot) = take_stream_slot(&state, &principal.tenant) else {
        return Err(Problem::new(Code::Throttled)
            .detail("too many open feed streams for this tenant")
            .retry_after(5));
    };
    let (tx, rx) = mpsc::channel::<Event>(state.settings.stream_buffer.max(1));
    tokio::spawn(pump(
        Arc::clone(&state),
        principal.tenant.clone(),
        read.query,
        first,
        tx,
        slot,
    ));
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, std::convert::Infallible>(e), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.settings.heartbeat))
        .into_response())
}

/// Feeds one stream: sends each page's entries, waits for more, and ends (closing the
/// connection) when the client goes away, when it has not taken an entry within
/// `slow_consumer` (D-2: a slow reader resumes by id instead of being buffered without end),
/// or when a read fails.
async fn pump(
    state: Arc<FeedState>,
    tenant: Tenant,
    mut query: FeedQuery,
    first: FeedPage,
    tx: mpsc::Sender<Event>,
    _slot: StreamSlot,
) {
    let mut page = first;
    loop {
        for entry in &page.entries {
            let Some(event) = sse_event(entry) else { return };
            match tokio::time::timeout(state.settings.slow_consumer, tx.send(event)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!(target: "sluice::http", tenant = %tenant, "a slow feed stream was closed");
                    return;
                }
            }
        }
        query.after = page.next_after;
        // Wait for the next entry, noticing a client that left in the meantime.
        let deadline = Instant::now() + Duration::from_secs(20);
        let next = tokio::select! {
            r = state.read_until(&tenant, &query, deadline) => r,
            () = tx.closed() => return,
        };
        page = match next {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(target: "sluice::http", tenant = %tenant, error = %e, "a feed stream ended on a failed read");
                return;
            }
        };
    }
}

/// `DELETE /v1/events/{id}`: 204, or 404 exactly as `GET` answers.
pub(crate) async fn delete_event(
    State(state): State<Arc<FeedState>>,
    id: Result<Path<String>, PathRejection>,
    mut req: Request,
) -> Result<Response, Problem> {
    let principal = principal(req.extensions_mut())?;
    let request_id = request_id(req.extensions_mut());
    let Ok(Path(id)) = id else {
        return Err(crate::query::not_found());
    };
    match state.service.delete(&principal.tenant, &id).await {
        Ok(d) => {
            tracing::info!(
                target: "sluice::audit", request_id = %request_id, tenant = %principal.tenant, by = %principal.key_id,
                event_id = %d.id, tombstone_seq = d.tombstone_seq, "event deleted"
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(FeedServiceError::NotFound) => Err(crate::query::not_found()),
        Err(e) => Err(feed_problem(e, &request_id)),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasureRequest {
    subject: String,
}

/// `POST /v1/erasures {"subject": "…"}`: 202 with the erasure's id and, once done (it is run
/// before answering), its receipt.
pub(crate) async fn post_erasure(State(state): State<Arc<FeedState>>, mut req: Request) -> Result<Response, Problem> {
    let principal = principal(req.extensions_mut())?;
    let request_id = request_id(req.extensions_mut());
    crate::body::require_json(req.headers())?;
    let body = axum::body::to_bytes(req.into_body(), MAX_ERASURE_BODY)
        .await
        .map_err(|_| Problem::new(Code::PayloadTooLarge).detail("an erasure request is at most 4 KiB"))?;
    let request: ErasureRequest = sluice_core::json::parse_strict(&body, 8)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| {
            Problem::new(Code::MalformedJson).detail("the body is {\"subject\": \"<1 to 256 characters>\"}")
        })?;
    let record = state
        .service
        .erase(&principal.tenant, &request.subject, &principal.key_id)
        .await
        .map_err(|e| feed_problem(e, &request_id))?;
    tracing::info!(
        target: "sluice::audit", request_id = %request_id, tenant = %principal.tenant, by = %principal.key_id,
        erasure_id = %record.id, events_deleted = record.events_deleted, queued_dropped = record.queued_dropped,
        dead_lettered_dropped = record.dead_lettered_dropped, "subject erased"
    );
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

/// `GET /v1/erasures/{id}`.
pub(crate) async fn get_erasure(
    State(state): State<Arc<FeedState>>,
    id: Result<Path<String>, PathRejection>,
    mut req: Request,
) -> Result<Response, Problem> {
    let principal = principal(req.extensions_mut())?;
    let request_id = request_id(req.extensions_mut());
    let Ok(Path(id)) = id else {
        return Err(Problem::new(Code::NotFound).detail("no erasure with this id"));
    };
    match state.service.erasure(&principal.tenant, &id).await {
        Ok(r) => Ok(Json(r).into_response()),
        Err(FeedServiceError::NotFound) => Err(Problem::new(Code::NotFound).detail("no erasure with this id")),
        Err(e) => Err(feed_problem(e, &request_id)),
    }
}
