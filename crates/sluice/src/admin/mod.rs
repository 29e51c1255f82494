//! The admin listener of `sluice serve` (`[admin] listen`, loopback by default): Prometheus
//! metrics at `/metrics`, and for operators the console at `/console` over its JSON API at
//! `/admin/api/…`. It is a listener of its own so that nothing on it ever answers on the public
//! listener, and the public listener's behaviour and speed do not change (E-1, S-1 for operators).
//!
//! # Security (threats S-8, T-6, I-7 in `docs/threats.toml`)
//! - The console and its API need an admin token (`sluice admin token create`, see [`tokens`]);
//!   tenant API keys are refused. Logging in sets a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, 8 hours, kept in memory: a restart logs everyone out).
//! - Every state change (`POST`, `DELETE`) must carry an `Origin` naming this listener and a JSON
//!   body, which no cross-site form can send, else 403 `csrf_refused`.
//! - Every response carries a strict `Content-Security-Policy` (scripts and styles from this
//!   origin only, no inline script), `frame-ancestors 'none'`, `X-Frame-Options: DENY`,
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`; API answers are
//!   `Cache-Control: no-store`. The console renders event data as text, never as HTML.
//! - Every admin action is logged (target `sluice::admin`) with the token id that did it.
//!
//! `/metrics` needs no token: it carries counts only, and the listener is on loopback unless an
//! operator binds it elsewhere (then put it behind their own network controls).

pub mod api;
pub mod dead_letters;
pub mod tokens;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dead_letters::DeadLetters;
use sluice_core::RequestId;
use sluice_core::ports::{KeyStore, Queue, SourceStore, TenantPlans};
use sluice_core::query::QueryService;
use sluice_host::metrics::PrometheusHandle;
use sluice_http::{Code, Problem};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokens::TokenFile;
use tokio::sync::watch;

/// How often the exporter's histograms are drained (its upkeep).
const UPKEEP: Duration = Duration::from_secs(5);
/// How long a console session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The session cookie's name.
const COOKIE: &str = "sluice_admin";
/// The policy every admin response carries.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// What the admin routes share.
pub struct AdminState {
    /// Renders the Prometheus text.
    pub prometheus: PrometheusHandle,
    /// The admin tokens.
    pub tokens: TokenFile,
    /// Logged-in sessions.
    pub sessions: Sessions,
    /// The main queue and the dead-letter queue, for depths.
    pub queue: Arc<dyn Queue>,
    /// The dead-letter queue.
    pub dlq: Arc<dyn Queue>,
    /// Dead-letter inspection, redrive and drop.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Event lookups.
    pub query: Arc<QueryService>,
    /// API keys.
    pub keys: Arc<dyn KeyStore>,
    /// Webhook sources.
    pub sources: Arc<dyn SourceStore>,
    /// Tenant plans (to enroll a tenant whose first key the console creates), if any.
    pub plans: Option<Arc<dyn TenantPlans>>,
}

/// One logged-in console.
#[derive(Debug, Clone)]
pub struct Session {
    /// The admin token that logged in.
    pub token_id: String,
    /// Its label.
    pub label: String,
    expires: Instant,
}

/// The live sessions, by the random id in their cookie.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn create(&self, token_id: &str, label: &str) -> String {
        let id = hex::encode(rand::random::<[u8; 32]>());
        if let Ok(mut all) = self.0.lock() {
            let now = Instant::now();
            all.retain(|_, s| s.expires > now);
            all.insert(
                id.clone(),
                Session {
                    token_id: token_id.to_owned(),
                    label: label.to_owned(),
                    expires: now + SESSION_TTL,
                },
            );
        }
        id
    }

    fn get(&self, id: &str) -> Option<Session> {
        let all = self.0.lock().ok()?;
        all.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    fn remove(&self, id: &str) {
        if let Ok(mut all) = self.0.lock() {
            all.remove(id);
        }
    }
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    let api = Router::new()
        .route(
            "/admin/api/session",
            post(api::login).get(api::whoami).delete(api::logout),
        )
        .route("/admin/api/overview", get(api::overview))
        .route("/admin/api/events", get(api::events))
        .route("/admin/api/dead-letters", get(api::dead_letters))
        .route("/admin/api/dead-letters/redrive", post(api::redrive))
        .route("/admin/api/dead-letters/drop", post(api::drop_dead_letters))
        .route("/admin/api/keys", get(api::keys).post(api::create_key))
        .route("/admin/api/keys/{id}/revoke", post(api::revoke_key))
        .route("/admin/api/sources", get(api::sources).post(api::create_source))
        .route("/admin/api/sources/{id}/delete", post(api::delete_source))
        .layer(axum::middleware::from_fn(csrf));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/console", get(api::console_page))
        .route("/console/", get(api::console_page))
        .route("/console/assets/{file}", get(api::console_asset))
        .merge(api)
        .fallback(|| async { problem(Problem::new(Code::NotFound).detail("no admin route matches this path")) })
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// A problem response with a fresh request id.
pub(crate) fn problem(p: Problem) -> Response {
    p.render(RequestId::generate().as_str())
}

/// A handler that takes a [`Session`] runs only for a logged-in console; others get the 401.
impl axum::extract::FromRequestParts<Arc<AdminState>> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, Response> {
        session(state, &parts.headers).map_err(|res| *res)
    }
}

/// The session the request's cookie names, or a 401.
pub(crate) fn session(state: &AdminState, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    cookie(headers)
        .and_then(|id| state.sessions.get(&id))
        .filter(|s| {
            // A token revoked since the login ends its sessions at once.
            state
                .tokens
                .list()
                .is_ok_and(|all| all.iter().any(|t| t.id == s.token_id && t.revoked_at.is_none()))
        })
        .ok_or_else(|| {
            Box::new(problem(
                Problem::new(Code::Unauthorized).detail("log in with an admin token"),
            ))
        })
}

/// The session id in the request's cookie.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The cookie that holds session `id` (or, with `None`, clears it).
fn set_cookie(id: Option<&str>) -> HeaderValue {
    let value = match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("sluice_admin=; Max-Age=0"))
}

/// Middleware: a state change must come from this listener's own origin, with a JSON body.
async fn csrf(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let same_origin = matches!((host, origin), (Some(h), Some(o)) if o == format!("http://{h}"));
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !(same_origin && json) {
        tracing::warn!(target: "sluice::admin", method = %req.method(), path = %req.uri().path(), ?origin, "state change refused: not same-origin JSON");
        return problem(
            Problem::new(Code::CsrfRefused)
                .detail("state changes need an Origin naming this listener and a JSON body; use the console"),
        );
    }
    next.run(req).await
}

/// Middleware: the security headers every admin response carries.
async fn security_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/admin/api/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// `GET /metrics`: the Prometheus text format (version 0.0.4).
async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let mut res = state.prometheus.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// Runs the exporter's upkeep until `stop`.
pub async fn upkeep(handle: PrometheusHandle, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(UPKEEP) => handle.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}

/// A JSON answer with `status`.
pub(crate) fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}
