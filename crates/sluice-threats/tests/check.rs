//! The checker's failure modes, on small fixture files (tests/fixtures): a valid register passes,
//! and each way a threat can lose its evidence fails (or warns) with a message naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

use sluice_threats::evidence::{checkov_results, guard_rules_in};
use sluice_threats::junit::Results;
use sluice_threats::{Inputs, Level, Register, check, render};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

fn date(s: &str) -> time::Date {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).unwrap()
}

/// Inputs over the fixtures, with `register` as the register text and a document rendered from
/// it (so only deliberate changes make the document stale).
fn inputs_with(register: &str, junit: &str) -> Inputs {
    let parsed = Register::parse(register, "register.toml").unwrap();
    let document = render::update_document(&read("threat-model.md"), &parsed).unwrap();
    let mut results = Results::default();
    results.add_xml(junit, "junit.xml").unwrap();
    Inputs {
        register: Register::parse(register, "register.toml").unwrap(),
        document: Some(document),
        junit: Some(results),
        guard_rules: guard_rules_in(&fixtures().join("rules")).unwrap(),
        checkov: Some(checkov_results(&read("checkov.json"), "checkov.json").unwrap()),
        root: fixtures(),
        ci_text: "bash scripts/step.sh".into(),
        today: date("2026-11-27"),
    }
}

fn inputs() -> Inputs {
    inputs_with(&read("register.toml"), &read("junit.xml"))
}

fn errors(i: &Inputs) -> Vec<String> {
    check(i)
        .findings
        .into_iter()
        .filter(|f| f.level == Level::Error)
        .map(|f| format!("{}: {}", f.threat.unwrap_or_default(), f.message))
        .collect()
}

fn warnings(i: &Inputs) -> Vec<String> {
    check(i)
        .findings
        .into_iter()
        .filter(|f| f.level == Level::Warning)
        .map(|f| f.message)
        .collect()
}

fn only_error(i: &Inputs, threat: &str, needle: &str) {
    let e = errors(i);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with(&format!("{threat}: ")) && e[0].contains(needle),
        "{e:#?}"
    );
    let report = check(i);
    let row = report.rows.iter().find(|r| r.id == threat).unwrap();
    assert!(!row.ok, "the matrix marks {threat} as failing");
    assert!(report.matrix().contains("FAIL"));
}

#[test]
fn the_fixture_register_passes_and_prints_its_matrix() {
    let i = inputs();
    let report = check(&i);
    assert!(!report.failed(), "{:#?}", report.findings);
    assert!(warnings(&i).is_empty(), "{:#?}", report.findings);
    assert_eq!(report.rows.len(), 18);
    let s1 = &report.rows[0];
    assert_eq!(
        (s1.id.as_str(), s1.evidence, s1.tests_passed, s1.rules_found),
        ("S-1", 4, 1, 1)
    );
    let m = report.matrix();
    assert!(m.starts_with("threat severity"), "{m}");
    assert!(
        m.contains("S-1    High      mitigated        1/1     1/1        1   1         4  ok"),
        "{m}"
    );
    assert!(
        m.contains("18 threats, 0 with failing evidence, 21 pieces of evidence"),
        "{m}"
    );
}

#[test]
fn a_threat_without_evidence_fails() {
    let reg = read("register.toml").replace("tests = [\"fx::suite t2_holds\"]", "");
    only_error(&inputs_with(&reg, &read("junit.xml")), "T-2", "no evidence");
}

#[test]
fn a_named_test_missing_from_the_junit_report_fails() {
    let junit = read("junit.xml").replace(
        "<testcase name=\"r1_holds\" classname=\"fx::suite\" time=\"0.001\"/>",
        "",
    );
    only_error(&inputs_with(&read("register.toml"), &junit), "R-1", "did not run");
    // A name that is close but not exact is missing too.
    let reg = read("register.toml").replace("fx::suite r2_holds", "fx::suite r2_hold");
    only_error(&inputs_with(&reg, &read("junit.xml")), "R-2", "did not run");
}

#[test]
fn a_named_test_that_failed_or_was_skipped_fails() {
    let junit = read("junit.xml").replace(
        "<testcase name=\"d1_holds\" classname=\"fx::suite\" time=\"0.001\"/>",
        "<testcase name=\"d1_holds\" classname=\"fx::suite\"><failure message=\"assertion\"/></testcase>",
    );
    only_error(
        &inputs_with(&read("register.toml"), &junit),
        "D-1",
        "failed in this run",
    );
    let junit = read("junit.xml").replace(
        "<testcase name=\"d2_holds\" classname=\"fx::suite\" time=\"0.001\"/>",
        "<testcase name=\"d2_holds\" classname=\"fx::suite\"><skipped/></testcase>",
    );
    only_error(&inputs_with(&read("register.toml"), &junit), "D-2", "skipped");
}

