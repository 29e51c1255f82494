#!/usr/bin/env bash
# Every check and test Sluice has, in the order a failure is cheapest to find.
# This is the README's test command; .ci/run installs the base tools and then runs exactly this.
# The steps that need more (cargo-lambda, cfn-lint, sam, checkov, cfn-guard, schemathesis,
# cargo-deny, cargo-audit) install their pinned versions themselves, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (unit, property, conformance on SQLite and moto, API, Lambda handlers, fault, crash)"
cargo nextest run --profile ci --workspace --locked --no-fail-fast

step "the console in a browser (headless Chromium, Selenium): tests/browser"
bash scripts/browser-tests.sh

if [[ "${SLUICE_FREE_TEST_BINARIES:-0}" == 1 ]]; then
  # CI's disk is not ours to size: the test executables (a few GB) have reported into the JUnit
  # file and are not run again, so they go before the release builds need the space.
  step "freeing the test executables (SLUICE_FREE_TEST_BINARIES=1)"
  find "$TARGET/debug/deps" -maxdepth 1 -type f -perm -u+x ! -name '*.so' -delete
  rm -rf "$TARGET/debug/incremental"
  du -sh "$TARGET" || true
fi

step "Lambda functions: cargo lambda build --profile aws-lambda --x86-64, each under 10 MiB"
bash scripts/build-lambdas.sh

if [[ "${SLUICE_FREE_TEST_BINARIES:-0}" == 1 ]]; then
  # The zipped-up bootstraps live in target/lambda; the release intermediates beside them (the
  # largest directory the run makes) are read by no later step.
  step "freeing the Lambda build's intermediates (SLUICE_FREE_TEST_BINARIES=1)"
  rm -rf "$TARGET/x86_64-unknown-linux-gnu"
  du -sh "$TARGET" || true
fi

step "infra: cfn-lint, sam validate, checkov, cfn-guard, template vs code"
bash scripts/check-infra.sh

step "per-event instruction counts against bench/instructions.toml (callgrind)"
bash scripts/check-instructions.sh

step "bad-input fuzzing of the running API (schemathesis)"
bash scripts/fuzz-api.sh

step "supply chain (E-3): cargo deny, cargo audit (offline advisory database)"
bash scripts/check-supply-chain.sh

step "threat model: every threat's evidence ran and passed in this run"
cargo run -q --locked -p sluice-threats -- check \
  --junit "$TARGET/nextest/ci/junit.xml" \
  --checkov "$TARGET/checkov/template.json" --checkov "$TARGET/checkov/template-all-options.json" \
  --checkov "$TARGET/checkov/template-http-all-options.json" \
  --checkov "$TARGET/checkov/template-http-jwt-all-options.json"
