//! Crash safety: `kill -9` the server during a load, restart it, and find every event that got a
//! 202 stored exactly once; nothing is stored that no request could have produced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use common::TestApp;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CONNECTIONS: usize = 16;
const PER_CONNECTION: usize = 400;

/// Fires requests until told to stop; returns (accepted ids, requests whose outcome is unknown).
async fn load(app_base: String, key: String, accepted: Arc<Mutex<Vec<String>>>, unknown: Arc<Mutex<usize>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for i in 0..PER_CONNECTION {
        let r = client
            .post(format!("{app_base}/v1/events"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(format!(r#"{{"type":"load","data":{{"i":{i}}}}}"#))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 202 => match r.json::<Value>().await {
                Ok(v) => accepted.lock().unwrap().push(v["id"].as_str().unwrap().to_owned()),
                Err(_) => *unknown.lock().unwrap() += 1,
            },
            Ok(r) => panic!("unexpected status {}", r.status()),
            Err(_) => {
                // The server died mid-request: this event may or may not be stored.
                *unknown.lock().unwrap() += 1;
                return;
            }
        }
    }
}

async fn crash_once(app: &mut TestApp, delay: Duration) -> (Vec<String>, usize) {
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let unknown = Arc::new(Mutex::new(0usize));
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(load(
                app.base.clone(),
                app.key.clone(),
                accepted.clone(),
                unknown.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(delay).await;
    app.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let unknown = *unknown.lock().unwrap();
    (accepted, unknown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_load_loses_no_accepted_event_and_duplicates_none() {
    let mut app = TestApp::spawn_with(&[("SLUICE_QUEUE__VISIBILITY_TIMEOUT_SECS", "2")]);
    let mut all_accepted: Vec<String> = Vec::new();
    let mut all_unknown = 0;
    // Five crashes at different points of the load, restarting on the same files each time.
    for delay_ms in [150u64, 400, 250, 700, 50] {
        let (accepted, unknown) = crash_once(&mut app, Duration::from_millis(delay_ms)).await;
        all_accepted.extend(accepted);
        all_unknown += unknown;
        app.restart();
    }
    assert!(
        !all_accepted.is_empty(),
        "the load should get well under way before each kill: {}",
        all_accepted.len()
    );
    let stored = app
        .wait_for_count(&app.key, all_accepted.len(), Duration::from_secs(120))
        .await;
    // Let redeliveries of anything in flight at the last kill settle.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _ = stored;
    let stored = app.list_all(&app.key).await;
    let stored_ids: Vec<String> = stored.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    let unique: HashSet<&String> = stored_ids.iter().collect();
    assert_eq!(unique.len(), stored_ids.len(), "an event was stored twice");
    let missing: Vec<&String> = all_accepted.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} accepted events were lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Nothing appears that no request produced: at most the requests whose answer the kill cut off.
    assert!(
        stored_ids.len() <= all_accepted.len() + all_unknown,
        "stored {} > accepted {} + unknown {}",
        stored_ids.len(),
        all_accepted.len(),
        all_unknown
    );
    eprintln!(
        "accepted {}, unknown outcome {}, stored {}",
        all_accepted.len(),
        all_unknown,
        stored_ids.len()
    );
}
