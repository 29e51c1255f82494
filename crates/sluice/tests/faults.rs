//! Fault tests against the real `sluice serve` binary: the store unavailable for a while, the disk
//! full during ingest, poison messages among good ones, and a consumer too slow for the load.
//! Each asserts the promise that matters: nothing accepted is lost or stored twice, refusals are
//! clear 503s, and the system recovers by itself once the fault goes away. (The `kill -9` test
//! lives in `crash.rs`.) Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use common::{TestApp, create_key, sluice};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// Another process holding the store's write lock (`BEGIN EXCLUSIVE`) for `secs`: to the server
/// the store is unavailable, exactly as when an operator's tool or a backup holds the file.
/// Returns once the lock is held.
fn lock_store(db: &Path, secs: f64) -> Child {
    let script = "import sqlite3, sys, time\n\
                  c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n\
                  c.execute('BEGIN EXCLUSIVE')\n\
                  print('locked', flush=True)\n\
                  time.sleep(float(sys.argv[2]))\n\
                  c.execute('COMMIT')\n\
                  print('released', flush=True)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is required for the lock-holder (CI installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked", "the lock-holder did not take the lock");
    child
}

/// `PRAGMA integrity_check` of a database file, through Python's sqlite3 (an independent reader).
fn integrity(db: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
        ])
        .arg(db)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn queue_depth(data_dir: &Path) -> u64 {
    let s: Value = serde_json::from_str(&sluice(data_dir, &["status", "--output", "json"])).unwrap();
    s["queue"]["visible"].as_u64().unwrap() + s["queue"]["in_flight"].as_u64().unwrap()
}

