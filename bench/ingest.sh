#!/usr/bin/env bash
# Durable ingest and end-to-end throughput of `sluice serve` (release build) on this machine.
#   bash bench/ingest.sh [seconds] [connections]
# Ingest rate: 202s per second from wrk (one event per request). End-to-end rate: accepted events
# divided by the time from the start of the load until the queue is empty (every event stored).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNS=${2:-64}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --locked -q -p sluice
BIN=target/release/sluice
DATA=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
export SLUICE_THROTTLE__RATE_PER_SEC=10000000 SLUICE_THROTTLE__BURST=10000000
export SLUICE_THROTTLE__GLOBAL_RATE_PER_SEC=10000000 SLUICE_THROTTLE__GLOBAL_BURST=10000000
export SLUICE_LOG__LEVEL=warn
SLUICE_KEY=$($BIN keys create --tenant bench --data-dir "$DATA" 2>/dev/null)
export SLUICE_KEY
$BIN serve --listen 127.0.0.1:18080 --data-dir "$DATA" > "$DATA/serve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
START=$(date +%s.%N)
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s bench/post-one.lua http://127.0.0.1:18080/v1/events | tee "$DATA/wrk.txt"
while :; do
  S=$($BIN status --output json --data-dir "$DATA")
  python3 -c "import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s['queue']['visible']+s['queue']['in_flight']==0 else 1)" "$S" && break
  sleep 0.2
done
END=$(date +%s.%N)
RSS=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
REQS=$(awk '/requests in/{print $1}' "$DATA/wrk.txt")
NON2XX=$(awk '/Non-2xx/{print $5}' "$DATA/wrk.txt"); NON2XX=${NON2XX:-0}
ACCEPTED=$((REQS - NON2XX))
python3 - "$ACCEPTED" "$DURATION" "$START" "$END" "$RSS" "$NON2XX" <<'PY'
import sys
acc, dur, start, end, rss, non2xx = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print(f"accepted (202): {acc}  refused: {non2xx}")
print(f"durable ingest: {acc/dur:,.0f} events/s")
print(f"end to end (HTTP -> store, queue drained): {acc/(end-start):,.0f} events/s over {end-start:.1f} s")
print(f"peak RSS of sluice serve: {rss/1024:.1f} MiB")
PY
