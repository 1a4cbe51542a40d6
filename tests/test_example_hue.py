"""The Hue example plugin (examples/go/hue, Go) against a real loopback Hue v1 bridge.

The plugin is built once per session from source with the Go toolchain; every
test gets a fresh bridge (``hue_bridge``: three lights, two rooms, a
registered user) and talks to it through the host's HTTP API, granted
``network:127.0.0.1:<its port>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from componentgen import COMPILED
from servers.hue import HueBridge

import wasmdeck
from wasmdeck import PluginReportedError, Runtime, TriggerContext
from wasmdeck.toolchains import BuildError, build_project

ROOT = Path(__file__).resolve().parent.parent


def grants(bridge: HueBridge) -> list[str]:
    # A network grant without a port allows only the scheme's default port (80).
    return [f"network:127.0.0.1:{bridge.port}"]


@pytest.fixture(scope="session")
def hue_wasm() -> Path:
    try:
        return build_project(ROOT / "examples" / "go" / "hue")
    except BuildError as exc:
        pytest.fail(f"building the Hue example failed: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(cache=COMPILED)


def config(bridge: HueBridge, username: str | None = None) -> dict[str, str]:
    return {"bridge": f"{bridge.host}:{bridge.port}", "username": username or bridge.username}


@pytest.fixture
def hue(hue_wasm: Path, runtime: Runtime, hue_bridge: HueBridge) -> wasmdeck.Plugin:
    plugin = wasmdeck.Plugin(
        hue_wasm, runtime=runtime, grants=grants(hue_bridge), config=config(hue_bridge)
    )
    yield plugin
    plugin.close()


def puts(bridge: HueBridge) -> list[tuple[str, object]]:
    prefix = f"/api/{bridge.username}"
    return [(r.path.removeprefix(prefix), r.json()) for r in bridge.requests if r.method == "PUT"]


def test_metadata(hue: wasmdeck.Plugin) -> None:
    meta = hue.metadata
    assert meta.name == "hue" and [c.kind for c in meta.capabilities] == ["network"]
    assert [a.name for a in meta.actions] == ["on", "off", "toggle", "brightness", "color"]


def test_on_and_off(hue: wasmdeck.Plugin, hue_bridge: HueBridge) -> None:
    out = json.loads(hue.call("on", {"light": "1"}))
    assert out == {"light": "1", "state": {"on": True}}
    assert hue_bridge.light_state("1")["on"] is True
    hue.call("off", {"light": 1})  # a number works too
    assert hue_bridge.light_state("1")["on"] is False
    assert puts(hue_bridge) == [
        ("/lights/1/state", {"on": True}),
        ("/lights/1/state", {"on": False}),
    ]
    assert all(r.headers["content-type"] == "application/json" for r in hue_bridge.requests)


def test_toggle_reads_the_state_first(hue: wasmdeck.Plugin, hue_bridge: HueBridge) -> None:
    assert hue_bridge.light_state("2")["on"] is False
    hue.call("toggle", {"light": "2"})
    assert hue_bridge.light_state("2")["on"] is True
    hue.call("toggle", {"light": "2"})
    assert hue_bridge.light_state("2")["on"] is False
    prefix = f"/api/{hue_bridge.username}"
    assert [(r.method, r.path.removeprefix(prefix)) for r in hue_bridge.requests] == [
        ("GET", "/lights/2"),
        ("PUT", "/lights/2/state"),
        ("GET", "/lights/2"),
        ("PUT", "/lights/2/state"),
    ]


def test_toggle_a_group(hue: wasmdeck.Plugin, hue_bridge: HueBridge) -> None:
    hue.call("toggle", {"group": "2"})
    assert hue_bridge.light_state("3")["on"] is True
    hue.call("toggle", {"group": "2"})
    assert hue_bridge.light_state("3")["on"] is False


@pytest.mark.parametrize(("velocity", "bri"), [(127, 254), (0, 1), (64, 128), (100, 200)])
def test_brightness_from_velocity(
    hue: wasmdeck.Plugin, hue_bridge: HueBridge, velocity: int, bri: int
) -> None:
    hue.call("brightness", {"light": "1"}, TriggerContext(velocity=velocity))
    state = hue_bridge.light_state("1")
    assert (state["on"], state["bri"]) == (True, bri)


def test_brightness_from_params(hue: wasmdeck.Plugin, hue_bridge: HueBridge) -> None:
    hue.call("brightness", {"light": "3", "bri": 42}, TriggerContext(velocity=127))
    assert hue_bridge.light_state("3")["bri"] == 42  # params win over the velocity
    with pytest.raises(
        PluginReportedError, match="bri must be a whole number from 1 to 254, not 0"
    ):
        hue.call("brightness", {"light": "3", "bri": 0})
    with pytest.raises(PluginReportedError, match=r"needs .* or a trigger with a velocity"):
        hue.call("brightness", {"light": "3"})


def test_color(hue: wasmdeck.Plugin, hue_bridge: HueBridge) -> None:
    hue.call("color", {"light": "1", "hue": 46920, "sat": 254})
    state = hue_bridge.light_state("1")
    assert (state["on"], state["hue"], state["sat"], state["colormode"]) == (True, 46920, 254, "hs")
    hue.call("color", {"light": "1", "xy": [0.3, 0.3]})
    state = hue_bridge.light_state("1")
    assert (state["xy"], state["colormode"]) == ([0.3, 0.3], "xy")
    hue.call("color", {"light": "2", "ct": 250})
    assert hue_bridge.light_state("2")["ct"] == 250
    assert puts(hue_bridge)[0] == ("/lights/1/state", {"on": True, "hue": 46920, "sat": 254})
    with pytest.raises(PluginReportedError, match="color needs"):
        hue.call("color", {"light": "1"})


def test_group_action(hue: wasmdeck.Plugin, hue_bridge: HueBridge) -> None:
    out = json.loads(hue.call("on", {"group": "1"}))
    assert out == {"group": "1", "state": {"on": True}}
    assert [hue_bridge.light_state(i)["on"] for i in "123"] == [True, True, False]
    hue.call("brightness", {"group": "0"}, TriggerContext(velocity=0))
    assert [hue_bridge.light_state(i)["bri"] for i in "123"] == [1, 1, 1]
    hue.call("off", {"group": "0"})
    assert [hue_bridge.light_state(i)["on"] for i in "123"] == [False, False, False]
    assert puts(hue_bridge)[0] == ("/groups/1/action", {"on": True})


def test_unknown_light_reports_the_bridge_error(hue: wasmdeck.Plugin) -> None:
    with pytest.raises(PluginReportedError) as caught:
        hue.call("on", {"light": "9"})
    assert caught.value.message == "Hue bridge: resource, /lights/9/state, not available"
    with pytest.raises(PluginReportedError, match="resource, /lights/9, not available"):
        hue.call("toggle", {"light": "9"})


def test_refused_value_reports_the_bridge_error(hue: wasmdeck.Plugin) -> None:
    with pytest.raises(PluginReportedError, match="invalid value, 500, for parameter, ct"):
        hue.call("color", {"light": "2", "ct": 500})  # this lamp stops at 454
    with pytest.raises(PluginReportedError, match="parameter, hue, not available"):
        hue.call("color", {"light": "3", "hue": 100})  # a white lamp


def test_bad_username_is_unauthorized(
    hue_wasm: Path, runtime: Runtime, hue_bridge: HueBridge
) -> None:
    plugin = wasmdeck.Plugin(
        hue_wasm,
        runtime=runtime,
        grants=grants(hue_bridge),
        config=config(hue_bridge, "not-a-user"),
    )
    with pytest.raises(PluginReportedError) as caught:
        plugin.call("on", {"light": "1"})
    assert caught.value.message == "Hue bridge: unauthorized user"
    assert hue_bridge.light_state("1")["on"] is False


def test_params_and_config_are_checked(
    hue: wasmdeck.Plugin, hue_wasm: Path, runtime: Runtime, hue_bridge: HueBridge
) -> None:
    for params, message in [
        ({}, 'on needs either {"light": ID} or {"group": ID}'),
        ({"light": "1", "group": "0"}, 'on needs either {"light": ID} or {"group": ID}'),
        ({"light": "../config"}, 'light must be an id such as "1", not "../config"'),
        ({"group": True}, 'group must be an id such as "1", not true'),
    ]:
        with pytest.raises(PluginReportedError) as caught:
            hue.call("on", params)
        assert caught.value.message == message
    unconfigured = wasmdeck.Plugin(hue_wasm, runtime=runtime, grants=grants(hue_bridge))
    with pytest.raises(PluginReportedError, match='configure the bridge\'s address as "bridge"'):
        unconfigured.call("on", {"light": "1"})
    assert hue_bridge.requests == []


def test_unreachable_bridge(hue_wasm: Path, runtime: Runtime) -> None:
    plugin = wasmdeck.Plugin(
        hue_wasm,
        runtime=runtime,
        grants=["network:127.0.0.1:1"],
        config={"bridge": "127.0.0.1:1", "username": "u"},
    )
    with pytest.raises(PluginReportedError, match="cannot reach the Hue bridge"):
        plugin.call("on", {"light": "1"})


def test_ungranted_network_fails_to_load(hue_wasm: Path, runtime: Runtime) -> None:
    with pytest.raises(wasmdeck.ImportNotAllowed, match="network"):
        wasmdeck.Plugin(hue_wasm, runtime=runtime)
