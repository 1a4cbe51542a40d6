"""The marketplace's pages and installing from them into a local host, in a real Chromium.

The issue's flow end to end (docs/marketplace.md, docs/ui.md): search the
marketplace, open a package, install it into ``wasmdeck serve`` from its
local UI (the consent page lists the capabilities and their risks), see it
enabled, revoke a grant, rate it as a logged-in account; and the pages' own
defences: a hostile description and readme shown as text, a POST without the
CSRF token refused, a yank from the publisher's view.

The browser fixture is tests/test_ui.py's; the marketplace runs on uvicorn in
this process (tests/marketfix.py), once on SQLite and once on a real
PostgreSQL (every test runs on both), the host in a child process.
With ``WASMDECK_SCREENSHOTS=DIR`` the main pages are saved there
(scripts/ui-screenshots writes docs/ui/).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from marketfix import GENEROUS, MarketServer, make_market, new_key, pack
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from test_serve import Host
from test_ui import browser, not_pwned, shot, text, wait

from wasmdeck.packages import PluginManager
from wasmdeck_market import page_routes

__all__ = ["browser"]  # the fixture, used by name

HOSTILE_DESCRIPTION = '<img src=x onerror="window.pwned=4">'
HOSTILE_README = "<script>window.pwned=5</script>\n<b>not bold</b>"
HOSTILE_REVIEW = '<img src=x onerror="window.pwned=6">'


@dataclass
class Setup:
    market: MarketServer
    key: Path  # the publisher's signing key
    tmp: Path
    publisher_token: str
    reviewer_token: str
    host: Host
    home: Path
    ui_url: str  # http://127.0.0.1:PORT/ui
    ui_token: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp(f"ui-market-{request.param}")
    market = MarketServer(
        make_market(request.param, tmp / "market", request),
        limits=GENEROUS,
        open_signup=True,
        routes=page_routes(),
    )
    with market:
        key = new_key(tmp / "keys", "publisher.key")
        publisher = market.publisher(key, "streamer-tools")
        for version in ("1.0.0", "1.1.0"):
            published = market.publish(
                publisher,
                pack(
                    tmp,
                    key,
                    name="scene-switcher",
                    version=version,
                    description="Switch OBS scenes from a pad",
                    capabilities=[{"kind": "kv"}],
                    keywords=["obs", "scenes"],
                    category="streaming",
                    readme="Bind a pad to a scene.\nIt keeps the last scene in kv.",
                ),
            )
            assert published.status_code == 201, published.text
        hostile = pack(
            tmp,
            key,
            name="hostile-notes",
            description=HOSTILE_DESCRIPTION,
            readme=HOSTILE_README,
            category="streaming",
        )
        assert market.publish(publisher, hostile).status_code == 201
        for n in range(22):  # more than one page of results
            filler = pack(tmp, key, name=f"filler-{n:02d}", category="misc")
            assert market.publish(publisher, filler).status_code == 201
        with market.client() as http:
            reviewer = http.post("/api/v1/accounts", json={"name": "a-listener"}).json()["token"]
        home = tmp / "home"
        (tmp / "deck.toml").write_text("version = 1\n")
        env = {**os.environ, "WASMDECK_HOME": str(home), "WASMDECK_MARKET": market.url}
        env.pop("WASMDECK_MARKET_TOKEN", None)
        host = Host(tmp / "deck.toml", env)
        try:
            host.wait_for("wasmdeck: serving")
            control = json.loads((home / "control.json").read_text())
            yield Setup(
                market,
                key,
                tmp,
                publisher,
                reviewer,
                host,
                home,
                f"http://127.0.0.1:{control['port']}/ui",
                control["token"],
            )
        finally:
            code = host.stop()
        assert code == 0, "".join(host.log)


def market_login(browser: WebDriver, setup: Setup, token: str) -> None:
    browser.get(f"{setup.market.url}/login")
    browser.find_element(By.ID, "token").send_keys(token + "\n")
    wait(browser).until(expected_conditions.title_contains("Publisher"))


# -- the issue's flow ----------------------------------------------------------------


def test_search_open_install_enabled_revoke_and_rate(setup: Setup, browser: WebDriver) -> None:
    # Search the marketplace and open the package.
    browser.get(setup.market.url)
    shot(browser, "market-browse")
    box = browser.find_element(By.ID, "search-q")
    box.send_keys("scenes\n")
    wait(browser).until(lambda b: text(b, "#total").startswith("1 plugin"))
    shot(browser, "market-search")
    browser.find_element(By.LINK_TEXT, "scene-switcher").click()
    wait(browser).until(lambda b: text(b, "#package-title").startswith("scene-switcher"))
    assert "low risk kv" in text(browser, "#capabilities")
    assert "It keeps the last scene in kv." in text(browser, "#readme")
    versions = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")]
    assert [v.split()[0] for v in versions] == ["1.1.0", "1.0.0"]
    signer = text(browser, "#signer")
    assert re.fullmatch(r"[0-9a-f]{16,64}", signer), signer

    # Install it into the local host from its UI: search there, Install, consent.
    browser.get(f"{setup.ui_url}/login#token={setup.ui_token}")
    wait(browser).until(expected_conditions.title_contains("Deck"))
    browser.find_element(By.LINK_TEXT, "Marketplace").click()
    wait(browser).until(expected_conditions.title_contains("Marketplace"))
    browser.find_element(By.ID, "market-q").send_keys("scene switcher\n")
    wait(browser).until(lambda b: "scene-switcher" in text(b, "#market-results"))
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Install scene-switcher']").click()
    wait(browser).until(
        lambda b: text(b, "#consent-title").startswith("Install scene-switcher 1.1.0")
    )
    assert "low risk kv" in text(browser, "#consent-requested")
    assert "kv (low risk)" in text(browser, "#consent-grants")
    assert text(browser, "#consent-trust") == f"signed by an unknown key {signer}"
    shot(browser, "market-consent")
    assert PluginManager(setup.home).list() == []  # nothing installed before consenting
    browser.find_element(By.ID, "consent-install").click()

    # See it enabled, with its grant; revoke the grant.
    wait(browser).until(lambda b: text(b, "#plugin-title").startswith("scene-switcher"))
    assert "installed scene-switcher 1.1.0 (enabled); granted: kv" in text(browser, "[role=status]")
    assert text(browser, "#state") == "enabled"
    installed = PluginManager(setup.home).get("scene-switcher")
    assert (installed.version, installed.enabled) == ("1.1.0", True)
    assert installed.grants.to_strings() == ["kv"]
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Revoke kv']").click()
    wait(browser).until(lambda b: "took back kv" in text(b, "[role=status]"))
    assert PluginManager(setup.home).get("scene-switcher").grants.to_strings() == []
    # The marketplace counted the download (the install went through its API).
    assert setup.market.market.package("scene-switcher")["downloads"] == 1

    # Rate it, logged in to the marketplace as an account.
    market_login(browser, setup, setup.reviewer_token)
    browser.get(f"{setup.market.url}/packages/scene-switcher")
    assert "Rate it" in text(browser, "#review-form")
    browser.find_element(By.ID, "rating-choice").send_keys("4")
    browser.find_element(By.ID, "review-body").send_keys("Works. " + HOSTILE_REVIEW)
    browser.find_element(By.CSS_SELECTOR, "#review-form button").click()
    wait(browser).until(lambda b: "from 1 review" in text(b, "#rating"))
    assert text(browser, "#rating").startswith("4.0")
    assert HOSTILE_REVIEW in text(browser, ".review-body")
    assert text(browser, "#downloads") == "1"
    not_pwned(browser)
    shot(browser, "market-package")
    (review,) = setup.market.market.reviews("scene-switcher")
    assert (review["author"], review["rating"]) == ("a-listener", 4)


def ui_client(setup: Setup) -> tuple[httpx.Client, str]:
    """An HTTP client logged in to the local UI, and its session's CSRF token."""
    http = httpx.Client(base_url=setup.ui_url)
    assert http.post("/login", data={"token": setup.ui_token}).status_code == 303
    page = http.get("/market")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return http, csrf


