#!/usr/bin/env bash
# Offline checks of the AWS deployment (infra/template.yaml, issue 4): cfn-lint, sam validate --lint,
# checkov, the cfn-guard rules in infra/rules/ with a failing fixture per rule, and the tests in infra/tests
# (template vs code, both API variants, the functions' metrics). Installs its tools idempotently:
# pinned PyPI packages in two virtualenvs (aws-sam-cli and checkov pin conflicting boto3 versions, so
# they cannot share one) and cfn-guard from crates.io. No network beyond the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION=1.58.0
SAM_CLI_VERSION=1.170.0
CHECKOV_VERSION=3.3.30
CFN_GUARD_VERSION=3.2.1
PYTEST_VERSION=8.4.2
TOOLS="${SLUICE_INFRA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-infra}"

# Offline and deterministic: a region for the SAM translator, no telemetry, no Prisma Cloud calls.
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 SAM_CLI_TELEMETRY=0
export BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false PYTHONDONTWRITEBYTECODE=1

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'check-infra: %s\n' "$*" >&2; exit 1; }

# venv DIR STAMP PACKAGES...: a virtualenv with exactly these pins, reinstalled only when they change.
venv() {
  local dir=$1 stamp=$2
  shift 2
  if [[ -f "$dir/.sluice-stamp" && "$(cat "$dir/.sluice-stamp")" == "$stamp" ]]; then
    return
  fi
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  printf '%s' "$stamp" >"$dir/.sluice-stamp"
}

step "tools"
venv "$TOOLS/sam" "sam=$SAM_CLI_VERSION lint=$CFN_LINT_VERSION pytest=$PYTEST_VERSION" \
  "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION" "pytest==$PYTEST_VERSION"
venv "$TOOLS/checkov" "checkov=$CHECKOV_VERSION" "checkov==$CHECKOV_VERSION"
if ! command -v cfn-guard >/dev/null 2>&1 || [[ "$(cfn-guard --version)" != *"$CFN_GUARD_VERSION"* ]]; then
  cargo install --locked cfn-guard --version "$CFN_GUARD_VERSION"
fi
SAM="$TOOLS/sam/bin/sam"
CFN_LINT="$TOOLS/sam/bin/cfn-lint"
SAM_PY="$TOOLS/sam/bin/python"
CHECKOV="$TOOLS/checkov/bin/checkov"
echo "cfn-lint $("$CFN_LINT" --version | awk '{print $2}'), $("$SAM" --version), checkov $("$CHECKOV" --version), $(cfn-guard --version)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# cfn-guard sees every resource, but checkov drops those whose Condition is false under the defaults, and
# sam validate lints one rendering: the template (REST API, defaults) is checked together with renderings
# whose defaults switch every option on (trail, WAF, domain, VPC, SigV4; infra/tests/all-options.py), once
# per API variant: the REST API, the HTTP API with the Sluice key authorizer, the HTTP API with the JWT
# authorizer. Each rendering's checkov report is named after it.
TEMPLATE=infra/template.yaml
RENDERINGS=("$TEMPLATE")
for variant in rest http http-jwt; do
  case $variant in
    rest) rendering="$work/template-all-options.yaml" ;;
    *) rendering="$work/template-$variant-all-options.yaml" ;;
  esac
  python3 infra/tests/all-options.py "$TEMPLATE" "$rendering" "$variant"
  RENDERINGS+=("$rendering")
done

step "cfn-lint"
"$CFN_LINT" "${RENDERINGS[@]}"

step "sam validate --lint"
for t in "${RENDERINGS[@]}"; do
  "$SAM" validate --lint -t "$t"
done

step "checkov (cloudformation framework)"
# The reports are kept for `sluice-threats check --checkov`, which proves the register's checkov evidence ran:
# template.json, template-all-options.json, template-http-all-options.json, template-http-jwt-all-options.json.
REPORTS="${CARGO_TARGET_DIR:-target}/checkov"
mkdir -p "$REPORTS"
for t in "${RENDERINGS[@]}"; do
  out="$REPORTS/$(basename "$t" .yaml).json"
  # Exit status is judged below from the report, where failed and skipped checks are itemised.
  "$CHECKOV" -f "$t" --framework cloudformation --skip-download -o json >"$out" 2>"$work/checkov.err" || true
  python3 - "$t" "$out" <<'EOF'
import json, re, sys
name, path = sys.argv[1], sys.argv[2]
try:
    report = json.load(open(path))
except ValueError:
    sys.exit(f"checkov produced no report for {name}")
if isinstance(report, list):
    report = next(r for r in report if r.get("check_type") == "cloudformation")
