#!/usr/bin/env bash
# Sluice's benchmark suite: every measurement next to its reference, in the same run, then
# docs/benchmarks.md and docs/benchmarks.png.
#
#   bash bench/run.sh            # full run (about 17 minutes on 2 cores)
#   bash bench/run.sh --quick    # shorter loads, fewer runs (about 5 minutes once built)
#
# Installs what it needs if missing (wrk and valgrind from apt, a venv with the pinned Python
# packages of bench/python/requirements.txt), builds release binaries, and keeps every load on
# 127.0.0.1 and bounded in time. Results: target/bench/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
if ((QUICK)); then SECS=3; RUNS=3; PROC_EVENTS=5000; E2E_SECS=5; CALL_N=(5 25); REPS=1; FEED_EVENTS=20000; else SECS=10; RUNS=7; PROC_EVENTS=20000; E2E_SECS=10; CALL_N=(10 60); REPS=3; FEED_EVENTS=50000; fi
CONNS=(1 16 64 256)
OUT=target/bench
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
log() { printf '\n==> %s\n' "$*" >&2; }
record() { echo "$1" >> "$RESULTS"; }

# --- tools --------------------------------------------------------------------------------------
need_apt() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt)"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
need_apt wrk valgrind curl
VENV=target/bench-venv
if [[ ! -x $VENV/bin/python ]] || ! $VENV/bin/python -c 'import awslambdaric, aws_lambda_powertools, boto3, matplotlib' 2>/dev/null; then
  log "creating $VENV with bench/python/requirements.txt"
  python3 -m venv "$VENV"
  $VENV/bin/pip install -q -r bench/python/requirements.txt
fi
PY=$VENV/bin/python
python3 -c 'import moto' 2>/dev/null || { log "installing moto[server] for the moto runs"; python3 -m pip install -q 'moto[server]==5.2.*'; }

# --- build --------------------------------------------------------------------------------------
log "building release binaries"
cargo build --release --locked -q -p sluice -p sluice-bench
SLUICE=target/release/sluice
BENCH=target/release/sluice-bench
LAMBDA_BINS=(sluice-authorizer sluice-ingest sluice-process sluice-query)
lambda_path() { # the cargo-lambda build of scripts/build-lambdas.sh, else a host build of its profile
  if [[ -x target/lambda/$1/bootstrap ]]; then echo "target/lambda/$1/bootstrap";
  elif [[ -x target/aws-lambda/$1 ]]; then echo "target/aws-lambda/$1"; fi
}
if [[ -z "$(lambda_path sluice-ingest)" && -d crates/sluice-lambda ]]; then
  if [[ -f scripts/build-lambdas.sh ]]; then
    log "building the Lambda binaries (scripts/build-lambdas.sh)"; bash scripts/build-lambdas.sh || true
  fi
  if [[ -z "$(lambda_path sluice-ingest)" ]]; then
    log "building the Lambda binaries for the host (profile aws-lambda)"; cargo build --profile aws-lambda --locked -q -p sluice-lambda || true
  fi
fi

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_http() { for _ in $(seq 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }

export SLUICE_THROTTLE__RATE_PER_SEC=100000000 SLUICE_THROTTLE__BURST=100000000
export SLUICE_THROTTLE__GLOBAL_RATE_PER_SEC=100000000 SLUICE_THROTTLE__GLOBAL_BURST=100000000
export SLUICE_QUEUE__MAX_DEPTH=1000000000 SLUICE_LOG__LEVEL=warn

SERVE_PID=""
start_serve() { # $1 data dir, $2 process-step workers (default 4; 0 pauses the process step)
  SLUICE_KEY=$($SLUICE keys create --tenant bench --data-dir "$1" 2>/dev/null); export SLUICE_KEY
  SLUICE_WORKER__WORKERS=${2:-4} $SLUICE serve --listen 127.0.0.1:18380 --data-dir "$1" > "$1.log" 2>&1 &
  SERVE_PID=$!; PIDS+=("$SERVE_PID")
  wait_http http://127.0.0.1:18380/healthz
}
stop_serve() { # prints peak RSS in KiB
  local rss; rss=$(awk '/VmHWM/{print $2}' "/proc/$SERVE_PID/status")
  kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
  echo "$rss"
}
# wrk's report as JSON: $1 system, $2 events per request, $3 connections, $4 file, $5 rss, $6 repetition
wrk_json() {
  python3 - "$@" <<'PY'
import json, re, sys
system, per, conns, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rss = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else None
rep = int(sys.argv[6]) if len(sys.argv) > 6 else 1
text = open(path).read()
def ms(v, unit): return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
secs = float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)]
total = int(m.group(1))
bad = int((re.search(r"Non-2xx or 3xx responses: (\d+)", text) or [0, 0])[1])
errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
ok = total - bad
# The server's CPU (all its threads, user + system) over the run, per request answered.
try:
    ticks, hz = (int(x) for x in open(path + ".cpu").read().split())
    cpu_us = ticks / hz / max(total, 1) * 1e6
