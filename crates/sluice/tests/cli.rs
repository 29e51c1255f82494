//! The command line's conventions, on the real binary: one output convention for every listing
//! (`--output table|json`), exit statuses a script can act on, shell completions, and start-up
//! errors that say in one line which setting is wrong and what to do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BIN, create_key, sluice};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `sluice` with `args` over `data_dir`, whatever its exit status, with no `SLUICE_*`
/// variable of the test's own environment.
fn run(data_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data-dir").arg(data_dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")) {
        cmd.env_remove(k);
    }
    cmd.output().expect("run sluice")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_status(out: &Output, code: i32, args: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "sluice {args}: expected exit status {code}; stderr: {}",
        stderr(out)
    );
}

/// The stored hashes of every key, read from the store itself.
fn stored_hashes(data_dir: &Path) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = sluice_embedded::StoreDb::open(&data_dir.join("store.db")).unwrap();
    let keys = rt.block_on(sluice_core::ports::KeyStore::list(&store.keys())).unwrap();
    keys.into_iter().map(|k| k.secret_hash).collect()
}

#[test]
fn s4_keys_list_aligns_its_table_and_never_shows_a_secret_or_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let short = create_key(&data, "a", &["--label", "x"]);
    let long = create_key(&data, "a-much-longer-tenant-name", &["--expires-in", "90d"]);
    let hashes = stored_hashes(&data);
    assert_eq!(hashes.len(), 2);

    let table = sluice(&data, &["keys", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header = lines[0];
    assert!(header.starts_with("id "), "{table}");
    // Each column starts where its header does, on every line, after a two-space gap.
    for column in ["tenant", "created", "expires", "revoked", "label"] {
        let at = header
            .find(column)
            .unwrap_or_else(|| panic!("no {column} column: {table}"));
        for line in &lines[1..] {
            if line.len() <= at {
                // Only an empty last cell ends a line early (no trailing spaces).
                assert_eq!(column, "label", "{table}");
                continue;
            }
            assert_eq!(&line[at - 2..at], "  ", "{column} misaligned:\n{table}");
            assert_ne!(&line[at..=at], " ", "{column} misaligned:\n{table}");
        }
    }
    assert!(lines.iter().any(|l| l.contains("a-much-longer-tenant-name")));

    let json = sluice(&data, &["keys", "list", "--output", "json"]);
    let rows: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2, "{json}");
    for row in &rows {
        let members: BTreeSet<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            members,
            BTreeSet::from(["id", "tenant", "created", "expires", "revoked", "label"]),
            "{row}"
        );
    }
    assert_eq!(rows[0]["tenant"], "a");
    assert_eq!(rows[0]["label"], "x");
    assert!(rows[0]["expires"].is_null());
    assert!(rows[1]["expires"].is_string());

    for out in [&table, &json] {
        for key in [&short, &long] {
            let secret = key.split('.').nth(1).unwrap();
            assert!(!out.contains(secret), "a listing printed a key's secret:\n{out}");
        }
        for hash in &hashes {
            assert!(!out.contains(hash.as_str()), "a listing printed a key's hash:\n{out}");
        }
    }
}

#[test]
fn status_and_dlq_list_follow_the_same_output_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let table = sluice(&data, &["status"]);
    assert_eq!(
        table,
        "queue  visible  in_flight\nqueue  0        0\ndlq    0        0\n"
    );
    let doc: Value = serde_json::from_str(&sluice(&data, &["status", "--output", "json"])).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"queue": {"visible": 0, "in_flight": 0}, "dlq": {"visible": 0, "in_flight": 0}})
    );
    // The flag is global: before the subcommand too.
    let before: Value = serde_json::from_str(&sluice(&data, &["--output", "json", "status"])).unwrap();
    assert_eq!(before, doc);

    assert_eq!(
        sluice(&data, &["dlq", "list"]),
        "message_id  sent_at  receive_count  attributes\n"
    );
    assert_eq!(sluice(&data, &["dlq", "list", "--output", "json"]), "");

    let bad = run(&data, &["status", "--output", "yaml"]);
    assert_status(&bad, 2, "status --output yaml");
}

