//! Failed authentication attempts are limited per client address before the key store is read (S-1, D-1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use sluice_core::clock::SystemClock;
use sluice_core::ids::KeyId;
use sluice_core::keys::Authenticator;
use sluice_core::ports::{KeyRecord, KeyStore, KeyStoreError};
use sluice_http::{Auth, ClientIp, HttpConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// The harness's key store, counting reads.
struct Counting {
    inner: Arc<MemKeys>,
    gets: AtomicUsize,
}

#[async_trait]
impl KeyStore for Counting {
    async fn insert(&self, r: &KeyRecord) -> Result<(), KeyStoreError> {
        self.inner.insert(r).await
    }
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyStoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
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

fn from(addr: &str, authorization: &str) -> Request<Body> {
    let mut r = req("GET", "/v1/events")
        .header("authorization", authorization)
        .body(Body::empty())
        .unwrap();
    r.extensions_mut().insert(ClientIp(addr.to_owned()));
    r
}

fn random_key() -> String {
    format!("Bearer {}.guess{}", KeyId::generate(), rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

#[tokio::test]
async fn d1_flood_of_bad_keys_is_refused_before_the_key_store() {
    let h = Harness::new();
    let store = Arc::new(Counting {
        inner: h.keys.clone(),
        gets: AtomicUsize::new(0),
    });
    // No cache: every attempt that gets through reads the store.
    let keys = Arc::new(Authenticator::new(store.clone(), Arc::new(SystemClock), Duration::ZERO));
    let config = HttpConfig {
        auth_failures_per_minute: 1,
        auth_failure_burst: 3,
        ..HttpConfig::default()
    };
    let app = sluice_http::app(
        h.ingest.clone(),
        h.query.clone(),
        h.feed.clone(),
        h.deliveries.clone(),
        Auth::api_keys(keys),
        &config,
    );
    let attacker = "203.0.113.7";
    let mut statuses = Vec::new();
    for _ in 0..50 {
        statuses.push(send(&app, from(attacker, &random_key())).await.status);
    }
    // The burst of 3, then the failure that finds the bucket empty and blocks the address.
    assert_eq!(&statuses[..4], [StatusCode::UNAUTHORIZED; 4], "{statuses:?}");
    assert!(
        statuses[4..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(
        store.gets.load(Ordering::SeqCst),
        4,
        "only the bucket's worth reached the key store"
    );

    let r = send(&app, from(attacker, &random_key())).await;
    assert_eq!(r.code(), "throttled");
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((50..=60).contains(&secs), "{secs}");
    // While blocked, even a valid key from that address waits (it could be the attacker's own).
    let acme = bearer(&h.acme);
    assert_eq!(
        send(&app, from(attacker, &acme)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Everyone else is served, and a good client never spends the failure bucket.
    for _ in 0..20 {
        assert_eq!(send(&app, from("198.51.100.1", &acme)).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn d1_failure_limit_can_be_turned_off_and_does_not_apply_upstream() {
    let h = Harness::new();
    let config = HttpConfig {
        auth_failures_per_minute: 0,
        ..HttpConfig::default()
    };
    let app = h.app_with(&config);
    for _ in 0..100 {
        assert_eq!(
            send(&app, from("203.0.113.8", &random_key())).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let config = HttpConfig {
        auth_failures_per_minute: 1,
        auth_failure_burst: 1,
        ..HttpConfig::default()
    };
    let upstream = sluice_http::app(
        h.ingest.clone(),
        h.query.clone(),
        h.feed.clone(),
        h.deliveries.clone(),
        Auth::Upstream,
        &config,
    );
    for _ in 0..5 {
        assert_eq!(
            send(&upstream, from("203.0.113.9", "Bearer x")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn s1_a_jwt_without_an_issuer_configured_is_just_a_wrong_key() {
    let h = Harness::new();
    let app = h.app();
    // A well-formed (unsigned) JWT: with no OIDC issuer it takes the API key path and the same 401.
    let jwt = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
    let a = send(&app, from("192.0.2.1", jwt)).await;
    let b = send(&app, from("192.0.2.1", &random_key())).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.problem_without_request_id(), b.problem_without_request_id());
    // A bearer token too long for an API key is refused unread, the same way.
    let long = format!("Bearer {}", "k".repeat(2000));
    let c = send(&app, from("192.0.2.1", &long)).await;
    assert_eq!(c.problem_without_request_id(), b.problem_without_request_id());
}
