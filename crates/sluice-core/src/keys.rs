//! API keys (S-1): generation, the hash we store, and constant-time verification.
//!
//! A key reads `key_<ulid>.<secret>`. The id half finds the record; the secret half is compared by
//! SHA-256 in constant time, so a wrong key costs the same whatever it shares with a real one. The
//! secret is 256 random bits, so a plain (unsalted) SHA-256 is enough: there is nothing to guess.

use crate::cache::ReadThrough;
use crate::clock::Clock;
use crate::ids::KeyId;
use crate::ports::{KeyRecord, KeyStore, KeyStoreError};
use crate::tenant::Tenant;
use base64::Engine as _;
use futures::FutureExt as _;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// A presented or freshly generated API key. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The full key, to show once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

fn hash_secret(secret: &str) -> String {
    crate::text::hex_digest(&Sha256::digest(secret.as_bytes()))
}

/// A new secret of 256 random bits, base64url: the secret half of API keys and admin tokens.
pub fn new_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The hash stored for `secret` (SHA-256, hex): enough for 256 random bits.
pub fn secret_hash(secret: &str) -> String {
    hash_secret(secret)
}

/// Whether `secret` hashes to `hash`, compared in constant time.
pub fn secret_matches(secret: &str, hash: &str) -> bool {
    hash_secret(secret).as_bytes().ct_eq(hash.as_bytes()).into()
}

/// Makes a new key for `tenant`; store the record, show the key once.
pub fn generate(
    tenant: Tenant,
    label: &str,
    now: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
) -> (ApiKey, KeyRecord) {
    let id = KeyId::generate();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let record = KeyRecord {
        id: id.clone(),
        tenant,
        secret_hash: hash_secret(&secret),
        label: label.to_owned(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    (ApiKey(format!("{id}.{secret}")), record)
}

/// The one credential a request presents: `Authorization: Bearer <c>`, the one contract on
/// `sluice serve` and behind API Gateway alike (whose authorizer cache is keyed by that header;
/// `x-api-key` is never read, on AWS it is API Gateway's own header). `authorization` holds every
/// value the header arrived with (`None`: not visible ASCII). `None` when the header is absent or
/// repeated, the scheme is not Bearer, or the credential is empty or longer than `max_len`:
/// ambiguity is refused, never resolved by a guess.
pub fn presented_credential<'a>(authorization: &[Option<&'a str>], max_len: usize) -> Option<&'a str> {
    let [value] = authorization else { return None };
    let (scheme, token) = (*value)?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let credential = token.trim();
    (!credential.is_empty() && credential.len() <= max_len).then_some(credential)
}

/// Who a request acts for, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant.
    pub tenant: Tenant,
    /// The key (or token subject) that proved it; the throttling bucket.
    pub key_id: String,
}

/// Why authentication failed. Deliberately coarse: the client learns only "no".
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, unknown, wrong, expired or revoked credentials.
    #[error("invalid credentials")]
    Invalid,
    /// The key store could not be read.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

/// Verifies presented API keys against a [`KeyStore`], caching records briefly as API Gateway
/// caches authorizer results: a revocation takes effect within `cache_ttl`. Concurrent misses on
/// one key share a single store read (see [`crate::cache`]).
pub struct Authenticator {
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    cache_ttl: Duration,
    cache: ReadThrough<KeyId, Record, AuthError>,
}

/// A key's record as read from the store; `None` for an unknown id, which is cached too.
type Record = Option<Arc<KeyRecord>>;

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

