"""The operator console in a real browser (headless Chromium) against a real `sluice serve`.

Each test starts its own server on loopback port 0 over a temporary data directory, reads the
public and admin addresses from its JSON log, and stops it afterwards. The screenshots in
docs/console/ (shown by the README) are taken along the way.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html.parser
import http.server
import json
import pathlib
import threading
import time
import uuid

import harness
from harness import post_event, wait_for
from selenium.webdriver.common.by import By

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CONSOLE_DIR = harness.ROOT / "crates" / "sluice" / "console"


def count(text: str) -> float:
    """A number as the console prints it (thousands separated by commas)."""
    return float(text.replace(",", "").strip() or "nan")


def content(console, testid: str) -> str:
    """An element's whole text (also what is scrolled out of a <pre>)."""
    return console.by_testid(testid).get_property("textContent")


# ---- 1. log in, see the overview move, find an event -----------------------------------------


def test_an_operator_logs_in_sees_accepted_events_move_the_overview_and_finds_an_event(data_dir, servers, console_for):
    token = harness.admin_token(data_dir, "ops-alice")
    key = harness.tenant_key(data_dir, "acme", "checkout")
    server = servers(data_dir)
    c = console_for(server)
    c.login(token)

    assert c.text("session-label") == "ops-alice"
    assert c.text("session-token-id").startswith("adm_")
    assert token.split(".")[0] == c.text("session-token-id"), "the session names the token that logged in"
    c.wait(lambda: c.text("overview-at") not in ("never", ""), what="the first overview poll")
    assert count(c.text("ov-accepted")) == 0
    chart = c.by_testid("rate-chart")
    assert chart.find_elements(By.CSS_SELECTOR, "canvas"), "uPlot drew its canvas"

    # Traffic over several polls: accepted events of a few types, and some refused requests.
    kinds = [
        ("order.created", {"order": "A-1001", "amount": 4200, "currency": "EUR"}),
        ("order.paid", {"order": "A-1001", "amount": 4200, "method": "card"}),
        ("user.signed_up", {"user": "u_8812", "plan": "team"}),
    ]
    ids = []
    refused = 0
    for round_ in range(8):
        for i in range(1 + (round_ * 7) % 4):
            event_type, data = kinds[(round_ + i) % len(kinds)]
            event_id, _ = post_event(server, key, {"type": event_type, "data": dict(data, seq=len(ids))})
            ids.append(event_id)
        if round_ % 3 == 1:
            status, _, body = harness.http(
                "POST", f"{server.public}/v1/events", b"{not json", {"authorization": f"Bearer {key}", "content-type": "application/json"}
            )
            assert status == 400 and body["code"] == "malformed_json", body
            refused += 1
        time.sleep(1.5)

    c.wait(lambda: count(c.text("ov-accepted")) == len(ids), what=f"accepted to reach {len(ids)}")
    c.wait(lambda: float(chart.get_attribute("data-max-accepted-rate")) > 0, what="a non-zero accepted rate in the chart")
    assert int(chart.get_attribute("data-samples")) >= 3, "the chart holds one point per poll"
    c.wait(lambda: count(c.text("ov-stored")) == len(ids), timeout=30, what="stored to catch up")
    c.wait(lambda: count(c.text("ov-rejected")) >= refused, what="the refused requests")
    codes = [row.get_attribute("data-code") for row in c.all_css("#rejected-rows tr")]
    assert "malformed_json" in codes, codes
    assert c.text("ov-queue-visible") == "0"
    assert c.text("ov-dlq-visible") == "0"
    c.screenshot("overview.png")

    # The events page: the tenant's events, newest first; one selected shows its JSON as the
    # public API returns it.
    c.goto("events")
    assert c.search_events("acme") == "ready"
    assert len(c.all_css("#events-rows tr")) == len(ids)
    listed = [row.get_attribute("data-event-id") for row in c.all_css("#events-rows tr")]
    assert sorted(listed) == sorted(ids)
    target = ids[-2]
    row = c.driver.find_element(By.CSS_SELECTOR, f'#events-rows tr[data-event-id="{target}"]')
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    status, _, public = harness.get_event(server, key, target)
    assert status == 200
    assert cells == [target, public["type"], public["received_at"]]
    row.click()
    c.wait(lambda: c.text("event-selected-id") == target, what="the event to be selected")
    assert json.loads(content(c, "event-json")) == public
    assert "selected" in row.get_attribute("class")
    c.screenshot("events.png")

    # By id: that one event, selected at once.
    assert c.search_events("acme", event_id=ids[0]) == "ready"
    assert c.text("event-selected-id") == ids[0]
    assert len(c.all_css("#events-rows tr")) == 1
    assert json.loads(content(c, "event-json"))["id"] == ids[0]

    # By type.
    assert c.search_events("acme", event_type="order.paid") == "ready"
    assert c.text("event-selected-id") == ""
    types = [row.find_elements(By.TAG_NAME, "td")[1].text for row in c.all_css("#events-rows tr")]
    assert types and set(types) == {"order.paid"}, types

    # Another tenant's events are not mixed in (and none exist).
    assert c.search_events("other") == "ready"
    assert c.visible("events-empty")
    assert c.all_css("#events-rows tr") == []


