"""The local management UI of ``wasmdeck serve`` (docs/ui.md), driven in a real Chromium.

Debian's ``chromium`` and ``chromium-driver`` (scripts/install-system-deps)
run headless under Selenium; one browser for the whole module. The host is
the real ``wasmdeck serve`` in a child process, its plugins installed from
signed packages built here, one of them with a hostile name and description.

With ``WASMDECK_SCREENSHOTS=DIR`` the tests save the main pages there
(scripts/ui-screenshots writes docs/ui/).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest
from hostcall import host_call_module
from pkghelp import metadata, pack
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from test_serve import Host
from watgen import abi_module, data_string

from wasmdeck.packages import (
    PluginManager,
    build_package,
    generate_key,
    load_public_key,
    load_signing_key,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# A name and a description that would run script if a page took them as HTML.
HOSTILE = "<script>window.pwned=1</script>"
HOSTILE_DESCRIPTION = '<img src=x onerror="window.pwned=2">'
HOSTILE_RESULT = '<img src=x onerror="window.pwned=3">'  # what its action "show" outputs
SECRET = "hunter2-do-not-show"
HOOK_TOKEN = "hook-token-for-tests"

DECK = """\
version = 1

[listen]
webhooks = "127.0.0.1:0"

[plugins.demo]
installed = "demo"

[modes.live]
color = 21
[modes.edit]
color = 5

[[bindings]]
name = "hit"
trigger = {{ kind = "webhook", path = "/hit", auth = {{ bearer = {{ env = "HOOK_TOKEN" }} }} }}
actions = [{{ plugin = "demo", action = "ok" }}]

[plugins.evil]
installed = {hostile}