#[test]
fn a_test_that_passed_only_on_a_retry_warns() {
    let junit = read("junit.xml").replace(
        "<testcase name=\"d3_holds\" classname=\"fx::suite\" time=\"0.001\"/>",
        "<testcase name=\"d3_holds\" classname=\"fx::suite\"><flakyFailure message=\"once\"/></testcase>",
    );
    let i = inputs_with(&read("register.toml"), &junit);
    assert!(errors(&i).is_empty());
    assert!(warnings(&i).iter().any(|w| w.contains("retry")), "{:?}", warnings(&i));
}

#[test]
fn a_guard_rule_missing_from_infra_rules_fails() {
    let reg = read("register.toml").replace(
        "guard_rules = [\"s1_rule\"]",
        "guard_rules = [\"s1_rule\", \"s1_gone\"]",
    );
    only_error(&inputs_with(&reg, &read("junit.xml")), "S-1", "guard rule `s1_gone`");
}

#[test]
fn a_checkov_id_that_is_malformed_failed_or_not_evaluated_fails() {
    let reg = read("register.toml").replace("checkov = [\"CKV_AWS_26\"]", "checkov = [\"CKV-AWS-26\"]");
    only_error(&inputs_with(&reg, &read("junit.xml")), "S-1", "not a checkov check id");
    let reg = read("register.toml").replace("checkov = [\"CKV_AWS_26\"]", "checkov = [\"CKV_AWS_27\"]");
    only_error(&inputs_with(&reg, &read("junit.xml")), "S-1", "not evaluated");
    let mut i = inputs();
    i.checkov = Some(
        checkov_results(
            r#"{"results":{"passed_checks":[],"failed_checks":[{"check_id":"CKV_AWS_26"}]}}"#,
            "c",
        )
        .unwrap(),
    );
    only_error(&i, "S-1", "CKV_AWS_26 failed");
    // Without a report, ids are checked for form only, with a warning.
    let mut i = inputs();
    i.checkov = None;
    assert!(errors(&i).is_empty());
    assert!(warnings(&i).iter().any(|w| w.contains("checkov")));
}

#[test]
fn a_ci_step_that_does_not_exist_fails_and_one_not_wired_into_ci_warns() {
    let reg = read("register.toml").replace("scripts/step.sh", "scripts/missing.sh");
    only_error(&inputs_with(&reg, &read("junit.xml")), "S-1", "does not exist");
    let mut i = inputs();
    i.ci_text = String::new();
    assert!(errors(&i).is_empty());
    assert!(warnings(&i).iter().any(|w| w.contains("not run by .ci/run")));
}

#[test]
fn a_stale_or_unmarked_document_fails() {
    let mut i = inputs();
    i.document = Some(i.document.unwrap().replace("Threat T-3", "Threat T-3 (edited by hand)"));
    let e = errors(&i);
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("differs from the register"), "{e:?}");
    // The register changed but the document was not re-rendered.
    let reg = read("register.toml").replace("severity = \"High\"", "severity = \"Low\"");
    let mut i = inputs();
    i.register = Register::parse(&reg, "r").unwrap();
    let e = errors(&i);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("differs from the register"), "{e:?}");
    let mut i = inputs();
    i.document = Some("no markers".into());
    assert!(errors(&i).iter().any(|e| e.contains("exactly one")));
    i.document = None;
    assert!(errors(&i).iter().any(|e| e.contains("missing")));
}

#[test]
fn an_old_review_warns_and_a_future_one_fails() {
    let mut i = inputs();
    i.today = date("2027-01-30"); // 90 days after 2026-11-01
    assert!(warnings(&i).is_empty());
    i.today = date("2027-01-31");
    let w = warnings(&i);
    assert!(w.iter().any(|w| w.contains("91 days old")), "{w:?}");
    assert!(errors(&i).is_empty(), "an old review warns, it does not fail");
    i.today = date("2026-10-01");
    assert!(errors(&i).iter().any(|e| e.contains("in the future")));
}