# ---- 2. dead letters: a real poison message, inspected, redriven, dropped -------------------


def test_a_poison_message_shows_in_dead_letters_with_its_reason_and_is_redriven_from_the_console(
    tmp_path, data_dir, servers, console_for
):
    permissive = tmp_path / "schemas-permissive"
    permissive.mkdir()
    (permissive / "order.paid.json").write_text(json.dumps({"type": "object"}))
    strict = tmp_path / "schemas-strict"
    strict.mkdir()
    (strict / "order.paid.json").write_text(
        json.dumps({"type": "object", "required": ["invoice"], "properties": {"invoice": {"type": "string"}}})
    )
    token = harness.admin_token(data_dir, "ops-bob")
    key = harness.tenant_key(data_dir, "acme")

    # Accepted under the permissive schema while the process step is paused: they wait queued.
    server = servers(data_dir, {"SLUICE_WORKER__WORKERS": "0", "SLUICE_SCHEMA_DIR": str(permissive)})
    redriven_id, redriven_request = post_event(server, key, {"type": "order.paid", "data": {"order": "A-1002", "amount": 990}})
    dropped_id, dropped_request = post_event(server, key, {"type": "order.paid", "data": {"order": "A-1003", "amount": 15}})
    assert redriven_request and dropped_request, "every 202 names its request id"
    c = console_for(server)
    c.login(token)
    c.wait(lambda: c.text("ov-queue-visible") == "2", what="two queued messages")
    assert c.text("ov-queue-oldest") not in ("none", "–")
    assert c.text("ov-dlq-visible") == "0"

    # The schema now requires a field the events lack: the process step dead-letters them.
    server.restart({"SLUICE_SCHEMA_DIR": str(strict)})
    c = console_for(server)
    c.login(token)  # a new process: sessions live in memory
    c.wait(lambda: c.text("ov-dlq-visible") == "2", timeout=30, what="two dead letters on the overview")
    c.goto("dead-letters")

    def dlq_rows(n):
        def ready():
            c.settled("dlq-rows")
            rows = c.all_css("#dlq-rows tr")
            if len(rows) >= n:
                return rows
            c.refresh_dead_letters()
            return None

        return wait_for(ready, timeout=30, interval=0.3, what=f"{n} dead letters in the console")

    rows = dlq_rows(2)
    assert len(rows) == 2
    by_request = {}
    for row in rows:
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        by_request[cells[2]] = (row, cells)
    assert set(by_request) == {redriven_request, dropped_request}
    row, cells = by_request[redriven_request]
    reason = cells[1]
    assert reason.startswith("event no longer valid: "), reason
    assert "invoice" in reason, reason
    assert cells[3] == "127.0.0.1", "the source address travels with the message (R-2)"
    assert cells[5] == "acme"
    message_id = row.get_attribute("data-message-id")

    # Inspect: the attributes and the body, as text.
    row.find_element(By.CSS_SELECTOR, '[data-testid="dlq-inspect"]').click()
    c.wait(lambda: c.text("dlq-selected-id") == message_id, what="the message to be inspected")
    attributes = json.loads(content(c, "dlq-attributes"))
    assert attributes["request_id"] == redriven_request
    assert attributes["tenant"] == "acme"
    assert attributes["source_ip"] == "127.0.0.1"
    assert "A-1002" in content(c, "dlq-body")
    meta = c.by_testid("dlq-meta").text
    assert "event no longer valid" in meta
    c.screenshot("dead-letters.png")

    # Not stored while dead-lettered.
    assert harness.get_event(server, key, redriven_id)[0] == 404

    # The schema is fixed: redrive one from the console and see it stored; drop the other.
    server.restart({"SLUICE_SCHEMA_DIR": str(permissive)})
    c = console_for(server)
    c.login(token)
    c.goto("dead-letters")
    rows = dlq_rows(2)
    boxes = {
        row.find_elements(By.TAG_NAME, "td")[2].text: row.find_element(By.CSS_SELECTOR, "input[type=checkbox]")
        for row in rows
    }
    boxes[redriven_request].click()
    c.by_testid("dlq-redrive-selected").click()
    c.wait(lambda: "moved 1 message" in c.text("notice"), what="the redrive's answer")
    stored = harness.wait_stored(server, key, redriven_id)
    assert stored["data"] == {"order": "A-1002", "amount": 990}
    assert stored["request_id"] == redriven_request

    c.settled("dlq-rows")  # the list reloads after a redrive
    c.refresh_dead_letters()
    assert len(c.all_css("#dlq-rows tr")) == 1, "one dead letter left"
    remaining = c.all_css("#dlq-rows tr")[0]
    assert remaining.find_elements(By.TAG_NAME, "td")[2].text == dropped_request

    # Drop asks first; Cancel keeps the message.
    remaining.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    c.by_testid("dlq-drop-selected").click()
    c.wait_visible("confirm")
    assert "cannot be recovered" in c.text("confirm-text")
    c.by_testid("confirm-no").click()
    c.wait(lambda: not c.visible("confirm"), what="the question to close")
    c.refresh_dead_letters()
    assert len(c.all_css("#dlq-rows tr")) == 1
    if not c.all_css("#dlq-rows input[type=checkbox]:checked"):
        c.all_css("#dlq-rows input[type=checkbox]")[0].click()
    c.by_testid("dlq-drop-selected").click()
    c.wait_visible("confirm")
    c.by_testid("confirm-yes").click()
    c.wait(lambda: "Dropped 1 message" in c.text("notice"), what="the drop's answer")
    c.wait_visible("dlq-empty")
    time.sleep(1.5)
    assert harness.get_event(server, key, dropped_id)[0] == 404, "a dropped message is never stored"

    # The redriven event, found from the console.
    c.goto("events")
    assert c.search_events("acme", event_id=redriven_id) == "ready"
    assert c.text("event-selected-id") == redriven_id
    assert json.loads(content(c, "event-json"))["data"] == {"order": "A-1002", "amount": 990}
    c.goto("overview")
    c.wait(lambda: c.text("ov-dlq-visible") == "0", what="an empty DLQ on the overview")