fn dlq(data_dir: &Path) -> Vec<Value> {
    sluice(data_dir, &["dlq", "list", "--limit", "1000", "--output", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn accepted_ids(r: reqwest::Response) -> Vec<String> {
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    match (&v["id"], &v["ids"]) {
        (Value::String(id), _) => vec![id.clone()],
        (_, Value::Array(ids)) => ids.iter().map(|i| i.as_str().unwrap().to_owned()).collect(),
        _ => panic!("no ids in {v}"),
    }
}

/// Every id is stored, and nothing is stored twice or unasked for.
fn assert_exactly_once(stored: &[Value], accepted: &[String]) {
    let ids: Vec<&str> = stored.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event is stored twice");
    let want: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    assert_eq!(unique, want, "stored events differ from the accepted ones");
}

fn batch(n: usize, tag: &str) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": "fault.test", "data": {"tag": tag, "i": i}}))
        .collect();
    serde_json::to_string(&events).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_locked_for_a_while_delays_the_process_step_which_retries_and_loses_nothing() {
    let app = TestApp::spawn();
    let store = app.data_dir.join("store.db");
    let mut locker = lock_store(&store, 8.0);
    let locked_at = Instant::now();

    // Ingest does not need the store: events are accepted into the queue meanwhile.
    let mut accepted = Vec::new();
    for i in 0..6 {
        accepted.extend(accepted_ids(app.post(&app.key, &batch(5, &format!("locked-{i}"))).await).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        locked_at.elapsed() < Duration::from_secs(7),
        "the machine is too slow for this test's timing"
    );
    // Nothing could be stored; the queue keeps every message; reads still work.
    assert!(app.list_all(&app.key).await.is_empty(), "stored through a held lock?");
    assert_eq!(queue_depth(&app.data_dir), 30, "the queue must keep the messages");

    assert!(locker.wait().unwrap().success());
    let stored = app.wait_for_count(&app.key, 30, WAIT).await;
    assert_exactly_once(&stored, &accepted);
    assert!(
        dlq(&app.data_dir).is_empty(),
        "a transient outage must not dead-letter anything"
    );

    // The failures were retried with backoff, not in a hot loop.
    let logs = app.logs();
    let failures: Vec<Value> = logs
        .iter()
        .filter(|l| l.contains("record failed"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!failures.is_empty(), "the outage left no trace in the logs");
    let mut per_message = std::collections::HashMap::<String, usize>::new();
    for f in &failures {
        let fields = &f["fields"];
        let reason = fields["reason"].as_str().or(f["reason"].as_str()).unwrap_or_default();
        assert!(reason.contains("store unavailable"), "unexpected failure: {f}");
        let id = fields["message_id"]
            .as_str()
            .or(f["message_id"].as_str())
            .unwrap()
            .to_owned();
        *per_message.entry(id).or_default() += 1;
    }
    let worst = per_message.values().max().copied().unwrap_or(0);
    assert!(
        worst <= 4,
        "a message failed {worst} times in an 8 s outage: retries are not backing off"
    );
}

/// A tmpfs of a few MiB mounted for the test's data directory: a disk that really fills up.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { mount, _dir: dir }
    }

    /// Writes a filler file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.mount.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5u8; 64 * 1024];
        loop {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        // Fill the last partial block too.
        let small = vec![0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// `sluice serve` on a data directory of our choosing (the tmpfs); returns it and its address.
fn serve(data_dir: &Path) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    common::start(data_dir, &[])
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "sluice serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn list_all(client: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/events?limit=1000");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let r = client.get(url).bearer_auth(key).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_clear_503s_corrupts_nothing_and_ingest_recovers_when_space_returns() {
    let disk = SmallDisk::new("24m");
    let data_dir = disk.mount.join("data");
    let key = create_key(&data_dir, "acme", &[]);
    let (mut child, addr, logs) = serve(&data_dir);
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let post = |body: String| {
        client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // ~1 KiB events, 100 to a request: the disk fills in a few dozen requests.
    let big_batch = |tag: &str| {
        let pad = "x".repeat(900);
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"type": "fault.disk", "data": {"tag": tag, "i": i, "pad": pad}}))
            .collect();
        serde_json::to_string(&events).unwrap()
    };

    let mut accepted = Vec::new();
    accepted.extend(accepted_ids(post(big_batch("before")).await.unwrap()).await);

    let filler = disk.fill();
    let mut refused = 0;
    let mut first_503: Option<Value> = None;
    for i in 0..300 {
        let r = post(big_batch(&format!("full-{i}"))).await.unwrap();
        match r.status().as_u16() {
            202 => accepted.extend(accepted_ids(r).await),
            503 => {
                assert!(r.headers().contains_key("retry-after"), "a 503 must say when to retry");
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                let p: Value = r.json().await.unwrap();
                first_503.get_or_insert(p);
                refused += 1;
                if refused >= 5 {
                    break;
                }
            }
            s => panic!("a full disk must give 202 or 503, got {s}: {}", r.text().await.unwrap()),
        }
    }
    let problem = first_503.expect("the disk filled up but ingest never answered 503");
    eprintln!(
        "disk full: {} events accepted before and during, {refused} requests refused",
        accepted.len()
    );
    assert_eq!(problem["code"], "queue_unavailable", "{problem}");
    let detail = problem.to_string();
    assert!(
        !detail.contains("SQLITE") && !detail.contains(".db") && !detail.contains("INSERT"),
        "the 503 leaks internals: {detail}"
    );

    // Space comes back: ingest recovers by itself, without a restart.
    std::fs::remove_file(filler).unwrap();
    let recovered_by = Instant::now() + Duration::from_secs(20);
    loop {
        let r = post(big_batch("after")).await.unwrap();
        if r.status() == 202 {
            accepted.extend(accepted_ids(r).await);
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            Instant::now() < recovered_by,
            "ingest did not recover after space returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every accepted event lands once (the process step retried through the full disk too).
    let start = Instant::now();
    let stored = loop {
        let all = list_all(&client, &base, &key).await;
        if all.len() >= accepted.len() {
            break all;
        }
        assert!(
            start.elapsed() < WAIT,
            "only {} of {} accepted events stored; logs: {:?}",
            all.len(),
            accepted.len(),
            logs.lock().unwrap().iter().rev().take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_exactly_once(&stored, &accepted);
    assert!(dlq(&data_dir).is_empty());

    // No corruption: both files pass SQLite's own check after a clean stop, and a restart reads them.
    stop(&mut child);
    assert_eq!(integrity(&data_dir.join("queue.db")), "ok");
    assert_eq!(integrity(&data_dir.join("store.db")), "ok");
    let (mut again, addr, _) = serve(&data_dir);
    let after = list_all(&client, &format!("http://{addr}"), &key).await;
    assert_eq!(after.len(), accepted.len());
    stop(&mut again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_poison_messages_among_good_ones_go_to_the_dlq_with_their_reason_and_the_good_ones_land() {
    // A schema makes a second kind of poison possible: a correctly signed envelope (an insider
    // with the signing key) whose data breaks the contract is refused on re-validation.
    let schemas = tempfile::tempdir().unwrap();
    std::fs::write(
        schemas.path().join("order.created.json"),
        r#"{"type":"object","required":["amount"],"properties":{"amount":{"type":"number"}}}"#,
    )
    .unwrap();
    let app = TestApp::spawn_with(&[("SLUICE_SCHEMA_DIR", schemas.path().to_str().unwrap())]);
    let key_hex = std::fs::read_to_string(app.data_dir.join("secrets/signing.key")).unwrap();
    let sealer = sluice_core::envelope::Sealer::new(
        vec![sluice_core::envelope::SigningKey::new("local-1", hex::decode(key_hex.trim()).unwrap()).unwrap()],
        32,
    )
    .unwrap();
    let qdb = sluice_embedded::QueueDb::open(&app.data_dir.join("queue.db")).unwrap();
    let q = qdb.queue("events", sluice_embedded::QueueConfig::default());
    use sluice_core::ports::Queue as _;

    let now = time::OffsetDateTime::now_utc();
    let envelope = |req: &str, data: Value| sluice_core::envelope::Envelope {
        traceparent: None,
        idempotency_key: None,
        v: sluice_core::envelope::VERSION,
        id: sluice_core::EventId::new_at(now),
        tenant: sluice_core::Tenant::parse("acme").unwrap(),
        event_type: sluice_core::EventType::parse("order.created").unwrap(),
        data: data.into(),
        occurred_at: now,
        received_at: now,
        request_id: sluice_core::RequestId::parse(req).unwrap(),
        source_ip: Some("198.51.100.7".into()),
        subject: None,
        webhook: None,
        extensions: Default::default(),
    };
    let mut accepted = Vec::new();
    for round in 0..5 {
        let events: Vec<Value> = (0..10)
            .map(|i| json!({"type": "order.created", "data": {"amount": round * 10 + i}}))
            .collect();
        accepted.extend(accepted_ids(app.post(&app.key, &serde_json::to_string(&events).unwrap()).await).await);
        if round == 1 {
            // Tampered in the queue: the body no longer matches its signature.
            let mut m = sealer
                .seal(&envelope("req-poison-tampered", json!({"amount": 1})))
                .unwrap();
            m.body = m.body.replace(r#""amount":1"#, r#""amount":1000000"#);
            q.send(m).await.unwrap();
        }
        if round == 3 {
            let m = sealer
                .seal(&envelope("req-poison-invalid", json!({"amount": "lots"})))
                .unwrap();
            q.send(m).await.unwrap();
        }
    }

    let stored = app.wait_for_count(&app.key, accepted.len(), WAIT).await;
    let start = Instant::now();
    let dead = loop {
        let d = dlq(&app.data_dir);
        if d.len() >= 2 {
            break d;
        }
        assert!(start.elapsed() < WAIT, "poison messages never reached the DLQ: {d:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reason = |req: &str| {
        dead.iter()
            .find(|d| d["attributes"]["request_id"] == req)
            .unwrap_or_else(|| panic!("{req} not in the DLQ: {dead:?}"))["attributes"]["dlq_reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(reason("req-poison-tampered").contains("signature"));
    assert!(reason("req-poison-invalid").contains("no longer valid"));
    for d in &dead {
        assert_eq!(
            d["attributes"]["source_ip"], "198.51.100.7",
            "R-2: the origin travels with it"
        );
    }
    // Permanent failures go at once: each was handled once, not retried up to max_receive_count.
    let failures = app.logs().iter().filter(|l| l.contains("record failed")).count();
    assert_eq!(failures, 2, "permanent failures must not be retried");
    // The good ones all land, and no poison was stored.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored_now = app.list_all(&app.key).await;
    assert_eq!(stored_now.len(), stored.len());
    assert_exactly_once(&stored_now, &accepted);
    assert_eq!(queue_depth(&app.data_dir), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d3_a_stalled_consumer_makes_ingest_answer_503_at_the_queue_bound_instead_of_growing() {
    const BOUND: u64 = 200;
    const CONNS: usize = 8;
    const PER_REQUEST: usize = 10;
    let app = TestApp::spawn_with(&[("SLUICE_QUEUE__MAX_DEPTH", "200")]);
    // The consumer stalls: the store stays locked while the producers push.
    let mut locker = lock_store(&app.data_dir.join("store.db"), 8.0);

    let accepted = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let deadline = Instant::now() + Duration::from_secs(4);
    let tasks: Vec<_> = (0..CONNS)
        .map(|c| {
            let base = app.base.clone();
            let key = app.key.clone();
            let accepted = accepted.clone();
            let refused = refused.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut n = 0;
                while Instant::now() < deadline && n < 200 {
                    n += 1;
                    let r = client
                        .post(format!("{base}/v1/events"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(batch(PER_REQUEST, &format!("slow-{c}-{n}")))
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        202 => {
                            let ids = accepted_ids(r).await;
                            accepted.lock().unwrap().extend(ids);
                        }
                        503 => {
                            assert!(r.headers().contains_key("retry-after"));
                            let p: Value = r.json().await.unwrap();
                            assert_eq!(p["code"], "queue_unavailable");
                            *refused.lock().unwrap() += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        s => panic!("unexpected status {s}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let accepted_n = accepted.lock().unwrap().len() as u64;
    // Concurrent requests may each pass the check before any of them is counted: that is the
    // only slack allowed above the bound.
    let ceiling = BOUND + (CONNS * PER_REQUEST) as u64;
    assert!(*refused.lock().unwrap() > 0, "the bound was never enforced");
    assert!(accepted_n >= BOUND / 2, "only {accepted_n} accepted before the bound");
    assert!(accepted_n <= ceiling, "{accepted_n} accepted past a bound of {BOUND}");
    assert!(queue_depth(&app.data_dir) <= ceiling);

    // The consumer comes back: the backlog drains, and ingest accepts again.
    assert!(locker.wait().unwrap().success());
    let mut all = accepted.lock().unwrap().clone();
    let stored = app.wait_for_count(&app.key, all.len(), WAIT).await;
    assert_exactly_once(&stored, &all);
    let start = Instant::now();
    loop {
        let r = app.post(&app.key, &batch(PER_REQUEST, "after")).await;
        if r.status() == 202 {
            all.extend(accepted_ids(r).await);
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ingest stayed refused after the drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = app.wait_for_count(&app.key, all.len(), WAIT).await;
    assert_exactly_once(&stored, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_process_step_keeps_accepted_events_queued_until_workers_return() {
    let mut app = TestApp::spawn_with(&[("SLUICE_WORKER__WORKERS", "0")]);
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = app.post(&app.key, &batch(5, &format!("paused-{n}"))).await;
        assert_eq!(r.status(), 202);
        ids.extend(accepted_ids(r).await);
    }
    // Long enough for a running worker to have stored them (a poll waits at most 1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(queue_depth(&app.data_dir), 15);
    assert!(
        app.list_all(&app.key).await.is_empty(),
        "nothing is processed while paused"
    );
    assert!(app.logs().iter().any(|l| l.contains("process step is paused")));

    assert!(app.terminate().success());
    app.restart_with(&[]);
    let stored = app.wait_for_count(&app.key, ids.len(), WAIT).await;
    assert_exactly_once(&stored, &ids);
    assert_eq!(queue_depth(&app.data_dir), 0);
}

/// Each thread of process `pid` as (name, nice value), from `/proc/<pid>/task/*/stat`.
fn thread_priorities(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // `pid (comm) state ...`: comm may hold spaces, so split after its closing parenthesis;
        // nice is field 19, the 17th after the comm.
        let (head, rest) = stat.rsplit_once(')').unwrap();
        let name = head.split_once('(').unwrap().1.to_owned();
        let nice = rest.split_whitespace().nth(16).unwrap().parse().unwrap();
        out.push((name, nice));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_step_runs_on_its_own_threads_below_the_gateways_priority() {
    for (setting, lower_by) in [(None, 10), (Some("7"), 7), (Some("0"), 0)] {
        let env: Vec<(&str, &str)> = setting.map(|v| ("SLUICE_WORKER__NICE", v)).into_iter().collect();
        let app = TestApp::spawn_with(&env);
        // The server listens before every worker thread has started and lowered its own
        // priority (each does so first thing): look until they all have, briefly.
        let started = std::time::Instant::now();
        loop {
            let threads = thread_priorities(app.pid());
            let base = threads.iter().find(|(n, _)| n == "sluice").unwrap().1;
            let of = |name: &str| -> Vec<i64> { threads.iter().filter(|(n, _)| n == name).map(|t| t.1).collect() };
            let (gateway, process) = (of("tokio-rt-worker"), of("sluice-process"));
            let want = (base + lower_by).min(19);
            assert!(!gateway.is_empty(), "{setting:?}: {threads:?}");
            assert!(gateway.iter().all(|&n| n == base), "{setting:?}: {threads:?}");
            if !process.is_empty() && process.iter().all(|&n| n == want) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{setting:?}: want the process threads at {want}: {threads:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // And the process step on those threads still stores what ingest accepted.
        let r = app.post(&app.key, r#"{"type":"order.created","data":{"n":1}}"#).await;
        assert_eq!(r.status(), 202);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        app.wait_for_event(&app.key, &id, WAIT).await;
    }
}
