//! Shared test fixtures: thin wrappers (failure switches, a send gate) around `sluice-testkit`'s
//! in-memory adapters, a harness that builds the routers, a
//! request helper that checks every documented response against the OpenAPI document, and a
//! log capture.

#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sluice_core::clock::SystemClock;
use sluice_core::cursor::CursorCodec;
use sluice_core::deliveries::DeliveryService;
use sluice_core::envelope::{Sealer, SigningKey};
use sluice_core::ids::{EventId, KeyId, RequestId};
use sluice_core::ingest::{Backpressure, IngestService};
use sluice_core::keys::{ApiKey, Authenticator, generate};
use sluice_core::ports::*;
use sluice_core::query::QueryService;
use sluice_core::validate::{Limits, Schemas, Validator};
use sluice_core::{Clock, EventType, StoredEvent, Tenant};
use sluice_http::{Auth, HttpConfig};
use sluice_testkit::memory::{MemoryEvents, MemoryIdempotency, MemoryKeys, MemoryQueue, MemorySources};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tower::ServiceExt;

/// What failing fakes say: internals that must never reach a client (I-2).
pub const SECRET_REASON: &str = "SELECT * FROM events WHERE tenant='acme' -- /var/lib/sluice/secret.db";

/// The shared in-memory queue, with a switch that makes sends fail and a gate that holds them.
#[derive(Default)]
pub struct MemQueue {
    pub inner: MemoryQueue,
    pub fail: AtomicBool,
    /// Sends wait while a test holds this for writing.
    pub gate: tokio::sync::RwLock<()>,
    /// Sends begun, waiting at the gate or not.
    pub entered: std::sync::atomic::AtomicUsize,
}

impl MemQueue {
    /// Every message sent so far (nothing here receives them).
    pub fn sent(&self) -> Vec<OutgoingMessage> {
        self.inner.messages()
    }
}

#[async_trait]
impl Queue for MemQueue {
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let _open = self.gate.read().await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable(SECRET_REASON.into()));
        }
        self.inner.send_batch(messages).await
    }
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(max, wait, visibility).await
    }
    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), QueueError> {
        self.inner.delete(receipt).await
    }
    async fn change_visibility(&self, receipt: &ReceiptHandle, visibility: Duration) -> Result<(), QueueError> {
        self.inner.change_visibility(receipt, visibility).await
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }
}

/// The id whose lookup panics, to test panic containment.
pub const PANIC_ID: &str = "evt_7ZZZZZZZZZZZZZZZZZZZZZZZZZ";

/// The shared in-memory event store, with a switch that makes reads fail and one id whose lookup
/// panics.
#[derive(Default)]
pub struct MemStore {
    pub inner: MemoryEvents,
    pub fail: AtomicBool,
}

#[async_trait]
impl EventStore for MemStore {
    async fn put_if_absent(&self, e: &StoredEvent) -> Result<PutOutcome, StoreError> {
        self.inner.put_if_absent(e).await
    }
    async fn get(&self, tenant: &Tenant, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(SECRET_REASON.into()));
        }
        if id.to_string() == PANIC_ID {
            panic!("store exploded at {SECRET_REASON}");
        }
        self.inner.get(tenant, id).await
    }
    async fn list(&self, tenant: &Tenant, q: &ListQuery) -> Result<Page, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(SECRET_REASON.into()));
        }
        self.inner.list(tenant, q).await
    }
    async fn feed(
        &self,
        tenant: &Tenant,
        q: &sluice_core::ports::FeedQuery,
        now: OffsetDateTime,
    ) -> Result<sluice_core::ports::FeedPage, sluice_core::ports::FeedError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(SECRET_REASON.into()).into());
        }
        self.inner.feed(tenant, q, now).await
    }
    async fn delete(
        &self,
        tenant: &Tenant,
        id: &EventId,
        how: sluice_core::ports::Deletion,
    ) -> Result<Option<sluice_core::ports::Deleted>, StoreError> {
        self.inner.delete(tenant, id, how).await
    }
    async fn delete_subject(
        &self,
        tenant: &Tenant,
        subject: &str,
        before: OffsetDateTime,
        how: sluice_core::ports::Deletion,
        max: usize,
    ) -> Result<Vec<sluice_core::ports::Deleted>, StoreError> {
        self.inner.delete_subject(tenant, subject, before, how, max).await
    }
    async fn put_erasure(&self, r: &sluice_core::ports::ErasureRecord) -> Result<(), StoreError> {
        self.inner.put_erasure(r).await
    }
    async fn get_erasure(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<sluice_core::ports::ErasureRecord>, StoreError> {
        self.inner.get_erasure(tenant, id).await
    }
    async fn erased_until(&self, tenant: &Tenant, h: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.inner.erased_until(tenant, h).await
    }
}

