//! The generated part of `docs/threat-model.md`: the STRIDE table and the evidence per threat.
//!
//! Everything between [`BEGIN`] and [`END`] belongs to the register; `sluice-threats render`
//! rewrites it and `sluice-threats check` fails when it differs, so the prose around it can be
//! edited freely but the table cannot drift from `docs/threats.toml`.

use crate::register::{Register, Threat};
use std::fmt::Write as _;

/// The line that opens the generated block.
pub const BEGIN: &str = "<!-- BEGIN GENERATED: sluice-threats render (edit docs/threats.toml, not this table) -->";
/// The line that closes it.
pub const END: &str = "<!-- END GENERATED -->";

/// Why the document could not be updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The markers are missing, repeated or out of order.
    #[error("the document needs exactly one `{BEGIN}` line followed by one `{END}` line")]
    Markers,
}

/// Makes text safe inside one markdown table cell.
fn cell(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn evidence_summary(t: &Threat) -> String {
    let mut parts = Vec::new();
    for (n, one, many) in [
        (t.tests.len(), "test", "tests"),
        (t.guard_rules.len(), "guard rule", "guard rules"),
        (t.checkov.len(), "checkov check", "checkov checks"),
        (t.ci_steps.len(), "CI step", "CI steps"),
    ] {
        if n > 0 {
            parts.push(plural(n, one, many));
        }
    }
    if parts.is_empty() {
        "**none**".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The generated block, markers excluded.
pub fn table(register: &Register) -> String {
    let mut out = String::new();
    out.push_str("| ID | Threat | STRIDE | Severity | Status | Mitigation | Evidence |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for t in &register.threats {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&t.id),
            cell(&t.title),
            t.stride,
            t.severity,
            t.status,
            cell(&t.mitigation),
            evidence_summary(t)
        );
    }
    out.push_str("\n### Evidence by threat\n");
    for t in &register.threats {
        let _ = writeln!(out, "\n**{}: {}**", t.id, cell(&t.title));
        if !t.residual_risk.is_empty() {
            let _ = writeln!(out, "\n- residual risk: {}", cell(&t.residual_risk));
        } else {
            out.push('\n');
        }
        for (kind, items) in [
            ("test", &t.tests),
            ("guard rule", &t.guard_rules),
            ("checkov", &t.checkov),
            ("CI step", &t.ci_steps),
        ] {
            for item in items {
                let _ = writeln!(out, "- {kind}: `{item}`");
            }
        }
    }
    out
}

fn split(doc: &str) -> Result<(&str, &str, &str), RenderError> {
    let begin = doc.match_indices(BEGIN).map(|(i, _)| i).collect::<Vec<_>>();
    let end = doc.match_indices(END).map(|(i, _)| i).collect::<Vec<_>>();
    let (&[b], &[e]) = (begin.as_slice(), end.as_slice()) else {
        return Err(RenderError::Markers);
    };
    let inner_start = b + BEGIN.len();
    if e < inner_start {
        return Err(RenderError::Markers);
    }
    Ok((&doc[..inner_start], &doc[inner_start..e], &doc[e..]))
}

/// The document with its generated block replaced by the register's current table.
pub fn update_document(doc: &str, register: &Register) -> Result<String, RenderError> {
    let (head, _, tail) = split(doc)?;
    Ok(format!("{head}\n{}{tail}", table(register)))
}

/// Whether the document's generated block is exactly what the register renders to.
pub fn is_current(doc: &str, register: &Register) -> Result<bool, RenderError> {
    Ok(update_document(doc, register)? == doc)
}
