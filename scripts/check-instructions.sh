#!/usr/bin/env bash
# Instruction counts of the per-event CPU work (strict validation and envelope sealing), held to a
# committed baseline: `bench/instructions.toml`. `sluice-cpu` (the release profile, as shipped)
# runs under `valgrind --tool=callgrind` at two iteration counts per event size; the difference
# divided by the extra iterations is the count per event, start-up cancelled. A count more than the
# baseline's tolerance above it fails the check; one far below it asks for the baseline to be lowered.
# Counts are exact for one binary and close across machines (only libc's CPU-specific string
# routines differ), which is why a count, not a time, is what CI holds the code to.
#
# Needs cargo and valgrind (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"

if ! command -v valgrind >/dev/null 2>&1; then
  echo "installing valgrind (Debian)" >&2
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi

cargo build --release --locked -q -p sluice-cpu
BIN="$TARGET/release/sluice-cpu"
OUT="$TARGET/instructions.json"

python3 - "$BIN" "$OUT" <<'PY'
import json, subprocess, sys, tomllib

binary, out = sys.argv[1], sys.argv[2]
with open("bench/instructions.toml", "rb") as f:
    baseline = tomllib.load(f)
tolerance = baseline["tolerance"]

def refs(size, iterations):
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", binary,
         "--size", str(size), "--iterations", str(iterations)],
        capture_output=True, text=True, check=True)
    for line in run.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split()[-1]), json.loads(run.stdout)
    sys.exit(f"callgrind printed no count:\n{run.stderr}")

failed, rows = False, []
print(f"{'size':>8} {'event bytes':>12} {'instructions/event':>19} {'baseline':>10} {'ratio':>6} {'per byte':>9}")
for case in baseline["size"]:
    size, low, high = case["bytes"], case["iterations"][0], case["iterations"][1]
    (a, report), (b, _) = refs(size, low), refs(size, high)
    per_event = (b - a) / (high - low)
    ratio = per_event / case["instructions"]
    per_byte = per_event / report["event_bytes"]
    rows.append({"size": size, "event_bytes": report["event_bytes"], "instructions_per_event": per_event,
                 "baseline": case["instructions"], "instructions_per_byte": per_byte})
    print(f"{size:>8} {report['event_bytes']:>12} {per_event:>19,.0f} {case['instructions']:>10,} {ratio:>6.3f} {per_byte:>9.1f}")
    if ratio > 1 + tolerance:
        print(f"FAIL: {size}-byte events cost {100 * (ratio - 1):.1f}% more instructions than the baseline "
              f"(tolerance {100 * tolerance:.0f}%): find the regression, or justify it and raise "
              "bench/instructions.toml in the same commit", file=sys.stderr)
        failed = True
    elif ratio < 1 - tolerance:
        print(f"note: {size}-byte events cost {100 * (1 - ratio):.1f}% fewer instructions than the baseline: "
              "lower bench/instructions.toml so the gain is kept", file=sys.stderr)
with open(out, "w") as f:
    json.dump(rows, f, indent=1)
sys.exit(1 if failed else 0)
PY
