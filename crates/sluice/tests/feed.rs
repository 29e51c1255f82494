//! Events out on `sluice serve`: the feed's long-poll, the SSE stream and its resume, deletion
//! and erasure with their tombstones, across tenants, and a `kill -9` under load while a reader
//! checkpoints (I-3, I-4, D-2, R-1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use common::{TestApp, envelope, local_sealer};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn post_one(app: &TestApp, key: &str, body: Value) -> String {
    let r = app.post(key, &body.to_string()).await;
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn feed(app: &TestApp, key: &str, query: &str) -> (u16, Value) {
    let r = app.get(key, &format!("/v1/feed?{query}")).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Every entry of the key's feed after `after`, following `next_after`.
async fn drain(app: &TestApp, key: &str, mut after: u64) -> (Vec<Value>, u64) {
    let mut out = Vec::new();
    loop {
        let (status, page) = feed(app, key, &format!("after={after}&limit=1000")).await;
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().unwrap().clone();
        let next = page["next_after"].as_u64().unwrap();
        if entries.is_empty() && next == after {
            return (out, after);
        }
        out.extend(entries);
        after = next;
    }
}

/// One server-sent event: its `id:`, `event:` and `data:` as JSON.
#[derive(Debug)]
struct Sse {
    id: u64,
    kind: String,
    data: Value,
}

/// Reads SSE frames from `r` until `n` events have arrived or `within` passes.
async fn read_sse(r: &mut reqwest::Response, n: usize, within: Duration) -> Vec<Sse> {
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        let chunk = match tokio::time::timeout_at(deadline, r.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => break,
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            // Heartbeats are comment lines with no id.
            if let Some(id) = id {
                out.push(Sse {
                    id,
                    kind,
                    data: serde_json::from_str(&data).unwrap(),
                });
            }
        }
    }
    out
}

