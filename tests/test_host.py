"""Routing many plugins: by plugin and action, or by action alone."""

from __future__ import annotations

import pytest
from watgen import abi_module

import wasmdeck
from wasmdeck import ActionNotFound, PluginNotFound


def plugin(name: str, actions: list[str] | None) -> wasmdeck.Plugin:
    metadata: dict[str, object] = {"name": name, "version": "1.0.0", "description": name}
    if actions is not None:
        metadata["actions"] = [{"name": a, "description": f"{a} on {name}"} for a in actions]
    # Outputs its own name so a test can see where a call went.
    wasm = abi_module(
        f"(call $set_output (i32.const 7000) (i32.const {len(name)})) (i32.const 0)",
        metadata=metadata,
        extra=f'(data (i32.const 7000) "{name}")',
    )
    return wasmdeck.Plugin(wasm)


@pytest.fixture
def host() -> wasmdeck.PluginHost:
    host = wasmdeck.PluginHost()
    host.add(plugin("obs", ["set-scene", "record", "ok"]))
    host.add(plugin("hue", ["dim", "record"]))
    host.add(plugin("legacy", None))
    yield host
    host.close()


def test_route_by_action_alone(host: wasmdeck.PluginHost) -> None:
    assert host.call("set-scene", {"scene": "Live"}) == b"obs"
    assert host.call("dim") == b"hue"


def test_route_by_plugin_and_action(host: wasmdeck.PluginHost) -> None:
    assert host.call("record", plugin="hue") == b"hue"
    assert host.call("anything-at-all", plugin="legacy") == b"legacy"


def test_ambiguous_action_names_the_candidates(host: wasmdeck.PluginHost) -> None:
    with pytest.raises(
        ActionNotFound, match=r"several plugins declare this action \(hue, obs\); name the plugin"
    ):
        host.call("record")


def test_unknown_action(host: wasmdeck.PluginHost) -> None:
    with pytest.raises(
        ActionNotFound,
        match="no loaded plugin declares this action; plugins without an action list",
    ):
        host.call("launch")


def test_action_the_named_plugin_does_not_declare(host: wasmdeck.PluginHost) -> None:
    with pytest.raises(ActionNotFound, match="declares: ok, record, set-scene"):
        host.call("dim", plugin="obs")


def test_unknown_plugin(host: wasmdeck.PluginHost) -> None:
    with pytest.raises(PluginNotFound, match="loaded: hue, legacy, obs"):
        host.call("dim", plugin="nope")


def test_duplicate_names_and_removal(host: wasmdeck.PluginHost) -> None:
    with pytest.raises(ValueError, match="already loaded"):
        host.add(plugin("hue", ["dim"]))
    removed = host.remove("obs")
    assert removed.name == "obs" and "obs" not in host and len(host) == 2
    assert host.call("record") == b"hue"  # no longer ambiguous
    with pytest.raises(ActionNotFound):
        host.call("set-scene")


async def test_async_routing(host: wasmdeck.PluginHost) -> None:
    assert await host.call_async("set-scene") == b"obs"
    assert await host.gather(("dim", None), ("set-scene", {"scene": "Live"})) == [b"hue", b"obs"]