def test_the_local_ui_refuses_what_wasmdeck_install_refuses(setup: Setup) -> None:
    market = setup.market.market
    owner = market.authenticate(setup.publisher_token)
    market.yank(owner, "hostile-notes", "1.0.0", "withdrawn")
    http, csrf = ui_client(setup)
    try:
        # Nothing left that is not yanked: the client's own refusal, on the page.
        answer = http.post("/market/review", data={"csrf": csrf, "name": "hostile-notes"})
        assert answer.status_code == 303
        page = http.get(setup.ui_url.removesuffix("/ui") + answer.headers["location"]).text
        assert "hostile-notes has no version that is not yanked" in page
        # A consent page that was never shown (or another session's) installs nothing.
        answer = http.post("/market/install", data={"csrf": csrf, "pending": "made-up"})
        assert (
            "that consent page has expired"
            in http.get(setup.ui_url.removesuffix("/ui") + answer.headers["location"]).text
        )
        refused = http.post("/market/review", data={"name": "hostile-notes"})
        assert refused.status_code == 403  # no CSRF token
    finally:
        http.close()
    names = [p.name for p in PluginManager(setup.home).list()]
    assert "hostile-notes" not in names
    market.yank(owner, "hostile-notes", "1.0.0", None)


def test_browse_sorts_filters_and_pages(setup: Setup, browser: WebDriver) -> None:
    browser.get(f"{setup.market.url}/?category=misc&sort=name")
    assert text(browser, "#total") == "22 plugins, page 1 of 2"
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results tbody a")]
    assert names == [f"filler-{n:02d}" for n in range(20)]
    browser.find_element(By.ID, "next-page").click()
    wait(browser).until(lambda b: "page 2 of 2" in text(b, "#total"))
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results tbody a")]
    assert names == ["filler-20", "filler-21"]
    with httpx.Client(base_url=setup.market.url) as http:
        refused = http.get("/", params={"sort": "nonsense"})
        assert refused.status_code == 422 and "sort must be one of" in refused.text