# ---- 3. attacker-controlled text stays text ----------------------------------------------------

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
SVG = '<svg onload="window.__pwned=3"></svg>'


def assert_not_pwned(c):
    assert c.js("return typeof window.__pwned") == "undefined", "a payload ran"
    assert c.js("return document.querySelectorAll('img, svg, iframe, object, embed, form[action]').length") == 0
    scripts = c.js("return Array.from(document.scripts, (s) => s.getAttribute('src'))")
    assert scripts == ["/console/assets/uPlot.iife.min.js", "/console/assets/app.js"], scripts


def test_event_data_labels_and_problem_details_are_shown_as_text_never_run(data_dir, servers, console_for):
    token = harness.admin_token(data_dir, "ops-carol")
    key = harness.tenant_key(data_dir, "acme", label=IMG.replace("2", "4"))
    server = servers(data_dir)
    event_id, _ = post_event(
        server,
        key,
        {
            "type": "comment.posted",
            "subject": SVG,
            "data": {"body": SCRIPT, "author": IMG, SCRIPT: [IMG, {"nested": SVG}]},
        },
    )
    harness.wait_stored(server, key, event_id)

    c = console_for(server)
    c.login(token)
    c.goto("events")
    assert c.search_events("acme") == "ready"
    row = c.driver.find_element(By.CSS_SELECTOR, f'#events-rows tr[data-event-id="{event_id}"]')
    assert [td.text for td in row.find_elements(By.TAG_NAME, "td")][:2] == [event_id, "comment.posted"]
    assert_not_pwned(c)
    row.click()
    c.wait(lambda: c.text("event-selected-id") == event_id, what="the event to be selected")

    pre = c.by_testid("event-json")
    shown = pre.text
    assert SCRIPT in shown, "the payload is visible literally"
    assert json.dumps(IMG)[1:-1] in shown and json.dumps(SVG)[1:-1] in shown
    assert c.js("return arguments[0].childElementCount", pre) == 0, "the JSON is one text node"
    assert json.loads(content(c, "event-json"))["data"]["author"] == IMG
    assert json.loads(content(c, "event-json"))["subject"] == SVG
    time.sleep(0.5)  # an onerror or onload would have fired by now
    assert_not_pwned(c)

    # A hostile search term comes back in an error notice, as text.
    assert c.search_events(IMG.replace("2", "5")) == "failed"
    c.wait(lambda: c.visible("notice") and "failed" in c.text("notice"), what="the refused search")
    assert c.js("return document.getElementById('notice').childElementCount") == 0
    assert_not_pwned(c)

    # The key's label on the keys page.
    c.goto("keys")
    c.wait(lambda: c.all_css("#keys-rows tr"), what="the key list")
    labels = [row.find_elements(By.TAG_NAME, "td")[2].text for row in c.all_css("#keys-rows tr")]
    assert IMG.replace("2", "4") in labels
    time.sleep(0.5)
    assert_not_pwned(c)