/// The shared in-memory key store, with a switch that makes lookups fail.
#[derive(Default)]
pub struct MemKeys {
    pub inner: MemoryKeys,
    pub fail: AtomicBool,
}

#[async_trait]
impl KeyStore for MemKeys {
    async fn insert(&self, r: &KeyRecord) -> Result<(), KeyStoreError> {
        self.inner.insert(r).await
    }
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyStoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(KeyStoreError::Unavailable(SECRET_REASON.into()));
        }
        self.inner.get(id).await
    }
    async fn list(&self) -> Result<Vec<KeyRecord>, KeyStoreError> {
        self.inner.list().await
    }
    async fn revoke(&self, id: &KeyId, at: OffsetDateTime) -> Result<(), KeyStoreError> {
        self.inner.revoke(id, at).await
    }
    async fn set_expiry(&self, id: &KeyId, e: Option<OffsetDateTime>) -> Result<(), KeyStoreError> {
        self.inner.set_expiry(id, e).await
    }
}

pub fn tenant(s: &str) -> Tenant {
    Tenant::parse(s).unwrap()
}

/// Everything a test needs: the fakes, the services, keys for two tenants.
pub struct Harness {
    pub queue: Arc<MemQueue>,
    pub store: Arc<MemStore>,
    pub keys: Arc<MemKeys>,
    pub backpressure: Arc<Backpressure>,
    pub ingest: Arc<IngestService>,
    pub query: Arc<QueryService>,
    pub feed: Arc<sluice_http::FeedState>,
    pub authenticator: Arc<Authenticator>,
    pub sources: Arc<MemorySources>,
    pub deliveries: Arc<DeliveryService>,
    pub acme: ApiKey,
    pub evil: ApiKey,
    pub expired: ApiKey,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A harness whose validator has `limits` (the body limit among them).
    pub fn with_limits(limits: Limits) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let queue = Arc::new(MemQueue::default());
        let store = Arc::new(MemStore::default());
        let keys = Arc::new(MemKeys::default());
        let now = clock.now();
        let (acme, r1) = generate(tenant("acme"), "acme", now, None);
        let (evil, r2) = generate(tenant("evil"), "evil", now, None);
        let (expired, r3) = generate(tenant("acme"), "old", now, Some(now - Duration::from_secs(1)));
        for r in [r1, r2, r3] {
            keys.inner.seed(r);
        }
        let sealer = Sealer::new(vec![SigningKey::new("k1", vec![7; 32]).unwrap()], 32).unwrap();
        let backpressure = Arc::new(Backpressure::new(1_000_000));
        let ingest = Arc::new(
            IngestService::new(
                Arc::new(Validator::new(limits, Schemas::none())),
                queue.clone(),
                Arc::new(MemoryIdempotency::new()),
                Arc::new(sealer),
                clock.clone(),
            )
            .with_backpressure(backpressure.clone()),
        );
        let query = Arc::new(QueryService::new(store.clone(), CursorCodec::new(vec![9; 32])));
        let feed = sluice_http::FeedState::new(
            Arc::new(sluice_core::feed::FeedService::new(
                store.clone(),
                sluice_core::feed::Retention::default(),
                clock.clone(),
            )),
            None,
            sluice_http::FeedSettings::default(),
        );
        let authenticator = Arc::new(Authenticator::new(keys.clone(), clock.clone(), Duration::ZERO));
        let sources = Arc::new(MemorySources::new());
        let deliveries = Arc::new(DeliveryService::new(sources.clone(), ingest.clone(), clock));
        Self {
            queue,
            store,
            keys,
            backpressure,
            ingest,
            query,
            feed,
            authenticator,
            sources,
            deliveries,
            acme,
            evil,
            expired,
        }
    }

    pub fn auth(&self) -> Auth {
        Auth::api_keys(self.authenticator.clone())
    }

    pub fn app(&self) -> Router {
        self.app_with(&HttpConfig::default())
    }

    pub fn app_with(&self, config: &HttpConfig) -> Router {
        sluice_http::app(
            self.ingest.clone(),
            self.query.clone(),
            self.feed.clone(),
            self.deliveries.clone(),
            self.auth(),
            config,
        )
    }

    /// Stores an event for `tenant` directly.
    pub fn seed(&self, t: &str, ty: &str, data: Value) -> EventId {
        let now = OffsetDateTime::now_utc();
        let id = EventId::new_at(now);
        let e = StoredEvent {
            trace_id: None,
            seq: 0,
            expires_at: None,
            idempotency_key: None,
            id,
            tenant: tenant(t),
            event_type: EventType::parse(ty).unwrap(),
            data: data.into(),
            occurred_at: now,
            received_at: now,
            request_id: RequestId::generate(),
            subject: None,
            webhook: None,
            extensions: Default::default(),
        };
        self.store.inner.seed(e);
        id
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
    /// The body without its request id, to compare two problems.
    pub fn problem_without_request_id(&self) -> Value {
        let mut v = self.json();
        v.as_object_mut().unwrap().remove("request_id");
        v
    }
}