except (OSError, ValueError):
    cpu_us = None
print(json.dumps({"bench": "ingest", "system": system, "per_request": per, "conns": conns, "rep": rep,
                  "requests_per_sec": ok / secs, "events_per_sec": ok * per / secs, "refused": bad,
                  "socket_errors": errors, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "peak_rss_kib": rss,
                  "cpu_us_per_request": cpu_us}))
PY
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system CPU of a process, in clock ticks
run_wrk() { # $1 connections, $2 lua script, $3 url, $4 out file, $5 the server's pid (its CPU goes to $4.cpu)
  local threads=2 before=""; (($1 < 2)) && threads=1
  [[ -n "${5:-}" ]] && before=$(ticks "$5")
  wrk -t"$threads" -c"$1" -d"${SECS}s" --timeout 10s --latency -s "$2" "$3" > "$4"
  rm -f "$4.cpu"
  [[ -n "$before" ]] && echo "$(($(ticks "$5") - before)) $(getconf CLK_TCK)" > "$4.cpu"
  return 0
}

# --- machine --------------------------------------------------------------------------------------
record "$(python3 - "$QUICK" <<'PY'
import json, os, subprocess, sys, datetime
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
busy = subprocess.run("ps -eo comm= | grep -cE '^(rustc|cargo|cc1|ld|python3?)$' || true", shell=True, capture_output=True, text=True).stdout.strip()
print(json.dumps({"bench": "machine", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem / 1048576, 1), "commit": git("rev-parse", "--short", "HEAD"),
    "dirty": bool(git("status", "--porcelain", "--untracked-files=no")), "loadavg": open("/proc/loadavg").read().split()[:3],
    "other_build_processes": int(busy or 0), "quick": sys.argv[1] == "1", "kernel": os.uname().release}))
PY
)"

# --- 1. ingest, next to the HTTP and disk ceilings ----------------------------------------------------
log "ingest: sluice serve vs bare HTTP vs raw durable SQLite"
$BENCH bare-http --listen 127.0.0.1:18381 2>/dev/null &
BARE_PID=$!; PIDS+=("$BARE_PID")
wait_http http://127.0.0.1:18381/healthz
# The ratios the targets are judged on (one event per request, 64 and 256 connections) are taken
# REPS times, sluice / intake alone / bare alternating, and reported as medians of the paired
# ratios: on a shared 2-core machine two back-to-back runs of the same binary differ by up to 15%.
for per in 1 100; do
  lua=bench/post-one.lua; ((per == 100)) && lua=bench/post-batch.lua
  for c in "${CONNS[@]}"; do
    reps=1; ((per == 1 && c >= 64)) && reps=$REPS
    for rep in $(seq "$reps"); do
      data=$(mktemp -d)/data
      start_serve "$data"
      run_wrk "$c" "$lua" http://127.0.0.1:18380/v1/events "$OUT/wrk-sluice.txt" "$SERVE_PID"
      rss=$(stop_serve); rm -rf "$(dirname "$data")"
      record "$(wrk_json sluice "$per" "$c" "$OUT/wrk-sluice.txt" "$rss" "$rep")"
      # The intake alone: the process step paused, as when the ingest function runs apart from the
      # process function on AWS. The same durable 202; only the consumer's share of the 2 cores is gone.
      data=$(mktemp -d)/data
      start_serve "$data" 0
      run_wrk "$c" "$lua" http://127.0.0.1:18380/v1/events "$OUT/wrk-intake.txt" "$SERVE_PID"
      rss=$(stop_serve); rm -rf "$(dirname "$data")"
      record "$(wrk_json sluice_intake "$per" "$c" "$OUT/wrk-intake.txt" "$rss" "$rep")"
      run_wrk "$c" "$lua" http://127.0.0.1:18381/v1/events "$OUT/wrk-bare.txt" "$BARE_PID"
      record "$(wrk_json bare_http "$per" "$c" "$OUT/wrk-bare.txt" "" "$rep")"
      tail -3 "$RESULTS" | python3 -c 'import sys,json; [print(" ", json.loads(l)["system"], json.loads(l)["rep"], round(json.loads(l)["events_per_sec"])) for l in sys.stdin]' >&2
    done
    scratch=$(mktemp -d)
    record "$($BENCH disk --dir "$scratch" --conns "$c" --per-request "$per" --secs "$SECS")"
    rm -rf "$scratch"
    tail -1 "$RESULTS" | python3 -c 'import sys,json; [print("  disk", round(json.loads(l)["events_per_sec"])) for l in sys.stdin]' >&2
  done
