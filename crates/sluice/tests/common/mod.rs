//! `spawn_app`: the real `sluice` binary on a free loopback port, over fresh SQLite files in a
//! temporary directory, with its log lines captured for assertions.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// Runs `cmd` with `stdin` on its standard input (a secret, kept out of the arguments); its
/// output, whatever its status.
pub fn output_with_stdin(mut cmd: Command, stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The id `sluice sources create` printed: the last word of its last line.
pub fn created_source_id(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_default()
        .to_owned();
    assert!(id.starts_with("src_"), "{stdout}");
    id
}

/// Runs `sluice keys create` and returns the printed key.
pub fn create_key(data_dir: &Path, tenant: &str, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["keys", "create", "--tenant", tenant, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .output()
        .expect("run sluice keys create");
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs a `sluice` subcommand against a data dir, returning stdout.
pub fn sluice(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run sluice");
    assert!(
        out.status.success(),
        "sluice {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub data_dir: PathBuf,
    pub key: String,
    pub other_key: String,
    pub client: reqwest::Client,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    env: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// A server with default settings and two tenants, `acme` and `other`.
    pub fn spawn() -> Self {
        Self::spawn_with(&[])
    }

    /// A server with `SLUICE_*` overrides.
    pub fn spawn_with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let key = create_key(&data_dir, "acme", &[]);
        let other_key = create_key(&data_dir, "other", &[]);
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, addr, logs) = start(&data_dir, &env);
        Self {
            addr,
            base: format!("http://{addr}"),
            data_dir,
            key,
            other_key,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            child,
            logs,
            env,
            _dir: Some(dir),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin listener's base URL, from its "admin listening" log line.
    pub fn admin_url(&self, path: &str) -> String {
        let addr = self
            .logs()
            .iter()
            .filter(|l| l.contains("admin listening"))
            .find_map(|l| {
                serde_json::from_str::<serde_json::Value>(l).ok()?["addr"]
                    .as_str()
                    .map(str::to_owned)
            })
            .expect("the admin listener's address in the log");
        format!("http://{addr}{path}")
    }

    /// Every log line the server printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The log lines once one of them satisfies `found`, or a panic with them all after
    /// `within`. The server writes its log through a background thread and the tests read it
    /// through another, so a line can trail the effect it reports by a few milliseconds.
    #[allow(dead_code)]
    pub async fn wait_for_log(&self, found: impl Fn(&str) -> bool, within: Duration) -> Vec<String> {
        wait_for_line(&self.logs, found, within).await
    }

    /// `kill -9`: no shutdown, no flush, nothing.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }

    /// Starts the server again on the same data directory with other `SLUICE_*` overrides.
    #[allow(dead_code)]
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.restart();
    }

    /// Starts the server again on the same data directory (a new port).
    pub fn restart(&mut self) {
        let (child, addr, logs) = start(&self.data_dir, &self.env);
        self.child = child;
        self.addr = addr;
        self.base = format!("http://{addr}");
        self.logs = logs;
    }

    pub async fn post(&self, key: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/events"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(key).send().await.unwrap()
    }

    /// Every event of the key's tenant, following cursors.
    pub async fn list_all(&self, key: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/v1/events?limit=1000".to_string();
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(c);
            }
            let r = self.get(key, &path).await;
            assert_eq!(r.status(), 200);
            let page: serde_json::Value = r.json().await.unwrap();
            out.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// Waits until the event is readable, or fails after `timeout`.
    pub async fn wait_for_event(&self, key: &str, id: &str, timeout: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let r = self.get(key, &format!("/v1/events/{id}")).await;
            if r.status() == 200 {
                return r.json().await.unwrap();
            }
            assert!(start.elapsed() < timeout, "event {id} not stored within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the tenant has `n` events stored.
    pub async fn wait_for_count(&self, key: &str, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let all = self.list_all(key).await;
            if all.len() >= n {
                return all;
            }
            assert!(
                start.elapsed() < timeout,
                "only {} of {n} events stored within {timeout:?}",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(data_dir: &Path, env: &[(String, String)]) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("SLUICE_LOG__LEVEL", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_serve(cmd)
}

/// Spawns a prepared `sluice serve` command, collects every log line it prints, and waits for
/// the address of its "sluice listening" line (which is in the logs by then).
pub fn spawn_serve(mut cmd: Command) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    // Tests run servers side by side: each admin listener on a port of its own.
    if !cmd.get_envs().any(|(k, _)| k == "SLUICE_ADMIN__LISTEN") {
        cmd.env("SLUICE_ADMIN__LISTEN", "127.0.0.1:0");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn sluice serve");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let logs = logs.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let addr = if line.contains("sluice listening")
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["addr"].as_str()
                {
                    Some(addr.parse::<SocketAddr>().unwrap())
                } else {
                    None
                };
                logs.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
    }
    // Only the readers hold a sender now: a server that exits before listening closes both
    // streams, and the wait below ends at once instead of at its timeout.
    drop(tx);
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("sluice serve did not start: {:?}", logs.lock().unwrap());
        }
    };
    (child, addr, logs)
}

/// An envelope of `tenant`'s, accepted now, of `event_type` with `data`, for tests that put
/// messages into a queue themselves; set other fields with struct update syntax.
pub fn envelope(
    tenant: &str,
    event_type: &str,
    request_id: &str,
    data: serde_json::Value,
) -> sluice_core::envelope::Envelope {
    let now = time::OffsetDateTime::now_utc();
    sluice_core::envelope::Envelope {
        v: sluice_core::envelope::VERSION,
        id: sluice_core::EventId::new_at(now),
        tenant: sluice_core::Tenant::parse(tenant).unwrap(),
        event_type: sluice_core::EventType::parse(event_type).unwrap(),
        data: data.into(),
        occurred_at: now,
        received_at: now,
        request_id: sluice_core::RequestId::parse(request_id).unwrap(),
        source_ip: None,
        subject: None,
        webhook: None,
        extensions: Default::default(),
        traceparent: None,
        idempotency_key: None,
    }
}

/// The sealer of a server's local signing key (`<data dir>/secrets/signing.key`), to make
/// messages it will verify.
pub fn local_sealer(data_dir: &Path) -> sluice_core::envelope::Sealer {
    use sluice_core::envelope::{Sealer, SigningKey};
    let key = std::fs::read_to_string(data_dir.join("secrets/signing.key")).unwrap();
    Sealer::new(
        vec![SigningKey::new("local-1", hex::decode(key.trim()).unwrap()).unwrap()],
        32,
    )
    .unwrap()
}

/// The lines in `logs` once one of them satisfies `found`, or a panic with them all after
/// `within` (a line can trail the effect it reports by a few milliseconds).
pub async fn wait_for_line(
    logs: &Arc<Mutex<Vec<String>>>,
    found: impl Fn(&str) -> bool,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let lines = logs.lock().unwrap().clone();
        if lines.iter().any(|l| found(l)) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no such log line within {within:?}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
