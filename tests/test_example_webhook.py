"""The AssemblyScript webhook example (examples/assemblyscript/webhook) against a real receiver.

Built once per run with ``wasmdeck build``'s library half and the real
``asc``; every test posts to the loopback webhook receiver
(tests/servers/webhook.py) with a network grant for that receiver only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pdkbuild import build_cached
from servers.webhook import WebhookServer

import wasmdeck
from wasmdeck import ImportNotAllowed, PluginReportedError, TriggerContext

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "examples" / "assemblyscript" / "webhook"
CONTEXT = TriggerContext(velocity=100, mode=2, timestamp=1732500000123)


@pytest.fixture(scope="session")
def webhook_wasm() -> Path:
    """The example, built once (in a copy: the build stays out of examples/)."""
    return build_cached(SOURCE)


@pytest.fixture
def elsewhere() -> Iterator[WebhookServer]:
    """A second receiver on another loopback address (127.0.0.2), never granted."""
    server = WebhookServer()
    server.host = "127.0.0.2"
    with server.start():
        yield server


def hook(wasm: Path, server: WebhookServer, **config: Any) -> wasmdeck.Plugin:
    config.setdefault("url", server.url("/hooks/pad"))
    return wasmdeck.Plugin(wasm, grants=[f"network:127.0.0.1:{server.port}"], config=config)


def test_metadata(webhook_wasm: Path, webhook_server: WebhookServer) -> None:
    meta = hook(webhook_wasm, webhook_server).metadata
    assert (meta.name, meta.version) == ("webhook", "1.0.0")
    assert [a.name for a in meta.actions or ()] == ["post", "send"]
    assert [c.kind for c in meta.capabilities] == ["network"]


def test_post_delivers_body_and_headers(webhook_wasm: Path, webhook_server: WebhookServer) -> None:
    plugin = hook(webhook_wasm, webhook_server, headers={"X-Hook-Token": "s3cret ✓".encode().hex()})
    params = {"event": "scene-live", "scene": "Live", "lights": [1, 2], "note": "naïve ✓"}
    assert json.loads(plugin.call("post", params, CONTEXT)) == {"status": 200}
    [request] = webhook_server.requests
    assert (request.method, request.target) == ("POST", "/hooks/pad")
    assert request.json() == {
        "action": "post",
        "params": params,
        "trigger": {"velocity": 100, "mode": 2, "timestamp": 1732500000123},
        "event": "scene-live",
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-hook-token"] == "s3cret ✓".encode().hex()


def test_post_without_event_or_velocity(webhook_wasm: Path, webhook_server: WebhookServer) -> None:
    plugin = hook(webhook_wasm, webhook_server)
    plugin.call("post", {}, TriggerContext(timestamp=7))
    [request] = webhook_server.requests
    assert request.json() == {
        "action": "post",
        "params": {},
        "trigger": {"velocity": None, "mode": None, "timestamp": 7},
    }


def test_token_header_and_method(webhook_wasm: Path, webhook_server: WebhookServer) -> None:
    headers = {"Authorization": "Bearer abc.def", "Content-Type": "application/vnd.hook+json"}
    plugin = hook(webhook_wasm, webhook_server, headers=headers, method="put")
    assert json.loads(plugin.call("send", {"body": [1, {"a": None}]})) == {"status": 200}
    [request] = webhook_server.requests
    assert request.method == "PUT" and request.json() == [1, {"a": None}]
    assert request.headers["authorization"] == "Bearer abc.def"
    assert request.headers["content-type"] == "application/vnd.hook+json"  # not replaced


def test_event_in_the_url(webhook_wasm: Path, webhook_server: WebhookServer) -> None:
    url = webhook_server.url("/trigger/{event}/json/with/key/K")
    plugin = hook(webhook_wasm, webhook_server, url=url)
    plugin.call("post", {"event": "pad 1/a"}, CONTEXT)
    [request] = webhook_server.requests
    assert request.path == "/trigger/pad%201%2Fa/json/with/key/K"
    with pytest.raises(PluginReportedError, match=r"has \{event\} in it: give an 'event' param"):
        plugin.call("post", {})
    assert len(webhook_server.requests) == 1


def test_error_status_becomes_a_plugin_error(
    webhook_wasm: Path, webhook_server: WebhookServer
) -> None:
    webhook_server.reply(500, {"error": "database on fire", "pad": "x" * 500})
    plugin = hook(webhook_wasm, webhook_server)
    with pytest.raises(PluginReportedError) as caught:
        plugin.call("post", {"event": "e"}, CONTEXT)
    message = caught.value.message
    assert message.startswith('the webhook answered 500 Internal Server Error: {"error": ')
    assert "database on fire" in message and message.endswith("...") and len(message) < 300
    assert len(webhook_server.requests) == 1  # it was delivered, and refused
    webhook_server.reply()
    assert json.loads(plugin.call("post", {}, CONTEXT)) == {"status": 200}  # and it carries on


def test_redirect_outside_the_grant_is_refused(
    webhook_wasm: Path, webhook_server: WebhookServer, elsewhere: WebhookServer
) -> None:
    away = webhook_server.redirect_url(307, elsewhere.url("/stolen"))
    plugin = hook(webhook_wasm, webhook_server, url=away, headers={"X-Hook-Token": "t0ken"})
    with pytest.raises(PluginReportedError) as caught:
        plugin.call("post", {"event": "e"}, CONTEXT)
    message = caught.value.message
    assert message.startswith(f"could not deliver to {away}: denied: ")
    assert f"127.0.0.2:{elsewhere.port}" in message and "not in the plugin's network grant" in (
        message
    )
    assert [r.path for r in webhook_server.requests] == ["/redirect/307"]
    assert elsewhere.requests == []  # nothing reached the other host, token included


def test_redirect_inside_the_grant_is_followed(
    webhook_wasm: Path, webhook_server: WebhookServer
) -> None:
    url = webhook_server.redirect_url(308, webhook_server.url("/moved"))
    plugin = hook(webhook_wasm, webhook_server, url=url)
    assert json.loads(plugin.call("send", {"body": {"k": 1}})) == {"status": 200}
    _, second = webhook_server.requests
    assert (second.method, second.path, second.json()) == ("POST", "/moved", {"k": 1})


def test_no_url_is_a_clear_error(webhook_wasm: Path, webhook_server: WebhookServer) -> None:
    plugin = wasmdeck.Plugin(webhook_wasm, grants=[f"network:127.0.0.1:{webhook_server.port}"])
    with pytest.raises(PluginReportedError) as caught:
        plugin.call("post", {"event": "e"}, CONTEXT)
    assert caught.value.message == (
        "no webhook URL: set the plugin's 'url' configuration, e.g. https://hooks.example.com/..."
    )
    assert webhook_server.requests == []


def test_bad_headers_config(webhook_wasm: Path, webhook_server: WebhookServer) -> None:
    plugin = hook(webhook_wasm, webhook_server, headers=["X-A", "b"])
    with pytest.raises(PluginReportedError, match="'headers' configuration must be an object"):
        plugin.call("post", {})
    assert webhook_server.requests == []


def test_unreachable_hook(webhook_wasm: Path) -> None:
    plugin = wasmdeck.Plugin(
        webhook_wasm, grants=["network:127.0.0.1:9"], config={"url": "http://127.0.0.1:9/x"}
    )
    with pytest.raises(PluginReportedError) as caught:
        plugin.call("post", {})
    assert caught.value.message.startswith(
        "could not deliver to http://127.0.0.1:9/x: connection: "
    )


def test_ungranted_network_refuses_to_load(webhook_wasm: Path) -> None:
    with pytest.raises(ImportNotAllowed, match="needs the 'network' capability"):
        wasmdeck.Plugin(webhook_wasm, config={"url": "http://127.0.0.1:9/"})