async fn open_stream(app: &TestApp, key: &str, query: &str, last_event_id: Option<u64>) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url(&format!("/v1/feed/stream?{query}")))
        .bearer_auth(key);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn i3_feed_long_poll_returns_as_soon_as_an_entry_is_stored() {
    let app = TestApp::spawn();
    let (_, empty) = feed(&app, &app.key, "after=0&wait=0").await;
    assert_eq!(empty["entries"], json!([]));
    let started = Instant::now();
    let waiting = {
        let (client, url, key) = (app.client.clone(), app.url("/v1/feed?after=0&wait=15"), app.key.clone());
        tokio::spawn(async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = post_one(&app, &app.key, json!({"type": "a", "data": {"n": 1}})).await;
    let (status, page, took) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(page["entries"][0]["id"], id.as_str(), "{page}");
    assert_eq!(page["entries"][0]["seq"], 1);
    assert_eq!(page["next_after"], 1);
    assert!(
        took < Duration::from_secs(5),
        "returned on arrival, not after wait: {took:?}"
    );
    // With nothing new, `wait` is waited out and the answer is empty at the same checkpoint.
    let started = Instant::now();
    let (_, none) = feed(&app, &app.key, "after=1&wait=1").await;
    assert_eq!(
        (none["entries"].clone(), none["next_after"].clone()),
        (json!([]), json!(1))
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    for bad in [
        "after=-1",
        "limit=0",
        "limit=1001",
        "wait=21",
        "type=Bad",
        "cursor=x",
        "after=1&after=2",
    ] {
        let (status, problem) = feed(&app, &app.key, bad).await;
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(problem["code"], "invalid_parameter");
    }
    let r = app.client.get(app.url("/v1/feed")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the feed needs a key");
}

#[tokio::test]
async fn i3_sse_resumes_by_last_event_id_and_gives_every_entry_once() {
    let app = TestApp::spawn();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(post_one(&app, &app.key, json!({"type": "a", "data": {"n": n}})).await);
    }
    let mut first = open_stream(&app, &app.key, "after=0", None).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "text/event-stream");
    let got = read_sse(&mut first, 3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    drop(first);
    let resume_from = got[2].id;
    // Two more arrive while the client is away, one while it is back.
    for n in 5..7 {
        ids.push(post_one(&app, &app.key, json!({"type": "a", "data": {"n": n}})).await);
    }
    let mut second = open_stream(&app, &app.key, "", Some(resume_from)).await;
    assert_eq!(second.status(), 200);
    let mid = read_sse(&mut second, 4, Duration::from_secs(20)).await;
    ids.push(post_one(&app, &app.key, json!({"type": "a", "data": {"n": 7}})).await);
    let last = read_sse(&mut second, 1, Duration::from_secs(20)).await;
    let all: Vec<&Sse> = got.iter().chain(&mid).chain(&last).collect();
    // The process step stores concurrently, so seq order need not be post order: every entry
    // once, in seq order, across the reconnect.
    let seen: Vec<String> = all.iter().map(|e| e.data["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(seen.len(), ids.len(), "{seen:?}");
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>(),
        ids.iter().collect::<BTreeSet<_>>(),
        "every entry once across the reconnect"
    );
    let seqs: Vec<u64> = all.iter().map(|e| e.id).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in seq order: {seqs:?}");
    assert!(
        all.iter()
            .all(|e| e.kind == "event" && e.data["seq"].as_u64() == Some(e.id))
    );
    let bad = open_stream(&app, &app.key, "", None).await.status();
    assert_eq!(bad, 200);
    let r = app
        .client
        .get(app.url("/v1/feed/stream"))
        .bearer_auth(&app.key)
        .header("last-event-id", "not-a-seq")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn i3_feed_and_stream_never_show_another_tenants_entries_or_tombstones() {
    let app = TestApp::spawn();
    let mine = post_one(&app, &app.key, json!({"type": "a", "data": {}})).await;
    let theirs = post_one(&app, &app.other_key, json!({"type": "a", "data": {}})).await;
    let theirs_gone = post_one(&app, &app.other_key, json!({"type": "a", "data": {}})).await;
    app.wait_for_event(&app.other_key, &theirs_gone, Duration::from_secs(10))
        .await;
    app.wait_for_event(&app.key, &mine, Duration::from_secs(10)).await;
    let r = app
        .client
        .delete(app.url(&format!("/v1/events/{theirs_gone}")))
        .bearer_auth(&app.other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Acme can neither delete nor see the other tenant's event.
    let r = app
        .client
        .delete(app.url(&format!("/v1/events/{theirs}")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (entries, _) = drain(&app, &app.key, 0).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["id"], mine.as_str());
    let mut stream = open_stream(&app, &app.key, "after=0", None).await;
    let got = read_sse(&mut stream, 2, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1, "only acme's one entry: {got:?}");
    assert_eq!(got[0].data["id"], mine.as_str());
    let (theirs_feed, _) = drain(&app, &app.other_key, 0).await;
    assert_eq!(theirs_feed.len(), 2, "their event and their tombstone: {theirs_feed:?}");
    assert_eq!(theirs_feed[1]["deleted"], theirs_gone.as_str());
}

#[tokio::test]
async fn i3_delete_answers_204_then_404_and_the_feed_gets_a_tombstone() {
    let app = TestApp::spawn();
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("idempotency-key", "order-7")
        .body(json!({"type": "order.created", "data": {"n": 7}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let stored = app.wait_for_event(&app.key, &id, Duration::from_secs(10)).await;
    let seq = stored["seq"].as_u64().unwrap();
    let del = |key: &str, id: &str| {
        app.client
            .delete(app.url(&format!("/v1/events/{id}")))
            .bearer_auth(key.to_owned())
            .send()
    };
    let absent = "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for (key, target) in [
        (&app.other_key, id.as_str()),
        (&app.key, absent),
        (&app.key, "not-an-id"),
    ] {
        let r = del(key, target).await.unwrap();
        assert_eq!(r.status(), 404, "{target}");
        let get = app.get(key, &format!("/v1/events/{target}")).await;
        assert_eq!(get.status(), 404, "DELETE answers exactly as GET does");
    }
    let r = del(&app.key, &id).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(del(&app.key, &id).await.unwrap().status(), 404, "deleted once");
    assert_eq!(app.get(&app.key, &format!("/v1/events/{id}")).await.status(), 404);
    let (entries, _) = drain(&app, &app.key, seq).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["deleted"], id.as_str());
    assert!(entries[0]["seq"].as_u64().unwrap() > seq);
    assert!(entries[0]["deleted_at"].is_string());
    // The idempotency record no longer answers with the deleted id: a retry is a new event.
    let retry = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("idempotency-key", "order-7")
        .body(json!({"type": "order.created", "data": {"n": 7}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 202);
    assert_ne!(retry.json::<Value>().await.unwrap()["id"], id.as_str());
    let logs = app
        .wait_for_log(
            |l| l.contains("event deleted") && l.contains(&id),
            Duration::from_secs(5),
        )
        .await;
    let line: Value = serde_json::from_str(logs.iter().find(|l| l.contains("event deleted")).unwrap()).unwrap();
    assert_eq!(line["tenant"], "acme");
    assert!(
        line["by"].as_str().is_some_and(|k| k.starts_with("key_")),
        "who asked: {line}"
    );
}

#[tokio::test]
async fn d2_feed_streams_are_bounded_per_tenant() {
    let app = TestApp::spawn_with(&[("SLUICE_FEED__MAX_STREAMS_PER_TENANT", "2")]);
    let a = open_stream(&app, &app.key, "", None).await;
    let b = open_stream(&app, &app.key, "", None).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let c = open_stream(&app, &app.key, "", None).await;
    assert_eq!(c.status(), 429);
    assert!(c.headers().contains_key("retry-after"));
    assert_eq!(c.json::<Value>().await.unwrap()["code"], "throttled");
    let theirs = open_stream(&app, &app.other_key, "", None).await;
    assert_eq!(theirs.status(), 200, "another tenant has streams of its own");
    drop(a);
    // The slot comes back once the server notices the client left.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let again = open_stream(&app, &app.key, "", None).await;
        if again.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "a closed stream's slot never came back");
        // A heartbeat or an entry makes the server write, and find the connection closed.
        post_one(&app, &app.key, json!({"type": "a", "data": {}})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Erasure of a subject with events stored, queued and dead-lettered, then a redrive that
/// stores none of them; events accepted after the erasure are kept.
#[tokio::test]
async fn i3_erasure_covers_stored_queued_and_dead_lettered_events_and_a_redrive_brings_none_back() {
    let mut app = TestApp::spawn();
    let stored = post_one(
        &app,
        &app.key,
        json!({"type": "a", "subject": "user/1", "data": {"n": 1}}),
    )
    .await;
    let other_subject = post_one(
        &app,
        &app.key,
        json!({"type": "a", "subject": "user/2", "data": {"n": 2}}),
    )
    .await;
    let other_tenant = post_one(
        &app,
        &app.other_key,
        json!({"type": "a", "subject": "user/1", "data": {}}),
    )
    .await;
    for (k, id) in [
        (&app.key, &stored),
        (&app.key, &other_subject),
        (&app.other_key, &other_tenant),
    ] {
        app.wait_for_event(k, id, Duration::from_secs(10)).await;
    }
    // The process step paused: the next event stays queued.
    app.terminate();
    app.restart_with(&[("SLUICE_WORKER__WORKERS", "0")]);
    let queued = post_one(
        &app,
        &app.key,
        json!({"type": "a", "subject": "user/1", "data": {"n": 3}}),
    )
    .await;
    // One dead-lettered already, as a failed record would be.
    let sealer = local_sealer(&app.data_dir);
    let qdb = sluice_embedded::QueueDb::open(&app.data_dir.join("queue.db")).unwrap();
    let dlq = qdb.queue("events-dlq", sluice_embedded::QueueConfig::default());
    let dead = sluice_core::envelope::Envelope {
        subject: Some("user/1".into()),
        ..envelope("acme", "a", "req-dead", json!({"n": 4}))
    };
    let mut msg = sealer.seal(&dead).unwrap();
    msg.group = Some("acme".into());
    sluice_core::ports::Queue::send(&dlq, msg).await.unwrap();

    let r = app
        .client
        .post(app.url("/v1/erasures"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(json!({"subject": "user/1"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["status"], "completed", "{receipt}");
    assert_eq!(receipt["events_deleted"], 1, "{receipt}");
    assert_eq!(receipt["queued_dropped"], 1, "{receipt}");
    assert_eq!(receipt["dead_lettered_dropped"], 1, "{receipt}");
    assert!(receipt["completed_at"].is_string());
    assert!(
        receipt.get("subject").is_none(),
        "the receipt never repeats the subject: {receipt}"
    );
    let id = receipt["id"].as_str().unwrap();
    let fetched: Value = app
        .get(&app.key, &format!("/v1/erasures/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, receipt);
    assert_eq!(
        app.get(&app.other_key, &format!("/v1/erasures/{id}")).await.status(),
        404
    );

    // A message dead-lettered while the erasure ran (received before it), then redriven.
    let late = sluice_core::envelope::Envelope {
        subject: Some("user/1".into()),
        received_at: time::OffsetDateTime::now_utc() - time::Duration::seconds(30),
        ..envelope("acme", "a", "req-late", json!({"n": 5}))
    };
    let mut msg = sealer.seal(&late).unwrap();
    msg.group = Some("acme".into());
    sluice_core::ports::Queue::send(&dlq, msg).await.unwrap();
    // Accepted after the erasure: kept.
    let after = post_one(
        &app,
        &app.key,
        json!({"type": "a", "subject": "user/1", "data": {"n": 6}}),
    )
    .await;
    app.terminate();
    app.restart_with(&[]);
    common::sluice(&app.data_dir, &["dlq", "redrive"]);
    app.wait_for_event(&app.key, &after, Duration::from_secs(10)).await;
    app.wait_for_log(|l| l.contains("\"outcome\":\"erased\""), Duration::from_secs(10))
        .await;

    assert_eq!(app.get(&app.key, &format!("/v1/events/{stored}")).await.status(), 404);
    assert_eq!(app.get(&app.key, &format!("/v1/events/{queued}")).await.status(), 404);
    for e in [dead.id, late.id] {
        assert_eq!(app.get(&app.key, &format!("/v1/events/{e}")).await.status(), 404);
    }
    assert_eq!(
        app.get(&app.key, &format!("/v1/events/{other_subject}")).await.status(),
        200
    );
    assert_eq!(
        app.get(&app.other_key, &format!("/v1/events/{other_tenant}"))
            .await
            .status(),
        200
    );
    let (entries, _) = drain(&app, &app.key, 0).await;
    let tombstones: Vec<&Value> = entries.iter().filter(|e| e.get("deleted").is_some()).collect();
    assert_eq!(tombstones.len(), 1);
    assert_eq!(tombstones[0]["deleted"], stored.as_str());
    let events: BTreeSet<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(events, BTreeSet::from([other_subject.as_str(), after.as_str()]));
    let logs = app.logs();
    assert!(
        logs.iter().all(|l| !l.contains("user/1")),
        "the subject never reaches the log"
    );
}

#[tokio::test]
async fn erase_from_the_cli_prints_a_receipt() {
    let app = TestApp::spawn();
    let id = post_one(&app, &app.key, json!({"type": "a", "subject": "user/9", "data": {}})).await;
    app.wait_for_event(&app.key, &id, Duration::from_secs(10)).await;
    let out = common::sluice(
        &app.data_dir,
        &["erase", "--tenant", "acme", "--subject", "user/9", "--output", "json"],
    );
    let receipt: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(receipt["events_deleted"], 1, "{out}");
    assert_eq!(receipt["status"], "completed");
    assert!(receipt["id"].as_str().is_some_and(|id| id.starts_with("era_")));
    assert_eq!(app.get(&app.key, &format!("/v1/events/{id}")).await.status(), 404);
}

/// `kill -9` under load while a reader checkpoints: after the restart the reader has every
/// acknowledged event exactly once, in seq order.
#[tokio::test]
async fn i4_kill9_under_load_with_a_checkpointing_reader_loses_and_repeats_nothing() {
    let mut app = TestApp::spawn();
    let base = Arc::new(Mutex::new(app.base.clone()));
    let client = app.client.clone();
    let key = app.key.clone();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, key, base, acked, stop) =
                (client.clone(), key.clone(), base.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let url = format!("{}/v1/events", base.lock().unwrap());
                    let body = json!({"type": "load", "data": {"w": w, "n": n}}).to_string();
                    n += 1;
                    let r = client
                        .post(url)
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    if let Ok(r) = r
                        && r.status() == 202
                        && let Ok(v) = r.json::<Value>().await
                    {
                        acked.lock().unwrap().push(v["id"].as_str().unwrap().to_owned());
                    }
                }
            })
        })
        .collect();
    let seen = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let reader = {
        // A short timeout: a long-poll cut by the kill must not hold the reader for long.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let (key, base, seen) = (key.clone(), base.clone(), seen.clone());
        tokio::spawn(async move {
            let mut checkpoint = 0u64;
            loop {
                let url = format!("{}/v1/feed?after={checkpoint}&limit=100&wait=1", base.lock().unwrap());
                let Ok(r) = client.get(url).bearer_auth(&key).send().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(page) = r.json::<Value>().await else { continue };
                for e in page["entries"].as_array().into_iter().flatten() {
                    let seq = e["seq"].as_u64().unwrap();
                    assert!(seq > checkpoint, "seq {seq} at or below the checkpoint {checkpoint}");
                    checkpoint = seq;
                    seen.lock().unwrap().push((seq, e["id"].as_str().unwrap().to_owned()));
                }
                checkpoint = checkpoint.max(page["next_after"].as_u64().unwrap_or(checkpoint));
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked.len() > 20, "the load ran: {} acknowledged", acked.len());
    app.restart();
    *base.lock().unwrap() = app.base.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<String> = seen.lock().unwrap().iter().map(|(_, id)| id.clone()).collect();
        if acked.is_subset(&got) {
            break;
        }
        assert!(!reader.is_finished(), "the reader failed");
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged events read",
            acked.intersection(&got).count(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reader.abort();
    let seen = seen.lock().unwrap().clone();
    let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    let unique: BTreeSet<&String> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no event read twice");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "in seq order");
}
