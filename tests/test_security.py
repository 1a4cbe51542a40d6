"""What a plugin must not reach, tried for real: each refused with a clear error.

Network refusals are checked on the wire too: the server that must not be
reached records nothing. Files are reached through WASI preopens only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostcall import host_call_module
from netns import run_isolated
from servers.webhook import WebhookServer

import wasmdeck
from wasmdeck import Limits, PluginReportedError


def http(request: dict[str, object], grants: list[str], **options: object) -> dict[str, object]:
    plugin = wasmdeck.Plugin(host_call_module("http_request", request), grants=grants, **options)
    return json.loads(plugin.call("go"))


def grant(server: WebhookServer) -> list[str]:
    return [f"network:127.0.0.1:{server.port}"]


@pytest.fixture
def elsewhere() -> Iterator[WebhookServer]:
    """A second receiver on another loopback address, which no grant names."""
    server = WebhookServer()
    server.host = "127.0.0.2"
    with server:
        yield server


def test_granted_host_is_reached(webhook_server: WebhookServer) -> None:
    answer = http({"method": "GET", "url": webhook_server.url("/ok")}, grant(webhook_server))
    assert answer["status"] == 200 and json.loads(answer["body"]) == {"ok": True}
    assert [r.path for r in webhook_server.requests] == ["/ok"]


def test_host_outside_the_grant_is_refused(
    webhook_server: WebhookServer, elsewhere: WebhookServer
) -> None:
    answer = http({"method": "GET", "url": elsewhere.url("/x")}, grant(webhook_server))
    assert answer["error"]["kind"] == "denied"
    assert "127.0.0.2" in answer["error"]["message"]
    assert elsewhere.requests == []


def test_redirect_to_a_host_outside_the_grant_is_refused(
    webhook_server: WebhookServer, elsewhere: WebhookServer
) -> None:
    url = webhook_server.redirect_url(302, elsewhere.url("/stolen"))
    answer = http({"method": "GET", "url": url}, grant(webhook_server))
    assert answer["error"]["kind"] == "denied", answer
    assert "redirect" in answer["error"]["message"]
    assert len(webhook_server.requests) == 1 and elsewhere.requests == []


def test_name_resolving_to_loopback_is_refused(
    webhook_server: WebhookServer, loopback_name: str
) -> None:
    # The name is granted, but it resolves to loopback, which is not.
    url = f"http://{loopback_name}:{webhook_server.port}/x"
    answer = http({"method": "GET", "url": url}, [f"network:{loopback_name}:{webhook_server.port}"])
    assert answer["error"]["kind"] == "denied"
    assert "127.0.0.1" in answer["error"]["message"]
    assert webhook_server.requests == []


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.20", "169.254.169.254", "[::1]"])
def test_private_addresses_need_their_own_grant(address: str) -> None:
    # A private or link-local literal is reached only when a grant names it (an
    # IP or a network); a name grant does not cover it. Refused before connecting.
    answer = http({"method": "GET", "url": f"http://{address}/"}, ["network:*.example.com"])
    assert answer["error"]["kind"] == "denied", answer


def test_oversized_response_is_refused(webhook_server: WebhookServer) -> None:
    webhook_server.reply(200, b"x" * 5000)
    answer = http(
        {"method": "GET", "url": webhook_server.url()},
        grant(webhook_server),
        limits=Limits(max_response=4096),
    )
    assert answer["error"]["kind"] == "too_large"
    assert "4,096-byte cap" in answer["error"]["message"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", data / "link.txt")
    os.symlink(tmp_path, data / "up")
    return data


def files(behaviors_wasm: Path, data_dir: Path, mode: str = "ro") -> wasmdeck.Plugin:
    return wasmdeck.Plugin(behaviors_wasm, grants=[f"fs:/data={data_dir}:{mode}"])


def test_files_inside_the_grant_are_readable(behaviors_wasm: Path, data_dir: Path) -> None:
    assert files(behaviors_wasm, data_dir).call("read", {"path": "/data/ok.txt"}) == b"inside"


@pytest.mark.parametrize(
    "path",
    ["/data/../secret.txt", "/data/link.txt", "/data/up/secret.txt", "/etc/hostname", "secret.txt"],
)
def test_paths_cannot_escape_the_grant(behaviors_wasm: Path, data_dir: Path, path: str) -> None:
    with pytest.raises(PluginReportedError, match="cannot open"):
        files(behaviors_wasm, data_dir).call("read", {"path": path})


def test_no_files_without_a_grant(behaviors_wasm: Path, data_dir: Path) -> None:
    with pytest.raises(PluginReportedError, match=r"cannot open /data/ok\.txt"):
        wasmdeck.Plugin(behaviors_wasm).call("read", {"path": "/data/ok.txt"})


def test_read_only_grant_refuses_writes(behaviors_wasm: Path, data_dir: Path) -> None:
    with pytest.raises(PluginReportedError, match=r"cannot open /data/new\.txt"):
        files(behaviors_wasm, data_dir).call("write", {"path": "/data/new.txt", "text": "x"})
    assert not (data_dir / "new.txt").exists()
    files(behaviors_wasm, data_dir, "rw").call("write", {"path": "/data/new.txt", "text": "hi"})
    assert (data_dir / "new.txt").read_text() == "hi"


# -- grants are judged one by one (issue 9, item 3) ----------------------------------


@pytest.fixture
def other_port() -> Iterator[WebhookServer]:
    """A second receiver on 127.0.0.1, on a port of its own."""
    with WebhookServer() as server:
        yield server


@pytest.mark.parametrize("loopback_grant", ["localhost", "127.0.0.1"])
def test_a_loopback_grant_lets_no_other_grant_reach_loopback(
    webhook_server: WebhookServer,
    other_port: WebhookServer,
    loopback_name: str,
    loopback_grant: str,
) -> None:
    # Granted: loopback on one port, and a name (which resolves to loopback)
    # on another. The name's grant does not name loopback: refused.
    grants = [
        f"network:{loopback_grant}:{webhook_server.port}",
        f"network:{loopback_name}:{other_port.port}",
    ]
    url = f"http://{loopback_name}:{other_port.port}/x"
    answer = http({"method": "GET", "url": url}, grants)
    assert answer["error"]["kind"] == "denied", answer
    assert "127.0.0.1" in answer["error"]["message"]
    assert other_port.requests == []
    reached = http({"url": f"http://{loopback_grant}:{webhook_server.port}/ok"}, grants)
    assert reached["status"] == 200 and len(webhook_server.requests) == 1


def test_a_wildcard_name_resolving_to_loopback_is_refused_beside_a_localhost_grant() -> None:
    # The case, with a name service the test controls (/etc/hosts in
    # a namespace, read by the real getaddrinfo): api.some.name is 127.0.0.2.
    result = run_isolated(
        """
