#!/usr/bin/env bash
# Builds the four Lambda function binaries (crates/sluice-lambda) with cargo-lambda and prints
# each bootstrap's size.
#
# CI builds x86_64 (`--x86-64`): the aarch64 standard library cannot be installed on these
# machines. The production build is arm64 (Graviton, cheaper per GB-second):
#     rustup target add aarch64-unknown-linux-gnu
#     cargo lambda build --release --arm64 -p sluice-lambda
# Output: target/lambda/<function>/bootstrap (one directory per [[bin]]).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION=1.9.2

if ! command -v cargo-lambda >/dev/null 2>&1 ||
    ! cargo-lambda lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
    echo "installing cargo-lambda $CARGO_LAMBDA_VERSION from PyPI" >&2
    python3 -m pip install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi

cargo lambda build --release --x86-64 -p sluice-lambda "$@"

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
done
exit $status