#[test]
fn register_mistakes_fail() {
    // A seed threat dropped.
    let reg = read("register.toml").replacen("id = \"E-3\"", "id = \"E-4\"", 1);
    let e = errors(&inputs_with(&reg, &read("junit.xml")));
    assert!(e.iter().any(|e| e.contains("seed threat E-3 is missing")), "{e:?}");
    // Twice the same id; an id that does not match its category.
    let reg = read("register.toml").replacen("id = \"S-2\"", "id = \"S-1\"", 1);
    assert!(
        errors(&inputs_with(&reg, &read("junit.xml")))
            .iter()
            .any(|e| e.contains("used twice"))
    );
    let reg = read("register.toml").replacen("id = \"I-1\"", "id = \"D-9\"", 1);
    assert!(
        errors(&inputs_with(&reg, &read("junit.xml")))
            .iter()
            .any(|e| e.contains("`I-<number>`"))
    );
    // An accepted risk must say what is left.
    let reg = read("register.toml").replacen("status = \"mitigated\"", "status = \"accepted\"", 1);
    only_error(&inputs_with(&reg, &read("junit.xml")), "S-1", "residual_risk");
    // A misspelt field is a parse error, not a threat silently without evidence.
    let reg = read("register.toml").replacen("tests = [", "test = [", 1);
    assert!(Register::parse(&reg, "r").is_err());
    let reg = read("register.toml").replacen("severity = \"High\"", "severity = \"Severe\"", 1);
    assert!(Register::parse(&reg, "r").is_err());
}

#[test]
fn the_table_escapes_pipes_and_renders_every_threat() {
    let reg = Register::parse(&read("register.toml"), "r").unwrap();
    let t = render::table(&reg);
    assert!(t.contains("Mitigation of S-1 \\| with a pipe"), "{t}");
    assert_eq!(
        t.lines().filter(|l| l.starts_with("| ")).count(),
        19,
        "a header and 18 rows"
    );
    assert!(t.contains("- test: `fx::suite s1_holds`"));
    let doc = render::update_document(&read("threat-model.md"), &reg).unwrap();
    assert!(doc.starts_with("# Fixture\n\nProse."));
    assert!(doc.ends_with("More prose.\n"));
    assert!(render::is_current(&doc, &reg).unwrap());
    assert_eq!(
        render::update_document(&doc, &reg).unwrap(),
        doc,
        "rendering is idempotent"
    );
}

/// A temporary repository laid out like Sluice's, from the fixtures.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["docs", "infra/rules", "scripts", ".ci"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let copy = |from: &str, to: &str| std::fs::copy(fixtures().join(from), root.join(to)).unwrap();
    copy("register.toml", "docs/threats.toml");
    copy("threat-model.md", "docs/threat-model.md");
    copy("rules/fixture.guard", "infra/rules/fixture.guard");
    copy("scripts/step.sh", "scripts/step.sh");
    copy("junit.xml", "junit.xml");
    copy("checkov.json", "checkov.json");
    std::fs::write(root.join(".ci/run"), "bash scripts/step.sh\n").unwrap();
    dir
}

fn cli(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-threats"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_binary_renders_then_checks_and_exits_non_zero_on_failure() {
    let dir = repo();
    let root = dir.path();
    let check_args = [
        "check",
        "--junit",
        "junit.xml",
        "--checkov",
        "checkov.json",
        "--today",
        "2026-11-27",
    ];
    let junit = root.join("junit.xml").display().to_string();
    let checkov = root.join("checkov.json").display().to_string();
    let args: Vec<&str> = check_args
        .iter()
        .map(|a| match *a {
            "junit.xml" => junit.as_str(),
            "checkov.json" => checkov.as_str(),
            other => other,
        })
        .collect();
    // The fixture document has an empty table: stale until rendered.
    let (code, out) = cli(root, &args);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("run `sluice-threats render`"), "{out}");
    let (code, out) = cli(root, &["render"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(root, &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("18 threats, 0 with failing evidence"), "{out}");
    // A test that did not run makes the binary fail, naming the threat.
    std::fs::write(
        root.join("junit.xml"),
        read("junit.xml").replace("e2_holds", "e2_other"),
    )
    .unwrap();
    let (code, out) = cli(root, &args);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: E-2: test `fx::suite e2_holds` did not run"),
        "{out}"
    );
    // A missing report is an error of its own (exit 2), never a pass.
    let (code, out) = cli(root, &["check", "--junit", "/nonexistent/junit.xml"]);
    assert_eq!(code, 2, "{out}");
}
