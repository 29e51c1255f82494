//! nextest's JUnit report, reduced to one outcome per test.
//!
//! nextest writes `<testcase classname="<binary-id>" name="<test name>">`, with a `<failure>` or
//! `<error>` child when the test failed, `<skipped>` when it did not run, and `<flakyFailure>`
//! children when it passed only on a retry. A test is keyed the way nextest prints it:
//! `"<binary-id> <test name>"`, e.g. `sluice-http::security s1_wrong_key_gets_401` or
//! `sluice-core keys::tests::s1_refuses_expired_and_revoked_keys`.

use std::collections::BTreeMap;
use std::path::Path;

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// The file could not be read.
    #[error("reading JUnit report {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not XML, or not a JUnit report.
    #[error("{path} is not a JUnit report: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// What happened to one test in this run. Ordered from best to worst, so merging keeps the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Passed at the first attempt.
    Passed,
    /// Passed, but only after failing (nextest retries): counts as passed, reported as a warning.
    Flaky,
    /// Listed but not run.
    Skipped,
    /// Failed, errored or timed out.
    Failed,
}

/// Every test outcome of one or more reports.
#[derive(Debug, Clone, Default)]
pub struct Results {
    outcomes: BTreeMap<String, Outcome>,
}

impl Results {
    /// The outcome of `test` (`"<binary-id> <test name>"`), if it is in the report.
    pub fn get(&self, test: &str) -> Option<Outcome> {
        self.outcomes.get(test).copied()
    }

    /// How many tests the reports hold.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether the reports hold no test at all.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// Adds every test case of a JUnit document; `path` names it in errors.
    pub fn add_xml(&mut self, xml: &str, path: &str) -> Result<(), JunitError> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| JunitError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let root = doc.root_element();
        if !matches!(root.tag_name().name(), "testsuites" | "testsuite") {
            return Err(JunitError::Parse {
                path: path.to_owned(),
                message: format!("the root element is <{}>", root.tag_name().name()),
            });
        }
        for case in root.descendants().filter(|n| n.has_tag_name("testcase")) {
            let name = case.attribute("name").unwrap_or_default();
            let class = case
                .attribute("classname")
                .or_else(|| case.parent_element().and_then(|s| s.attribute("name")))
                .unwrap_or_default();
            let mut outcome = Outcome::Passed;
            for child in case.children().filter(roxmltree::Node::is_element) {
                let this = match child.tag_name().name() {
                    "failure" | "error" => Outcome::Failed,
                    "skipped" => Outcome::Skipped,
                    "flakyFailure" | "flakyError" => Outcome::Flaky,
                    _ => Outcome::Passed,
                };
                outcome = outcome.max(this);
            }
            let key = format!("{class} {name}");
            let merged = self.outcomes.get(&key).map_or(outcome, |prior| (*prior).max(outcome));
            self.outcomes.insert(key, merged);
        }
        Ok(())
    }

    /// Adds a report file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), JunitError> {
        let xml = std::fs::read_to_string(path).map_err(|source| JunitError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.add_xml(&xml, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="4">
  <testsuite name="sluice-core" tests="2">
    <testcase name="keys::tests::s1_ok" classname="sluice-core" time="0.1"/>
    <testcase name="json::tests::t1_bad" classname="sluice-core"><failure message="boom">x</failure></testcase>
  </testsuite>
  <testsuite name="sluice-http::security" tests="2">
    <testcase name="s1_flaky" classname="sluice-http::security"><flakyFailure message="once"/></testcase>
    <testcase name="d1_skipped" classname="sluice-http::security"><skipped/></testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn reads_every_outcome_keyed_as_nextest_prints_it() {
        let mut r = Results::default();
        r.add_xml(REPORT, "r.xml").unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r.get("sluice-core keys::tests::s1_ok"), Some(Outcome::Passed));
        assert_eq!(r.get("sluice-core json::tests::t1_bad"), Some(Outcome::Failed));
        assert_eq!(r.get("sluice-http::security s1_flaky"), Some(Outcome::Flaky));
        assert_eq!(r.get("sluice-http::security d1_skipped"), Some(Outcome::Skipped));
        assert_eq!(r.get("sluice-core s1_ok"), None, "names are exact");
    }

    #[test]
    fn a_failure_in_any_report_wins_over_a_pass_in_another() {
        let mut r = Results::default();
        r.add_xml(REPORT, "a.xml").unwrap();
        r.add_xml(
            r#"<testsuites><testsuite name="sluice-core"><testcase name="json::tests::t1_bad" classname="sluice-core"/><testcase name="keys::tests::s1_ok" classname="sluice-core"><error/></testcase></testsuite></testsuites>"#,
            "b.xml",
        )
        .unwrap();
        assert_eq!(r.get("sluice-core json::tests::t1_bad"), Some(Outcome::Failed));
        assert_eq!(r.get("sluice-core keys::tests::s1_ok"), Some(Outcome::Failed));
    }

    #[test]
    fn refuses_what_is_not_a_junit_report() {
        let mut r = Results::default();
        assert!(matches!(r.add_xml("<html/>", "x"), Err(JunitError::Parse { .. })));
        assert!(matches!(r.add_xml("not xml <", "x"), Err(JunitError::Parse { .. })));
    }
}
