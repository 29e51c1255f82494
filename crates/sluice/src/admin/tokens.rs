//! Admin tokens: the operators' credential for the console and its API (S-1 for operators).
//!
//! A token reads `adm_<ulid>.<secret>` (256 random bits); `sluice admin token create` prints it
//! once and keeps only its SHA-256, in `admin_tokens.json` in the private data directory (whatever
//! the backend: the console runs where `sluice serve` runs). Tenant API keys (`key_…`) are never
//! admin credentials. Revoked tokens stop working at once: the file is read on every check.

use crate::secrets;
use serde::{Deserialize, Serialize};
use sluice_core::keys;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The prefix of every admin token id.
pub const PREFIX: &str = "adm_";
const FILE: &str = "admin_tokens.json";

/// One admin token as stored: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    /// `adm_<ulid>`.
    pub id: String,
    /// What it is for, to recognise it by.
    pub label: String,
    /// SHA-256 of the secret half, hex.
    pub secret_hash: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the file failed.
    #[error("admin tokens file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// No token has this id.
    #[error("no such admin token: {0}")]
    NotFound(String),
}

/// The admin tokens of one data directory.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// The file in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE),
        }
    }

    fn error(&self, reason: impl std::fmt::Display) -> TokenError {
        TokenError::File {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// Every token, oldest first (none when the file does not exist yet).
    pub fn list(&self) -> Result<Vec<AdminToken>, TokenError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| self.error(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Replaces the file atomically (a reader sees the old or the new list, never half), private.
    fn save(&self, tokens: &[AdminToken]) -> Result<(), TokenError> {
        let dir = self.path.parent().ok_or_else(|| self.error("no directory"))?;
        secrets::create_private_dir(dir).map_err(|e| self.error(e))?;
        let text = serde_json::to_string_pretty(tokens).map_err(|e| self.error(e))?;
        let tmp = self.path.with_extension("json.tmp");
        secrets::write_private(&tmp, text.as_bytes()).map_err(|e| self.error(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.error(e))
    }

    /// Makes a token labelled `label`: returns the whole token, to show once, and its record.
    pub fn create(&self, label: &str, now: OffsetDateTime) -> Result<(String, AdminToken), TokenError> {
        let id = format!("{PREFIX}{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let secret = keys::new_secret();
        let record = AdminToken {
            id: id.clone(),
            label: label.to_owned(),
            secret_hash: keys::secret_hash(&secret),
            created_at: now,
            revoked_at: None,
        };
        let mut all = self.list()?;
        all.push(record.clone());
        self.save(&all)?;
        Ok((format!("{id}.{secret}"), record))
    }

    /// Revokes a token; revoking twice keeps the first time.
    pub fn revoke(&self, id: &str, now: OffsetDateTime) -> Result<(), TokenError> {
        let mut all = self.list()?;
        let t = all
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| TokenError::NotFound(id.to_owned()))?;
        t.revoked_at.get_or_insert(now);
        self.save(&all)
    }

    /// The live token `presented` is, if any. Anything else (a tenant key, a revoked or unknown
    /// token, a wrong secret) is `None`, and every `None` costs the same hash and comparison.
    pub fn verify(&self, presented: &str) -> Result<Option<AdminToken>, TokenError> {
        let Some((id, secret)) = presented.trim().split_once('.') else {
            return Ok(None);
        };
        if !id.starts_with(PREFIX) || secret.is_empty() || presented.len() > 256 {
            return Ok(None);
        }
        let all = self.list()?;
        let found = all.into_iter().find(|t| t.id == id);
        let hash = found.as_ref().map_or("", |t| t.secret_hash.as_str());
        let matches = keys::secret_matches(secret, hash);
        Ok(found.filter(|t| matches && t.revoked_at.is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s1_only_a_live_admin_token_verifies_and_only_its_hash_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::new(dir.path());
        let now = OffsetDateTime::now_utc();
        let (token, record) = file.create("ops", now).unwrap();
        assert!(token.starts_with("adm_") && token.contains('.'));
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        let secret = token.split_once('.').unwrap().1;
        assert!(!text.contains(secret), "the secret is never stored");
        assert_eq!(file.verify(&token).unwrap().map(|t| t.id), Some(record.id.clone()));
        let mut wrong = token.clone();
        wrong.push('x');
        for bad in [
            wrong.as_str(),
            "key_01jabcdefghjkmnpqrstvwxyz0.secret",
            "adm_nope.x",
            "",
            "adm_x",
        ] {
            assert_eq!(file.verify(bad).unwrap(), None, "{bad}");
        }
        file.revoke(&record.id, now).unwrap();
        assert_eq!(file.verify(&token).unwrap(), None, "revoked");
        assert!(matches!(file.revoke("adm_unknown", now), Err(TokenError::NotFound(_))));
    }
}