# ---- 4. a tenant key is not an admin credential ------------------------------------------------


def test_a_tenant_key_cannot_log_in_and_leaves_no_session(data_dir, servers, console_for):
    token = harness.admin_token(data_dir, "ops-dave")
    key = harness.tenant_key(data_dir, "acme")
    server = servers(data_dir)
    c = console_for(server)
    c.open()
    c.wait_visible("page-login")

    for wrong in (key, token.split(".")[0] + "." + "A" * 43, token[:-1] + ("x" if token[-1] != "x" else "y")):
        c.fill("login-token", wrong)
        c.by_testid("login-submit").click()
        c.wait_visible("login-error")
        assert "refused" in c.text("login-error")
        assert c.by_testid("login-token").get_attribute("value") == "", "the field is cleared"
        assert not c.visible("nav") and not c.visible("page-overview")
        assert c.driver.get_cookie("sluice_admin") is None, "no session cookie"
        assert c.fetch("GET", "/admin/api/session")["status"] == 401
        assert c.fetch("GET", "/admin/api/overview")["status"] == 401
        assert c.fetch("GET", "/admin/api/keys")["status"] == 401

    # Straight at the API: 401 unauthorized, and no cookie.
    status, headers, body = harness.http(
        "POST", f"{server.admin}/admin/api/session", {"token": key}, {"origin": server.admin}
    )
    assert status == 401 and body["code"] == "unauthorized", body
    assert headers.get("content-type", "").startswith("application/problem+json")
    set_cookie = headers.get("set-cookie") or ""
    assert "sluice_admin=" not in set_cookie or "Max-Age=0" in set_cookie, set_cookie

    # The admin token does log in; logging out ends the session.
    c.fill("login-token", token)
    c.by_testid("login-submit").click()
    c.wait_visible("page-overview")
    assert not c.visible("login-error")
    cookie = c.driver.get_cookie("sluice_admin")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
    assert c.js("return document.cookie.includes('sluice_admin')") is False, "HttpOnly: not readable by script"
    c.by_testid("logout").click()
    c.wait_visible("page-login")
    assert c.fetch("GET", "/admin/api/session")["status"] == 401
    c.driver.refresh()
    c.wait_visible("page-login")

    # A token revoked while its console is open: the next poll finds the session gone and the
    # console goes back to the sign-in page, saying so.
    c.fill("login-token", token)
    c.by_testid("login-submit").click()
    c.wait_visible("page-overview")
    harness.sluice(data_dir, "admin", "token", "revoke", token.split(".")[0])
    c.wait_visible("page-login", timeout=10)
    assert "session has ended" in c.text("notice")
    assert not c.visible("nav")
    c.fill("login-token", token)
    c.by_testid("login-submit").click()
    c.wait_visible("login-error")


