//! Secrets from SSM Parameter Store (feature `ssm`): the envelope signing key ring and the cursor
//! key of the Lambda functions.
//!
//! Each secret is one `SecureString` parameter, read once at init with `GetParameter`
//! `WithDecryption` (IAM: `ssm:GetParameter` on the parameter, plus `kms:Decrypt` when the parameter
//! is encrypted with a customer managed key rather than `aws/ssm`). Nothing here logs or echoes a
//! parameter's value: errors name the parameter and the AWS error code only (I-1).
//!
//! # Value format: a key ring
//! One or more entries separated by commas or whitespace, each `kid:secret` where `kid` is 1 to 64
//! characters of `[A-Za-z0-9._-]` and `secret` is base64 (standard or URL-safe alphabet, padding
//! optional) of at least 32 random bytes:
//!
//! ```text
//! k2:6q1v…Q=,k1:Zm9v…A=
//! ```
//!
//! The first entry signs; every entry verifies. To rotate the envelope signing key, prepend a new
//! entry and redeploy (ingest signs with it, process still opens messages signed with the old
//! one); drop the old entry once the queue and the DLQ's retention have passed. The cursor key
//! uses the first entry only: rotating it invalidates open cursors (a client restarts paging).
//!
//! Generate an entry with `echo "k1:$(head -c 32 /dev/urandom | base64)"`.

use crate::error::Failure;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use sluice_core::envelope::SigningKey;
use std::fmt;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a secret could not be loaded. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The parameter does not exist (or the role may not read it).
    #[error("SSM parameter {0} not found")]
    NotFound(String),
    /// SSM could not be reached or refused the call.
    #[error("SSM parameter {name}: {reason}")]
    Unavailable {
        /// The parameter.
        name: String,
        /// The classified failure (operation, kind, AWS error code).
        reason: String,
    },
    /// The value is not a key ring as described in the module docs.
    #[error("SSM parameter {name} is not a valid key ring: {reason}")]
    Malformed {
        /// The parameter.
        name: String,
        /// What is wrong, without quoting the value.
        reason: String,
    },
}

/// One named secret. Its `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key id (visible in message attributes).
    pub kid: String,
    /// The secret bytes.
    pub secret: Vec<u8>,
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyEntry({}, <redacted>)", self.kid)
    }
}

fn valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Parses a key ring value (see the module docs); `name` only labels errors.
pub fn parse_key_ring(name: &str, value: &str) -> Result<Vec<KeyEntry>, SecretError> {
    let malformed = |reason: String| SecretError::Malformed {
        name: name.to_owned(),
        reason,
    };
    let mut entries: Vec<KeyEntry> = Vec::new();
    for (i, raw) in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let (kid, b64) = raw
            .split_once(':')
            .ok_or_else(|| malformed(format!("entry {} is not kid:base64", i + 1)))?;
        if !valid_kid(kid) {
            return Err(malformed(format!(
                "entry {} has an invalid key id (1 to 64 of A-Z a-z 0-9 . _ -)",
                i + 1
            )));
        }
        let trimmed = b64.trim_end_matches('=');
        let secret = STANDARD_NO_PAD
            .decode(trimmed)
            .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
            .map_err(|_| malformed(format!("entry {kid}: the secret is not base64")))?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(malformed(format!(
                "entry {kid}: the secret has fewer than {MIN_SECRET_BYTES} bytes"
            )));
        }
        if entries.iter().any(|e| e.kid == kid) {
            return Err(malformed(format!("key id {kid} appears twice")));
        }
        entries.push(KeyEntry {
            kid: kid.to_owned(),
            secret,
        });
    }
    if entries.is_empty() {
        return Err(malformed("no entries".into()));
    }
    Ok(entries)
}

/// Reads `SecureString` parameters. Cheap to clone: the client is shared.
#[derive(Debug, Clone)]
pub struct SecretParameters {
    client: aws_sdk_ssm::Client,
}

impl SecretParameters {
    /// Reads through `client` (build it once, at init).
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }

    /// The decrypted value of parameter `name` (`GetParameter` `WithDecryption`).
    async fn value(&self, name: &str) -> Result<String, SecretError> {
        let out = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) {
                    SecretError::NotFound(name.to_owned())
                } else {
                    SecretError::Unavailable {
                        name: name.to_owned(),
                        reason: Failure::classify("SSM", "GetParameter", &e).to_string(),
                    }
                }
            })?;
        out.parameter()
            .and_then(|p| p.value())
            .map(str::to_owned)
            .ok_or_else(|| SecretError::Malformed {
                name: name.to_owned(),
                reason: "the parameter has no value".into(),
            })
    }

    /// The key ring in parameter `name`.
    pub async fn key_ring(&self, name: &str) -> Result<Vec<KeyEntry>, SecretError> {
        parse_key_ring(name, &self.value(name).await?)
    }

    /// The envelope signing keys in parameter `name`, the signing key first.
    pub async fn signing_keys(&self, name: &str) -> Result<Vec<SigningKey>, SecretError> {
        self.key_ring(name)
            .await?
            .into_iter()
            .map(|e| {
                SigningKey::new(&e.kid, e.secret).map_err(|err| SecretError::Malformed {
                    name: name.to_owned(),
                    reason: err.to_string(),
                })
            })
            .collect()
    }

    /// The cursor key: the first entry of the key ring in parameter `name`.
    pub async fn cursor_key(&self, name: &str) -> Result<Vec<u8>, SecretError> {
        let mut ring = self.key_ring(name).await?;
        Ok(ring.swap_remove(0).secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn parses_a_ring_in_order_with_either_alphabet_and_separator() {
        let a = [0xfbu8; 32];
        let b = [7u8; 40];
        let url = URL_SAFE_NO_PAD.encode(a);
        let ring = parse_key_ring("p", &format!("k2:{url},\n k1:{}", b64(&b))).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!((ring[0].kid.as_str(), ring[0].secret.as_slice()), ("k2", &a[..]));
        assert_eq!((ring[1].kid.as_str(), ring[1].secret.as_slice()), ("k1", &b[..]));
        assert!(!format!("{:?}", ring[0]).contains(&url));
    }

    #[test]
    fn refuses_weak_malformed_duplicate_and_empty_rings_without_echoing_them() {
        let secret = b64(&[1u8; 32]);
        let cases = [
            String::new(),
            " , ".into(),
            secret.clone(),
            format!("k1:{}", b64(&[1u8; 31])),
            format!("k1:{secret},k1:{secret}"),
            format!("bad kid!:{secret}"),
            "k1:not*base64".into(),
        ];
        for value in cases {
            let e = parse_key_ring("/sluice/signing", &value).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, SecretError::Malformed { .. }), "{value:?}");
            assert!(text.starts_with("SSM parameter /sluice/signing"), "{text}");
            assert!(!text.contains(&secret), "an error must not echo the secret");
        }
    }
}
