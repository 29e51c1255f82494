#!/usr/bin/env bash
# The operator console in a real browser: pytest + Selenium (pinned, in a virtualenv of their own)
# drive Debian's headless `chromium` through `chromedriver` (package chromium-driver) against the
# real `sluice serve` (tests/browser/). Each test starts its own server on loopback port 0.
# Writes the README's screenshots to docs/console/ (SLUICE_CONSOLE_SCREENSHOTS=DIR puts them
# elsewhere). A missing tool is a failure, never a skip. Extra arguments go to pytest (e.g. -k xss).
set -euo pipefail
cd "$(dirname "$0")/.."

SELENIUM_VERSION=4.51.0
PYTEST_VERSION=8.4.2
TOOLS="${SLUICE_BROWSER_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-browser}"
TARGET="${CARGO_TARGET_DIR:-target}"
SCREENSHOTS="${SLUICE_CONSOLE_SCREENSHOTS:-docs/console}"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'browser-tests: %s\n' "$*" >&2; exit 1; }

step "tools"
for tool in python3 chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (apt-get install -y chromium chromium-driver)"
done
chromium_version=$(chromium --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+)+' | head -1)
driver_version=$(chromedriver --version | grep -oE '[0-9]+(\.[0-9]+)+' | head -1)
[[ -n "$chromium_version" && "${chromium_version%%.*}" == "${driver_version%%.*}" ]] \
  || fail "chromium ${chromium_version:-?} and chromedriver ${driver_version:-?} differ in major version"
echo "chromium $chromium_version, chromedriver $driver_version"

# A virtualenv with exactly these pins, reinstalled only when they change.
venv="$TOOLS/venv"
stamp="selenium=$SELENIUM_VERSION pytest=$PYTEST_VERSION"
if [[ ! -f "$venv/.sluice-stamp" || "$(cat "$venv/.sluice-stamp")" != "$stamp" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "selenium==$SELENIUM_VERSION" "pytest==$PYTEST_VERSION"
  printf '%s' "$stamp" >"$venv/.sluice-stamp"
fi
echo "selenium $("$venv/bin/python" -c 'import selenium; print(selenium.__version__)'), $("$venv/bin/python" -m pytest --version 2>&1)"

step "sluice binary"
if [[ -z "${SLUICE_BIN:-}" ]]; then
  # The README's test command runs nextest first, which builds it; build only when it is missing.
  if [[ ! -x "$TARGET/debug/sluice" ]]; then
    cargo build -p sluice --locked
  fi
  SLUICE_BIN="$(cd "$TARGET/debug" && pwd)/sluice"
fi
[[ -x "$SLUICE_BIN" ]] || fail "no sluice binary at $SLUICE_BIN"
export SLUICE_BIN
echo "$SLUICE_BIN"

step "console browser tests (tests/browser)"
mkdir -p "$SCREENSHOTS" "$TARGET/browser"
SCREENSHOTS="$(cd "$SCREENSHOTS" && pwd)"
export SLUICE_CONSOLE_SCREENSHOTS="$SCREENSHOTS"
started="$TARGET/browser/started"
touch "$started"
# Selenium Manager must not look for browsers or drivers on the network: both are Debian's.
export SE_OFFLINE=true PYTHONDONTWRITEBYTECODE=1
"$venv/bin/python" -m pytest -p no:cacheprovider -ra -v \
  --junitxml "$TARGET/browser/junit.xml" tests/browser "$@"

step "screenshots"
if [[ $# -eq 0 ]]; then
  for shot in overview events dead-letters keys; do
    file="$SCREENSHOTS/$shot.png"
    [[ -f "$file" && "$file" -nt "$started" ]] || fail "$file was not written by this run"
    python3 - "$file" <<'EOF'
import struct, sys
path = sys.argv[1]
with open(path, "rb") as f:
    head = f.read(24)
if head[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"{path} is not a PNG")
width, height = struct.unpack(">II", head[16:24])
if (width, height) != (1280, 800):
    sys.exit(f"{path} is {width}x{height}, not 1280x800")
print(f"{path}: {width}x{height}")
EOF
  done
else
  echo "a selection of tests ran: screenshots not checked"
fi

echo
echo "browser-tests: all passed"