# ---- 5. cross-site requests change nothing -----------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args):
        pass


def evil_pages(directory: pathlib.Path, admin: str, victim_key_id: str) -> list[tuple[str, str]]:
    """Auto-submitting pages a hostile site could serve: (file name, what it tries)."""
    keys = f"{admin}/admin/api/keys"
    revoke = f"{admin}/admin/api/keys/{victim_key_id}/revoke"
    json_name = '{"tenant":"evil","label":"csrf","pad":"'
    pages = {
        "urlencoded.html": (
            "form-encoded POST creating a key",
            f'<form method="POST" action="{keys}"><input name="tenant" value="evil">'
            '<input name="label" value="csrf-urlencoded"></form>',
        ),
        "textplain.html": (
            "text/plain POST whose body reads as JSON",
            f'<form method="POST" action="{keys}" enctype="text/plain">'
            f"<input name='{json_name}' value='\"}}'></form>",
        ),
        "multipart.html": (
            "multipart POST creating a key",
            f'<form method="POST" action="{keys}" enctype="multipart/form-data"><input name="tenant" value="evil">'
            '<input name="label" value="csrf-multipart"></form>',
        ),
        "revoke.html": (
            "text/plain POST revoking a key",
            f'<form method="POST" action="{revoke}" enctype="text/plain"><input name="{{}}" value=""></form>',
        ),
    }
    written = []
    for name, (what, form) in pages.items():
        (directory / name).write_text(
            f"<!doctype html><title>win a prize</title>{form}<script>document.forms[0].submit()</script>"
        )
        written.append((name, what))
    (directory / "fetch.html").write_text(
        "<!doctype html><title>win a prize</title><script>"
        f"fetch({json.dumps(keys)}, {{method: 'POST', mode: 'no-cors', credentials: 'include',"
        " headers: {'content-type': 'text/plain'}, body: '{\"tenant\":\"evil\",\"label\":\"csrf-fetch\"}'})"
        ".finally(() => { document.title = 'sent'; });</script>"
    )
    written.append(("fetch.html", "no-cors fetch with credentials"))
    return written


