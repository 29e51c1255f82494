//! `functions.toml` is well formed and names exactly this crate's binaries. (That its `env` and
//! `actions` lists are exact is proven by `tests/e2e.rs`, which runs every function on moto.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

#[test]
fn e1_the_manifest_lists_the_four_binaries_with_sorted_unique_env_and_actions() {
    let manifest = common::manifest();
    let functions = manifest["functions"].as_table().unwrap();
    let names: BTreeSet<&str> = functions.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["authorizer", "ingest", "process", "query"]));

    let cargo: toml::Table = std::fs::read_to_string(format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .parse()
        .unwrap();
    let bins: BTreeSet<&str> = cargo["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    for (name, f) in functions {
        let binary = f["binary"].as_str().unwrap();
        assert_eq!(binary, format!("sluice-{name}"));
        assert!(bins.contains(binary), "{binary} is not a [[bin]]");
        for key in ["env", "actions"] {
            let list: Vec<&str> = f[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(list, sorted, "{name}.{key} must be sorted and unique");
            assert!(!list.is_empty(), "{name}.{key}");
        }
        for action in f["actions"].as_array().unwrap() {
            let action = action.as_str().unwrap();
            let (service, op) = action.split_once(':').unwrap();
            assert!(["dynamodb", "sqs", "ssm"].contains(&service), "{action}");
            assert!(!op.contains('*'), "{action}: no wildcards (E-1)");
        }
    }
    // Least privilege in one line each: who may write what.
    let actions = |f: &str| common::manifest_list(f, "actions");
    assert!(actions("authorizer").iter().all(|a| a == "dynamodb:GetItem"));
    // The query function writes tombstones and erasure records to the events table and
    // deletes idempotency records, but never touches the queue.
    assert!(!actions("query").iter().any(|a| a.starts_with("sqs:")));
    assert!(!actions("ingest").contains("dynamodb:Query"));
}
