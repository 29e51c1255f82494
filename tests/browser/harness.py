"""What the browser tests share: the real `sluice` binary (servers and CLI), plain HTTP calls, and
a headless Chromium driven through Debian's chromedriver.

Nothing here is skipped when a tool is missing: a missing binary, browser or driver is a failure.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
if not TARGET.is_absolute():
    TARGET = ROOT / TARGET
SLUICE = pathlib.Path(os.environ.get("SLUICE_BIN") or TARGET / "debug" / "sluice")
# Where the README's screenshots go (docs/console/ unless redirected).
SCREENSHOTS = pathlib.Path(os.environ.get("SLUICE_CONSOLE_SCREENSHOTS") or ROOT / "docs" / "console")

ADMIN_LOG = "admin listening (metrics at /metrics)"
PUBLIC_LOG = "sluice listening"
START_TIMEOUT = 60.0


def tool(env_name: str, default: str) -> str:
    """The path of a required program, or an AssertionError naming what to install."""
    path = os.environ.get(env_name) or shutil.which(default)
    assert path and os.access(path, os.X_OK), (
        f"{default} is required for the browser tests (apt-get install -y chromium chromium-driver), "
        f"or set {env_name}"
    )
    return path


def require_sluice() -> str:
    assert SLUICE.is_file() and os.access(SLUICE, os.X_OK), (
        f"{SLUICE} does not exist: build it first (cargo build -p sluice --locked) or set SLUICE_BIN"
    )
    return str(SLUICE)


# ---- the CLI -------------------------------------------------------------------------------


def sluice(data_dir: pathlib.Path, *args: str, stdin: str | None = None, env: dict | None = None) -> str:
    """Runs `sluice ARGS --data-dir DATA_DIR`; its stdout, or an AssertionError with its stderr."""
    full_env = os.environ.copy()
    full_env.update(env or {})
    out = subprocess.run(
        [require_sluice(), *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )
    assert out.returncode == 0, f"sluice {' '.join(args)} exited {out.returncode}: {out.stderr}"
    return out.stdout


def admin_token(data_dir: pathlib.Path, label: str) -> str:
    token = sluice(data_dir, "admin", "token", "create", "--label", label).strip().splitlines()[-1].strip()
    assert token.startswith("adm_") and "." in token, f"not an admin token: {token!r}"
    return token


def tenant_key(data_dir: pathlib.Path, tenant: str, label: str | None = None) -> str:
    args = ["keys", "create", "--tenant", tenant]
    if label is not None:
        args += ["--label", label]
    key = sluice(data_dir, *args).strip().splitlines()[-1].strip()
    assert key.startswith("key_"), f"not a tenant key: {key!r}"
    return key


def keys_list(data_dir: pathlib.Path) -> list[dict]:
    out = sluice(data_dir, "keys", "list", "--output", "json")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# ---- the server ----------------------------------------------------------------------------


class Server:
    """One `sluice serve` on loopback port 0 (public and admin), its JSON log lines captured."""

    def __init__(self, data_dir: pathlib.Path, env: dict | None = None):
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.public = ""
        self.admin = ""
        self._ready = threading.Event()

    def start(self) -> "Server":
        env = os.environ.copy()
        env.update(
            {
                "SLUICE_ADMIN__LISTEN": "127.0.0.1:0",
                "SLUICE_AUTH__CACHE_SECS": "1",
                "SLUICE_LOG__FORMAT": "json",
                "SLUICE_LOG__LEVEL": "info",
            }
        )
        env.update(self.env)
        self.lines = []
        self.public = self.admin = ""
        self._ready.clear()
        self.proc = subprocess.Popen(
            [require_sluice(), "serve", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(START_TIMEOUT) or not (self.public and self.admin):
            self.stop()
            raise AssertionError("sluice serve did not start:\n" + "".join(self.lines[-40:]))
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            message = entry.get("message") or (entry.get("fields") or {}).get("message")
            addr = entry.get("addr") or (entry.get("fields") or {}).get("addr")
            if message == PUBLIC_LOG and addr:
                self.public = f"http://{addr}"
            elif message == ADMIN_LOG and addr:
                self.admin = f"http://{addr}"
            if self.public and self.admin:
                self._ready.set()
        self._ready.set()  # exited: stop waiting

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, env: dict | None = None) -> "Server":
        self.stop()
        if env is not None:
            self.env = dict(env)
        return self.start()

    def log_text(self) -> str:
        return "".join(self.lines)


# ---- plain HTTP ----------------------------------------------------------------------------


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 30.0):
    """(status, headers, parsed JSON or text) for one request; never raises on an HTTP status."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
        hdrs.setdefault("content-type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            status, res_headers, raw = res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        status, res_headers, raw = e.code, e.headers, e.read()
    text = raw.decode("utf-8", "replace")
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        payload = text
    return status, res_headers, payload


def post_event(server: Server, key: str, event) -> tuple[str, str]:
    """POSTs one event; its (id, request id). Fails unless 202."""
    status, headers, body = http(
        "POST", f"{server.public}/v1/events", event, {"authorization": f"Bearer {key}"}
    )
    assert status == 202, f"POST /v1/events: {status} {body}"
    return body["id"], headers.get("x-request-id", "")


def get_event(server: Server, key: str, event_id: str):
    return http("GET", f"{server.public}/v1/events/{event_id}", headers={"authorization": f"Bearer {key}"})


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    """The first truthy value of predicate(), or an AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def wait_stored(server: Server, key: str, event_id: str, timeout: float = 30.0) -> dict:
    def stored():
        status, _, body = get_event(server, key, event_id)
        return body if status == 200 else None

    return wait_for(stored, timeout, what=f"event {event_id} to be stored")