[[bindings]]
name = "show"
mode = "live"
trigger = {{ kind = "note_on", note = 36 }}
actions = [{{ plugin = "evil", action = "show" }}]
"""


@dataclass
class UI:
    host: Host
    root: Path  # WASMDECK_HOME
    url: str  # http://127.0.0.1:PORT/ui
    token: str
    webhooks: str  # http://127.0.0.1:PORT
    env: dict[str, str]
    key_id: str  # the unknown signer's key
    trusted_key_id: str

    def manager(self) -> PluginManager:
        return PluginManager(self.root)


def _signed(tmp: Path, keyfile: Path, wasm_bytes: bytes, name: str) -> Path:
    wasm = tmp / f"{name.encode().hex()}.wasm"
    wasm.write_bytes(wasm_bytes)
    target = wasm.with_suffix(".wdpk")
    target.write_bytes(build_package(wasm, key=load_signing_key(keyfile)).encode())
    return target


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    tmp = tmp_path_factory.mktemp("ui")
    root = tmp / "home"
    for name in ("unknown", "trusted"):
        generate_key(tmp / f"{name}.key")
    manager = PluginManager(root)
    trusted = manager.trust.add(load_public_key(tmp / "trusted.key.pub"), "Example Publisher")
    # demo: signed by a trusted key; obs: reads kv (so it needs its kv grant); the
    # hostile one and a spare to uninstall: signed by a key the store does not know.
    manager.install(pack(tmp, tmp / "trusted.key", name="demo"))
    kv = host_call_module(
        "kv_get", {"key": "password"}, name="obs", version="2.0.0", capabilities=["kv"]
    )
    manager.install(_signed(tmp, tmp / "unknown.key", kv, "obs"), grants=["kv"])
    output = HOSTILE_RESULT.encode()
    hostile = abi_module(
        f"(call $set_output (i32.const 8192) (i32.const {len(output)})) (i32.const 0)",
        metadata=metadata(HOSTILE, description=HOSTILE_DESCRIPTION),
        extra=f"(data (i32.const 8192) {data_string(output)})",
    )
    manager.install(_signed(tmp, tmp / "unknown.key", hostile, HOSTILE))
    manager.install(pack(tmp, tmp / "unknown.key", name="spare"))
    unknown_id = manager.get("obs").key_id
    assert unknown_id is not None
    (tmp / "deck.toml").write_text(DECK.format(hostile=json.dumps(HOSTILE)))
    env = {**os.environ, "WASMDECK_HOME": str(root), "HOOK_TOKEN": HOOK_TOKEN}
    # A marketplace nobody listens on (the default port may be taken on this machine).
    env["WASMDECK_MARKET"] = f"http://127.0.0.1:{_closed_port()}"
    host = Host(tmp / "deck.toml", env)
    try:
        hooks = host.wait_for("webhooks on http://")
        host.wait_for("wasmdeck: serving")
        control = json.loads((root / "control.json").read_text())
        yield UI(
            host=host,
            root=root,
            url=f"http://127.0.0.1:{control['port']}/ui",
            token=control["token"],
            webhooks=re.search(r"http://[\d.]+:\d+", hooks).group(0),  # type: ignore[union-attr]
            env=env,
            key_id=unknown_id,
            trusted_key_id=trusted.key_id,
        )
    finally:
        code = host.stop()
    assert code == 0, "".join(host.log)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("no chromium/chromedriver: run scripts/install-system-deps", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--password-store=basic",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns


def wait(browser: WebDriver, timeout: float = 15) -> WebDriverWait[WebDriver]:
    # An element may go stale while the page it was on is replaced: look again.
    return WebDriverWait(
        browser,
        timeout,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )


@pytest.fixture(scope="module")
def logged_in(ui: UI, browser: WebDriver) -> WebDriver:
    """The browser logged in through the address ``wasmdeck ui`` prints."""
    printed = cli(ui, "ui").stdout.strip()
    assert printed == f"{ui.url}/login#token={ui.token}"
    browser.get(printed)
    wait(browser).until(expected_conditions.title_contains("Deck"))
    assert "#" not in browser.current_url  # the token left the address bar
    return browser


def cli(ui: UI, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", *args],
        env=ui.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result


def shot(browser: WebDriver, name: str) -> None:
    target = os.environ.get("WASMDECK_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(int(height) + 160, 2400))  # the whole page
        browser.save_screenshot(str(Path(target) / f"{name}.png"))
        browser.set_window_size(1280, 900)


def text(browser: WebDriver, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def not_pwned(browser: WebDriver) -> None:
    assert browser.execute_script("return window.pwned === undefined") is True
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


def open_plugin(browser: WebDriver, ui: UI, name: str) -> None:
    browser.get(f"{ui.url}/plugins")
    browser.find_element(By.LINK_TEXT, name).click()
    wait(browser).until(lambda b: text(b, "#plugin-title").startswith(name))


def session_cookie(browser: WebDriver) -> dict[str, str]:
    return {c["name"]: c["value"] for c in browser.get_cookies()}


# -- tests -------------------------------------------------------------------------


def test_a_wrong_token_is_refused_and_the_session_cookie_is_httponly_and_strict(
    ui: UI, browser: WebDriver
) -> None:
    browser.delete_all_cookies()
    browser.get(f"{ui.url}/plugins")
    wait(browser).until(expected_conditions.title_contains("Log in"))  # sent to the login
    shot(browser, "login")
    field = browser.find_element(By.ID, "token")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=token]").text == "Control token"
    field.send_keys("not-the-token\n")
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "[role=alert]"))
    assert "not this host's control token" in text(browser, "[role=alert]")
    assert session_cookie(browser) == {}
    browser.find_element(By.ID, "token").send_keys(ui.token + "\n")
    wait(browser).until(expected_conditions.title_contains("Deck"))
    (cookie,) = browser.get_cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/ui")
    assert browser.execute_script("return document.cookie") == ""  # not readable by script


def test_installed_plugins_show_their_trust_and_signer(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    browser.get(f"{ui.url}/plugins")
    rows = {
        row.find_element(By.CSS_SELECTOR, "th").text: [
            cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td")
        ]
        for row in browser.find_elements(By.CSS_SELECTOR, "#plugins tbody tr")
    }
    assert sorted(rows) == sorted(["demo", "obs", "spare", HOSTILE])
    version, state, trust, signer, _grants, update = rows["demo"]
    assert (version, state, trust) == ("1.0.0", "enabled", "verified")
    assert signer == f"Example Publisher {ui.trusted_key_id}"
    assert rows["obs"][2:5] == ["signed", ui.key_id, "kv (low risk)"]
    # No marketplace answers here: the page says so instead of "up to date".
    assert update == "not known"
    assert "Could not ask the marketplace" in text(browser, "#updates-problem")
    shot(browser, "plugins")


def test_disable_and_enable_change_the_registry(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    open_plugin(browser, ui, "spare")
    browser.find_element(By.ID, "toggle").click()
    wait(browser).until(lambda b: text(b, "#state") == "disabled")
    assert "disabled spare 1.0.0" in text(browser, "[role=status]")
    assert ui.manager().get("spare").enabled is False
    browser.find_element(By.ID, "toggle").click()
    wait(browser).until(lambda b: text(b, "#state") == "enabled")
    assert ui.manager().get("spare").enabled is True


def test_revoking_a_grant_marks_the_plugin_not_loadable(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    open_plugin(browser, ui, "obs")
    assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#grants tbody td")][:1] == [
        "low"
    ]
    shot(browser, "plugin")
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Revoke kv']").click()
    wait(browser).until(lambda b: text(b, "#state").startswith("not loadable"))
    assert "kv" in text(browser, "#state .problem")
    assert ui.manager().get("obs").grants.to_strings() == []
    browser.get(f"{ui.url}/plugins")
    assert "not loadable" in browser.find_element(By.CSS_SELECTOR, ".state-not-loadable").text
    open_plugin(browser, ui, "obs")  # and back, through the grant form
    browser.find_element(By.ID, "capability").send_keys("kv")
    browser.find_element(By.CSS_SELECTOR, "#grant-form button").click()
    wait(browser).until(lambda b: text(b, "#state") == "enabled")
    assert "granted kv [low risk] to obs" in text(browser, "[role=status]")
    assert ui.manager().get("obs").grants.to_strings() == ["kv"]


def test_a_bad_grant_is_refused_with_its_reason(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    open_plugin(browser, ui, "obs")
    browser.find_element(By.ID, "capability").send_keys("network")
    browser.find_element(By.CSS_SELECTOR, "#grant-form button").click()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash.error"))
    assert "network needs a scope" in text(browser, ".flash.error")
    assert ui.manager().get("obs").grants.to_strings() == ["kv"]


def test_a_secret_is_stored_but_never_rendered_back(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    open_plugin(browser, ui, "obs")
    browser.find_element(By.ID, "config-key").send_keys("url")
    browser.find_element(By.ID, "config-value").send_keys('"ws://127.0.0.1:4455"')
    browser.find_element(By.CSS_SELECTOR, "#config-form button").click()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#config"))
    browser.find_element(By.ID, "config-key").send_keys("password")
    browser.find_element(By.ID, "config-value").send_keys(SECRET)
    browser.find_element(By.ID, "config-secret").click()
    browser.find_element(By.CSS_SELECTOR, "#config-form button").click()
    wait(browser).until(lambda b: "password set" in text(b, "[role=status]"))
    rows = {
        row.find_element(By.CSS_SELECTOR, "th").text: row.find_element(By.CSS_SELECTOR, "td").text
        for row in browser.find_elements(By.CSS_SELECTOR, "#config tbody tr")
    }
    assert rows == {"url": '"ws://127.0.0.1:4455"', "password": "set (secret)"}
    assert ui.manager().config.values("obs")["password"] == SECRET  # stored for the plugin
    assert browser.find_element(By.ID, "config-value").get_attribute("value") == ""
    for page in ("/", "/plugins", "/plugins/obs", "/events"):
        browser.get(ui.url + page)
        assert SECRET not in browser.page_source


def test_events_appear_live_after_wasmdeck_fire_and_a_webhook(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    browser.get(f"{ui.url}/events")
    wait(browser).until(lambda b: text(b, "#live-state") == "Live.")
    before = len(browser.find_elements(By.CSS_SELECTOR, "#events tbody tr"))
    cli(ui, "fire", "hit")

    def newest(b: WebDriver) -> list[str] | None:
        rows = b.find_elements(By.CSS_SELECTOR, "#events tbody tr")
        if len(rows) <= before:
            return None
        return [c.text for c in rows[0].find_elements(By.CSS_SELECTOR, "td")]

    row = wait(browser).until(newest)
    assert row[1:6] == ["hit", "webhook", "demo.ok", "ok", "ok"]
    assert float(row[6]) >= 0  # the duration, in ms
    answer = httpx.post(
        f"{ui.webhooks}/hit", headers={"Authorization": f"Bearer {HOOK_TOKEN}"}, json={}
    )
    assert answer.status_code == 202, answer.text
    before += 1
    assert wait(browser).until(newest)[1:6] == ["hit", "webhook", "demo.ok", "ok", "ok"]
    browser.refresh()  # the per-plugin counters are as of the page's loading
    wait(browser).until(lambda b: text(b, "#live-state") == "Live.")
    metrics = {
        row.find_element(By.CSS_SELECTOR, "th").text: [
            c.text for c in row.find_elements(By.CSS_SELECTOR, "td")
        ]
        for row in browser.find_elements(By.CSS_SELECTOR, "#metrics-table tbody tr")
    }
    calls = json.loads(cli(ui, "status", "--json").stdout)["plugins"]["demo"]["calls"]
    assert calls >= 2 and metrics["demo"][1:5] == [str(calls), "none", "none", "0"]
    shot(browser, "events")


def test_the_mode_switches_from_the_deck_page(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    browser.get(f"{ui.url}/")
    Select(browser.find_element(By.ID, "mode-select")).select_by_value("edit")
    browser.find_element(By.CSS_SELECTOR, "#mode-form button").click()
    wait(browser).until(lambda b: text(b, "#current-mode") == "edit")
    assert json.loads(cli(ui, "status", "--json").stdout)["mode"] == "edit"
    Select(browser.find_element(By.ID, "mode-select")).select_by_value("live")
    browser.find_element(By.CSS_SELECTOR, "#mode-form button").click()
    wait(browser).until(lambda b: text(b, "#current-mode") == "live")
    shot(browser, "deck")


def test_hostile_names_and_descriptions_are_shown_as_text(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    browser.get(f"{ui.url}/plugins")
    assert HOSTILE in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".plugin-name")]
    not_pwned(browser)
    open_plugin(browser, ui, HOSTILE)
    assert text(browser, ".description") == HOSTILE_DESCRIPTION
    assert browser.title == f"{HOSTILE} · wasmdeck"
    not_pwned(browser)
    browser.get(f"{ui.url}/")
    assert "show" in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".binding-name")]
    not_pwned(browser)
    browser.get(f"{ui.url}/events")
    wait(browser).until(lambda b: text(b, "#live-state") == "Live.")
    cli(ui, "fire", "show")  # the plugin's result reaches the live log through the script

    def hostile_row(b: WebDriver) -> bool:
        cells = b.find_elements(By.CSS_SELECTOR, "#events tbody tr:first-child td")
        return len(cells) > 5 and cells[1].text == "show" and cells[5].text == HOSTILE_RESULT

    wait(browser).until(hostile_row)
    not_pwned(browser)
    browser.refresh()  # and the rows rendered on the server
    wait(browser).until(hostile_row)
    not_pwned(browser)


def test_a_post_without_the_csrf_token_is_refused(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    cookies = session_cookie(browser)
    with httpx.Client(base_url=ui.url, cookies=cookies) as client:
        page = client.get("/plugins/spare")
        assert page.status_code == 200
        # Scripts from this server only, none inline: a missed escape could not run one.
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self';" in policy
        assert "<script>" not in page.text  # the page's own script is a file
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        for form, headers in (
            ({"x": "1"}, {}),  # no token
            ({"csrf": "forged"}, {}),  # a wrong one
            ({"csrf": csrf}, {"Origin": "http://evil.example"}),  # another site's page
        ):
            refused = client.post("/plugins/spare/disable", data=form, headers=headers)
            assert refused.status_code == 403, refused.text
        # A GET changes nothing: it is only ever a page (here: no plugin of that name).
        assert client.get("/plugins/spare/disable").status_code == 404
        with httpx.Client(base_url=ui.url) as stranger:  # the token without the session
            assert stranger.post("/plugins/spare/disable", data={"csrf": csrf}).status_code == 403
    assert ui.manager().get("spare").enabled is True
    # In the browser: a form without the token shows the refusal and changes nothing.
    browser.get(f"{ui.url}/plugins/spare")
    browser.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = arguments[0]; document.body.appendChild(f); f.submit();",
        f"{ui.url}/plugins/spare/disable",
    )
    wait(browser).until(lambda b: "CSRF token is missing or wrong" in text(b, "[role=alert]"))
    assert ui.manager().get("spare").enabled is True


def test_a_wrong_host_header_is_refused(ui: UI, logged_in: WebDriver) -> None:
    cookies = session_cookie(logged_in)
    port = ui.url.split(":")[2].split("/")[0]
    with httpx.Client(cookies=cookies) as client:
        for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1.evil.example:{port}"):
            answer = client.get(f"{ui.url}/plugins", headers={"Host": host})
            assert answer.status_code == 421, (host, answer.text)
        assert client.get(f"{ui.url}/plugins").status_code == 200


def test_uninstall_asks_first_then_removes_the_plugin(ui: UI, logged_in: WebDriver) -> None:
    browser = logged_in
    open_plugin(browser, ui, "spare")
    browser.find_element(By.CSS_SELECTOR, "#uninstall-form button").click()
    wait(browser).until(expected_conditions.alert_is_present()).dismiss()  # no: nothing happens
    assert ui.manager().get("spare").enabled is True
    browser.find_element(By.CSS_SELECTOR, "#uninstall-form button").click()
    wait(browser).until(expected_conditions.alert_is_present()).accept()
    wait(browser).until(expected_conditions.title_contains("Installed plugins"))
    assert "uninstalled spare 1.0.0" in text(browser, "[role=status]")
    assert "spare" not in [p.name for p in ui.manager().list()]


def test_a_plugin_reloads_from_its_row_and_a_failure_says_why_as_text(
    ui: UI, logged_in: WebDriver
) -> None:
    """Each plugin's row on the deck page (and the installed plugin's page) has a
    Reload button: the daemon's per-plugin reload, its outcome in the page. A
    failure's reason (here naming the hostile plugin) is shown as text."""
    browser = logged_in

    def reloads(name: str) -> dict[str, object]:
        status = json.loads(cli(ui, "status", "--json").stdout)
        record: dict[str, object] = status["plugins"][name]["reloads"]
        return record

    before = reloads("demo")["count"]
    assert isinstance(before, int)
    browser.get(f"{ui.url}/")
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Reload demo']").click()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash.ok"))
    assert "plugin demo reloaded: 1.0.0 -> 1.0.0, 0 bytes of state" in text(browser, ".flash.ok")
    assert reloads("demo") == {"count": before + 1, "error": None, "ms": ANY, "state_bytes": 0}
    row = browser.find_element(By.XPATH, "//table[@id='metrics-table']//tr[th='demo']")
    assert f"{before + 1} so far" in row.find_element(By.CSS_SELECTOR, ".reload").text
    # From the installed plugin's page, and back to it.
    open_plugin(browser, ui, "demo")
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Reload demo']").click()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash.ok"))
    assert text(browser, "#plugin-title") == "demo 1.0.0"
    assert reloads("demo")["count"] == before + 2

    # Disabled in the store, the hostile plugin cannot load: its reload fails, and
    # the running version stays.
    ui.manager().disable(HOSTILE)
    try:
        browser.get(f"{ui.url}/")
        browser.find_element(By.CSS_SELECTOR, "button[aria-label='Reload evil']").click()
        wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash.error"))
        error = text(browser, ".flash.error")
        assert "plugin evil: the reload failed (load); the running version stays" in error
        assert f"enable it with 'wasmdeck enable {HOSTILE}'" in error
        row = browser.find_element(By.XPATH, "//table[@id='metrics-table']//tr[th='evil']")
        assert HOSTILE in row.find_element(By.CSS_SELECTOR, ".reload-error").text
        not_pwned(browser)
        assert json.loads(cli(ui, "status", "--json").stdout)["plugins"]["evil"]["version"]
    finally:
        ui.manager().enable(HOSTILE)
    # Enabled again, the package watching reloads it.
    wait(browser, 60).until(lambda _: reloads("evil")["error"] is None)

    # A plugin the deck lacks, and a form without the CSRF token.
    browser.get(f"{ui.url}/")
    browser.execute_script(
        "const f = document.querySelector('td.reload form'); f.action = arguments[0]; f.submit();",
        f"{ui.url}/reload/nobody",
    )
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash.error"))
    assert "no plugin named 'nobody' in the deck" in text(browser, ".flash.error")
    with httpx.Client(base_url=ui.url, cookies=session_cookie(browser)) as client:
        refused = client.post("/reload/demo", data={"csrf": "forged"})
        assert refused.status_code == 403, refused.text
    assert reloads("demo")["count"] == before + 2


def test_every_control_has_a_label_and_keyboard_reaches_the_forms(
    ui: UI, logged_in: WebDriver
) -> None:
    browser = logged_in
    for page in ("/", "/plugins/obs", "/events"):
        browser.get(ui.url + page)
        assert browser.find_elements(By.TAG_NAME, "h1"), page
        for control in browser.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select"):
            ident = control.get_attribute("id")
            assert ident and browser.find_elements(By.CSS_SELECTOR, f"label[for='{ident}']"), page
        for button in browser.find_elements(By.TAG_NAME, "button"):
            assert (button.text or button.get_attribute("aria-label")).strip(), page
    # Keyboard only: Tab to the mode selector, pick with the arrow keys, submit with Enter.
    browser.get(f"{ui.url}/")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("\t")  # the skip link comes first
    assert browser.switch_to.active_element.text == "Skip to the content"
    select = browser.find_element(By.ID, "mode-select")
    for _ in range(20):
        if browser.switch_to.active_element == select:
            break
        browser.switch_to.active_element.send_keys("\t")
    assert browser.switch_to.active_element == select
