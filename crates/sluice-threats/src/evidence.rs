//! Evidence other than tests: cfn-guard rules, checkov results and CI step scripts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Why evidence could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkov report is not checkov's JSON output.
    #[error("{path} is not a checkov JSON report: {message}")]
    Checkov {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The names of the rules a cfn-guard file declares (`rule NAME { … }`, `rule NAME when … { … }`).
pub fn guard_rule_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("rule "))
        .filter_map(|rest| {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Every rule name declared by the `*.guard` files directly in `dir` (missing dir: none).
pub fn guard_rules_in(dir: &Path) -> Result<BTreeSet<String>, EvidenceError> {
    let mut names = BTreeSet::new();
    if !dir.is_dir() {
        return Ok(names);
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("guard") {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            names.extend(guard_rule_names(&text));
        }
    }
    Ok(names)
}

/// Whether `id` looks like a checkov check id (`CKV_AWS_26`, `CKV2_AWS_27`, `CKV_SECRET_2`).
pub fn is_checkov_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("CKV") else {
        return false;
    };
    let rest = rest.strip_prefix('2').unwrap_or(rest);
    let Some(rest) = rest.strip_prefix('_') else {
        return false;
    };
    let Some((family, number)) = rest.rsplit_once('_') else {
        return false;
    };
    !family.is_empty()
        && family.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

/// What checkov said about each check id, over one or more reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckovOutcome {
    /// Every resource it applies to passed.
    Passed,
    /// At least one resource failed it.
    Failed,
}

/// Reads `checkov -o json` output (an object, or an array of objects, one per framework) into
/// the outcome of each check id; a failure on any resource wins.
pub fn checkov_results(text: &str, path: &str) -> Result<BTreeMap<String, CheckovOutcome>, EvidenceError> {
    let bad = |message: &str| EvidenceError::Checkov {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let reports = match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    let mut out = BTreeMap::new();
    for report in &reports {
        let results = report.get("results").ok_or_else(|| bad("no `results` member"))?;
        for (list, outcome) in [
            ("passed_checks", CheckovOutcome::Passed),
            ("failed_checks", CheckovOutcome::Failed),
        ] {
            for check in results.get(list).and_then(|l| l.as_array()).into_iter().flatten() {
                let Some(id) = check.get("check_id").and_then(|i| i.as_str()) else {
                    continue;
                };
                let entry = out.entry(id.to_owned()).or_insert(outcome);
                if outcome == CheckovOutcome::Failed {
                    *entry = CheckovOutcome::Failed;
                }
            }
        }
    }
    Ok(out)
}

/// Reads a checkov report file.
pub fn checkov_file(path: &Path) -> Result<BTreeMap<String, CheckovOutcome>, EvidenceError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    checkov_results(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rule_names_with_and_without_conditions() {
        let text = "let x = 1\nrule sqs_encrypted when %queues !empty {\n  x == 1\n}\n  rule lambda_no_wildcard {\n}\n# rule commented\nrules are fun\n";
        let names = guard_rule_names(text);
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["lambda_no_wildcard".to_owned(), "sqs_encrypted".to_owned()]
        );
    }

    #[test]
    fn checkov_ids_are_recognised() {
        for ok in ["CKV_AWS_26", "CKV2_AWS_27", "CKV_SECRET_2"] {
            assert!(is_checkov_id(ok), "{ok}");
        }
        for bad in ["CKV_AWS_", "CKV_26", "ckv_aws_26", "CKV-AWS-26", "CKV_AWS_2x", ""] {
            assert!(!is_checkov_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_checkov_failure_on_any_resource_wins() {
        let json = r#"[{"check_type":"cloudformation","results":{
            "passed_checks":[{"check_id":"CKV_AWS_26"},{"check_id":"CKV_AWS_28"}],
            "failed_checks":[{"check_id":"CKV_AWS_28"}]}}]"#;
        let r = checkov_results(json, "c.json").unwrap();
        assert_eq!(r.get("CKV_AWS_26"), Some(&CheckovOutcome::Passed));
        assert_eq!(r.get("CKV_AWS_28"), Some(&CheckovOutcome::Failed));
        assert!(checkov_results("{}", "c.json").is_err());
    }
}
