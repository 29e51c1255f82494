//! Source store cases: insert, get, oldest-first listing, secret rotation and deletion.

use crate::{SourceFactory, fresh_tenant, now_seconds};
use sluice_core::EventType;
use sluice_core::SourceId;
use sluice_core::ports::{SourceRecord, SourceSecret, SourceStoreError};
use sluice_core::webhook::{HmacScheme, SignatureEncoding, SourceKind};
use time::{Duration, OffsetDateTime};

fn source(kind: SourceKind, created_at: OffsetDateTime) -> SourceRecord {
    SourceRecord {
        id: SourceId::generate(),
        tenant: fresh_tenant(),
        kind,
        secrets: vec![SourceSecret {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            expires_at: None,
        }],
        created_at,
        deleted_at: None,
    }
}

/// Records read back whole, the generic scheme's settings and every secret included; the list
/// is oldest first; an id inserted twice is refused, never overwritten.
pub async fn sources_insert_get_and_list_oldest_first<F: SourceFactory>(f: &F) {
    let store = f.source_store().await;
    let t = now_seconds();
    let generic = SourceKind::Hmac(HmacScheme {
        header: "x-signature".into(),
        encoding: SignatureEncoding::Base64,
        prefix: "sha256=".into(),
        timestamp_header: Some("x-timestamp".into()),
        tolerance_secs: 120,
        delivery_id_header: Some("x-delivery".into()),
        event_type: EventType::parse("partner.event").unwrap(),
    });
    let newest = source(SourceKind::Stripe, t);
    let mut oldest = source(generic, t - Duration::days(2));
    oldest.secrets.push(SourceSecret {
        secret: "an old one".into(),
        expires_at: Some(t + Duration::hours(24)),
    });
    let middle = source(SourceKind::GitHub, t - Duration::hours(1));
    for s in [&newest, &oldest, &middle] {
        store.insert(s).await.unwrap();
    }
    for s in [&newest, &oldest, &middle] {
        assert_eq!(store.get(&s.id).await.unwrap().as_ref(), Some(s));
    }
    assert_eq!(store.get(&SourceId::generate()).await.unwrap(), None);
    assert!(
        store.insert(&middle).await.is_err(),
        "an existing id is never overwritten"
    );
    let ours = [&oldest.id, &middle.id, &newest.id];
    let listed: Vec<SourceRecord> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| ours.contains(&&s.id))
        .collect();
    assert_eq!(listed, vec![oldest, middle, newest]);
}

/// Rotation replaces the secrets as given; an unknown id is `NotFound`.
pub async fn sources_set_secrets_replaces_them<F: SourceFactory>(f: &F) {
    let store = f.source_store().await;
    let t = now_seconds();
    let s = source(SourceKind::Shopify, t);
    store.insert(&s).await.unwrap();
    let rotated = vec![
        SourceSecret {
            secret: "new".into(),
            expires_at: None,
        },
        SourceSecret {
            secret: s.secrets[0].secret.clone(),
            expires_at: Some(t + Duration::hours(24)),
        },
    ];
    store.set_secrets(&s.id, &rotated).await.unwrap();
    assert_eq!(store.get(&s.id).await.unwrap().unwrap().secrets, rotated);
    assert!(matches!(
        store.set_secrets(&SourceId::generate(), &rotated).await,
        Err(SourceStoreError::NotFound)
    ));
}

/// Deleting twice keeps the first time; the record stays readable; an unknown id is `NotFound`.
pub async fn sources_delete_keeps_the_first_time<F: SourceFactory>(f: &F) {
    let store = f.source_store().await;
    let t = now_seconds();
    let s = source(SourceKind::Slack, t - Duration::days(1));
    store.insert(&s).await.unwrap();
    store.delete(&s.id, t).await.unwrap();
    store.delete(&s.id, t + Duration::hours(1)).await.unwrap();
    let stored = store.get(&s.id).await.unwrap().unwrap();
    assert_eq!(stored.deleted_at, Some(t));
    assert!(stored.live_secrets(t).is_empty());
    assert!(matches!(
        store.delete(&SourceId::generate(), t).await,
        Err(SourceStoreError::NotFound)
    ));
}
