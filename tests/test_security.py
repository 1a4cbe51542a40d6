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
