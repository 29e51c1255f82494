//! Cold starts under a minimal local Lambda Runtime API.
//!
//! The emulator serves the custom-runtime protocol (`/2018-06-01/runtime/invocation/next`,
//! `…/{id}/response`, `…/{id}/error`, `/2018-06-01/runtime/init/error`) on loopback and hands out
//! exactly one event per run. A run execs the function's process, and records:
//! - `init_ms`: exec until the first `GET …/next` (the runtime finished its init phase, which on
//!   Lambda is billed and is what users call the cold start);
//! - `first_response_ms`: exec until the response (or error) for that first event is posted;
//! - `peak_rss_kib`: the process's `VmHWM` right after it posted, Lambda's "Max Memory Used".
//!
//! The process is then killed; the next run starts a fresh one. The same emulator runs the Rust
//! binaries and the Python references, so their ratio is a fair one.

use crate::stats::percentile;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// What to start and what to hand it.
#[derive(Debug, Clone)]
pub struct Params {
    /// A label for the report.
    pub name: String,
    /// The program (a `bootstrap` binary, or `python3`).
    pub program: PathBuf,
    /// Its arguments (for Python: `-m awslambdaric module.handler`).
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// The first (and only) event, as JSON text.
    pub event: String,
    /// Extra environment (resource names, `AWS_ENDPOINT_URL` of a moto server).
    pub env: Vec<(String, String)>,
    /// Fresh processes to time.
    pub runs: usize,
    /// Longest a run may take.
    pub timeout: Duration,
}

#[derive(Default)]
struct RunState {
    event: String,
    request_id: String,
    served: bool,
    next_at: Option<Instant>,
    done_at: Option<Instant>,
    outcome: Option<&'static str>,
    body: String,
}

#[derive(Clone)]
struct Emulator {
    run: Arc<Mutex<RunState>>,
    done: Arc<Notify>,
}

impl Emulator {
    fn finish(&self, outcome: &'static str, body: &Bytes) {
        if let Ok(mut r) = self.run.lock()
            && r.outcome.is_none()
        {
            r.done_at = Some(Instant::now());
            r.outcome = Some(outcome);
            r.body = String::from_utf8_lossy(&body[..body.len().min(600)]).into_owned();
        }
        self.done.notify_one();
    }
}

async fn next(State(e): State<Emulator>) -> Response {
    let first = {
        let Ok(mut r) = e.run.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        if r.served {
            None
        } else {
            r.served = true;
            r.next_at = Some(Instant::now());
            Some((r.request_id.clone(), r.event.clone()))
        }
    };
    let Some((id, event)) = first else {
        // The function is idle, waiting for a second event that never comes; it is killed soon.
        tokio::time::sleep(Duration::from_secs(30)).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or(0);
    let mut h = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, h, event).into_response()
}

async fn response(State(e): State<Emulator>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    e.finish("response", &body);
    StatusCode::ACCEPTED
}

async fn error(State(e): State<Emulator>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    e.finish("error", &body);
    StatusCode::ACCEPTED
}

async fn init_error(State(e): State<Emulator>, body: Bytes) -> StatusCode {
    e.finish("init_error", &body);
    StatusCode::ACCEPTED
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Times `p.runs` cold starts; returns the JSON report.
pub async fn run(p: Params) -> anyhow::Result<serde_json::Value> {
    let emulator = Emulator {
        run: Arc::new(Mutex::new(RunState::default())),
        done: Arc::new(Notify::new()),
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(emulator.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut runs = Vec::new();
    for i in 0..p.runs {
        if let Ok(mut r) = emulator.run.lock() {
            *r = RunState {
                event: p.event.clone(),
                request_id: format!("00000000-0000-4000-8000-{i:012}"),
                ..RunState::default()
            };
        }
        let mut cmd = Command::new(&p.program);
        cmd.args(&p.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &p.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", p.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/27/[$LATEST]bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_SESSION_TOKEN", "testing")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(d) = &p.cwd {
            cmd.current_dir(d).env("LAMBDA_TASK_ROOT", d);
        }
        for (k, v) in &p.env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let finished = tokio::time::timeout(p.timeout, emulator.done.notified()).await.is_ok();
        let rss = peak_rss_kib(pid);
        let _ = child.kill();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        let state = emulator
            .run
            .lock()
            .map_err(|_| anyhow::anyhow!("emulator state poisoned"))?;
        let ms = |t: Option<Instant>| t.map(|t| t.duration_since(started).as_secs_f64() * 1000.0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        runs.push(serde_json::json!({
            "outcome": if finished { state.outcome.unwrap_or("none") } else { "timeout" },
            "init_ms": ms(state.next_at),
            "first_response_ms": ms(state.done_at),
            "peak_rss_kib": rss,
            "body": state.body,
            "stderr_tail": stderr.chars().rev().take(400).collect::<String>().chars().rev().collect::<String>(),
        }));
    }
    server.abort();
    let mut init: Vec<f64> = runs.iter().filter_map(|r| r["init_ms"].as_f64()).collect();
    let mut first: Vec<f64> = runs.iter().filter_map(|r| r["first_response_ms"].as_f64()).collect();
    let peak = runs.iter().filter_map(|r| r["peak_rss_kib"].as_u64()).max();
    let ok = runs.iter().all(|r| r["outcome"] == "response");
    Ok(serde_json::json!({
        "bench": "cold_start",
        "name": p.name,
        "runs": runs.len(),
        "all_responded": ok,
        "init_ms_p50": percentile(&mut init, 50.0),
        "first_response_ms_p50": percentile(&mut first, 50.0),
        "peak_rss_kib": peak,
        "detail": runs,
    }))
}
