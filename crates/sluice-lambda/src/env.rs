//! Configuration from the environment, read through a lookup function so tests can feed a map
//! and record exactly which variables a function reads (the manifest's `env` lists are checked
//! against that record).

use crate::InitError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Where configuration comes from: a variable name in, its value (if set) out.
pub type Lookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// The process environment as a [`Lookup`] (`std::env::var`, unset or non-UTF-8 = `None`).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A required variable: set and not blank.
pub(crate) fn required(env: Lookup<'_>, name: &'static str) -> Result<String, InitError> {
    env(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(InitError::Missing(name))
}

/// An optional variable; blank counts as unset.
#[cfg(any(feature = "ingest", feature = "process"))]
pub(crate) fn optional(env: Lookup<'_>, name: &'static str) -> Option<String> {
    env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// An optional boolean: `true`/`1`/`yes` or `false`/`0`/`no` (any case); unset is `default`.
#[cfg(any(feature = "ingest", feature = "process"))]
pub(crate) fn flag(env: Lookup<'_>, name: &'static str, default: bool) -> Result<bool, InitError> {
    match optional(env, name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(_) => Err(InitError::Invalid {
            var: name,
            reason: "expected true or false".into(),
        }),
    }
}

/// An optional directory path.
#[cfg(any(feature = "ingest", feature = "process"))]
pub(crate) fn path(env: Lookup<'_>, name: &'static str) -> Option<std::path::PathBuf> {
    optional(env, name).map(std::path::PathBuf::from)
}

/// A fixed set of variables that remembers every name looked up in it (for tests and for the
/// manifest check: a function must read exactly the variables its manifest entry lists).
#[derive(Debug, Default)]
pub struct RecordingEnv {
    vars: BTreeMap<String, String>,
    read: Mutex<BTreeSet<String>>,
}

impl RecordingEnv {
    /// An environment holding `vars`.
    pub fn new<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            read: Mutex::default(),
        }
    }

    /// Looks `name` up and records that it was read.
    pub fn get(&self, name: &str) -> Option<String> {
        match self.read.lock() {
            Ok(mut r) => r.insert(name.to_owned()),
            Err(p) => p.into_inner().insert(name.to_owned()),
        };
        self.vars.get(name).cloned()
    }

    /// Every name looked up so far, set or not.
    pub fn read(&self) -> BTreeSet<String> {
        match self.read.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
