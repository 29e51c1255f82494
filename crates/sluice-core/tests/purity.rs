//! The core does no I/O: no files, no environment, no sockets, processes or threads, and no
//! async runtime, and it has no HTTP, SQLite or AWS dependency. The hosts (`sluice-host`, the
//! binaries) read what the core needs and hand it in parsed. This test fails if any of that
//! comes back, in the code (outside its unit tests) or in the manifest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// Paths whose use means I/O or a runtime.
const FORBIDDEN_PATHS: &[&str] = &[
    "std::fs",
    "std::env",
    "std::net",
    "std::process",
    "std::thread",
    "std::io::stdin",
    "std::io::stdout",
    "tokio",
    "rusqlite",
    "aws_",
    "axum",
    "hyper",
    "reqwest",
];

/// Dependencies the core must not have.
const FORBIDDEN_DEPENDENCIES: &[&str] = &[
    "tokio",
    "rusqlite",
    "axum",
    "hyper",
    "reqwest",
    "tower",
    "lambda",
    "aws-",
    "tracing-subscriber",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code before its unit tests (test modules sit at the end and may use a runtime).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_core_does_no_io_and_has_no_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() > 10, "found the sources: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let code = code(file);
        for path in FORBIDDEN_PATHS {
            if code.contains(path) {
                found.push(format!("{}: {path}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "I/O in the core: {found:#?}");
}

#[test]
fn the_core_depends_on_no_runtime_adapter_or_host_crate() {
    let manifest: toml::Table = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deps = manifest["dependencies"].as_table().unwrap();
    assert!(deps.contains_key("serde"), "read the dependency table");
    let bad: Vec<&String> = deps
        .keys()
        .filter(|d| FORBIDDEN_DEPENDENCIES.iter().any(|f| d.starts_with(f)))
        .collect();
    assert!(bad.is_empty(), "the core depends on {bad:?}");
}

#[test]
fn the_check_would_see_a_file_read() {
    let dir = std::env::temp_dir().join(format!("sluice-purity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.rs");
    std::fs::write(
        &file,
        "fn f() { let _ = std::fs::read(\"x\"); }\n#[cfg(test)]\nmod tests { use tokio; }\n",
    )
    .unwrap();
    let code = code(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(code.contains("std::fs"));
    assert!(!code.contains("tokio"), "unit tests are not the core's code");
}
