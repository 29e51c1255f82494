//! The files a host reads at start-up and hands to the core already parsed: the JSON Schema
//! directory and an OIDC issuer's JWKS. The core never touches a file (see its crate docs).
//!
//! Errors say which file and what to do, in one sentence, without repeating the OS error's text.

use serde_json::Value;
use sluice_core::EventType;
use sluice_core::validate::{SchemaError, Schemas};
use std::io;
use std::path::Path;

/// Why a file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The schema directory does not exist.
    #[error(
        "the schema directory {0} does not exist: create it with one <event type>.json JSON Schema per event type, or remove the setting"
    )]
    NoSchemaDir(String),
    /// A file or directory exists but could not be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file or directory.
        path: String,
        /// The OS's reason, once.
        reason: String,
    },
    /// The JWKS file could not be read.
    #[error("cannot read the JWKS file {path}: {reason}")]
    Jwks {
        /// The file.
        path: String,
        /// The OS's reason, once.
        reason: String,
    },
    /// A schema file is not named `<event type>.json`.
    #[error("schema file {0} is not named <event type>.json")]
    SchemaName(String),
    /// A schema file is not JSON, or not a valid JSON Schema.
    #[error("schema file {path} is invalid: {reason}")]
    InvalidSchema {
        /// The file.
        path: String,
        /// What the parser or the schema compiler said.
        reason: String,
    },
}

fn unreadable(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |e| FileError::Unreadable {
        path: path.display().to_string(),
        reason: io_reason(&e),
    }
}

/// The OS error's text without the ` (os error N)` suffix.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// The schemas of `dir` (every `<event type>.json` in it), or none without a directory; with
/// `require`, event types without a schema are refused.
pub fn schemas(dir: Option<&Path>, require: bool) -> Result<Schemas, FileError> {
    let schemas = match dir {
        None => Schemas::none(),
        Some(dir) => Schemas::from_pairs(read_schema_dir(dir)?).map_err(|e: SchemaError| FileError::InvalidSchema {
            path: dir.join(format!("{}.json", e.event_type)).display().to_string(),
            reason: e.message,
        })?,
    };
    Ok(schemas.require_schema(require))
}

fn read_schema_dir(dir: &Path) -> Result<Vec<(EventType, Value)>, FileError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FileError::NoSchemaDir(dir.display().to_string()));
        }
        Err(e) => return Err(unreadable(dir)(e)),
    };
    let mut pairs = Vec::new();
    for entry in entries {
        let path = entry.map_err(unreadable(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let event_type = EventType::parse(name).map_err(|_| FileError::SchemaName(path.display().to_string()))?;
        let text = std::fs::read(&path).map_err(unreadable(&path))?;
        let schema: Value = serde_json::from_slice(&text).map_err(|e| FileError::InvalidSchema {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        pairs.push((event_type, schema));
    }
    Ok(pairs)
}

/// Reads a JWKS file (its JSON is checked when the verifier is built).
pub fn read_jwks_file(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|e| FileError::Jwks {
        path: path.display().to_string(),
        reason: io_reason(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_schema_directory_is_one_sentence_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("schemas");
        let e = schemas(Some(&missing), false).unwrap_err();
        assert_eq!(e, FileError::NoSchemaDir(missing.display().to_string()));
        let text = e.to_string();
        assert!(text.contains("create it") && !text.contains("os error"), "{text}");
    }

    #[test]
    fn schema_files_are_read_by_event_type_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("order.created.json"), r#"{"type":"object"}"#).unwrap();
        std::fs::write(dir.path().join("README.txt"), "ignored").unwrap();
        let s = schemas(Some(dir.path()), true).unwrap();
        assert_eq!(s.len(), 1);
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        let e = schemas(Some(dir.path()), false).unwrap_err();
        assert!(
            matches!(&e, FileError::InvalidSchema { path, .. } if path.ends_with("bad.json")),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("bad.json")).unwrap();
        std::fs::write(dir.path().join("x.json"), r#"{"type": 12}"#).unwrap();
        let e = schemas(Some(dir.path()), false).unwrap_err();
        assert!(
            matches!(&e, FileError::InvalidSchema { path, .. } if path.ends_with("x.json")),
            "{e}"
        );
        assert!(schemas(None, false).unwrap().is_empty());
    }

    #[test]
    fn an_unreadable_jwks_file_names_the_file_once() {
        let e = read_jwks_file(Path::new("/nonexistent/jwks.json")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read the JWKS file /nonexistent/jwks.json: No such file or directory"
        );
    }
}
