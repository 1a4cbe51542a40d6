"""The Python kit's host helpers, called from a real component against real peers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from componentgen import COMPILED, PLUGINS, build_python
from servers.webhook import WebhookServer

import wasmdeck
from wasmdeck import Runtime


@pytest.fixture(scope="module")
def hostcalls() -> Path:
    return build_python(PLUGINS / "hostcalls", imports=("http", "kv"))


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(cache=COMPILED)


# The plugin imports the http and kv interfaces: it loads only with both granted.
GRANTS = ["kv", "network:127.0.0.1:9"]


def test_kv_round_trip(
    hostcalls: Path, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path))
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=GRANTS)
    assert plugin.call("kv", {"key": "token", "value": "s3cret"}) == b"s3cret"
    assert (tmp_path / "kv.sqlite3").exists()


def test_config_and_log(
    hostcalls: Path, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="wasmdeck.plugin")
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=GRANTS, config={"bridge": "b1"})
    assert plugin.call("config", {"key": "bridge"}) == b"b1"
    assert plugin.call("log", {"message": "careful"}) == b"logged"
    assert [(r.levelname, r.getMessage()) for r in caplog.records][-1] == ("WARNING", "careful")


def test_http_get_and_denial(
    hostcalls: Path, runtime: Runtime, webhook_server: WebhookServer
) -> None:
    plugin = wasmdeck.Plugin(
        hostcalls, runtime=runtime, grants=["kv", f"network:127.0.0.1:{webhook_server.port}"]
    )
    answer = json.loads(plugin.call("http-get", {"url": webhook_server.url("/py")}))
    assert answer["status"] == 200 and json.loads(answer["body"]) == {"ok": True}
    assert [r.path for r in webhook_server.requests] == ["/py"]
    assert plugin.call("denied") == b"denied"


def test_ungranted_interface_fails_to_load(hostcalls: Path, runtime: Runtime) -> None:
    with pytest.raises(wasmdeck.ImportNotAllowed, match="network"):
        wasmdeck.Plugin(hostcalls, runtime=runtime, grants=["kv"])