/// Sends one request through a clone of `app`, checks the universal rules (request id, problem
/// shape, conformance to the OpenAPI document) and returns the reply.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    send_checked(app, req, true).await
}

/// Like [`send`] but without the OpenAPI conformance check, for the per-function (Lambda)
/// routers, which serve only part of the documented API.
pub async fn send_partial(app: &Router, req: Request<Body>) -> Reply {
    send_checked(app, req, false).await
}

async fn send_checked(app: &Router, req: Request<Body>, check: bool) -> Reply {
    let method = req.method().as_str().to_ascii_lowercase();
    let path = req.uri().path().to_owned();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    let reply = Reply { status, headers, body };
    let rid = reply
        .header("x-request-id")
        .expect("every response carries x-request-id");
    assert!(RequestId::parse(rid).is_ok(), "{rid:?}");
    if status.as_u16() >= 400 && method != "head" {
        assert_eq!(reply.header("content-type"), Some("application/problem+json"));
        let p = reply.json();
        assert_eq!(p["status"], status.as_u16());
        assert_eq!(p["request_id"], rid);
        assert_eq!(p["type"], "about:blank", "{p}");
        let code = sluice_http::Code::ALL
            .into_iter()
            .find(|c| p["code"] == c.as_str())
            .unwrap_or_else(|| panic!("undocumented code: {p}"));
        assert_eq!(p["title"], code.title(), "{p}");
    }
    // 405 is the router's answer for an undocumented method (a Lambda router serves a subset).
    if check
        && let Some(template) = template_for(&path)
        && status != StatusCode::METHOD_NOT_ALLOWED
    {
        let method = if method == "head" { "get" } else { method.as_str() };
        conforms(method, template, &reply);
    }
    reply
}

/// Builds a request.
/// A request as an HTTP/1.1 client sends it: with one Host header, which `sluice serve` requires.
pub fn req(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri).header("host", "sluice.test")
}

pub fn bearer(key: &ApiKey) -> String {
    format!("Bearer {}", key.expose())
}

