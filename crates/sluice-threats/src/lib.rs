//! The threat model as code: one register (`docs/threats.toml`) traced to evidence that CI checks.
//!
//! # Layout
//! - [`register`]: the register's types, parsed strictly (unknown fields and unknown STRIDE
//!   categories, severities or statuses are errors, not silently ignored).
//! - [`junit`]: reads nextest's JUnit report into test outcomes keyed `"<binary-id> <test name>"`,
//!   the form nextest prints (`sluice-http::security s1_wrong_key_gets_401`).
//! - [`evidence`]: the other kinds of evidence: cfn-guard rule names under `infra/rules`, checkov
//!   reports, CI step scripts.
//! - [`render`]: the STRIDE table of `docs/threat-model.md`, generated from the register between
//!   two markers, so the document and the register can never disagree.
//! - [`check`]: puts it together into findings (errors fail CI, warnings do not) and the matrix.
//!
//! The binary (`sluice-threats check --junit target/nextest/ci/junit.xml`, `sluice-threats render`)
//! is a thin shell over [`check::check`] and [`render::update_document`].

pub mod check;
pub mod evidence;
pub mod junit;
pub mod register;
pub mod render;

pub use check::{Finding, Inputs, Level, Report, check};
pub use register::Register;
