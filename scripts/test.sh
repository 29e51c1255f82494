#!/usr/bin/env bash
# Every check and test Sluice has, in the order a failure is cheapest to find.
# This is the README's test command; .ci/run installs the tools and then runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (unit, property, conformance, API, crash)"
cargo nextest run --workspace --locked --no-fail-fast