def test_a_hostile_description_and_readme_are_shown_as_text(
    setup: Setup, browser: WebDriver
) -> None:
    browser.get(f"{setup.market.url}/?q=hostile")
    wait(browser).until(lambda b: "hostile-notes" in text(b, "#results"))
    assert HOSTILE_DESCRIPTION in text(browser, "#results")
    browser.find_element(By.LINK_TEXT, "hostile-notes").click()
    wait(browser).until(lambda b: text(b, "#package-title").startswith("hostile-notes"))
    assert text(browser, "#description") == HOSTILE_DESCRIPTION
    assert text(browser, "#readme") == HOSTILE_README
    assert browser.find_elements(By.CSS_SELECTOR, "#readme b, main img, main script") == []
    not_pwned(browser)
    with httpx.Client(base_url=setup.market.url) as http:
        page = http.get("/packages/hostile-notes")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_a_post_without_the_csrf_token_is_refused(setup: Setup, browser: WebDriver) -> None:
    with httpx.Client(base_url=setup.market.url) as http:
        done = http.post("/login", data={"token": setup.reviewer_token})
        assert done.status_code == 303
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = http.get("/packages/hostile-notes")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        for form, headers in (
            ({"rating": "1"}, {}),
            ({"rating": "1", "csrf": "forged"}, {}),
            ({"rating": "1", "csrf": csrf}, {"Origin": "http://evil.example"}),
        ):
            refused = http.post("/packages/hostile-notes/review", data=form, headers=headers)
            assert refused.status_code == 403, refused.text
        with httpx.Client(base_url=setup.market.url) as stranger:  # no cookie
            refused = stranger.post(
                "/packages/hostile-notes/review", data={"csrf": csrf, "rating": "1"}
            )
            assert refused.status_code == 401
    assert setup.market.market.reviews("hostile-notes") == []
    # In the browser: a form without the token shows the refusal.
    market_login(browser, setup, setup.reviewer_token)
    browser.get(f"{setup.market.url}/packages/hostile-notes")
    browser.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = arguments[0]; document.body.appendChild(f); f.submit();",
        f"{setup.market.url}/packages/hostile-notes/review",
    )
    wait(browser).until(lambda b: "CSRF token is missing or wrong" in text(b, "[role=alert]"))
    assert setup.market.market.reviews("hostile-notes") == []