done
kill "$BARE_PID" 2>/dev/null || true

# --- 1b. signed-webhook intake next to bearer-key ingest ----------------------------------------------
log "intake: signed Standard Webhooks deliveries vs bearer-key events, 1 KiB, same client"
# The same Rust client for both (wrk cannot sign each request), each delivery with a fresh webhook-id
# and signature so none is an idempotent replay; bearer and webhook alternate on fresh servers, and
# the ratio is the median of the paired runs.
for rep in $(seq "$REPS"); do
  for mode in bearer webhook; do
    data=$(mktemp -d)/data
    start_serve "$data"
    if [[ $mode == bearer ]]; then
      r=$($BENCH intake --url http://127.0.0.1:18380 --key "$SLUICE_KEY" --conns 64 --secs "$SECS")
    else
      secret="whsec_$(head -c 32 /dev/urandom | base64)"
      src=$(printf '%s' "$secret" | $SLUICE sources create --tenant bench --kind standard-webhooks --secret - --data-dir "$data" | tail -1 | awk '{print $NF}')
      r=$(SLUICE_BENCH_WEBHOOK_SECRET="$secret" $BENCH intake --url http://127.0.0.1:18380 --source "$src" --conns 64 --secs "$SECS")
    fi
    rss=$(stop_serve); rm -rf "$(dirname "$data")"
    record "$(echo "$r" | python3 -c "import json,sys; d=json.load(sys.stdin); d['rep']=$rep; d['peak_rss_kib']=$rss; print(json.dumps(d))")"
    tail -1 "$RESULTS" | python3 -c 'import sys,json; d=json.loads(sys.stdin.read()); print(" ", d["mode"], d["rep"], round(d["events_per_sec"]))' >&2
  done
done

# --- 1c. latency at fixed offered rates, open loop ------------------------------------------------------
log "open-loop latency: a quarter, half and three quarters of the ingest peak, from intended send times"
# The peak is section 1's median sluice events/s (process step running, one event per request, 64
# connections). wrk is closed loop: a connection waiting on a slow answer sends nothing meanwhile, so a
# stall shows as one slow request (coordinated omission). `sluice-bench openloop` sends on a fixed
# schedule instead, measuring each latency from the request's intended send time. A fresh server each.
ingest_peak=$(python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
v = [r["events_per_sec"] for r in rows if r.get("bench") == "ingest" and r.get("system") == "sluice"
     and r.get("per_request") == 1 and r.get("conns") == 64 and r.get("events_per_sec")]
print(statistics.median(v) if v else 0)
PY
)
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "$ingest_peak"; then
  for frac in 0.25 0.5 0.75; do
    rate=$(python3 -c 'import sys; print(float(sys.argv[1]) * float(sys.argv[2]))' "$ingest_peak" "$frac")
    data=$(mktemp -d)/data
    start_serve "$data"
    r=$($BENCH openloop --url http://127.0.0.1:18380 --rate "$rate" --secs "$SECS" --conns 64)
    rss=$(stop_serve); rm -rf "$(dirname "$data")"
    record "$(echo "$r" | python3 -c "import json,sys; d=json.load(sys.stdin); d['fraction']=$frac; d['peak']=$ingest_peak; d['peak_rss_kib']=$rss; print(json.dumps(d))")"
    tail -1 "$RESULTS" | python3 -c 'import sys,json; d=json.loads(sys.stdin.read()); print(" ", d["fraction"], round(d["rate"]), "req/s: p50", round(d["p50_ms"], 2), "p99", round(d["p99_ms"], 2), "p99.9", round(d["p999_ms"], 2), "ms")' >&2
  done
else
  log "no sluice ingest peak recorded: skipping the open-loop runs"
fi

# --- 2. end to end ------------------------------------------------------------------------------------
log "end to end: peak rate, then p99 202-to-readable at half of it"
data=$(mktemp -d)/data; start_serve "$data"
peak=$($BENCH e2e --url http://127.0.0.1:18380 --store "$data/store.db" --conns 64 --secs "$E2E_SECS")
stop_serve >/dev/null; rm -rf "$(dirname "$data")"
record "$(echo "$peak" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["phase"]="peak"; print(json.dumps(d))')"
half=$(echo "$peak" | python3 -c 'import json,sys; print(max(1.0, json.load(sys.stdin)["e2e_per_sec"] / 2))')
data=$(mktemp -d)/data; start_serve "$data"
at_half=$($BENCH e2e --url http://127.0.0.1:18380 --store "$data/store.db" --conns 32 --secs "$E2E_SECS" --rate "$half")
stop_serve >/dev/null; rm -rf "$(dirname "$data")"
record "$(echo "$at_half" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["phase"]="half_peak"; print(json.dumps(d))')"

# --- 2b. the feed -------------------------------------------------------------------------------------
log "feed: 202 to visible on an open SSE stream at half the peak, and one consumer's read rate"
data=$(mktemp -d)/data; start_serve "$data"
record "$($BENCH feed-sse --url http://127.0.0.1:18380 --rate "$half" --secs "$E2E_SECS" --conns 32)"
stop_serve >/dev/null; rm -rf "$(dirname "$data")"
data=$(mktemp -d)/data; start_serve "$data"
record "$($BENCH feed-read --url http://127.0.0.1:18380 --events "$FEED_EVENTS" --runs 3)"
stop_serve >/dev/null; rm -rf "$(dirname "$data")"
tail -2 "$RESULTS" >&2

# --- 3. process step ----------------------------------------------------------------------------------
log "process step: embedded (speed) and moto (correctness)"
scratch=$(mktemp -d)
record "$($BENCH process --backend embedded --dir "$scratch" --events "$PROC_EVENTS")"
rm -rf "$scratch"
record "$($BENCH process --backend moto --events 200 || echo '{"bench":"process","backend":"moto","events":200,"seconds":null,"records_per_sec":null,"dead_lettered":null,"missing":null,"correct":false}')"

# --- 4. cold starts -----------------------------------------------------------------------------------
log "cold starts under the local Runtime API, Rust vs Python Powertools"
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" > "$OUT/moto.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$MOTO_PORT/moto-api/" || wait_http "http://127.0.0.1:$MOTO_PORT/"
EV=$OUT/events
$PY bench/python/provision.py "http://127.0.0.1:$MOTO_PORT" "$EV" >/dev/null
ENV_ARGS=(); while IFS= read -r line; do ENV_ARGS+=(--env "$line"); done < "$EV/env"
for bin in "${LAMBDA_BINS[@]}"; do
  path=$(lambda_path "$bin")
  if [[ -z "$path" ]]; then record "{\"bench\":\"cold_start\",\"name\":\"$bin\",\"missing\":true}"; continue; fi
  fn=${bin#sluice-}
  r=$($BENCH cold-start --name "$bin" --event "$EV/$fn.json" --runs "$RUNS" "${ENV_ARGS[@]}" -- "$ROOT/$path") || { log "cold start of $bin failed"; continue; }
  record "$(echo "$r" | python3 -c "import json,sys; d=json.load(sys.stdin); d['binary']='$path'; d['binary_bytes']=$(stat -c %s "$path"); d['language']='rust'; d['function']='$fn'; print(json.dumps(d))")"
done
for fn in ingest process; do
  r=$($BENCH cold-start --name "python-$fn" --event "$EV/$fn.json" --runs "$RUNS" --cwd "$ROOT/bench/python" "${ENV_ARGS[@]}" \
      -- "$ROOT/$PY" -m awslambdaric "$fn.lambda_handler") || { log "cold start of python-$fn failed"; continue; }
  record "$(echo "$r" | python3 -c "import json,sys; d=json.load(sys.stdin); d['language']='python'; d['function']='$fn'; print(json.dumps(d))")"
done

# --- 5. per-event CPU ---------------------------------------------------------------------------------
log "per-event CPU: instructions for validation + envelope sealing (callgrind)"
for size in 1024 65536; do
  irs=()
  for n in "${CALL_N[@]}"; do
    ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BENCH" cpu --size "$size" --iterations "$n" 2>&1 >/dev/null \
         | awk '/Collected :/{print $NF}')
    irs+=("$ir")
  done
  wall=$($BENCH cpu --size "$size" --iterations 2000)
  record "$(python3 -c "import json,sys; w=json.loads(sys.argv[1]); print(json.dumps({'bench':'cpu','event_bytes':w['event_bytes'],'instructions_per_event':(int(sys.argv[3])-int(sys.argv[2]))/($((CALL_N[1]))-$((CALL_N[0]))),'ns_per_event':w['ns_per_event']}))" "$wall" "${irs[0]}" "${irs[1]}")"
done

# --- report -------------------------------------------------------------------------------------------
log "writing docs/benchmarks.md and docs/benchmarks.png"
$PY bench/report.py "$RESULTS" docs/benchmarks.md docs/benchmarks.png
echo "done: docs/benchmarks.md" >&2
