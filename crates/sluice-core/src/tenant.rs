//! The tenant: the isolation boundary of every read and write.

use std::fmt;

/// Why a string is not a tenant name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a tenant is 1 to 64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit")]
pub struct InvalidTenant;

/// A tenant name: 1 to 64 of `[a-z0-9_-]`, starting with a letter or digit.
///
/// The name is used as a partition key and appears in logs, so its alphabet is closed: no
/// separators, no control characters, nothing that needs escaping anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Tenant(String);

impl Tenant {
    /// Parses a tenant name.
    pub fn parse(s: &str) -> Result<Self, InvalidTenant> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidTenant) }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Tenant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_simple_names_and_rejects_everything_else() {
        assert!(Tenant::parse("acme").is_ok());
        assert!(Tenant::parse("acme-2_eu").is_ok());
        for bad in ["", "-acme", "Acme", "a b", "a\nb", "a/b", &"a".repeat(65)] {
            assert_eq!(Tenant::parse(bad), Err(InvalidTenant), "{bad:?}");
        }
    }
}
