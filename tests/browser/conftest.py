"""Fixtures of the console's browser tests: a headless Chromium per test (Debian's `chromium`
through `chromedriver`), a console page object, and a check that the page broke no
Content-Security-Policy rule and threw no uncaught error."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import harness

WIDTH, HEIGHT = 1280, 800

# Selenium Manager must never try to download a browser or a driver: both are Debian's.
os.environ.setdefault("SE_OFFLINE", "true")


def pytest_sessionstart(session):
    # Missing tools fail the run at once (never a skip).
    try:
        harness.tool("CHROMIUM", "chromium")
        harness.tool("CHROMEDRIVER", "chromedriver")
        harness.require_sluice()
    except AssertionError as e:
        pytest.exit(f"browser tests cannot run: {e}", returncode=1)


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def servers():
    """Start servers with servers(data_dir, env); all are stopped after the test."""
    started: list[harness.Server] = []

    def start(data_dir, env=None):
        server = harness.Server(data_dir, env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def console_problems(driver) -> list[str]:
    """Browser log lines that mean the page broke its CSP or threw."""
    bad = []
    for entry in driver.get_log("browser"):
        message = entry.get("message", "")
        if (
            "Content Security Policy" in message
            or "Refused to" in message
            or "Uncaught" in message
            or (entry.get("source") == "javascript" and entry.get("level") == "SEVERE")
        ):
            bad.append(message)
    return bad


@pytest.fixture
def driver():
    chromium = harness.tool("CHROMIUM", "chromium")
    chromedriver = harness.tool("CHROMEDRIVER", "chromedriver")
    profile = tempfile.mkdtemp(prefix="sluice-chromium-")
    options = Options()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        "--password-store=basic",
        "--lang=en-US",
        "--force-color-profile=srgb",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver)
    drv = webdriver.Chrome(service=service, options=options)
    try:
        drv.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )
        drv.set_script_timeout(30)
        yield drv
        problems = console_problems(drv)
        assert not problems, "the console broke its CSP or threw:\n" + "\n".join(problems)
    finally:
        try:
            drv.quit()
        finally:
            shutil.rmtree(profile, ignore_errors=True)


class Console:
    """The console in the browser, by its stable ids and data-testid attributes."""

    def __init__(self, driver, admin: str):
        self.driver = driver
        self.admin = admin

    # -- finding things

    def by_testid(self, testid: str):
        return self.driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')

    def all_css(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, testid: str) -> str:
        return self.by_testid(testid).text

    def visible(self, testid: str) -> bool:
        found = self.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')
        return bool(found) and found[0].is_displayed()

    def wait(self, predicate, timeout: float = 20.0, what: str = "the console"):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda _d: predicate())
        except Exception as e:  # noqa: BLE001 - say what was awaited, with the page's notice
            notice = ""
            try:
                notice = self.by_testid("notice").text
            except WebDriverException:
                pass
            raise AssertionError(f"timed out waiting for {what}; notice: {notice!r}") from e

    def wait_visible(self, testid: str, timeout: float = 20.0):
        self.wait(lambda: self.visible(testid), timeout, f"{testid} to show")
        return self.by_testid(testid)

    # -- doing things

    def open(self):
        self.driver.get(f"{self.admin}/console")
        self.wait(
            lambda: self.visible("page-login") or self.driver.execute_script("return document.body.dataset.signedIn") == "true",
            what="the console to load",
        )

    def login(self, token: str):
        self.open()
        self.wait_visible("page-login")
        field = self.by_testid("login-token")
        field.clear()
        field.send_keys(token)
        self.by_testid("login-submit").click()
        self.wait(lambda: self.driver.execute_script("return document.body.dataset.signedIn") == "true", what="sign-in")
        self.wait_visible("page-overview")

    def goto(self, page: str):
        self.by_testid(f"nav-{page}").click()
        self.wait_visible(f"page-{page}")

    def fill(self, testid: str, value: str):
        field = self.by_testid(testid)
        field.clear()
        field.send_keys(value)

    def settled(self, tbody_id: str, timeout: float = 20.0) -> str:
        """Waits until a list's last load finished (data-state ready or failed); that state."""
        return self.wait(
            lambda: (self.driver.find_element(By.ID, tbody_id).get_attribute("data-state") or "") in ("ready", "failed")
            and self.driver.find_element(By.ID, tbody_id).get_attribute("data-state"),
            timeout,
            f"#{tbody_id} to load",
        )

    def search_events(self, tenant: str, event_type: str = "", event_id: str = "") -> str:
        self.fill("events-tenant", tenant)
        self.fill("events-type", event_type)
        self.fill("events-id", event_id)
        self.by_testid("events-search").click()
        return self.settled("events-rows")

    def refresh_dead_letters(self) -> str:
        self.by_testid("dlq-refresh").click()
        return self.settled("dlq-rows")

    def fetch(self, method: str, path: str, body=None) -> dict:
        """A same-origin request from the page, as the logged-in browser: {status, body}."""
        script = """
            const [method, path, body, done] = arguments;
            const init = {method, credentials: 'same-origin', headers: {accept: 'application/json'}};
            if (body !== null) { init.headers['content-type'] = 'application/json'; init.body = body; }
            fetch(path, init).then(async (r) => {
                const t = await r.text();
                let b = null; try { b = t ? JSON.parse(t) : null; } catch (_) { b = t; }
                done({status: r.status, body: b});
            }).catch((e) => done({status: 0, body: String(e)}));
        """
        return self.driver.execute_async_script(script, method, path, None if body is None else json.dumps(body))

    def screenshot(self, name: str):
        harness.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.execute_script("window.scrollTo(0, 0)")
        path = harness.SCREENSHOTS / name
        assert self.driver.save_screenshot(str(path)), f"could not write {path}"
        return path

    def js(self, script: str, *args):
        try:
            return self.driver.execute_script(script, *args)
        except JavascriptException as e:
            raise AssertionError(f"script failed: {e.msg}") from e


@pytest.fixture
def console_for(driver):
    return lambda server: Console(driver, server.admin)
