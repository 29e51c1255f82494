#!/usr/bin/env bash
# Bad-input fuzzing of the running API (T-1, I-2, D-5): schemathesis generates valid and invalid
# requests from the OpenAPI document a real `sluice serve` publishes at /openapi.json and fails on
# any 5xx, any undocumented status, content type or header, or any body that does not match the
# document. Bounded: FUZZ_MAX_EXAMPLES cases per operation and phase (default 100), and the whole
# run is killed after FUZZ_TIMEOUT seconds (default 600). FUZZ_SEED makes a run reproducible.
#
# Needs python3 and cargo; installs schemathesis (pinned) itself.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-100}
TIMEOUT=${FUZZ_TIMEOUT:-600}
SEED=${FUZZ_SEED:-$RANDOM}

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'fuzz-api: %s\n' "$*" >&2; exit 1; }

step "schemathesis ${SCHEMATHESIS_VERSION}"
python3 -m pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
ST=(python3 -m schemathesis.cli)
"${ST[@]}" --version >/dev/null 2>&1 || ST=(schemathesis)
"${ST[@]}" --version

step "building sluice"
cargo build --locked -p sluice --bin sluice
BIN="${CARGO_TARGET_DIR:-target}/debug/sluice"
[[ -x "$BIN" ]] || fail "no binary at $BIN"

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

DATA="$WORK/data"
KEY=$("$BIN" keys create --tenant fuzz --label schemathesis --data-dir "$DATA")
# A second tenant's event, so the fuzzer's reads can only ever meet 404 for it (I-3/I-4).
OTHER=$("$BIN" keys create --tenant other --data-dir "$DATA")

step "starting sluice serve"
# Generous throttling: the fuzzer is one client sending as fast as it can; 429 is documented, but a
# run that is mostly 429s would test little. Long-polls end within a second (any `wait` the fuzzer
# draws is valid, and waiting it out would only slow the run), and the SSE stream, which never
# ends, is left out: tests/feed.rs drives it.
SLUICE_THROTTLE__RATE_PER_SEC=100000 SLUICE_THROTTLE__BURST=100000 \
SLUICE_THROTTLE__GLOBAL_RATE_PER_SEC=100000 SLUICE_THROTTLE__GLOBAL_BURST=100000 \
SLUICE_FEED__MAX_WAIT_SECS=1 \
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 300); do
  ADDR=$(python3 - "$WORK/server.log" <<'PY' || true
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if "sluice listening" in line and v.get("addr"):
        print(v["addr"])
        break
PY
)
  [[ -n "$ADDR" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; fail "sluice serve exited"; }
  sleep 0.1
done
[[ -n "$ADDR" ]] || { cat "$WORK/server.log" >&2; fail "sluice serve did not start"; }
BASE="http://${ADDR}"
echo "listening on ${BASE}"
curl -fsS -o /dev/null -X POST "${BASE}/v1/events" -H "authorization: Bearer ${OTHER}" \
  -H 'content-type: application/json' -d '{"type":"other.secret","data":{"v":1}}'

step "schemathesis: ${MAX_EXAMPLES} examples per operation, seed ${SEED}, at most ${TIMEOUT}s"
# One worker: CPython 3.11.7 has a race in ast.parse under threads ("AST constructor recursion
# depth mismatch") that hypothesis trips when it describes strategies from several workers.
set +e
timeout --signal=INT "$TIMEOUT" "${ST[@]}" run "${BASE}/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --header "Authorization: Bearer ${KEY}" \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --request-timeout 10 \
  --exclude-path /v1/feed/stream \
  --workers 1 \
  --no-color \
  --report junit,ndjson --report-dir "$WORK/report" 2>&1 | tee "$WORK/schemathesis.log"
STATUS=${PIPESTATUS[0]}
set -e

# The number of generated cases and of failures, from the JUnit report and the summary.
python3 - "$WORK/report" "$WORK/schemathesis.log" <<'PY'
import glob, re, sys, xml.etree.ElementTree as ET
report, log = sys.argv[1], sys.argv[2]
text = open(log, encoding="utf-8", errors="replace").read()
m = re.search(r"Test cases:\s*(.*)", text)
print("schemathesis test cases:", m.group(1).strip() if m else "(summary line not found)")
for path in glob.glob(f"{report}/**/*.xml", recursive=True):
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    n = sum(1 for _ in cases)
    fails = sum(1 for c in root.iter("testcase") if c.find("failure") is not None or c.find("error") is not None)
    print(f"schemathesis operations in the JUnit report: {n}, failing: {fails}")
PY

if kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "server still up after the run"
else
  cat "$WORK/server.log" >&2
  fail "sluice serve died during the run"
fi
if grep -q '"level":"ERROR"' "$WORK/server.log"; then
  grep '"level":"ERROR"' "$WORK/server.log" | head -20 >&2
  fail "the server logged errors during the run"
fi
case "$STATUS" in
  0) echo "fuzz-api: ok" ;;
  124) fail "schemathesis did not finish within ${TIMEOUT}s" ;;
  *) fail "schemathesis found failures (exit ${STATUS}); reproduce with FUZZ_SEED=${SEED}" ;;
esac
