//! The check: every threat must carry evidence, and every piece of evidence must hold in this run.
//!
//! Errors (CI fails): a seed threat missing from the register, a duplicate or malformed id, a
//! threat with no evidence, a named test absent from the JUnit report (it did not run) or not
//! passed, a guard rule that `infra/rules` does not declare, a malformed or failed checkov id, a
//! CI step script that does not exist, an accepted/partial/transferred threat without its residual
//! risk, a review date in the future, a stale generated table in the document.
//! Warnings (CI passes): a review older than its `max_age_days`, a test that passed only on a
//! retry, a CI step not referenced by `.ci/run` or `scripts/test.sh`, evidence kinds that could
//! not be verified because no report was given.

use crate::evidence::{CheckovOutcome, is_checkov_id};
use crate::junit::{Outcome, Results};
use crate::register::{Register, Status};
use crate::render;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The threats of the seed threat model (`../shared/seeds`): each must stay in the register.
pub const SEED_IDS: [&str; 18] = [
    "S-1", "S-2", "S-3", "T-1", "T-2", "T-3", "R-1", "R-2", "I-1", "I-2", "I-3", "D-1", "D-2", "D-3", "D-4", "E-1",
    "E-2", "E-3",
];

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Reported; CI passes.
    Warning,
    /// CI fails.
    Error,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// The threat concerned, if any.
    pub threat: Option<String>,
    /// What is wrong, for a human.
    pub message: String,
}

/// Everything the check looks at, already read from disk.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The register.
    pub register: Register,
    /// The threat-model document's text (`None`: the document is missing).
    pub document: Option<String>,
    /// This run's test outcomes (`None`: test evidence is not verified, with a warning).
    pub junit: Option<Results>,
    /// Rule names declared under `infra/rules`.
    pub guard_rules: BTreeSet<String>,
    /// checkov outcomes (`None`: ids are only checked for form, with a warning).
    pub checkov: Option<BTreeMap<String, CheckovOutcome>>,
    /// The repository root, to resolve CI step paths.
    pub root: PathBuf,
    /// The text of the CI entry points (`.ci/run`, `scripts/test.sh`), to see that steps are wired.
    pub ci_text: String,
    /// Today, for the review age.
    pub today: time::Date,
}

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Threat id.
    pub id: String,
    /// Severity.
    pub severity: String,
    /// Status.
    pub status: String,
    /// Named tests that passed in this run.
    pub tests_passed: usize,
    /// Named tests.
    pub tests: usize,
    /// Named guard rules that exist.
    pub rules_found: usize,
    /// Named guard rules.
    pub rules: usize,
    /// Named checkov checks.
    pub checkov: usize,
    /// Named CI steps.
    pub ci_steps: usize,
    /// All named evidence.
    pub evidence: usize,
    /// Whether the threat has no error finding.
    pub ok: bool,
}

/// The outcome of a check.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every finding, errors and warnings.
    pub findings: Vec<Finding>,
    /// One row per threat, in register order.
    pub rows: Vec<Row>,
}

impl Report {
    /// Whether CI should fail.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Error)
    }

    /// The matrix as a fixed-width table.
    pub fn matrix(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<6} {:<9} {:<12} {:>7} {:>7} {:>8} {:>3} {:>9}  result",
            "threat", "severity", "status", "tests", "rules", "checkov", "ci", "evidence"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<6} {:<9} {:<12} {:>7} {:>7} {:>8} {:>3} {:>9}  {}",
                r.id,
                r.severity,
                r.status,
                format!("{}/{}", r.tests_passed, r.tests),
                format!("{}/{}", r.rules_found, r.rules),
                r.checkov,
                r.ci_steps,
                r.evidence,
                if r.ok { "ok" } else { "FAIL" }
            );
        }
        let failing = self.rows.iter().filter(|r| !r.ok).count();
        let _ = writeln!(
            out,
            "{} threats, {} with failing evidence, {} pieces of evidence",
            self.rows.len(),
            failing,
            self.rows.iter().map(|r| r.evidence).sum::<usize>()
        );
        out
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, level: Level, threat: Option<&str>, message: String) {
        self.0.push(Finding {
            level,
            threat: threat.map(str::to_owned),
            message,
        });
    }
    fn error(&mut self, threat: &str, message: String) {
        self.push(Level::Error, Some(threat), message);
    }
    fn warn(&mut self, threat: &str, message: String) {
        self.push(Level::Warning, Some(threat), message);
    }
}

