//! API keys (S-1): generation, the hash we store, and constant-time verification.
//!
//! A key reads `key_<ulid>.<secret>`. The id half finds the record; the secret half is compared by
//! SHA-256 in constant time, so a wrong key costs the same whatever it shares with a real one. The
//! secret is 256 random bits, so a plain (unsalted) SHA-256 is enough: there is nothing to guess.

use crate::clock::Clock;
use crate::ids::KeyId;
use crate::ports::{KeyRecord, KeyStore, KeyStoreError};
use crate::tenant::Tenant;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
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
    crate::envelope::hex_digest(&Sha256::digest(secret.as_bytes()))
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

/// The one credential a request presents: `Authorization: Bearer <c>` when that header is sent,
/// else `x-api-key: <c>`. Each slice holds every value its header arrived with (`None`: not
/// visible ASCII). `None` when the header is absent or repeated, the scheme is not Bearer, or the
/// credential is empty or longer than `max_len`: ambiguity is refused, never resolved by a guess.
pub fn presented_credential<'a>(
    authorization: &[Option<&'a str>],
    api_key: &[Option<&'a str>],
    max_len: usize,
) -> Option<&'a str> {
    let (values, bearer) = if authorization.is_empty() {
        (api_key, false)
    } else {
        (authorization, true)
    };
    let [value] = values else { return None };
    let value = (*value)?.trim();
    let credential = if bearer {
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        token.trim()
    } else {
        value
    };
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
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, unknown, wrong, expired or revoked credentials.
    #[error("invalid credentials")]
    Invalid,
    /// The key store could not be read.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

/// Verifies presented API keys against a [`KeyStore`], caching records briefly as API Gateway
/// caches authorizer results: a revocation takes effect within `cache_ttl`.
pub struct Authenticator {
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    cache_ttl: Duration,
    cache: RwLock<HashMap<KeyId, (Option<KeyRecord>, Instant)>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

const MAX_CACHE: usize = 10_000;

impl Authenticator {
    /// An authenticator over `store`.
    pub fn new(store: Arc<dyn KeyStore>, clock: Arc<dyn Clock>, cache_ttl: Duration) -> Self {
        Self {
            store,
            clock,
            cache_ttl,
            cache: RwLock::new(HashMap::new()),
        }
    }

    async fn record(&self, id: &KeyId) -> Result<Option<KeyRecord>, AuthError> {
        if let Ok(cache) = self.cache.read()
            && let Some((rec, at)) = cache.get(id)
            && at.elapsed() < self.cache_ttl
        {
            return Ok(rec.clone());
        }
        let rec = self.store.get(id).await.map_err(|e| match e {
            KeyStoreError::NotFound => AuthError::Invalid,
            KeyStoreError::Unavailable(m) => AuthError::Unavailable(m),
        })?;
        if !self.cache_ttl.is_zero()
            && let Ok(mut cache) = self.cache.write()
        {
            if cache.len() >= MAX_CACHE {
                // Unknown ids are cached too, so a flood of random ids must not grow memory without bound.
                cache.clear();
            }
            cache.insert(id.clone(), (rec.clone(), Instant::now()));
        }
        Ok(rec)
    }

    /// Checks a presented key.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let (id, secret) = presented.split_once('.').ok_or(AuthError::Invalid)?;
        let id = KeyId::parse(id).map_err(|_| AuthError::Invalid)?;
        let record = self.record(&id).await?;
        let presented_hash = hash_secret(secret);
        // Compare against a dummy when the id is unknown so both paths do the same work.
        let stored = record.as_ref().map_or("0".repeat(64), |r| r.secret_hash.clone());
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
            tenant: record.tenant,
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
}
