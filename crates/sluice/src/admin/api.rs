//! The console's pages and its JSON API (see the module above for who may call what). Every
//! handler but the login and the static files needs a session; every change is logged with the
//! admin token that made it.

use super::{AdminState, Session, json, problem, set_cookie};
use crate::sources::{check_secret, kind_name};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::ids::{KeyId, SourceId};
use sluice_core::keys;
use sluice_core::ports::{KeyStoreError, ReceivedMessage, SourceRecord, SourceSecret, SourceStoreError};
use sluice_core::query::QueryError;
use sluice_core::tenant::Tenant;
use sluice_core::webhook::SourceKind;
use sluice_http::{Code, Problem};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type S = State<Arc<AdminState>>;

/// The console's files, built into the binary: nothing is fetched at run time.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/vendor/uPlot.min.css"),
    ),
];
const INDEX: &str = include_str!("../../console/index.html");

fn rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn bad(detail: impl Into<String>) -> Response {
    problem(Problem::new(Code::ValidationFailed).detail(detail))
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    // The reason is ours: logged, not shown (I-2).
    tracing::warn!(target: "sluice::admin", error = %e, "an admin request failed");
    problem(Problem::new(Code::StoreUnavailable).detail("the queue or the store is unavailable; retry later"))
}

/// `GET /console`: the page (which asks for a login when there is no session).
pub async fn console_page() -> Response {
    let mut res = INDEX.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// `GET /console/assets/{file}`.
pub async fn console_asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, ..)| *name == file) {
        Some((_, content_type, body)) => {
            let mut res = body.to_vec().into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            res
        }
        None => problem(Problem::new(Code::NotFound).detail("no such console file")),
    }
}

/// The login body.
#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /admin/api/session`: an admin token in, a session cookie out.
pub async fn login(
    State(state): S,
    body: Result<axum::Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(login)) = body else {
        return bad("send {\"token\": \"adm_…\"}");
    };
    match state.tokens.verify(&login.token) {
        Ok(Some(token)) => {
            let id = state.sessions.create(&token.id, &token.label);
            tracing::info!(target: "sluice::admin", admin = %token.id, "console login");
            let mut res = StatusCode::NO_CONTENT.into_response();
            res.headers_mut().insert(header::SET_COOKIE, set_cookie(Some(&id)));
            res
        }
        Ok(None) => {
            // Which part was wrong (a tenant key, a revoked token) stays in the log only.
            let kind = if login.token.starts_with("key_") {
                "a tenant API key"
            } else {
                "not a live admin token"
            };
            tracing::warn!(target: "sluice::admin", presented = kind, "console login refused");
            problem(Problem::new(Code::Unauthorized).detail("not a valid admin token"))
        }
        Err(e) => unavailable(e),
    }
}

/// `GET /admin/api/session`: who is logged in.
pub async fn whoami(s: Session) -> Response {
    json(StatusCode::OK, json!({"token_id": s.token_id, "label": s.label}))
}

/// `DELETE /admin/api/session`: log out.
pub async fn logout(State(state): S, headers: HeaderMap) -> Response {
    if let Some(id) = super::cookie(&headers) {
        if let Some(s) = state.sessions.get(&id) {
            tracing::info!(target: "sluice::admin", admin = %s.token_id, "console logout");
        }
        state.sessions.remove(&id);
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(header::SET_COOKIE, set_cookie(None));
    res
}

/// The totals since start, read back from the Prometheus text: one source of truth. Counters
/// are whole numbers, which the text format writes as floats.
fn totals(text: &str) -> (u64, BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut accepted = 0;
    let mut rejected = BTreeMap::new();
    let mut stored: BTreeMap<String, u64> = ["stored", "duplicate", "retried", "dead_lettered"]
        .iter()
        .map(|o| ((*o).to_owned(), 0))
        .collect();
    let Ok(scrape) = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))) else {
        return (accepted, rejected, stored);
    };
    for s in scrape.samples {
        let prometheus_parse::Value::Counter(v) = s.value else {
            continue;
        };
        let v = v.max(0.0).round() as u64;
        let (map, label) = match s.metric.as_str() {
            sluice_core::metrics::ACCEPTED => {
                accepted += v;
                continue;
            }
            sluice_core::metrics::REJECTED => (&mut rejected, "code"),
            sluice_core::metrics::STORED => (&mut stored, "outcome"),
            _ => continue,
        };
        *map.entry(s.labels.get(label).unwrap_or("other").to_owned())
            .or_insert(0) += v;
    }
    (accepted, rejected, stored)
}