def test_cross_site_form_posts_to_the_admin_api_change_nothing(tmp_path, data_dir, servers, console_for):
    token = harness.admin_token(data_dir, "ops-erin")
    harness.tenant_key(data_dir, "acme", "victim")
    victim = next(k for k in harness.keys_list(data_dir) if k.get("label") == "victim")
    victim_id = victim.get("id") or victim.get("key_id")
    server = servers(data_dir)
    c = console_for(server)
    c.login(token)
    assert c.fetch("GET", "/admin/api/session")["status"] == 200

    site = tmp_path / "evil"
    site.mkdir()
    pages = evil_pages(site, server.admin, victim_id)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    answers = []
    try:
        # 127.0.0.1:<other port> is another origin of the same site (cookies ignore ports, so the
        # SameSite=Strict cookie IS sent: the Origin check must refuse); localhost is another site.
        for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            for name, what in pages:
                c.driver.get(f"{origin}/{name}")
                if name == "fetch.html":
                    c.wait(lambda: c.driver.title == "sent", timeout=15, what=f"{what} from {origin}")
                    continue
                c.wait(lambda: c.driver.current_url.startswith(server.admin), timeout=15, what=f"{what} from {origin}")
                text = c.driver.find_element(By.TAG_NAME, "body").text
                answer = json.loads(text)
                answers.append((origin, name, answer.get("status"), answer.get("code")))
                assert answer.get("status") in (401, 403), f"{what} from {origin}: {answer}"
                if origin.startswith("http://127.0.0.1"):
                    # The cookie went along; only the CSRF check stood in the way.
                    assert answer.get("code") == "csrf_refused", f"{what} from {origin}: {answer}"
    finally:
        httpd.shutdown()
        httpd.server_close()
    c.driver.get_log("browser")  # the hostile pages' noise is theirs, not the console's

    # Nothing changed: no key for "evil", the victim key is not revoked, and the console's own
    # session still works (it was live all along).
    c.open()
    c.wait_visible("page-overview")
    listed = c.fetch("GET", "/admin/api/keys")
    assert listed["status"] == 200, listed
    assert [k for k in listed["body"]["keys"] if k["tenant"] == "evil"] == []
    assert next(k for k in listed["body"]["keys"] if k["id"] == victim_id)["revoked_at"] is None
    cli = harness.keys_list(data_dir)
    assert [k for k in cli if k.get("tenant") == "evil"] == [], cli
    assert len(cli) == 1
    assert "key created" not in server.log_text() and "key revoked" not in server.log_text()

    # Control: the same creation from the console itself (same origin, JSON) does work.
    created = c.fetch("POST", "/admin/api/keys", {"tenant": "evil", "label": "control"})
    assert created["status"] == 201, created


# ---- 6. keys and sources from the console ----------------------------------------------------