import json
from hostcall import host_call_module
from netns import run_isolated
from servers.webhook import WebhookServer
import wasmdeck

local, wild = WebhookServer(), WebhookServer()
local.port, wild.host, wild.port = 18080, "127.0.0.2", 18081
with local, wild:
    grants = ["network:localhost:18080", "network:*.some.name:18081"]
    def get(url):
        plugin = wasmdeck.Plugin(host_call_module("http_request", {"url": url}), grants=grants)
        return json.loads(plugin.call("go"))
    print(json.dumps({
        "wild": get("http://api.some.name:18081/x"),
        "local": get("http://localhost:18080/ok"),
        "wild_requests": len(wild.requests),
    }))
""",
        hosts="127.0.0.1 localhost\n127.0.0.2 api.some.name\n",
    )
    assert result["wild"]["error"]["kind"] == "denied", result
    assert "127.0.0.2" in result["wild"]["error"]["message"]
    assert result["wild_requests"] == 0
    assert result["local"]["status"] == 200


# -- redirects keep credentials at their origin (issue 9, item 4) ---------------------

CREDENTIALS = {
    "Authorization": "Bearer secret-token",
    "Cookie": "session=secret",
    "Proxy-Authorization": "Basic c2VjcmV0",
}


@pytest.mark.parametrize("target", ["another host", "another port"])
def test_credentials_do_not_follow_a_redirect_to_another_origin(
    webhook_server: WebhookServer,
    elsewhere: WebhookServer,
    other_port: WebhookServer,
    target: str,
) -> None:
    destination = elsewhere if target == "another host" else other_port
    url = webhook_server.redirect_url(307, destination.url("/landing"))
    grants = [*grant(webhook_server), f"network:{destination.host}:{destination.port}"]
    answer = http({"url": url, "headers": {**CREDENTIALS, "X-Trace": "t-1"}}, grants)
    assert answer["status"] == 200, answer
    first, landed = webhook_server.requests[0], destination.requests[0]
    assert first.headers["authorization"] == "Bearer secret-token"  # sent to its origin
    assert landed.path == "/landing" and landed.headers["x-trace"] == "t-1"
    assert not {"authorization", "cookie", "proxy-authorization"} & set(landed.headers)


def test_credentials_follow_a_redirect_within_the_origin(webhook_server: WebhookServer) -> None:
    url = webhook_server.redirect_url(302, webhook_server.url("/landing"))
    answer = http({"url": url, "headers": CREDENTIALS}, grant(webhook_server))
    assert answer["status"] == 200, answer
    landed = webhook_server.requests[1]
    assert landed.path == "/landing"
    assert landed.headers["authorization"] == "Bearer secret-token"
    assert landed.headers["cookie"] == "session=secret"
