//! Key store cases: insert, get, oldest-first listing, revocation and expiry updates.

use crate::{Factory, fresh_tenant, now_seconds};
use sluice_core::KeyId;
use sluice_core::ports::{KeyRecord, KeyStoreError};
use time::{Duration, OffsetDateTime};

fn key(label: &str, created_at: OffsetDateTime) -> KeyRecord {
    KeyRecord {
        id: KeyId::generate(),
        tenant: fresh_tenant(),
        secret_hash: "5e".repeat(32),
        label: label.to_owned(),
        created_at,
        expires_at: None,
        revoked_at: None,
    }
}

/// Inserted records read back whole; the list is ordered by creation time, oldest first.
pub async fn keys_insert_get_and_list_oldest_first<F: Factory>(f: &F) {
    let store = f.key_store().await;
    let t = now_seconds();
    let middle = key("middle", t - Duration::hours(1));
    let mut newest = key("newest", t);
    newest.expires_at = Some(t + Duration::days(30));
    let oldest = key("oldest", t - Duration::days(2));
    for k in [&middle, &newest, &oldest] {
        store.insert(k).await.unwrap();
    }
    for k in [&middle, &newest, &oldest] {
        assert_eq!(store.get(&k.id).await.unwrap().as_ref(), Some(k));
    }
    assert_eq!(store.get(&KeyId::generate()).await.unwrap(), None);
    let ours = [&oldest.id, &middle.id, &newest.id];
    let listed: Vec<KeyRecord> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| ours.contains(&&k.id))
        .collect();
    assert_eq!(listed, vec![oldest, middle, newest]);
}

/// Revoking twice keeps the first revocation time; an unknown id is `NotFound`.
pub async fn keys_revoke_keeps_the_first_time<F: Factory>(f: &F) {
    let store = f.key_store().await;
    let t = now_seconds();
    let k = key("k", t - Duration::days(1));
    store.insert(&k).await.unwrap();
    store.revoke(&k.id, t).await.unwrap();
    store.revoke(&k.id, t + Duration::hours(1)).await.unwrap();
    assert_eq!(store.get(&k.id).await.unwrap().unwrap().revoked_at, Some(t));
    assert!(matches!(
        store.revoke(&KeyId::generate(), t).await,
        Err(KeyStoreError::NotFound)
    ));
}

/// Expiry can be set, moved and cleared; an unknown id is `NotFound`.
pub async fn keys_set_expiry_sets_and_clears<F: Factory>(f: &F) {
    let store = f.key_store().await;
    let t = now_seconds();
    let k = key("k", t);
    store.insert(&k).await.unwrap();
    store.set_expiry(&k.id, Some(t + Duration::days(1))).await.unwrap();
    assert_eq!(
        store.get(&k.id).await.unwrap().unwrap().expires_at,
        Some(t + Duration::days(1))
    );
    store.set_expiry(&k.id, Some(t + Duration::hours(1))).await.unwrap();
    assert_eq!(
        store.get(&k.id).await.unwrap().unwrap().expires_at,
        Some(t + Duration::hours(1))
    );
    store.set_expiry(&k.id, None).await.unwrap();
    let stored = store.get(&k.id).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, None);
    assert_eq!(stored.revoked_at, None);
    assert!(matches!(
        store.set_expiry(&KeyId::generate(), None).await,
        Err(KeyStoreError::NotFound)
    ));
}