async fn depth(q: &dyn sluice_core::ports::Queue) -> Value {
    match q.depth().await {
        Ok(d) => json!({
            "visible": d.visible,
            "in_flight": d.in_flight,
            "oldest_age_secs": q.oldest_age().await.ok().flatten().map(|a| a.as_secs_f64()),
        }),
        Err(_) => Value::Null,
    }
}

/// `GET /admin/api/overview`: totals since start and the queues now.
pub async fn overview(State(state): S, _s: Session) -> Response {
    let (accepted, rejected, stored) = totals(&state.prometheus.render());
    json(
        StatusCode::OK,
        json!({
            "at": rfc3339(Some(OffsetDateTime::now_utc())),
            "accepted": accepted,
            "rejected": rejected,
            "stored": stored,
            "queue": depth(state.queue.as_ref()).await,
            "dlq": depth(state.dlq.as_ref()).await,
        }),
    )
}

/// `GET /admin/api/events` parameters.
#[derive(Deserialize)]
pub struct EventsQuery {
    tenant: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /admin/api/events`: one tenant's events (or one of them), as the public API shows them.
pub async fn events(State(state): S, s: Session, Query(q): Query<EventsQuery>) -> Response {
    let Some(Ok(tenant)) = q.tenant.as_deref().filter(|t| !t.is_empty()).map(Tenant::parse) else {
        return problem(Problem::new(Code::InvalidParameter).detail("tenant: a tenant name is required"));
    };
    tracing::info!(target: "sluice::admin", admin = %s.token_id, tenant = %tenant, id = q.id.as_deref(), "events looked up");
    if let Some(id) = q.id.as_deref().filter(|i| !i.is_empty()) {
        return match state.query.get(&tenant, id).await {
            Ok(e) => json(StatusCode::OK, json!({"events": [e], "next_cursor": null})),
            Err(QueryError::NotFound) => json(StatusCode::OK, json!({"events": [], "next_cursor": null})),
            Err(e) => query_error(e),
        };
    }
    match state
        .query
        .list(
            &tenant,
            q.event_type.as_deref().filter(|t| !t.is_empty()),
            q.limit.as_deref().filter(|l| !l.is_empty()),
            q.cursor.as_deref().filter(|c| !c.is_empty()),
        )
        .await
    {
        Ok(page) => json(StatusCode::OK, serde_json::to_value(page).unwrap_or(Value::Null)),
        Err(e) => query_error(e),
    }
}

fn query_error(e: QueryError) -> Response {
    match e {
        QueryError::InvalidParameter { name, message } => {
            problem(Problem::new(Code::InvalidParameter).detail(format!("{name}: {message}")))
        }
        QueryError::Cursor(_) => problem(Problem::new(Code::InvalidCursor).detail("the cursor is not valid here")),
        other => unavailable(other),
    }
}

/// `GET /admin/api/dead-letters` parameters.
#[derive(Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

fn dead_letter_json(m: &ReceivedMessage) -> Value {
    let a = |k: &str| m.attributes.get(k).cloned();
    json!({
        "message_id": m.message_id,
        "sent_at": rfc3339(Some(m.sent_at)),
        "receive_count": m.receive_count,
        "reason": a(sluice_core::envelope::attr::DLQ_REASON),
        "failed_at": a(sluice_core::envelope::attr::DLQ_AT),
        "attributes": m.attributes,
        "body": m.body,
    })
}

/// `GET /admin/api/dead-letters`.
pub async fn dead_letters(State(state): S, _s: Session, Query(q): Query<Limit>) -> Response {
    match state.dead_letters.list(q.limit.unwrap_or(100).clamp(1, 1000)).await {
        Ok(messages) => json(
            StatusCode::OK,
            json!({"messages": messages.iter().map(dead_letter_json).collect::<Vec<_>>()}),
        ),
        Err(e) => unavailable(e),
    }
}

/// A selection of dead letters.
#[derive(Deserialize)]
pub struct Selection {
    #[serde(default)]
    message_ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

fn selection(
    body: Result<axum::Json<Selection>, axum::extract::rejection::JsonRejection>,
) -> Result<Selection, Box<Response>> {
    let axum::Json(sel) = body.map_err(|_| Box::new(bad("send {\"message_ids\": [...]} or {\"all\": true}")))?;
    if sel.message_ids.len() > 1000 || sel.message_ids.iter().any(|i| i.is_empty() || i.len() > 128) {
        return Err(Box::new(bad("message_ids: 1 to 1000 ids")));
    }
    Ok(sel)
}

/// `POST /admin/api/dead-letters/redrive`.
pub async fn redrive(
    State(state): S,
    s: Session,
    body: Result<axum::Json<Selection>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let sel = match selection(body) {
        Ok(sel) => sel,
        Err(res) => return *res,
    };
    if !sel.all && sel.message_ids.is_empty() {
        return bad("choose message_ids, or all");
    }
    let ids = (!sel.all).then_some(sel.message_ids.as_slice());
    match state.dead_letters.redrive(ids).await {
        Ok(moved) => {
            tracing::info!(target: "sluice::admin", admin = %s.token_id, all = sel.all, ids = ?sel.message_ids, moved, "dead letters redriven");
            json(StatusCode::OK, json!({"moved": moved}))
        }
        Err(e) => unavailable(e),
    }
}

/// `POST /admin/api/dead-letters/drop`.
pub async fn drop_dead_letters(
    State(state): S,
    s: Session,
    body: Result<axum::Json<Selection>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let sel = match selection(body) {
        Ok(sel) if !sel.message_ids.is_empty() && !sel.all => sel,
        Ok(_) => return bad("choose message_ids to drop (dropping all at once is not offered)"),
        Err(res) => return *res,
    };
    match state.dead_letters.discard(&sel.message_ids).await {
        Ok(dropped) => {
            tracing::info!(target: "sluice::admin", admin = %s.token_id, ids = ?sel.message_ids, dropped, "dead letters dropped");
            json(StatusCode::OK, json!({"dropped": dropped}))
        }
        Err(e) => unavailable(e),
    }
}

/// `GET /admin/api/keys`: never a secret or a hash.
pub async fn keys(State(state): S, _s: Session) -> Response {
    match state.keys.list().await {
        Ok(list) => json(
            StatusCode::OK,
            json!({"keys": list.iter().map(|r| json!({
                "id": r.id.to_string(),
                "tenant": r.tenant.to_string(),
                "label": r.label,
                "created_at": rfc3339(Some(r.created_at)),
                "expires_at": rfc3339(r.expires_at),
                "revoked_at": rfc3339(r.revoked_at),
            })).collect::<Vec<_>>()}),
        ),
        Err(e) => unavailable(e),
    }
}

/// A new key's tenant and label.
#[derive(Deserialize)]
pub struct NewKey {
    tenant: String,
    #[serde(default)]
    label: String,
}

/// `POST /admin/api/keys`: the key is in this answer and nowhere else.
pub async fn create_key(
    State(state): S,
    s: Session,
    body: Result<axum::Json<NewKey>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(new)) = body else {
        return bad("send {\"tenant\": \"…\", \"label\": \"…\"}");
    };
    let Ok(tenant) = Tenant::parse(&new.tenant) else {
        return bad("tenant: lowercase letters, digits, - and _, at most 64");
    };
    if new.label.len() > 200 || new.label.chars().any(char::is_control) {
        return bad("label: at most 200 characters, no control characters");
    }
    if let Some(plans) = &state.plans
        && let Err(e) = plans.enroll(&tenant).await
    {
        return unavailable(e);
    }
    let now = OffsetDateTime::now_utc();
    let (key, record) = keys::generate(tenant, &new.label, now, None);
    if let Err(e) = state.keys.insert(&record).await {
        return unavailable(e);
    }
    tracing::info!(target: "sluice::admin", admin = %s.token_id, key_id = %record.id, tenant = %record.tenant, "key created");
    json(
        StatusCode::CREATED,
        json!({"id": record.id.to_string(), "tenant": record.tenant.to_string(), "key": key.expose()}),
    )
}

/// `POST /admin/api/keys/{id}/revoke`.
pub async fn revoke_key(State(state): S, s: Session, Path(id): Path<String>) -> Response {
    let Ok(id) = KeyId::parse(&id) else {
        return problem(Problem::new(Code::NotFound).detail("no such key"));
    };
    match state.keys.revoke(&id, OffsetDateTime::now_utc()).await {
        Ok(()) => {
            tracing::info!(target: "sluice::admin", admin = %s.token_id, key_id = %id, "key revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(KeyStoreError::NotFound) => problem(Problem::new(Code::NotFound).detail("no such key")),
        Err(e) => unavailable(e),
    }
}

/// `GET /admin/api/sources`: never a secret.
pub async fn sources(State(state): S, _s: Session) -> Response {
    let now = OffsetDateTime::now_utc();
    match state.sources.list().await {
        Ok(list) => json(
            StatusCode::OK,
            json!({"sources": list.iter().map(|r| json!({
                "id": r.id.to_string(),
                "tenant": r.tenant.to_string(),
                "kind": kind_name(&r.kind),
                "live_secrets": r.live_secrets(now).len(),
                "created_at": rfc3339(Some(r.created_at)),
                "deleted_at": rfc3339(r.deleted_at),
            })).collect::<Vec<_>>()}),
        ),
        Err(e) => unavailable(e),
    }
}

/// A new source.
#[derive(Deserialize)]
pub struct NewSource {
    tenant: String,
    kind: String,
    secret: String,
}

/// `POST /admin/api/sources`: the provider kinds without settings of their own (the generic
/// `hmac-sha256` scheme is `sluice sources create`'s).
pub async fn create_source(
    State(state): S,
    s: Session,
    body: Result<axum::Json<NewSource>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(new)) = body else {
        return bad("send {\"tenant\", \"kind\", \"secret\"}");
    };
    let Ok(tenant) = Tenant::parse(&new.tenant) else {
        return bad("tenant: lowercase letters, digits, - and _, at most 64");
    };
    let kind = match serde_json::from_value::<SourceKind>(json!({"kind": new.kind})) {
        Ok(k) if !matches!(k, SourceKind::Hmac(_)) => k,
        _ => return bad("kind: stripe, github, slack, shopify or standard-webhooks"),
    };
    if let Err(why) = check_secret(&new.secret, &kind) {
        return bad(format!("secret: {why}"));
    }
    let record = SourceRecord {
        id: SourceId::generate(),
        tenant,
        kind,
        secrets: vec![SourceSecret {
            secret: new.secret,
            expires_at: None,
        }],
        created_at: OffsetDateTime::now_utc(),
        deleted_at: None,
    };
    if let Err(e) = state.sources.insert(&record).await {
        return unavailable(e);
    }
    tracing::info!(target: "sluice::admin", admin = %s.token_id, source_id = %record.id, tenant = %record.tenant, "source created");
    json(
        StatusCode::CREATED,
        json!({"id": record.id.to_string(), "path": format!("/v1/sources/{}", record.id)}),
    )
}

/// `POST /admin/api/sources/{id}/delete`.
pub async fn delete_source(State(state): S, s: Session, Path(id): Path<String>) -> Response {
    let Ok(id) = SourceId::parse(&id) else {
        return problem(Problem::new(Code::NotFound).detail("no such source"));
    };
    match state.sources.delete(&id, OffsetDateTime::now_utc()).await {
        Ok(()) => {
            tracing::info!(target: "sluice::admin", admin = %s.token_id, source_id = %id, "source deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(SourceStoreError::NotFound) => problem(Problem::new(Code::NotFound).detail("no such source")),
        Err(e) => unavailable(e),
    }
}