def test_a_yank_from_the_publisher_view(setup: Setup, browser: WebDriver) -> None:
    market_login(browser, setup, setup.publisher_token)
    assert "active" in text(browser, "#keys")
    browser.find_element(By.ID, "reason-scene-switcher-1_0_0").send_keys("<b>broken</b> on 2.x")
    assert "filler-00" in text(browser, "main")  # every package of the account is listed
    field = browser.find_element(By.ID, "reason-scene-switcher-1_0_0")
    field.find_element(By.XPATH, "following-sibling::button").click()
    wait(browser).until(lambda b: text(b, "#notice") == "yanked scene-switcher 1.0.0")
    assert (
        setup.market.market.version("scene-switcher", "1.0.0")["yanked"] == "<b>broken</b> on 2.x"
    )
    browser.get(f"{setup.market.url}/packages/scene-switcher")
    assert "yanked: <b>broken</b> on 2.x" in text(browser, "#versions")
    # Another account's token cannot yank it: the service's own check.
    market_login(browser, setup, setup.reviewer_token)
    with httpx.Client(base_url=setup.market.url) as http:
        http.post("/login", data={"token": setup.reviewer_token})
        page = http.get("/publisher")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        refused = http.post(
            "/publisher/yank",
            data={"csrf": csrf, "name": "scene-switcher", "version": "1.1.0", "reason": "mine"},
        )
    assert refused.status_code == 403 and "belongs to another publisher" in refused.text
    assert setup.market.market.version("scene-switcher", "1.1.0")["yanked"] is None


# -- updating from the local UI -------------------------------------------------------

NETWORK = {"kind": "network", "hosts": ["lights.example"]}


def publish_version(setup: Setup, name: str, version: str, capabilities: list[object]) -> None:
    package = pack(setup.tmp, setup.key, name=name, version=version, capabilities=capabilities)
    published = setup.market.publish(setup.publisher_token, package)
    assert published.status_code == 201, published.text


def test_update_from_the_local_ui_with_a_version_choice(setup: Setup, browser: WebDriver) -> None:
    market = setup.market.market
    owner = market.authenticate(setup.publisher_token)
    for version, caps in (("1.0.0", ["kv"]), ("1.1.0", ["kv"]), ("1.2.0", ["kv", NETWORK])):
        publish_version(setup, "light-fader", version, caps)
    publish_version(setup, "light-fader", "1.3.0", ["kv", NETWORK])
    market.yank(owner, "light-fader", "1.3.0", "<b>flickers</b>")
    manager = PluginManager(setup.home)
    manager.install(
        pack(setup.tmp, setup.key, name="light-fader", version="1.0.0", capabilities=["kv"]),
        yes=True,
    )

    # The installed-plugins page says what `wasmdeck outdated` says.
    browser.get(f"{setup.ui_url}/login#token={setup.ui_token}")
    wait(browser).until(expected_conditions.title_contains("Deck"))
    browser.get(f"{setup.ui_url}/plugins")
    assert text(browser, "#update-light-fader") == "1.2.0 available"
    shot(browser, "ui-plugins-update")
    browser.find_element(By.ID, "update-light-fader").click()
    wait(browser).until(lambda b: text(b, "#plugin-title") == "light-fader 1.0.0")

    # The choice: newer versions that are not yanked, newest first; the yanked one apart.
    options = browser.find_elements(By.CSS_SELECTOR, "#update-version option")
    assert [o.get_attribute("value") for o in options] == ["1.2.0", "1.1.0"]
    assert "1.3.0 (<b>flickers</b>)" in text(browser, "#update-skipped")

    # Not the newest: 1.1.0, which asks for nothing new, so its grants are kept.
    browser.find_element(By.ID, "update-version").send_keys("1.1.0")
    browser.find_element(By.CSS_SELECTOR, "#update-form button").click()
    wait(browser).until(lambda b: text(b, "#consent-title") == "Upgrade light-fader 1.1.0?")
    assert "Installed now: 1.0.0." in text(browser, "#consent-from")
    assert browser.find_elements(By.CSS_SELECTOR, "#consent-requested .new") == []
    assert "nothing more is granted" in text(browser, "#consent-nothing-new")
    assert manager.get("light-fader").version == "1.0.0"  # nothing before consenting
    browser.find_element(By.ID, "consent-install").click()
    wait(browser).until(lambda b: text(b, "#plugin-title") == "light-fader 1.1.0")
    assert "upgraded light-fader 1.1.0 (enabled); granted: kv" in text(browser, "[role=status]")

    # Then the newest: its new network request is marked, and granted only on consent.
    options = browser.find_elements(By.CSS_SELECTOR, "#update-version option")
    assert [o.get_attribute("value") for o in options] == ["1.2.0"]
    browser.find_element(By.CSS_SELECTOR, "#update-form button").click()
    wait(browser).until(lambda b: text(b, "#consent-title") == "Upgrade light-fader 1.2.0?")
    (new,) = browser.find_elements(By.CSS_SELECTOR, "#consent-requested .new-request")
    assert new.text == "NEW medium risk network hosts=['lights.example']"
    assert text(browser, "#consent-kept") == "kv"
    assert text(browser, "#consent-grants") == "network:lights.example (medium risk)"
    shot(browser, "ui-update-consent")
    browser.find_element(By.ID, "consent-install").click()
    wait(browser).until(lambda b: text(b, "#plugin-title") == "light-fader 1.2.0")
    installed = PluginManager(setup.home).get("light-fader")
    assert installed.version == "1.2.0"
    assert installed.grants.to_strings() == ["kv", "network:lights.example"]
    assert "1.2.0 is the newest version" in text(browser, "#up-to-date")
    browser.get(f"{setup.ui_url}/plugins")
    assert browser.find_elements(By.ID, "update-light-fader") == []