/// `POST /v1/events` with `body` as JSON, authenticated as `key`.
pub fn post_events(key: &ApiKey, body: impl Into<Body>) -> Request<Body> {
    req("POST", "/v1/events")
        .header("authorization", bearer(key))
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

/// `GET uri` authenticated as `key`.
pub fn get_as(key: &ApiKey, uri: &str) -> Request<Body> {
    req("GET", uri)
        .header("authorization", bearer(key))
        .body(Body::empty())
        .unwrap()
}

// ---- OpenAPI conformance -------------------------------------------------------------------

pub fn openapi() -> Value {
    serde_json::from_str(sluice_http::OPENAPI_JSON).unwrap()
}

fn template_for(path: &str) -> Option<&'static str> {
    match path {
        "/v1/events" => Some("/v1/events"),
        "/healthz" => Some("/healthz"),
        "/openapi.json" => Some("/openapi.json"),
        p if p
            .strip_prefix("/v1/events/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/')) =>
        {
            Some("/v1/events/{id}")
        }
        p if p
            .strip_prefix("/v1/sources/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/')) =>
        {
            Some("/v1/sources/{source_id}")
        }
        _ => None,
    }
}

/// Resolves local `$ref`s and turns OpenAPI 3.0 `nullable` into JSON Schema.
pub fn to_json_schema(doc: &Value, v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let target = doc
                    .pointer(r.trim_start_matches('#'))
                    .unwrap_or_else(|| panic!("dangling {r}"));
                return to_json_schema(doc, target);
            }
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                if k == "nullable" || k == "example" {
                    continue;
                }
                out.insert(k.clone(), to_json_schema(doc, v));
            }
            if m.get("nullable") == Some(&Value::Bool(true)) {
                return serde_json::json!({"anyOf": [Value::Object(out), {"type": "null"}]});
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| to_json_schema(doc, v)).collect()),
        other => other.clone(),
    }
}

/// Asserts that a reply is what the document promises for this operation: a declared status,
/// the declared media type, the required headers, a body matching the schema.
pub fn conforms(method: &str, template: &str, reply: &Reply) {
    let doc = openapi();
    let op = &doc["paths"][template][method];
    assert!(!op.is_null(), "{method} {template} is undocumented");
    let status = reply.status.as_str();
    let declared = &op["responses"][status];
    assert!(
        !declared.is_null(),
        "{method} {template}: status {status} is not documented; body {}",
        reply.text()
    );
    let resp = to_json_schema(&doc, declared);
    for (name, h) in resp["headers"].as_object().into_iter().flatten() {
        if h["required"] == Value::Bool(true) {
            let value = reply
                .header(name)
                .unwrap_or_else(|| panic!("{method} {template} {status}: missing header {name}"));
            let schema = jsonschema::validator_for(&h["schema"]).unwrap();
            let as_json = if h["schema"]["type"] == "integer" {
                Value::from(value.parse::<i64>().unwrap_or(-1))
            } else {
                Value::from(value)
            };
            assert!(
                schema.is_valid(&as_json),
                "{method} {template} {status}: header {name}={value}"
            );
        }
    }
    if reply.body.is_empty() {
        return; // HEAD
    }
    let content = resp["content"].as_object().unwrap();
    let ct = reply.header("content-type").unwrap_or_default();
    let essence = ct.split(';').next().unwrap().trim();
    let media = content
        .get(essence)
        .unwrap_or_else(|| panic!("{method} {template} {status}: undocumented content type {ct}"));
    let schema = jsonschema::validator_for(&media["schema"]).unwrap();
    let body = reply.json();
    let errors: Vec<String> = schema.iter_errors(&body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{method} {template} {status}: {errors:?} in {body}");
}

// ---- log capture -----------------------------------------------------------------------------

#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    /// Every JSON log line written so far.
    pub fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures every `tracing` event (all levels, JSON lines) on this thread until the guard drops.
pub fn capture_logs() -> (LogBuf, tracing::subscriber::DefaultGuard) {
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}
