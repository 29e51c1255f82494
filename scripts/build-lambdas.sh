#!/usr/bin/env bash
# Builds the four Lambda function binaries (crates/sluice-lambda) with cargo-lambda in the `aws-lambda`
# profile (the release profile optimised for size, see Cargo.toml), prints each bootstrap's size
# and fails when one is over MAX_BYTES: a function's package is fetched on every cold start.
#
# CI builds x86_64 (`--x86-64`): the aarch64 standard library cannot be installed on these
# machines. The production build is arm64 (Graviton, cheaper per GB-second):
#     rustup target add aarch64-unknown-linux-gnu
#     cargo lambda build --profile aws-lambda --arm64 -p sluice-lambda
# Output: target/lambda/<function>/bootstrap (one directory per [[bin]]).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION=1.9.2

if ! command -v cargo-lambda >/dev/null 2>&1 ||
    ! cargo-lambda lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
    echo "installing cargo-lambda $CARGO_LAMBDA_VERSION from PyPI" >&2
    python3 -m pip install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi

MAX_BYTES=$((10 * 1024 * 1024))

cargo lambda build --profile aws-lambda --x86-64 -p sluice-lambda "$@"

status=0
for f in sluice-authorizer sluice-ingest sluice-process sluice-query; do
    bin="target/lambda/$f/bootstrap"
    if [[ ! -f "$bin" ]]; then
        echo "missing $bin" >&2
        status=1
        continue
    fi
    bytes=$(stat -c %s "$bin")
    printf '%-18s %10d bytes  %6.1f MiB\n' "$f" "$bytes" "$(echo "$bytes / 1048576" | bc -l)"
    if ((bytes > MAX_BYTES)); then
        echo "FAIL: $bin is over $MAX_BYTES bytes (10 MiB): find what grew it" >&2
        status=1
    fi
done
exit $status
