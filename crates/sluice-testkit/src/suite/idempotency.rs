//! Idempotency cases: conditional claim per (tenant, key), expiry by the caller's clock, completion.

use crate::{Factory, fresh_tenant, now_seconds};
use sluice_core::ports::{Claim, IdempotencyRecord};
use sluice_core::{EventId, IdempotencyKey, Tenant};
use time::{Duration, OffsetDateTime};

fn record(tenant: &Tenant, key: &str, fingerprint: &str, expires_at: OffsetDateTime) -> IdempotencyRecord {
    let id = EventId::new_at(OffsetDateTime::now_utc());
    IdempotencyRecord {
        tenant: tenant.clone(),
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: fingerprint.repeat(32),
        ids: vec![id, id.successor().unwrap()],
        single: false,
        completed: false,
        expires_at,
    }
}

/// The first claim stores the record; a second claim of the same key gets the first record back
/// unchanged, whatever it carries.
pub async fn idempotency_first_claim_wins<F: Factory>(f: &F) {
    let store = f.idempotency_store().await;
    let tenant = fresh_tenant();
    let now = now_seconds();
    let first = record(&tenant, "key-1", "ab", now + Duration::days(1));
    assert_eq!(store.claim(&first, now).await.unwrap(), Claim::Claimed);
    let mut second = record(&tenant, "key-1", "cd", now + Duration::days(2));
    second.single = true;
    assert_eq!(store.claim(&second, now).await.unwrap(), Claim::Existing(first));
}

/// A record whose `expires_at` is at or before `now` no longer counts and is replaced by the
/// next claim (judged by the caller's clock, not the backend's).
pub async fn idempotency_expired_record_is_replaced<F: Factory>(f: &F) {
    let store = f.idempotency_store().await;
    let tenant = fresh_tenant();
    let now = now_seconds();
    let first = record(&tenant, "key-1", "ab", now + Duration::seconds(10));
    assert_eq!(store.claim(&first, now).await.unwrap(), Claim::Claimed);
    let still = now + Duration::seconds(9);
    assert!(matches!(
        store
            .claim(&record(&tenant, "key-1", "cd", still), still)
            .await
            .unwrap(),
        Claim::Existing(_)
    ));
    let at_expiry = now + Duration::seconds(10);
    let second = record(&tenant, "key-1", "ef", at_expiry + Duration::days(1));
    assert_eq!(store.claim(&second, at_expiry).await.unwrap(), Claim::Claimed);
    let later = at_expiry + Duration::seconds(1);
    assert_eq!(
        store
            .claim(&record(&tenant, "key-1", "01", later), later)
            .await
            .unwrap(),
        Claim::Existing(second)
    );
}

/// `complete` marks the record, and later claims see it completed.
pub async fn idempotency_complete_marks_the_record<F: Factory>(f: &F) {
    let store = f.idempotency_store().await;
    let tenant = fresh_tenant();
    let now = now_seconds();
    let r = record(&tenant, "key-1", "ab", now + Duration::days(1));
    store.claim(&r, now).await.unwrap();
    store.complete(&tenant, &r.key).await.unwrap();
    let Claim::Existing(found) = store.claim(&r, now).await.unwrap() else {
        panic!("the record disappeared");
    };
    assert!(found.completed);
    assert_eq!(found, IdempotencyRecord { completed: true, ..r });
}

/// The same key under two tenants is two independent records.
pub async fn idempotency_keys_are_per_tenant<F: Factory>(f: &F) {
    let store = f.idempotency_store().await;
    let (a, b) = (fresh_tenant(), fresh_tenant());
    let now = now_seconds();
    assert_eq!(
        store
            .claim(&record(&a, "shared", "ab", now + Duration::days(1)), now)
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        store
            .claim(&record(&b, "shared", "cd", now + Duration::days(1)), now)
            .await
            .unwrap(),
        Claim::Claimed
    );
}

/// Forgetting a record removes it (the next claim of its key is new) and says whether there was
/// one; another tenant's record of the same key stays.
pub async fn idempotency_forget_removes_the_record<F: Factory>(f: &F) {
    let store = f.idempotency_store().await;
    let tenant = fresh_tenant();
    let other = fresh_tenant();
    let now = now_seconds();
    let first = record(&tenant, "key-1", "ab", now + Duration::days(1));
    let theirs = record(&other, "key-1", "ab", now + Duration::days(1));
    assert_eq!(store.claim(&first, now).await.unwrap(), Claim::Claimed);
    assert_eq!(store.claim(&theirs, now).await.unwrap(), Claim::Claimed);
    assert!(store.forget(&tenant, &first.key).await.unwrap());
    assert!(!store.forget(&tenant, &first.key).await.unwrap(), "gone already");
    assert_eq!(store.claim(&first, now).await.unwrap(), Claim::Claimed, "claimed anew");
    assert_eq!(
        store.claim(&theirs, now).await.unwrap(),
        Claim::Existing(theirs.clone())
    );
}
