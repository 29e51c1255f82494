//! `sluice-threats`: check the threat register against this CI run, or regenerate the table of
//! the threat-model document.
//!
//! ```text
//! sluice-threats check --junit target/nextest/ci/junit.xml [--checkov report.json]
//! sluice-threats render
//! ```
//! Run `check` after the nextest run that wrote the report: a test named as evidence must have
//! run and passed in this very run.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_threats::evidence::{checkov_file, guard_rules_in};
use sluice_threats::junit::Results;
use sluice_threats::{Inputs, Level, Register, check, render};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The threat model as code.
#[derive(Debug, Parser)]
#[command(name = "sluice-threats", version, about)]
struct Cli {
    /// Repository root (default: the nearest ancestor of the working directory with docs/threats.toml).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every threat's evidence and print the matrix; exit 1 on any error.
    Check {
        /// nextest JUnit report(s) of this run (repeatable).
        #[arg(long, required_unless_present = "no_tests")]
        junit: Vec<PathBuf>,
        /// Skip test evidence (static checks only: register, rules, document).
        #[arg(long)]
        no_tests: bool,
        /// checkov JSON report(s) (`checkov -o json`), to verify checkov evidence.
        #[arg(long)]
        checkov: Vec<PathBuf>,
        /// Treat today as this date (YYYY-MM-DD), for the review age.
        #[arg(long)]
        today: Option<String>,
    },
    /// Rewrite the generated table of docs/threat-model.md from docs/threats.toml.
    Render,
}

const REGISTER: &str = "docs/threats.toml";
const DOCUMENT: &str = "docs/threat-model.md";
const RULES: &str = "infra/rules";
const CI_FILES: [&str; 2] = [".ci/run", "scripts/test.sh"];

fn find_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .find(|d| d.join(REGISTER).is_file())
        .map_or(cwd.clone(), Path::to_path_buf)
}

fn parse_date(s: &str) -> anyhow::Result<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, format).with_context(|| format!("--today {s:?} is not YYYY-MM-DD"))
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let root = cli.root.unwrap_or_else(find_root);
    let register = Register::load(&root.join(REGISTER))?;
    let doc_path = root.join(DOCUMENT);
    match cli.command {
        Command::Render => {
            let doc = std::fs::read_to_string(&doc_path).with_context(|| format!("reading {}", doc_path.display()))?;
            let updated = render::update_document(&doc, &register)?;
            if updated != doc {
                std::fs::write(&doc_path, updated).with_context(|| format!("writing {}", doc_path.display()))?;
                eprintln!("updated {}", doc_path.display());
            } else {
                eprintln!("{} is up to date", doc_path.display());
            }
            Ok(true)
        }
        Command::Check {
            junit,
            no_tests,
            checkov,
            today,
        } => {
            let junit = if no_tests {
                None
            } else {
                let mut results = Results::default();
                for p in &junit {
                    results.add_file(p)?;
                }
                Some(results)
            };
            let checkov = if checkov.is_empty() {
                None
            } else {
                let mut all = std::collections::BTreeMap::new();
                for p in &checkov {
                    for (id, outcome) in checkov_file(p)? {
                        let e = all.entry(id).or_insert(outcome);
                        if outcome == sluice_threats::evidence::CheckovOutcome::Failed {
                            *e = outcome;
                        }
                    }
                }
                Some(all)
            };
            let today = match today {
                Some(s) => parse_date(&s)?,
                None => time::OffsetDateTime::now_utc().date(),
            };
            let ci_text = CI_FILES
                .iter()
                .filter_map(|f| std::fs::read_to_string(root.join(f)).ok())
                .collect::<Vec<_>>()
                .join("\n");
            let inputs = Inputs {
                register,
                document: std::fs::read_to_string(&doc_path).ok(),
                junit,
                guard_rules: guard_rules_in(&root.join(RULES))?,
                checkov,
                root: root.clone(),
                ci_text,
                today,
            };
            let tests_in_report = inputs.junit.as_ref().map(Results::len);
            let review = &inputs.register.review;
            if let Ok(date) = review.last_reviewed_date() {
                println!(
                    "last review {date} ({} days ago; due every {} days and on: {})",
                    (inputs.today - date).whole_days(),
                    review.max_age_days,
                    review.triggers.join("; ")
                );
            }
            let report = check(&inputs);
            print!("{}", report.matrix());
            if let Some(n) = tests_in_report {
                println!(
                    "JUnit report(s): {n} test outcomes; guard rules declared: {}",
                    inputs.guard_rules.len()
                );
            }
            for finding in &report.findings {
                let level = match finding.level {
                    Level::Error => "error",
                    Level::Warning => "warning",
                };
                match &finding.threat {
                    Some(t) => println!("{level}: {t}: {}", finding.message),
                    None => println!("{level}: {}", finding.message),
                }
            }
            Ok(!report.failed())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("threat check FAILED");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sluice-threats: {e:#}");
            ExitCode::from(2)
        }
    }
}
