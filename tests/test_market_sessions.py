"""The public pages' server-side sessions, on SQLite and PostgreSQL: the cookie is
an opaque session id (not the API token, and no key to the API), it expires,
logging out and revoking the token end it. Two processes sharing one
PostgreSQL share sessions: tests/test_market_processes.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from marketfix import GENEROUS, MarketServer, make_market, unique

from wasmdeck_market import page_routes
from wasmdeck_market._sessions import SESSION_SECONDS


@pytest.fixture(params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[MarketServer, list[float]]]:
    """The pages on a clock the test steps (the market's clock decides expiry)."""
    clock = [2e9]
    market = make_market(request.param, tmp_path, request, clock=lambda: clock[0])
    with MarketServer(market, limits=GENEROUS, open_signup=True, routes=page_routes()) as server:
        yield server, clock


def account(server: MarketServer) -> tuple[str, str]:
    name = unique("sess")
    with server.client() as http:
        made = http.post("/api/v1/accounts", json={"name": name})
    assert made.status_code == 201, made.text
    return name, str(made.json()["token"])


def log_in(server: MarketServer, token: str) -> tuple[str, str]:
    """(cookie name, session id) of a fresh login with ``token``."""
    with server.client() as http:
        done = http.post("/login", data={"token": token})
    assert done.status_code == 303, done.text
    cookie = done.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    (name, value), *_ = done.cookies.items()
    return name, value


def publisher_page(server: MarketServer, cookie: tuple[str, str]) -> httpx.Response:
    with httpx.Client(base_url=server.url, cookies=dict([cookie])) as http:
        return http.get("/publisher")


def test_the_cookie_is_a_session_id_not_the_token(site: tuple[MarketServer, list[float]]) -> None:
    server, _ = site
    name, token = account(server)
    cookie = log_in(server, token)
    assert cookie[1] != token and token not in cookie[1]
    assert cookie[1].startswith("wds_") and len(cookie[1]) > 40
    page = publisher_page(server, cookie)
    assert page.status_code == 200 and name in page.text
    # The session id opens no door of the API: neither as a bearer token...
    with server.client(cookie[1]) as http:
        assert http.get("/api/v1/me").status_code == 401
        # ... nor as a cookie.
        with httpx.Client(base_url=server.url, cookies=dict([cookie])) as jar:
            assert jar.get("/api/v1/me").status_code == 401
    # The database keeps only its hash.
    with server.market.db.transaction() as tx:
        rows = tx.all("SELECT hash FROM sessions")
    assert rows and all(cookie[1] not in str(r["hash"]) for r in rows)
    # Two logins with one token are two sessions.
    assert log_in(server, token)[1] != cookie[1]


def test_a_session_expires(site: tuple[MarketServer, list[float]]) -> None:
    server, clock = site
    name, token = account(server)
    cookie = log_in(server, token)
    clock[0] += SESSION_SECONDS - 1
    assert name in publisher_page(server, cookie).text
    clock[0] += 2
    expired = publisher_page(server, cookie)
    assert expired.status_code == 303 and expired.headers["location"] == "/login"


def test_logging_out_ends_the_session_on_the_server(
    site: tuple[MarketServer, list[float]],
) -> None:
    server, _ = site
    _, token = account(server)
    cookie = log_in(server, token)
    other = log_in(server, token)  # another browser of the same account
    page = publisher_page(server, cookie)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    with httpx.Client(base_url=server.url, cookies=dict([cookie])) as http:
        assert http.post("/logout", data={"csrf": csrf}).status_code == 303
    # The cookie kept (by a browser that ignores the deletion, or a copy) is dead...
    assert publisher_page(server, cookie).status_code == 303
    # ... and the other browser's session lives on.
    assert publisher_page(server, other).status_code == 200


def test_revoking_the_token_ends_its_sessions(site: tuple[MarketServer, list[float]]) -> None:
    server, _ = site
    _, token = account(server)
    cookie = log_in(server, token)
    with server.client(token) as http:
        assert http.delete("/api/v1/tokens").status_code == 200
    assert publisher_page(server, cookie).status_code == 303


def test_a_forged_or_malformed_session_is_logged_out(
    site: tuple[MarketServer, list[float]],
) -> None:
    server, _ = site
    _, token = account(server)
    name, _ = log_in(server, token)
    for value in ("wds_" + "A" * 43, token, "x" * 5000, ""):
        assert publisher_page(server, (name, value)).status_code == 303