def test_an_update_from_the_ui_never_goes_back(setup: Setup) -> None:
    publish_version(setup, "dimmer", "1.0.0", [])
    publish_version(setup, "dimmer", "2.0.0", [])
    PluginManager(setup.home).install(
        pack(setup.tmp, setup.key, name="dimmer", version="2.0.0"), yes=True
    )
    http, csrf = ui_client(setup)
    try:
        page = http.get("/plugins/dimmer").text
        assert "2.0.0 is the newest version" in page and 'id="update-form"' not in page
        # A forged form pinning an older version: the manager's downgrade check.
        answer = http.post(
            "/market/review",
            data={"csrf": csrf, "name": "dimmer", "version": "1.0.0", "back": "plugin"},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/plugins/dimmer"
        shown = http.get("/plugins/dimmer").text
        assert "older" in shown and "--allow-downgrade" in shown, shown
    finally:
        http.close()
    assert PluginManager(setup.home).get("dimmer").version == "2.0.0"


# -- moderation and keys on the marketplace's pages ------------------------------------


def test_report_a_review_and_a_moderator_hides_it(setup: Setup, browser: WebDriver) -> None:
    market = setup.market.market
    publish_version(setup, "noisy-knob", "1.0.0", [])
    troll, _ = market.create_account("a-troll")
    market.review(troll, "noisy-knob", 1, HOSTILE_REVIEW + " buy followers")
    fan = market.authenticate(setup.reviewer_token)
    market.review(fan, "noisy-knob", 5, "Smooth.")
    _, moderator_token = market.create_account("the-moderator", admin=True)

    # Any account reports it, from the package page (its own review has no such form).
    market_login(browser, setup, setup.reviewer_token)
    browser.get(f"{setup.market.url}/packages/noisy-knob")
    assert text(browser, "#rating").startswith("3.0")
    assert len(browser.find_elements(By.CSS_SELECTOR, "form.report")) == 1
    browser.find_element(By.CSS_SELECTOR, "form.report input[name=reason]").send_keys(
        "spam <i>and</i> a script"
    )
    browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Report a-troll\'s review"]').click()
    wait(browser).until(
        lambda b: text(b, "#notice") == "reported a-troll's review to the moderators"
    )
    not_pwned(browser)
    # Not a moderator: no moderation page.
    browser.get(f"{setup.market.url}/moderation")
    assert "only a moderator" in text(browser, "#error")

    # The moderator sees the report and hides the review.
    market_login(browser, setup, moderator_token)
    browser.find_element(By.ID, "moderation-link").click()
    wait(browser).until(expected_conditions.title_contains("Moderation"))
    row = text(browser, "#reports tbody")
    assert "noisy-knob a-troll 1" in row and HOSTILE_REVIEW in row and "shown" in row
    not_pwned(browser)
    shot(browser, "market-moderation")
    browser.find_element(
        By.CSS_SELECTOR, 'button[aria-label="Hide a-troll\'s review of noisy-knob"]'
    ).click()
    wait(browser).until(lambda b: text(b, "#notice") == "hid a-troll's review of noisy-knob")
    assert "hidden" in text(browser, "#reports tbody")

    # Hidden: not on the package's page, not in its rating (nor in the API).
    browser.get(f"{setup.market.url}/packages/noisy-knob")
    reviews = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".review-body")]
    assert reviews == ["Smooth."]
    assert text(browser, "#rating").startswith("5.0 ★ from 1 review")
    with setup.market.client() as http:
        listed = http.get("/api/v1/packages/noisy-knob/reviews").json()["reviews"]
    assert [r["author"] for r in listed] == ["a-listener"]

    # And shown again.
    browser.get(f"{setup.market.url}/moderation")
    browser.find_element(
        By.CSS_SELECTOR, 'button[aria-label="Show a-troll\'s review of noisy-knob again"]'
    ).click()
    wait(browser).until(lambda b: "showed again" in text(b, "#notice"))
    assert len(market.reviews("noisy-knob")) == 2