results = report["results"]
rows = {}
for key, verdict in (("passed_checks", "PASS"), ("failed_checks", "FAIL"), ("skipped_checks", "SKIP")):
    for c in results[key]:
        row = rows.setdefault(c["check_id"], {"name": c["check_name"], "PASS": 0, "FAIL": 0, "SKIP": 0})
        row[verdict] += 1
if not rows:
    sys.exit(f"checkov ran no check on {name}")
print(f"{name}: {len(rows)} checks")
for cid in sorted(rows, key=lambda c: (c.split("_")[0], int(re.sub(r"\D", "", c) or 0))):
    r = rows[cid]
    verdict = "FAIL" if r["FAIL"] else ("SKIP" if r["SKIP"] and not r["PASS"] else "PASS")
    counts = ", ".join(f"{k} {r[k]}" for k in ("PASS", "FAIL", "SKIP") if r[k])
    print(f"  {cid:<12} {verdict}  ({counts})  {r['name']}")
bad = []
for c in results["failed_checks"]:
    bad.append(f"FAILED {c['check_id']} on {c['resource']}: {c['check_name']}")
for c in results["skipped_checks"]:
    reason = c.get("check_result", {}).get("suppress_comment", "") or ""
    # A skip must say why, naming the threat it concerns or its compensating control (S-1 .. E-3).
    if not re.search(r"\b[STRDIE]-[1-4]\b", reason):
        bad.append(f"skip of {c['check_id']} on {c['resource']} gives no threat ID: {reason!r}")
if bad:
    sys.exit("\n".join(bad))
EOF
done

# guard_summary FILE: "rule VERDICT" lines for every rule in infra/rules/ on FILE.
guard_summary() {
  cfn-guard validate -d "$1" -r infra/rules --show-summary all 2>&1 \
    | sed -nE 's#^[A-Za-z0-9_.-]+\.guard/([A-Za-z0-9_]+)[[:space:]]+(PASS|FAIL|SKIP)$#\1 \2#p' || true
}

step "cfn-guard rules (infra/rules)"
mapfile -t rules < <(sed -nE 's/^rule ([A-Za-z0-9_]+).*/\1/p' infra/rules/*.guard | sort)
((${#rules[@]} > 0)) || fail "no rules in infra/rules"
for r in "${rules[@]}"; do
  [[ "$r" =~ ^[strdie][1-4]_ ]] || fail "rule $r is not named after a threat ID (s1_ .. e3_)"
done
for t in "${RENDERINGS[@]}"; do
  summary=$(guard_summary "$t")
  if ! cfn-guard validate -d "$t" -r infra/rules >/dev/null 2>&1; then
    cfn-guard validate -d "$t" -r infra/rules --show-summary fail || true
    fail "cfn-guard: $t breaks a rule"
  fi
  for r in "${rules[@]}"; do
    # SKIP counts as a failure here: on the real template every rule must have something to check.
    grep -qx "$r PASS" <<<"$summary" || fail "rule $r did not PASS on $t: $(grep "^$r " <<<"$summary" || echo missing)"
  done
  echo "$t: ${#rules[@]} rules PASS"
done

step "cfn-guard failing fixtures (infra/tests/guard_fixtures.py)"
"$SAM_PY" infra/tests/guard_fixtures.py "$TEMPLATE" "$work/fixtures" >"$work/fixtures.txt"
declare -A covered=()
fixtures=0
while read -r rule path; do
  fixtures=$((fixtures + 1))
  summary=$(guard_summary "$path")
  grep -qx "$rule FAIL" <<<"$summary" || fail "fixture $(basename "$path") does not FAIL rule $rule"
  others=$(grep ' FAIL$' <<<"$summary" | grep -v "^$rule FAIL$" || true)
  [[ -z "$others" ]] || fail "fixture $(basename "$path") also fails: $others"
  covered[$rule]=1
  printf '  %-45s FAILS on %s\n' "$rule" "$(basename "$path" .json | sed 's/.*--//')"
done <"$work/fixtures.txt"
for r in "${rules[@]}"; do
  [[ -n "${covered[$r]:-}" ]] || fail "rule $r has no failing fixture in infra/tests/guard_fixtures.py"
done
declare -A known=()
for r in "${rules[@]}"; do known[$r]=1; done
for r in "${!covered[@]}"; do
  [[ -n "${known[$r]:-}" ]] || fail "fixture names unknown rule $r"
done
echo "${#rules[@]} rules, $fixtures fixtures, each fixture fails exactly its rule"

step "template vs code, both API variants, metrics (infra/tests against crates/sluice-lambda/functions.toml, crates/sluice-core/src/metrics.rs)"
"$SAM_PY" -m pytest -p no:cacheprovider -q infra/tests

echo
echo "check-infra: all checks passed"