#[test]
fn exit_statuses_say_not_found_refused_unavailable_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = create_key(&data, "acme", &[]);
    let id = key.split('.').next().unwrap();
    let unknown = "key_01jabcdefghjkmnpqrstvwxyz0";

    // 3: not found.
    for args in [["keys", "revoke", unknown].as_slice(), &["keys", "rotate", unknown]] {
        let out = run(&data, args);
        assert_status(&out, 3, &args.join(" "));
        assert!(stderr(&out).contains("no such key"), "{}", stderr(&out));
    }
    // 4: refused (invalid input, or an operation not allowed).
    let out = run(&data, &["keys", "create", "--tenant", "Not A Tenant!"]);
    assert_status(&out, 4, "keys create --tenant 'Not A Tenant!'");
    let out = run(&data, &["keys", "revoke", "not-a-key-id"]);
    assert_status(&out, 4, "keys revoke not-a-key-id");
    let out = run(&data, &["keys", "revoke", id]);
    assert_status(&out, 0, "keys revoke");
    let out = run(&data, &["keys", "rotate", id]);
    assert_status(&out, 4, "keys rotate <revoked>");
    assert!(stderr(&out).contains("is revoked"), "{}", stderr(&out));
    // 5: unavailable (the store cannot be opened: the data directory is a file).
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for args in [["keys", "list"].as_slice(), &["status"], &["dlq", "list"]] {
        let out = run(&file, args);
        assert_status(&out, 5, &args.join(" "));
    }
    // 2: usage, clap's own.
    for args in [
        ["keys", "frobnicate"].as_slice(),
        &["keys", "create"],
        &["completions", "tcsh"],
    ] {
        let out = run(&data, args);
        assert_status(&out, 2, &args.join(" "));
    }
}

#[test]
fn help_documents_every_exit_status() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_status(&out, 0, "--help");
    let help = String::from_utf8(out.stdout).unwrap();
    for line in [
        "Exit status:",
        "  0  success",
        "  1  failure",
        "  2  usage",
        "  3  not found",
        "  4  refused",
        "  5  unavailable",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}:\n{help}");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN).args(["completions", shell]).output().unwrap();
        assert_status(&out, 0, &format!("completions {shell}"));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        for word in ["serve", "keys", "rotate", "completions", "output"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
}

#[test]
fn a_missing_schema_dir_is_one_line_that_names_the_setting_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-schemas-here");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("SLUICE_SCHEMA_DIR", &missing)
        .env("SLUICE_LOG__LEVEL", "error")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a missing schema directory is refused configuration: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line:\n{err}");
    let line = lines[0];
    assert!(line.starts_with("sluice: schema_dir: "), "{line}");
    assert!(line.contains(&missing.display().to_string()), "{line}");
    assert!(line.contains("does not exist"), "{line}");
    assert!(
        line.contains("create it") && line.contains("remove the setting"),
        "{line}"
    );
    assert!(!line.contains("os error"), "the OS error is repeated: {line}");
}

#[test]
fn cost_and_completions_run_without_reading_the_configuration() {
    // The AWS backend chosen but its resource names unset: commands that need no configuration
    // still run; one that does says which variable is missing, as a refusal (4).
    for args in [&["cost"][..], &["completions", "bash"][..]] {
        let out = Command::new(BIN)
            .args(args)
            .env("SLUICE_BACKEND", "aws")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let out = Command::new(BIN)
        .arg("status")
        .env("SLUICE_BACKEND", "aws")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SLUICE_QUEUE_URL"));
}

#[test]
fn aws_provision_refuses_bad_settings_and_a_missing_region_before_any_call() {
    // No endpoint would answer: every refusal here happens before a request is made.
    let bad: [&[&str]; 4] = [
        &["aws", "provision", "--prefix", "a b"],
        &["aws", "provision", "--retention", "10s"],
        &["aws", "provision", "--visibility-timeout", "13h"],
        &["aws", "provision", "--max-receive-count", "0"],
    ];
    for args in bad {
        let out = Command::new(BIN)
            .args(args)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("SLUICE_BACKEND", "aws")
            .output()
            .unwrap();
        let code = out.status.code();
        // clap's own range check is a usage error (2); Sluice's checks are refusals (4).
        assert!(matches!(code, Some(2 | 4)), "{args:?}: {code:?} {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: nothing exported");
    }
    let out = Command::new(BIN)
        .args(["aws", "provision"])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", "/nonexistent/sluice-test/config")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("AWS_REGION"), "{}", stderr(&out));
}
