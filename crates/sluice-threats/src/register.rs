//! The threat register: what `docs/threats.toml` may contain.
//!
//! Parsing is strict on purpose: a misspelt field (`test = [...]` for `tests`) would otherwise
//! leave a threat silently without evidence.

use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// Why the register could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid register.
    #[error("{path} is not a valid threat register: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the TOML parser said.
        message: String,
    },
    /// The review date is not a plain `YYYY-MM-DD` date.
    #[error("review.last_reviewed must be a date (YYYY-MM-DD), got {0}")]
    BadDate(String),
}

/// The whole register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// When and why the model is reviewed.
    pub review: Review,
    /// Every threat, in document order.
    #[serde(rename = "threat", default)]
    pub threats: Vec<Threat>,
}

/// The review schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// The date of the last review (a TOML date, `2026-11-27`).
    pub last_reviewed: toml::value::Datetime,
    /// Who reviewed it.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// A review older than this many days is overdue (the seeds: at least quarterly).
    #[serde(default = "default_max_age")]
    pub max_age_days: u32,
    /// Events that force a review whatever the date.
    #[serde(default)]
    pub triggers: Vec<String>,
}

fn default_max_age() -> u32 {
    90
}

impl Review {
    /// The last review date as a calendar date.
    pub fn last_reviewed_date(&self) -> Result<time::Date, RegisterError> {
        let bad = || RegisterError::BadDate(self.last_reviewed.to_string());
        let d = match (self.last_reviewed.date, self.last_reviewed.time) {
            (Some(d), None) => d,
            _ => return Err(bad()),
        };
        let month = time::Month::try_from(d.month).map_err(|_| bad())?;
        time::Date::from_calendar_date(i32::from(d.year), month, d.day).map_err(|_| bad())
    }
}

/// One threat and the evidence that its mitigation works.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threat {
    /// `S-1`, `T-4`, …: the STRIDE letter, a dash, a number.
    pub id: String,
    /// One line.
    pub title: String,
    /// The STRIDE category.
    pub stride: Stride,
    /// How bad it would be.
    pub severity: Severity,
    /// Where it stands.
    pub status: Status,
    /// What the attacker does (optional; the seeds' description).
    #[serde(default)]
    pub description: String,
    /// What Sluice does about it.
    pub mitigation: String,
    /// What is left, for accepted or transferred threats.
    #[serde(default)]
    pub residual_risk: String,
    /// Tests that prove the mitigation, as nextest names them: `"<binary-id> <test name>"`.
    #[serde(default)]
    pub tests: Vec<String>,
    /// cfn-guard rule names that must exist under `infra/rules/*.guard`.
    #[serde(default)]
    pub guard_rules: Vec<String>,
    /// checkov check ids (`CKV_AWS_26`) that must pass on the template.
    #[serde(default)]
    pub checkov: Vec<String>,
    /// Scripts CI runs as evidence (paths relative to the repository root).
    #[serde(default)]
    pub ci_steps: Vec<String>,
}

impl Threat {
    /// How many pieces of evidence the threat names.
    pub fn evidence_count(&self) -> usize {
        self.tests.len() + self.guard_rules.len() + self.checkov.len() + self.ci_steps.len()
    }
}

/// The six STRIDE categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Stride {
    /// Pretending to be someone else.
    Spoofing,
    /// Changing data or code.
    Tampering,
    /// Acting without a trace.
    Repudiation,
    /// Reading what one should not.
    #[serde(rename = "Information disclosure")]
    InformationDisclosure,
    /// Making the service unavailable (or expensive).
    #[serde(rename = "Denial of service")]
    DenialOfService,
    /// Gaining rights one should not have.
    #[serde(rename = "Elevation of privilege")]
    ElevationOfPrivilege,
}

impl Stride {
    /// The letter threat ids start with.
    pub fn letter(self) -> char {
        match self {
            Stride::Spoofing => 'S',
            Stride::Tampering => 'T',
            Stride::Repudiation => 'R',
            Stride::InformationDisclosure => 'I',
            Stride::DenialOfService => 'D',
            Stride::ElevationOfPrivilege => 'E',
        }
    }
}

impl fmt::Display for Stride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stride::Spoofing => "Spoofing",
            Stride::Tampering => "Tampering",
            Stride::Repudiation => "Repudiation",
            Stride::InformationDisclosure => "Information disclosure",
            Stride::DenialOfService => "Denial of service",
            Stride::ElevationOfPrivilege => "Elevation of privilege",
        })
    }
}

/// Severity, as the seeds grade it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where a threat stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Sluice mitigates it; the evidence proves it.
    Mitigated,
    /// Mitigated in part; the residual risk says what is left.
    Partial,
    /// Known and accepted; the residual risk says why.
    Accepted,
    /// Handed to someone else (AWS, the operator); the evidence shows the hand-over.
    Transferred,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Mitigated => "mitigated",
            Status::Partial => "partial",
            Status::Accepted => "accepted",
            Status::Transferred => "transferred",
        })
    }
}

impl Register {
    /// Parses a register from TOML text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, RegisterError> {
        toml::from_str(text).map_err(|e| RegisterError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a register file.
    pub fn load(path: &Path) -> Result<Self, RegisterError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegisterError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }
}