/// What an unknown key's presented secret is compared with, so both paths do the same work.
const NO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Authenticator {
    /// An authenticator over `store`.
    pub fn new(store: Arc<dyn KeyStore>, clock: Arc<dyn Clock>, cache_ttl: Duration) -> Self {
        Self {
            store,
            clock,
            cache_ttl,
            cache: ReadThrough::new(cache_ttl),
        }
    }

    async fn record(&self, id: &KeyId) -> Result<Record, AuthError> {
        let store = self.store.clone();
        let key = id.clone();
        self.cache
            .get(id, move || {
                async move {
                    match store.get(&key).await {
                        Ok(rec) => Ok(rec.map(Arc::new)),
                        Err(KeyStoreError::NotFound) => Err(AuthError::Invalid),
                        Err(KeyStoreError::Unavailable(m)) => Err(AuthError::Unavailable(m)),
                    }
                }
                .boxed()
            })
            .await
    }

    /// Checks a presented key.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let (id, secret) = presented.split_once('.').ok_or(AuthError::Invalid)?;
        let id = KeyId::parse(id).map_err(|_| AuthError::Invalid)?;
        let record = self.record(&id).await?;
        let presented_hash = hash_secret(secret);
        let stored = record.as_ref().map_or(NO_HASH, |r| r.secret_hash.as_str());
        let equal: bool = presented_hash.as_bytes().ct_eq(stored.as_bytes()).into();
        let record = match record {
            Some(r) if equal => r,
            _ => return Err(AuthError::Invalid),
        };
        let now = self.clock.now();
        if record.revoked_at.is_some_and(|t| t <= now) || record.expires_at.is_some_and(|t| t <= now) {
            return Err(AuthError::Invalid);
        }
        Ok(Principal {
            tenant: record.tenant.clone(),
            key_id: record.id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use async_trait::async_trait;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MemKeys(Mutex<Vec<KeyRecord>>);

    #[async_trait]
    impl KeyStore for MemKeys {
        async fn insert(&self, r: &KeyRecord) -> Result<(), KeyStoreError> {
            self.0.lock().unwrap().push(r.clone());
            Ok(())
        }
        async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyStoreError> {
            Ok(self.0.lock().unwrap().iter().find(|r| &r.id == id).cloned())
        }
        async fn list(&self) -> Result<Vec<KeyRecord>, KeyStoreError> {
            Ok(self.0.lock().unwrap().clone())
        }
        async fn revoke(&self, id: &KeyId, at: OffsetDateTime) -> Result<(), KeyStoreError> {
            for r in self.0.lock().unwrap().iter_mut().filter(|r| &r.id == id) {
                r.revoked_at.get_or_insert(at);
            }
            Ok(())
        }
        async fn set_expiry(&self, id: &KeyId, e: Option<OffsetDateTime>) -> Result<(), KeyStoreError> {
            for r in self.0.lock().unwrap().iter_mut().filter(|r| &r.id == id) {
                r.expires_at = e;
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn s1_accepts_the_real_key_and_nothing_close_to_it() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let store = Arc::new(MemKeys::default());
        let (key, rec) = generate(Tenant::parse("acme").unwrap(), "ci", clock.now(), None);
        store.insert(&rec).await.unwrap();
        let auth = Authenticator::new(store.clone(), Arc::new(clock.clone()), Duration::ZERO);
        assert_eq!(auth.authenticate(key.expose()).await.unwrap().tenant.as_str(), "acme");
        let mut wrong = key.expose().to_owned();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        for bad in [wrong.as_str(), "", "key_x.y", rec.id.as_str(), &format!("{}.", rec.id)] {
            assert!(
                matches!(auth.authenticate(bad).await, Err(AuthError::Invalid)),
                "{bad:?}"
            );
        }
        assert!(
            !format!("{key:?}").contains(&key.expose()[10..]),
            "Debug must not leak the secret"
        );
    }

    #[tokio::test]
    async fn s1_refuses_expired_and_revoked_keys() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let store = Arc::new(MemKeys::default());
        let (k1, r1) = generate(
            Tenant::parse("acme").unwrap(),
            "",
            clock.now(),
            Some(clock.now() + Duration::from_secs(60)),
        );
        let (k2, r2) = generate(Tenant::parse("acme").unwrap(), "", clock.now(), None);
        store.insert(&r1).await.unwrap();
        store.insert(&r2).await.unwrap();
        let auth = Authenticator::new(store.clone(), Arc::new(clock.clone()), Duration::ZERO);
        assert!(auth.authenticate(k1.expose()).await.is_ok());
        clock.advance(Duration::from_secs(61));
        assert!(auth.authenticate(k1.expose()).await.is_err());
        store.revoke(&r2.id, clock.now()).await.unwrap();
        assert!(auth.authenticate(k2.expose()).await.is_err());
    }

    /// A key store that counts its reads and takes a while over each, as a disk or network does.
    struct SlowKeys {
        inner: MemKeys,
        reads: std::sync::atomic::AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl KeyStore for SlowKeys {
        async fn insert(&self, r: &KeyRecord) -> Result<(), KeyStoreError> {
            self.inner.insert(r).await
        }
        async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyStoreError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(KeyStoreError::Unavailable("disk on fire".into()));
            }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn d2_concurrent_misses_on_one_key_share_one_store_read() {
        use std::sync::atomic::Ordering;
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let store = Arc::new(SlowKeys {
            inner: MemKeys::default(),
            reads: 0.into(),
            down: false.into(),
        });
        let (key, rec) = generate(Tenant::parse("acme").unwrap(), "", clock.now(), None);
        store.insert(&rec).await.unwrap();
        let (other, other_rec) = generate(Tenant::parse("beta").unwrap(), "", clock.now(), None);
        store.insert(&other_rec).await.unwrap();
        let ttl = Duration::from_millis(300);
        let auth = Arc::new(Authenticator::new(store.clone(), Arc::new(clock), ttl));
        let burst = |presented: Vec<String>| {
            let tasks: Vec<_> = presented
                .into_iter()
                .map(|k| {
                    let auth = auth.clone();
                    tokio::spawn(async move { auth.authenticate(&k).await.map(|p| p.tenant.as_str().to_owned()) })
                })
                .collect();
            async move {
                let mut tenants = Vec::new();
                for t in tasks {
                    tenants.push(t.await.unwrap());
                }
                tenants
            }
        };
        let mut keys = vec![key.expose().to_owned(); 64];
        keys.push(other.expose().to_owned());
        let tenants = burst(keys.clone()).await;
        assert_eq!(tenants.iter().filter(|t| matches!(t, Ok(n) if n == "acme")).count(), 64);
        assert_eq!(tenants.last().unwrap().as_deref().unwrap(), "beta");
        assert_eq!(
            store.reads.load(Ordering::SeqCst),
            2,
            "one read per key, not per request"
        );

        // A wrong secret for a known id rides the same read and is still refused.
        let wrong = format!("{}.{}", rec.id, "A".repeat(43));
        assert!(matches!(auth.authenticate(&wrong).await, Err(AuthError::Invalid)));
        assert_eq!(store.reads.load(Ordering::SeqCst), 2, "served from the cache");

        // When the entry expires, the next burst reads once more.
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        burst(keys[..64].to_vec()).await;
        assert_eq!(store.reads.load(Ordering::SeqCst), 3);

        // A failed read is shared by the requests that waited for it, and not remembered.
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        store.down.store(true, Ordering::SeqCst);
        let failed = burst(keys[..16].to_vec()).await;
        assert!(failed.iter().all(|t| t.is_err()));
        assert_eq!(store.reads.load(Ordering::SeqCst), 4);
        store.down.store(false, Ordering::SeqCst);
        assert!(
            auth.authenticate(key.expose()).await.is_ok(),
            "the next request reads again"
        );
        assert_eq!(store.reads.load(Ordering::SeqCst), 5);
        assert_eq!(auth.cache.loads_in_flight(), 0, "no lookup is left behind");
    }
}