def test_a_key_is_created_shown_once_used_and_revoked_from_the_console(data_dir, servers, console_for):
    token = harness.admin_token(data_dir, "ops-frank")
    harness.tenant_key(data_dir, "acme", "checkout")
    harness.tenant_key(data_dir, "acme", "warehouse")
    server = servers(data_dir)
    c = console_for(server)
    c.login(token)
    c.goto("keys")
    c.wait(lambda: len(c.all_css("#keys-rows tr")) == 2, what="the CLI's keys")

    c.fill("keys-tenant", "globex")
    c.fill("keys-label", "billing service")
    c.by_testid("keys-create").click()
    c.wait_visible("key-created")
    key = c.text("key-created-value")
    key_id = c.text("key-created-id")
    assert key.startswith("key_") and c.text("key-created-tenant") == "globex"
    assert "shown only this once" in c.text("key-created")
    c.wait(lambda: len(c.all_css("#keys-rows tr")) == 3, what="the new key in the list")
    row = c.driver.find_element(By.CSS_SELECTOR, f'#keys-rows tr[data-key-id="{key_id}"]')
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[:3] == [key_id, "globex", "billing service"]
    assert key not in c.by_testid("keys-table").text, "the list never shows a key"
    post_event(server, key, {"type": "invoice.sent", "data": {"invoice": "INV-7"}})
    c.screenshot("keys.png")

    c.by_testid("key-created-dismiss").click()
    assert not c.visible("key-created")
    assert key not in c.driver.page_source, "dismissed: the key is gone from the page"
    c.driver.refresh()
    c.wait_visible("page-keys")
    c.wait(lambda: len(c.all_css("#keys-rows tr")) == 3, what="the list after a reload")
    assert key not in c.driver.page_source

    # Revoke asks first; then the key is refused within auth.cache_secs (1 s here).
    revoke = lambda: c.driver.find_element(  # noqa: E731
        By.CSS_SELECTOR, f'#keys-rows tr[data-key-id="{key_id}"] [data-testid="key-revoke"]'
    )
    revoke().click()
    c.wait_visible("confirm")
    c.by_testid("confirm-no").click()
    assert harness.http("POST", f"{server.public}/v1/events", {"type": "a.b", "data": {}}, {"authorization": f"Bearer {key}"})[0] == 202
    revoke().click()
    c.wait_visible("confirm")
    c.by_testid("confirm-yes").click()
    c.wait(lambda: "revoked" in c.text("notice"), what="the revocation")
    c.wait(
        lambda: c.driver.find_element(By.CSS_SELECTOR, f'#keys-rows tr[data-key-id="{key_id}"]').find_elements(By.TAG_NAME, "td")[5].text
        not in ("", "—"),
        what="revoked_at in the list",
    )
    assert not c.all_css(f'#keys-rows tr[data-key-id="{key_id}"] [data-testid="key-revoke"]')
    wait_for(
        lambda: harness.http("POST", f"{server.public}/v1/events", {"type": "a.b", "data": {}}, {"authorization": f"Bearer {key}"})[0] == 401,
        timeout=10,
        what="the revoked key to be refused",
    )


def test_a_webhook_source_is_created_used_and_deleted_from_the_console(data_dir, servers, console_for):
    token = harness.admin_token(data_dir, "ops-grace")
    server = servers(data_dir)
    c = console_for(server)
    c.login(token)
    c.goto("sources")
    c.wait_visible("sources-empty")
    secret = "It's a Secret to Everybody"
    c.fill("sources-tenant", "acme")
    c.driver.find_element(By.CSS_SELECTOR, '#sources-kind option[value="github"]').click()
    c.fill("sources-secret", secret)
    c.by_testid("sources-create").click()
    c.wait_visible("source-created")
    source_id = c.text("source-created-id")
    assert source_id.startswith("src_")
    assert c.text("source-created-url").endswith(f"/v1/sources/{source_id}")
    assert c.by_testid("sources-secret").get_attribute("value") == ""
    assert secret not in c.driver.page_source
    c.wait(lambda: c.all_css(f'#sources-rows tr[data-source-id="{source_id}"]'), what="the source in the list")
    cells = [td.text for td in c.driver.find_element(By.CSS_SELECTOR, f'#sources-rows tr[data-source-id="{source_id}"]').find_elements(By.TAG_NAME, "td")]
    assert cells[1:3] == ["acme", "github"]

    # A delivery signed with that secret is accepted on the public listener.
    body = json.dumps({"action": "opened", "issue": {"number": 7, "title": "Console"}}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-github-event": "issues",
        "x-github-delivery": str(uuid.uuid4()),
        "x-hub-signature-256": signature,
    }
    status, _, answer = harness.http("POST", f"{server.public}/v1/sources/{source_id}", body, headers)
    assert status == 202, answer

    c.driver.find_element(By.CSS_SELECTOR, f'#sources-rows tr[data-source-id="{source_id}"] [data-testid="source-delete"]').click()
    c.wait_visible("confirm")
    c.by_testid("confirm-yes").click()
    c.wait(lambda: "deleted" in c.text("notice"), what="the deletion")
    c.wait(
        lambda: c.driver.find_element(By.CSS_SELECTOR, f'#sources-rows tr[data-source-id="{source_id}"]').find_elements(By.TAG_NAME, "td")[5].text
        not in ("", "—"),
        what="deleted_at in the list",
    )
    headers["x-github-delivery"] = str(uuid.uuid4())
    wait_for(
        lambda: harness.http("POST", f"{server.public}/v1/sources/{source_id}", body, headers)[0] == 401,
        timeout=10,
        what="the deleted source's deliveries to be refused",
    )


