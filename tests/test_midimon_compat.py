"""Plugins written to MIDIMon's v2.5 ABI load and run unchanged (docs/architecture.md, "The two ABIs")."""

from __future__ import annotations

import json

from watgen import abi_module

import wasmdeck

MIDIMON_METADATA = {
    "name": "example_wasm_plugin",
    "version": "0.1.0",
    "description": "Example WASM plugin for MIDIMon",
    "author": "Amiable",
    "license": "MIT",
    "type": "action",
    "capabilities": ["network", "filesystem", "audio", "midi", "subprocess", "systemcontrol"],
}

# execute succeeds (0) only if the request carries context.velocity and
# context.timestamp, which is what such plugins read; otherwise it returns 2
# (MIDIMon's "invalid JSON" code).
FIND = """
    (func $find (param $hay i32) (param $len i32) (param $needle i32) (param $nlen i32) (result i32)
      (local $i i32) (local $j i32)
      (block $none (loop $outer
        (br_if $none (i32.gt_u (i32.add (local.get $i) (local.get $nlen)) (local.get $len)))
        (local.set $j (i32.const 0))
        (block $miss (loop $inner
          (if (i32.eq (local.get $j) (local.get $nlen)) (then (return (i32.const 1))))
          (br_if $miss (i32.ne
              (i32.load8_u (i32.add (i32.add (local.get $hay) (local.get $i)) (local.get $j)))
              (i32.load8_u (i32.add (local.get $needle) (local.get $j)))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
      (i32.const 0))
    (data (i32.const 3000) "\\"velocity\\":100")
    (data (i32.const 3100) "\\"timestamp\\":")
"""
BODY = """
    (if (i32.eqz (call $find (local.get $ptr) (local.get $len) (i32.const 3000) (i32.const 14)))
      (then (return (i32.const 2))))
    (if (i32.eqz (call $find (local.get $ptr) (local.get $len) (i32.const 3100) (i32.const 12)))
      (then (return (i32.const 2))))
    (i32.const 0)
"""


def midimon_plugin() -> bytes:
    # No host imports at all, and alloc always hands out address 0 — as the
    # minimal MIDIMon template does. Memory is 2 pages; data sits above 2048.
    return abi_module(
        BODY, metadata=MIDIMON_METADATA, imports="", alloc="(i32.const 0)", extra=FIND
    )


def test_v25_plugin_loads_with_its_metadata() -> None:
    plugin = wasmdeck.Plugin(midimon_plugin())
    meta = plugin.metadata
    assert (meta.name, meta.version, meta.author, meta.license, meta.type) == (
        "example_wasm_plugin",
        "0.1.0",
        "Amiable",
        "MIT",
        "action",
    )
    assert meta.actions is None  # no actions list: any action name is accepted
    assert [c.kind for c in meta.capabilities] == MIDIMON_METADATA["capabilities"]
    assert meta.to_dict() == MIDIMON_METADATA


def test_v25_plugin_runs_and_reads_the_context() -> None:
    plugin = wasmdeck.Plugin(midimon_plugin())
    context = wasmdeck.TriggerContext(velocity=100, timestamp=1732500000123)
    # It cannot return output (it imports no set_output); success is an empty payload.
    assert plugin.call("hello", {}, context) == b""
    assert plugin.call("goodbye", {"any": "params"}, context) == b""
    # A different velocity makes this test plugin return its error code, which
    # proves the context really reached it.
    try:
        plugin.call("hello", {}, wasmdeck.TriggerContext(velocity=5))
    except wasmdeck.PluginReportedError as error:
        assert error.code == 2
        assert "failed with code 2" in str(error)
    else:
        raise AssertionError("the plugin did not see the context")


def test_v25_plugin_through_the_host_by_plugin_name() -> None:
    host = wasmdeck.PluginHost()
    host.add(wasmdeck.Plugin(midimon_plugin()))
    context = wasmdeck.TriggerContext(velocity=100)
    assert host.call("hello", None, context, plugin="example_wasm_plugin") == b""


def test_request_shape_matches_the_contract() -> None:
    # One request shape for every plugin: action, params, context{velocity, mode, timestamp}.
    plugin = wasmdeck.Plugin(midimon_plugin())
    request = json.loads(
        plugin._request("hello", {"a": 1}, wasmdeck.TriggerContext(velocity=1, mode=2, timestamp=3))
    )
    assert request == {
        "action": "hello",
        "params": {"a": 1},
        "context": {"velocity": 1, "mode": 2, "timestamp": 3},
    }