fn valid_id(id: &str, letter: char) -> bool {
    id.strip_prefix(letter)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Runs every rule over the inputs.
pub fn check(inputs: &Inputs) -> Report {
    let mut f = Findings(Vec::new());
    let reg = &inputs.register;

    // The register as a whole.
    let mut seen = BTreeSet::new();
    for t in &reg.threats {
        if !seen.insert(t.id.as_str()) {
            f.error(&t.id, "the id is used twice".into());
        }
    }
    for seed in SEED_IDS {
        if !seen.contains(seed) {
            f.push(
                Level::Error,
                None,
                format!("seed threat {seed} is missing from the register"),
            );
        }
    }
    match reg.review.last_reviewed_date() {
        Ok(date) => {
            let age = (inputs.today - date).whole_days();
            if age < 0 {
                f.push(Level::Error, None, format!("the last review ({date}) is in the future"));
            } else if age > i64::from(reg.review.max_age_days) {
                f.push(
                    Level::Warning,
                    None,
                    format!(
                        "the last review ({date}) is {age} days old, over {} days: review the threat model",
                        reg.review.max_age_days
                    ),
                );
            }
        }
        Err(e) => f.push(Level::Error, None, e.to_string()),
    }
    match &inputs.document {
        None => f.push(Level::Error, None, "the threat-model document is missing".into()),
        Some(doc) => match render::is_current(doc, reg) {
            Ok(true) => {}
            Ok(false) => f.push(
                Level::Error,
                None,
                "the threat-model document's table differs from the register: run `sluice-threats render`".into(),
            ),
            Err(e) => f.push(Level::Error, None, e.to_string()),
        },
    }
    if inputs.junit.is_none() {
        f.push(
            Level::Warning,
            None,
            "no JUnit report given: test evidence is not verified".into(),
        );
    }
    if inputs.checkov.is_none() && reg.threats.iter().any(|t| !t.checkov.is_empty()) {
        f.push(
            Level::Warning,
            None,
            "no checkov report given: checkov ids are checked for form only".into(),
        );
    }

    let mut rows = Vec::new();
    for t in &reg.threats {
        let id = t.id.as_str();
        let before = f.0.iter().filter(|x| x.level == Level::Error).count();
        if !valid_id(id, t.stride.letter()) {
            f.error(
                id,
                format!("the id must be `{}-<number>` for {}", t.stride.letter(), t.stride),
            );
        }
        if t.evidence_count() == 0 {
            f.error(
                id,
                "no evidence: name at least one test, guard rule, checkov check or CI step".into(),
            );
        }
        if t.mitigation.trim().is_empty() {
            f.error(id, "the mitigation is empty".into());
        }
        if t.status != Status::Mitigated && t.residual_risk.trim().is_empty() {
            f.error(id, format!("a {} threat must state its residual_risk", t.status));
        }
        let mut tests_passed = 0;
        for test in &t.tests {
            let Some(results) = &inputs.junit else { continue };
            match results.get(test) {
                Some(Outcome::Passed) => tests_passed += 1,
                Some(Outcome::Flaky) => {
                    tests_passed += 1;
                    f.warn(id, format!("test `{test}` passed only on a retry"));
                }
                Some(Outcome::Skipped) => f.error(id, format!("test `{test}` was skipped in this run")),
                Some(Outcome::Failed) => f.error(id, format!("test `{test}` failed in this run")),
                None => f.error(
                    id,
                    format!("test `{test}` did not run in this run (not in the JUnit report)"),
                ),
            }
        }
        let mut rules_found = 0;
        for rule in &t.guard_rules {
            if inputs.guard_rules.contains(rule) {
                rules_found += 1;
            } else {
                f.error(
                    id,
                    format!("guard rule `{rule}` is not declared in infra/rules/*.guard"),
                );
            }
        }
        for check in &t.checkov {
            if !is_checkov_id(check) {
                f.error(id, format!("`{check}` is not a checkov check id"));
                continue;
            }
            match inputs.checkov.as_ref().map(|c| c.get(check)) {
                None | Some(Some(CheckovOutcome::Passed)) => {}
                Some(Some(CheckovOutcome::Failed)) => f.error(id, format!("checkov check {check} failed")),
                Some(None) => f.error(id, format!("checkov check {check} was not evaluated")),
            }
        }
        for step in &t.ci_steps {
            if !inputs.root.join(step).is_file() {
                f.error(id, format!("CI step `{step}` does not exist"));
            } else if !inputs.ci_text.contains(step.as_str()) {
                f.warn(id, format!("CI step `{step}` is not run by .ci/run or scripts/test.sh"));
            }
        }
        let after = f.0.iter().filter(|x| x.level == Level::Error).count();
        rows.push(Row {
            id: t.id.clone(),
            severity: t.severity.to_string(),
            status: t.status.to_string(),
            tests_passed,
            tests: t.tests.len(),
            rules_found,
            rules: t.guard_rules.len(),
            checkov: t.checkov.len(),
            ci_steps: t.ci_steps.len(),
            evidence: t.evidence_count(),
            ok: after == before,
        });
    }
    Report { findings: f.0, rows }
}
