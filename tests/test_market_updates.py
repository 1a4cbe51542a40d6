"""Update checks in one request (``POST /api/v1/updates``) on SQLite and PostgreSQL,
and the client's fallback to one request per plugin against a marketplace
older than that endpoint (the same app without the route): the same offers
either way, for ``wasmdeck outdated`` and ``update_offers``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from marketfix import GENEROUS, Served, make_market, new_key, pack, unique
from pkghelp import home, wasmdeck  # noqa: F401

from wasmdeck.packages import MarketClient, MarketError, PluginManager, update_offer, update_offers
from wasmdeck_market import Market, create_app

pytestmark = pytest.mark.usefixtures("home")  # a fresh WASMDECK_HOME for each test
WDPK = {"content-type": "application/vnd.wasmdeck.package.v1+wdpk"}


class Counted(Served):
    """The marketplace app, recording each request's method and path; ``old``: without
    the update-check route, as a server from before it answers (404)."""

    def __init__(self, market: Market, *, old: bool) -> None:
        self.market = market
        self.requests: list[str] = []
        app = create_app(market, limits=GENEROUS, open_signup=True)
        if old:
            app.router.routes = [
                r for r in app.router.routes if getattr(r, "path", "") != "/api/v1/updates"
            ]

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.requests.append(f"{scope['method']} {scope['path']}")
            await app(scope, receive, send)

        super().__init__(counting)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.market.close()


@dataclass
class Listed:
    server: Counted
    old: bool
    names: dict[str, str]  # role -> package name
    packages: dict[str, Path]  # "role@version" -> file


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["new", "old"])
def listed(request: pytest.FixtureRequest, engine: str, tmp_path: Path) -> Iterator[Listed]:
    yield from _listed(request, engine, tmp_path, old=request.param == "old")


@pytest.fixture
def listed_new(request: pytest.FixtureRequest, engine: str, tmp_path: Path) -> Iterator[Listed]:
    yield from _listed(request, engine, tmp_path, old=False)


def _listed(
    request: pytest.FixtureRequest, engine: str, tmp_path: Path, *, old: bool
) -> Iterator[Listed]:
    """Three packages: ``tool`` 1.0.0, 1.1.0 and 1.2.0 (yanked); ``done`` 1.0.0 only;
    ``gone`` 1.0.0 and 2.0.0, both yanked."""
    market = make_market(engine, tmp_path / "market", request)
    with Counted(market, old=old) as server:
        key = new_key(tmp_path / "keys")
        names = {role: unique(role) for role in ("tool", "done", "gone")}
        packages: dict[str, Path] = {}
        with httpx.Client(base_url=server.url, timeout=30) as http:
            token = http.post("/api/v1/accounts", json={"name": unique("up")}).json()["token"]
            auth = {"authorization": f"Bearer {token}"}
            line = key.with_name(key.name + ".pub").read_text()
            assert http.post("/api/v1/keys", json={"public_key": line}, headers=auth).is_success
            for role, version in [("tool", "1.0.0"), ("tool", "1.1.0"), ("tool", "1.2.0"),
                                  ("done", "1.0.0"), ("gone", "1.0.0"), ("gone", "2.0.0")]:  # fmt: skip
                path = pack(tmp_path, key, name=names[role], version=version)
                packages[f"{role}@{version}"] = path
                up = http.post("/api/v1/packages", content=path.read_bytes(),
                               headers={**auth, **WDPK})  # fmt: skip
                assert up.status_code == 201, up.text
            for role, version in [("tool", "1.2.0"), ("gone", "1.0.0"), ("gone", "2.0.0")]:
                yanked = http.post(
                    f"/api/v1/packages/{names[role]}/versions/{version}/yank",
                    json={"reason": "broken"},
                    headers=auth,
                )
                assert yanked.status_code == 200, yanked.text
        server.requests.clear()
        yield Listed(server, old, names, packages)


def installed(listed: Listed) -> dict[str, str]:
    n = listed.names
    return {n["tool"]: "1.0.0", n["done"]: "1.0.0", n["gone"]: "1.0.0", unique("local"): "0.1.0"}


def test_update_offers_in_one_request_or_one_per_plugin(listed: Listed) -> None:
    server, n = listed.server, listed.names
    asked = installed(listed)
    with MarketClient(server.url) as client:
        offers = update_offers(client, asked)
        batch_requests = list(server.requests)
        singles = {name: update_offer(client, name, version) for name, version in asked.items()}
    assert offers == singles  # the same offers, however asked
    tool, done, gone = offers[n["tool"]], offers[n["done"]], offers[n["gone"]]
    assert tool is not None and [v.version for v in tool.choices] == ["1.1.0"]
    assert [(v.version, v.yanked) for v in tool.skipped] == [("1.2.0", "broken")]
    assert done is not None and done.newest is None and not done.skipped
    assert (
        gone is not None and gone.newest is None and [v.version for v in gone.skipped] == ["2.0.0"]
    )
    local = next(name for name in asked if name.startswith("local"))
    assert offers[local] is None
    if listed.old:  # refused (404), then one request per plugin
        gets = [r for r in batch_requests if r.startswith("GET /api/v1/packages/")]
        assert batch_requests[0] == "POST /api/v1/updates" and len(gets) == len(asked)
        assert len(batch_requests) == 1 + len(asked)
    else:
        assert batch_requests == ["POST /api/v1/updates"]


def test_wasmdeck_outdated_asks_once(listed: Listed) -> None:
    n = listed.names
    manager = PluginManager()
    for role in ("tool", "done", "gone"):
        manager.install(listed.packages[f"{role}@1.0.0"], yes=True)
    listed.server.requests.clear()
    result = wasmdeck("outdated", "--json", env={"WASMDECK_MARKET": listed.server.url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"name": n["tool"], "installed": "1.0.0", "newest": "1.1.0", "choices": ["1.1.0"]}
    ]
    asked = [r for r in listed.server.requests if "/api/v1/" in r]
    if listed.old:
        assert asked[0] == "POST /api/v1/updates" and len(asked) == 1 + 3
    else:
        assert asked == ["POST /api/v1/updates"]


def test_the_update_check_answers_and_refuses(listed_new: Listed) -> None:
    listed = listed_new
    n = listed.names
    with httpx.Client(base_url=listed.server.url) as http:
        answer = http.post("/api/v1/updates", json={"installed": installed(listed)}).json()
        tool = answer["updates"][n["tool"]]
        assert tool["newest"]["version"] == "1.1.0"
        assert [(v["version"], v["yanked"]) for v in tool["newer"]] == [
            ("1.2.0", "broken"),
            ("1.1.0", None),
        ]
        assert answer["updates"][n["gone"]] == {
            "newest": None,
            "newer": [answer["updates"][n["gone"]]["newer"][0]],
        }
        assert answer["updates"][n["gone"]]["newer"][0]["version"] == "2.0.0"
        for body, words in [
            ({"installed": [n["tool"]]}, "installed must be an object"),
            ({"installed": {n["tool"]: "one"}}, "must be a version like 1.2.0"),
            ({"installed": {f"p{i}": "1.0.0" for i in range(1001)}}, "at most 1000 names"),
        ]:
            refused = http.post("/api/v1/updates", json=body)
            assert refused.status_code == 422, refused.text
            assert words in refused.json()["error"]["message"]
        described = http.get("/openapi.json").json()["paths"]["/api/v1/updates"]["post"]
        assert (
            "installed"
            in described["requestBody"]["content"]["application/json"]["schema"]["properties"]
        )


def test_a_malformed_update_check_is_a_clear_error(tmp_path: Path) -> None:
    """A server whose update check answers nonsense: a MarketError, not a traceback."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def nonsense(request: Request) -> Response:
        return JSONResponse({"updates": {"a": {"newer": "lots"}}})

    app = Starlette(routes=[Route("/api/v1/updates", nonsense, methods=["POST"])])
    with Served(app) as bad, MarketClient(bad.url) as client, pytest.raises(MarketError) as refused:
        update_offers(client, {"a": "1.0.0"})
    assert "malformed update entry for a" in str(refused.value)


def test_the_local_uis_plugins_page_asks_once(
    listed: Listed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the plugins page of ``wasmdeck serve`` shows (daemon/_ui_market.py), from
    one request to the marketplace, or one per plugin from an older marketplace."""
    from wasmdeck.daemon._ui_market import MarketInstalls

    n = listed.names
    monkeypatch.setenv("WASMDECK_MARKET", listed.server.url)
    manager = PluginManager()
    for role in ("tool", "done", "gone"):
        manager.install(listed.packages[f"{role}@1.0.0"], yes=True)
    listed.server.requests.clear()
    shown = MarketInstalls().offers(manager, [p.name for p in manager.list()])
    assert shown["problem"] is None
    assert shown["offers"] == {
        n["tool"]: {
            "newest": "1.1.0",
            "choices": ["1.1.0"],
            "skipped": [{"version": "1.2.0", "yanked": "broken"}],
        },
        n["gone"]: {
            "newest": None,
            "choices": [],
            "skipped": [{"version": "2.0.0", "yanked": "broken"}],
        },
    }
    expected = ["POST /api/v1/updates"] + (
        [f"GET /api/v1/packages/{x}" for x in sorted(n.values())] if listed.old else []
    )
    assert sorted(listed.server.requests) == sorted(expected)