def test_register_revoke_and_rotate_keys_from_the_publisher_view(
    setup: Setup, browser: WebDriver
) -> None:
    from pkghelp import wasmdeck

    from wasmdeck.packages import load_public_key

    publish_version(setup, "key-turner", "1.0.0", [])
    old_id = load_public_key(setup.key.with_name(setup.key.name + ".pub")).key_id
    laptop = new_key(setup.tmp / f"keys-{os.getpid()}", "laptop.key")
    spare = new_key(setup.tmp / f"keys-{os.getpid()}", "spare.key")
    laptop_pub, spare_pub = (Path(f"{k}.pub") for k in (laptop, spare))
    laptop_id = load_public_key(laptop_pub).key_id
    spare_id = load_public_key(spare_pub).key_id

    market_login(browser, setup, setup.publisher_token)
    for pub, key_id in ((laptop_pub, laptop_id), (spare_pub, spare_id)):
        browser.find_element(By.ID, "public-key").send_keys(pub.read_text().strip())
        browser.find_element(By.CSS_SELECTOR, "#add-key-form button").click()
        wait(browser).until(lambda b, k=key_id: text(b, "#notice") == f"registered key {k}")
    assert f"{laptop_id} " in text(browser, "#keys") and "revoked" not in text(browser, "#keys")
    # Not a key: the service's message.
    browser.find_element(By.ID, "public-key").send_keys("ed25519 not-a-key")
    browser.find_element(By.CSS_SELECTOR, "#add-key-form button").click()
    wait(browser).until(lambda b: text(b, "#error").startswith("public_key:"))

    # Revoke the spare key.
    browser.get(f"{setup.market.url}/publisher")
    browser.find_element(By.CSS_SELECTOR, f"button[aria-label='Revoke key {spare_id}']").click()
    wait(browser).until(lambda b: text(b, "#notice") == f"revoked key {spare_id}")
    (row,) = [r for r in text(browser, "#keys").splitlines() if r.startswith(spare_id)]
    assert "revoked" in row
    browser.execute_script("window.scrollTo(0, 0)")
    shot(browser, "market-publisher")
    keys = {k["key_id"]: k for k in setup.market.market.account("streamer-tools")["keys"]}
    assert keys[spare_id]["revoked_at"] is not None and keys[laptop_id]["revoked_at"] is None

    # Rotate key-turner to the laptop key: a forged consent is refused...
    options = browser.find_elements(By.CSS_SELECTOR, "#rotate-key-key-turner option")
    assert [o.get_attribute("value") for o in options] == [laptop_id]  # active, not the signer
    browser.find_element(By.CSS_SELECTOR, "#rotate-details-key-turner summary").click()
    browser.find_element(By.ID, "rotate-reason-key-turner").send_keys("a new laptop")
    env = {"WASMDECK_HOME": str(setup.tmp / "cli-home")}
    forged = wasmdeck(
        "market", "consent", "key-turner", laptop_pub, "--consent-key", laptop, env=env
    )
    browser.find_element(By.ID, "rotate-consent-key-turner").send_keys(forged.stdout.strip())
    browser.find_element(By.CSS_SELECTOR, "#rotate-key-turner button").click()
    wait(browser).until(lambda b: "not a valid signature by the old key" in text(b, "#error"))
    assert setup.market.market.package("key-turner")["signer_key_id"] == old_id

    # ... the old key's own consent, made by the CLI where that key is, is accepted.
    consent = wasmdeck(
        "market", "consent", "key-turner", laptop_pub, "--consent-key", setup.key, env=env
    )
    assert consent.returncode == 0, consent.stderr
    browser.get(f"{setup.market.url}/publisher")
    browser.find_element(By.CSS_SELECTOR, "#rotate-details-key-turner summary").click()
    browser.find_element(By.ID, "rotate-reason-key-turner").send_keys("a new laptop")
    browser.find_element(By.ID, "rotate-consent-key-turner").send_keys(consent.stdout.strip())
    browser.find_element(By.CSS_SELECTOR, "#rotate-key-turner button").click()
    wait(browser).until(
        lambda b: (
            text(b, "#notice")
            == f"key-turner is now signed by key {laptop_id}, with the old key's consent"
        )
    )
    info = setup.market.market.package("key-turner")
    assert info["signer_key_id"] == laptop_id and info["rotations"][0]["consent"]
    browser.get(f"{setup.market.url}/packages/key-turner")
    assert "with the old key's consent): a new laptop" in text(browser, "main")
    # The next version is signed by the new key and accepted.
    package = pack(setup.tmp, laptop, name="key-turner", version="1.1.0")
    assert setup.market.publish(setup.publisher_token, package).status_code == 201