# ---- the contract around the page ----------------------------------------------------------------


def test_every_console_and_api_response_carries_the_security_headers(data_dir, servers):
    server = servers(data_dir)
    expect = {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
    }
    for path, status, content_type in (
        ("/console", 200, "text/html"),
        ("/console/", 200, "text/html"),
        ("/console/assets/app.js", 200, "text/javascript"),
        ("/console/assets/app.css", 200, "text/css"),
        ("/console/assets/uPlot.iife.min.js", 200, "text/javascript"),
        ("/console/assets/uPlot.min.css", 200, "text/css"),
        ("/admin/api/session", 401, "application/problem+json"),
        ("/admin/api/overview", 401, "application/problem+json"),
    ):
        got, headers, _ = harness.http("GET", f"{server.admin}{path}")
        assert got == status, f"GET {path}: {got}"
        assert (headers.get("content-type") or "").startswith(content_type), f"GET {path}: {headers.get('content-type')}"
        for name, value in expect.items():
            assert headers.get(name) == value, f"GET {path}: {name} is {headers.get(name)!r}"
    # The files served are the files in the repository.
    for served, local in (
        ("/console", "index.html"),
        ("/console/assets/app.js", "app.js"),
        ("/console/assets/app.css", "app.css"),
        ("/console/assets/uPlot.iife.min.js", "vendor/uPlot.iife.min.js"),
        ("/console/assets/uPlot.min.css", "vendor/uPlot.min.css"),
    ):
        _, _, body = harness.http("GET", f"{server.admin}{served}")
        assert body == (CONSOLE_DIR / local).read_text(), f"{served} differs from {local}"
    # A state change without the console's Origin and JSON is refused.
    status, _, body = harness.http("POST", f"{server.admin}/admin/api/session", b"token=x", {"content-type": "application/x-www-form-urlencoded"})
    assert status == 403 and body["code"] == "csrf_refused", body
    # Never on the public listener.
    assert harness.http("GET", f"{server.public}/console")[0] == 404


class _Markup(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=…>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            if not attrs.get("src"):
                self.problems.append("inline <script>")
            self.scripts.append(attrs.get("src", ""))
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.styles.append(attrs.get("href", ""))
        for name in ("href", "src", "action"):
            if (attrs.get(name) or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL in <{tag} {name}>")


def test_the_console_files_have_no_inline_code_and_no_html_sinks():
    markup = _Markup()
    markup.feed((CONSOLE_DIR / "index.html").read_text())
    assert markup.problems == []
    assert markup.scripts == ["/console/assets/uPlot.iife.min.js", "/console/assets/app.js"]
    assert markup.styles == ["/console/assets/uPlot.min.css", "/console/assets/app.css"]
    app = (CONSOLE_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "DOMParser", "srcdoc"):
        assert sink not in app, f"app.js uses {sink}"
    project_readme = (harness.ROOT / "README.md").read_text()
    assert "](docs/console/overview.png)" in project_readme, "the README shows the console"
    readme = (CONSOLE_DIR / "vendor" / "README.md").read_text()
    header = (CONSOLE_DIR / "vendor" / "uPlot.iife.min.js").read_text()[:80]
    version = header.split("(v", 1)[1].split(")", 1)[0]
    assert f"uPlot {version}" in readme and (CONSOLE_DIR / "vendor" / "LICENSE-uPlot").is_file()
