//! What a failed `sluice` command means to a script: a typed error and its exit status.
//!
//! Usage errors are clap's (status 2, before any command runs); every other failure is a
//! [`CliError`], whose kind is its status. [`EXIT_STATUS_HELP`] is the table `sluice --help`
//! prints, and the README repeats it.

use sluice_core::ports::KeyStoreError;

/// Success.
pub const SUCCESS: u8 = 0;
/// Any failure that is none of the kinds below.
pub const FAILURE: u8 = 1;
/// The command line is wrong (clap's own status).
pub const USAGE: u8 = 2;
/// The named thing does not exist.
pub const NOT_FOUND: u8 = 3;
/// The input or the configuration is invalid, or the operation is not allowed.
pub const REFUSED: u8 = 4;
/// The queue or the store cannot be opened or reached.
pub const UNAVAILABLE: u8 = 5;

/// The exit status table of `sluice --help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  failure: anything not listed below
  2  usage: the command line is wrong (unknown command, missing or invalid argument)
  3  not found: no such key (keys revoke, keys rotate)
  4  refused: invalid input or configuration, or an operation that is not allowed
     (a bad tenant name or key id, rotating a revoked key, a missing schema_dir,
     dlq on the aws backend)
  5  unavailable: the queue or the store cannot be opened or reached; retrying may help";

/// Why a command failed; its kind decides the exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The named thing does not exist (status 3).
    #[error("{0}")]
    NotFound(String),
    /// Invalid input or configuration, or an operation that is not allowed (status 4).
    #[error("{0:#}")]
    Refused(anyhow::Error),
    /// The queue or the store cannot be opened or reached (status 5).
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
    /// Anything else (status 1).
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl CliError {
    /// The process exit status for this error.
    pub fn status(&self) -> u8 {
        match self {
            CliError::NotFound(_) => NOT_FOUND,
            CliError::Refused(_) => REFUSED,
            CliError::Unavailable(_) => UNAVAILABLE,
            CliError::Failed(_) => FAILURE,
        }
    }

    /// A key store failure: a missing key is not found, anything else unavailable.
    pub fn key_store(e: KeyStoreError, what: impl std::fmt::Display) -> Self {
        match e {
            KeyStoreError::NotFound => CliError::NotFound(format!("no such key: {what}")),
            KeyStoreError::Unavailable(_) => CliError::Unavailable(e.into()),
        }
    }
}

/// Classifies a fallible step's error as one kind of [`CliError`].
pub trait Classify<T> {
    /// The error means invalid input or an operation not allowed.
    fn refused(self) -> Result<T, CliError>;
    /// The error means the queue or store could not be opened or reached.
    fn unavailable(self) -> Result<T, CliError>;
    /// The error is of no particular kind.
    fn failed(self) -> Result<T, CliError>;
}

impl<T, E: Into<anyhow::Error>> Classify<T> for Result<T, E> {
    fn refused(self) -> Result<T, CliError> {
        self.map_err(|e| CliError::Refused(e.into()))
    }

    fn unavailable(self) -> Result<T, CliError> {
        self.map_err(|e| CliError::Unavailable(e.into()))
    }

    fn failed(self) -> Result<T, CliError> {
        self.map_err(|e| CliError::Failed(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_distinct_and_in_the_help() {
        let all = [SUCCESS, FAILURE, USAGE, NOT_FOUND, REFUSED, UNAVAILABLE];
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| b != a), "{all:?}");
            assert!(
                EXIT_STATUS_HELP.lines().any(|l| l.starts_with(&format!("  {a}  "))),
                "status {a} is not in the help"
            );
        }
    }

    #[test]
    fn each_kind_has_its_status() {
        let e = || anyhow::anyhow!("x");
        assert_eq!(CliError::NotFound("k".into()).status(), NOT_FOUND);
        assert_eq!(CliError::Refused(e()).status(), REFUSED);
        assert_eq!(CliError::Unavailable(e()).status(), UNAVAILABLE);
        assert_eq!(CliError::Failed(e()).status(), FAILURE);
        assert_eq!(
            CliError::key_store(KeyStoreError::NotFound, "key_1").status(),
            NOT_FOUND
        );
        assert_eq!(
            CliError::key_store(KeyStoreError::Unavailable("down".into()), "key_1").status(),
            UNAVAILABLE
        );
    }
}