# -- two sites on one host ----------------------------------------------------------------


def test_two_marketplaces_and_two_local_uis_on_one_host_keep_their_logins(
    setup: Setup, browser: WebDriver, request: pytest.FixtureRequest
) -> None:
    """A browser sends a host's cookies to all its ports: each site names its own."""
    other_tmp = setup.tmp / f"second-{os.getpid()}"
    second = MarketServer(
        make_market("sqlite", other_tmp / "market", request),
        limits=GENEROUS,
        open_signup=True,
        routes=page_routes(),
    )
    (other_tmp / "deck.toml").parent.mkdir(parents=True, exist_ok=True)
    (other_tmp / "deck.toml").write_text("version = 1\n")
    home = other_tmp / "home"
    host = Host(other_tmp / "deck.toml", {**os.environ, "WASMDECK_HOME": str(home)})
    with second:
        _, second_token = second.market.create_account("second-site-account")
        host.wait_for("wasmdeck: serving")
        try:
            control = json.loads((home / "control.json").read_text())
            second_ui = f"http://127.0.0.1:{control['port']}/ui"
            # Log in to all four, then each is still logged in as itself.
            market_login(browser, setup, setup.reviewer_token)
            browser.get(f"{second.url}/login")
            browser.find_element(By.ID, "token").send_keys(second_token + "\n")
            wait(browser).until(expected_conditions.title_contains("Publisher"))
            for url, token in ((setup.ui_url, setup.ui_token), (second_ui, control["token"])):
                browser.get(f"{url}/login#token={token}")
                wait(browser).until(expected_conditions.title_contains("Deck"))
            browser.get(setup.market.url)
            assert text(browser, "#me") == "a-listener"
            browser.get(second.url)
            assert text(browser, "#me") == "second-site-account"
            for url in (setup.ui_url, second_ui):
                browser.get(f"{url}/plugins")
                assert "Installed plugins" in browser.title, url
            names = {c["name"] for c in browser.get_cookies()}
            assert {
                f"wdm_session_{setup.market.port}",
                f"wdm_session_{second.port}",
                f"wasmdeck_ui_{control['port']}",
            } <= names
            # Logging out of one marketplace leaves the other logged in.
            browser.get(second.url)
            browser.find_element(By.CSS_SELECTOR, "header nav button").click()
            wait(browser).until(lambda b: b.find_elements(By.LINK_TEXT, "Log in"))
            browser.get(setup.market.url)
            assert text(browser, "#me") == "a-listener"
        finally:
            assert host.stop() == 0, "".join(host.log)
