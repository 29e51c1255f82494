#!/usr/bin/env bash
# Supply chain (E-3): licences, bans and sources with cargo-deny (deny.toml), then known
# vulnerabilities with cargo-audit against an offline copy of the RustSec advisory database
# (.cargo/audit.toml: every ignored advisory carries its reason). Fails on any finding.
#
# Installs its tools (pinned, `cargo install --locked`) when missing. The database is looked up in
# $SLUICE_ADVISORY_DB, then ../shared/advisory-db beside the repository (CI), then beside the
# parent of a git worktree; a missing database fails the check, it never skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
AUDIT_VERSION=0.22.2

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'check-supply-chain: %s\n' "$*" >&2; exit 1; }

# `cargo install` only when the pinned version is not already there (it takes minutes).
ensure() {
  local bin=$1 crate=$2 version=$3
  if "$bin" --version 2>/dev/null | grep -q " ${version}\$"; then
    return
  fi
  step "installing ${crate} ${version}"
  cargo install --locked "${crate}@${version}"
}

ensure cargo-deny cargo-deny "$DENY_VERSION"
ensure cargo-audit cargo-audit "$AUDIT_VERSION"

find_db() {
  local candidates=()
  [[ -n "${SLUICE_ADVISORY_DB:-}" ]] && candidates+=("$SLUICE_ADVISORY_DB")
  candidates+=("../shared/advisory-db")
  local common
  common=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
  [[ -n "$common" ]] && candidates+=("$(dirname "$(dirname "$common")")/shared/advisory-db")
  for c in "${candidates[@]}"; do
    if [[ -d "$c/crates" ]]; then
      (cd "$c" && pwd)
      return
    fi
  done
  return 1
}

DB=$(find_db) || fail "no RustSec advisory database found (set SLUICE_ADVISORY_DB or provide ../shared/advisory-db)"

step "ignored advisories must say why (.cargo/audit.toml)"
python3 - <<'PY'
import re, sys
text = open(".cargo/audit.toml", encoding="utf-8").read()
m = re.search(r"^ignore\s*=\s*\[(.*?)^\]", text, re.S | re.M)
bad = []
for line in (m.group(1).splitlines() if m else []):
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    ids = re.findall(r'"(RUSTSEC-\d{4}-\d{4})"', s)
    reason = s.split("#", 1)[1].strip() if "#" in s else ""
    if not ids or len(ids) > 1 or len(reason) < 15:
        bad.append(s)
if bad:
    sys.exit("each ignored advisory needs its own line with a '# reason': " + "; ".join(bad))
print("ok")
PY

step "cargo deny check licenses bans sources"
cargo deny --locked --workspace --log-level error check --show-stats licenses bans sources

step "cargo audit (offline, $(head -c 200 "$DB/SNAPSHOT.txt" 2>/dev/null | head -n1 || echo "$DB"))"
# --deny warnings: unmaintained and unsound crates fail too, unless ignored with a reason.
cargo audit --db "$DB" --no-fetch --deny warnings
echo "supply chain: ok"
