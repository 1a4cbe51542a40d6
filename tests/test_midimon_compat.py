"""Plugins written to MIDIMon's v2.5 ABI load and run unchanged (docs/architecture.md, "The two ABIs")."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import wasmtime
from watgen import abi_module

import wasmdeck
from wasmdeck._capabilities import UNMAPPED, describe_request
from wasmdeck.packages._consent import grants_for
from wasmdeck.toolchains import _rust

ROOT = Path(__file__).resolve().parent.parent

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
    # One request shape for every plugin: action, params, context{velocity, mode,
    # current_mode (MIDIMon v2.5's name for the mode), timestamp}.
    plugin = wasmdeck.Plugin(midimon_plugin())
    request = json.loads(
        plugin._request("hello", {"a": 1}, wasmdeck.TriggerContext(velocity=1, mode=2, timestamp=3))
    )
    assert request == {
        "action": "hello",
        "params": {"a": 1},
        "context": {"velocity": 1, "mode": 2, "current_mode": 2, "timestamp": 3},
    }


# -- a plugin written in Rust exactly to MIDIMon's ABI, built with Debian's rustc --

MIDIMON_RUST = ROOT / "tests" / "plugins" / "midimon-rust"


@pytest.fixture(scope="module")
def midimon_rust() -> Path:
    """tests/plugins/midimon-rust built as MIDIMon's template builds: plain cargo, no kit."""
    bin_dir = _rust.toolchain_bin()
    version = subprocess.run(
        [bin_dir / "rustc", "--version"], capture_output=True, text=True, check=False
    ).stdout
    digest = hashlib.sha256(version.encode())
    for path in sorted(p for p in MIDIMON_RUST.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(MIDIMON_RUST)).encode() + path.read_bytes())
    project = ROOT / ".cache" / "test-builds" / f"midimon-rust-{digest.hexdigest()[:16]}"
    built = project / "target" / _rust.TARGET / "release" / "midimon_rust.wasm"
    if built.is_file():
        return built
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(MIDIMON_RUST, project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUSTUP_", "CARGO_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # Debian's, not rustup's
    result = subprocess.run(
        [bin_dir / "cargo", "build", "--release", "--offline", "--target", _rust.TARGET],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"cargo build of {MIDIMON_RUST} failed:\n{result.stderr}", pytrace=False)
    return built


def _code(plugin: wasmdeck.Plugin, action: str, context: wasmdeck.TriggerContext) -> int:
    # The plugin imports nothing from the host, so it answers with its return code.
    with pytest.raises(wasmdeck.PluginReportedError) as error:
        plugin.call(action, {}, context)
    return error.value.code


def test_rust_midimon_plugin_imports_nothing_from_the_host(midimon_rust: Path) -> None:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(midimon_rust))
    assert {i.module for i in module.imports} <= {"wasi_snapshot_preview1"}
    assert {"memory", "alloc", "init", "execute"} <= {e.name for e in module.exports}


def test_rust_midimon_plugin_reads_current_mode_and_velocity(midimon_rust: Path) -> None:
    plugin = wasmdeck.Plugin(midimon_rust)
    # 100000 + (current_mode + 1) * 1000 + velocity; current_mode -1 when null or absent.
    assert _code(plugin, "report", wasmdeck.TriggerContext(velocity=100, mode=3)) == 104_100
    assert _code(plugin, "report", wasmdeck.TriggerContext(velocity=7)) == 100_007
    from_cli = wasmdeck.TriggerContext.from_dict({"current_mode": 5, "velocity": 1})
    assert _code(plugin, "report", from_cli) == 106_001


def test_rust_midimon_plugin_metadata(midimon_rust: Path) -> None:
    meta = wasmdeck.Plugin(midimon_rust).metadata
    assert [(a.name, a.parameters) for a in meta.actions or ()] == [
        ("report", ()),
        ("allocate", ("mib",)),
        ("sleep", ("seconds",)),
    ]
    assert [c.kind for c in meta.capabilities] == ["midi", "audio", "systemcontrol"]


def test_rust_midimon_plugin_sleeping_past_its_timeout(midimon_rust: Path) -> None:
    plugin = wasmdeck.Plugin(midimon_rust, limits=wasmdeck.Limits(timeout=0.5))
    started = time.monotonic()
    with pytest.raises(wasmdeck.TimeLimitExceeded):
        plugin.call("sleep", {"seconds": 10})
    assert time.monotonic() - started < 3  # the deadline holds, not the 10 s asked for


def test_rust_midimon_plugin_per_call_instances(midimon_rust: Path) -> None:
    for policy in ("persistent", "per-call"):
        plugin = wasmdeck.Plugin(midimon_rust, limits=wasmdeck.Limits(instance=policy))
        assert plugin.call("allocate", {"mib": 8}) == b""
        assert _code(plugin, "report", wasmdeck.TriggerContext(velocity=1, mode=0)) == 101_001


def test_rust_midimon_plugin_info_states_the_unmapped_capabilities(
    midimon_rust: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wasmdeck.cli._main import main

    assert main(["info", str(midimon_rust)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["actions"][1]["parameters"] == ["mib"]
    assert "note: midi (MIDIMon's): not a host API in wasmdeck" in captured.err
    assert "note: audio (MIDIMon's): not a host API in wasmdeck" in captured.err
    assert "note: systemcontrol (MIDIMon's): maps to nothing in wasmdeck and is refused" in (
        captured.err
    )


# -- the host around MIDIMon's plugins ---------------------------------------------


def test_current_mode_is_the_same_field_as_mode() -> None:
    assert wasmdeck.TriggerContext.from_dict({"current_mode": 2}).mode == 2
    assert wasmdeck.TriggerContext.from_dict({"mode": 2, "current_mode": 2}).mode == 2
    assert wasmdeck.TriggerContext.from_dict({"current_mode": None}).mode is None
    with pytest.raises(ValueError, match="gives mode 1 and current_mode 2; they are one field"):
        wasmdeck.TriggerContext.from_dict({"mode": 1, "current_mode": 2})
    with pytest.raises(ValueError, match="gives mode True and current_mode 1"):
        wasmdeck.TriggerContext.from_dict({"mode": True, "current_mode": 1})


def test_per_call_instances_keep_nothing_between_calls() -> None:
    # A counter in a global: persistent instances count up, per-call ones start afresh.
    counter = abi_module(
        """
        (global.set $count (i32.add (global.get $count) (i32.const 1)))
        (i32.store8 (i32.const 5000) (i32.add (i32.const 48) (global.get $count)))
        (call $set_output (i32.const 5000) (i32.const 1))
        (i32.const 0)""",
        extra="(global $count (mut i32) (i32.const 0))",
    )
    persistent = wasmdeck.Plugin(counter)
    assert [persistent.call("count") for _ in range(3)] == [b"1", b"2", b"3"]
    fresh = wasmdeck.Plugin(counter, limits=wasmdeck.Limits(instance="per-call"))
    assert [fresh.call("count") for _ in range(3)] == [b"1", b"1", b"1"]
    with pytest.raises(ValueError, match="instance must be one of 'persistent', 'per-call'"):
        wasmdeck.Limits(instance="pooled")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["midi", "audio", "systemcontrol"])
def test_midimon_only_kinds_are_never_granted(kind: str) -> None:
    request = wasmdeck.CapabilityRequest(kind)
    grants, left = grants_for([request])
    assert not grants and left  # listed as not granted, never a silent grant
    assert UNMAPPED[kind] in describe_request(request)
    with pytest.raises(ValueError, match=f"capability '{kind}' \\(from MIDIMon\\)"):
        wasmdeck.parse_grant(kind)


def test_the_install_plan_states_what_midimons_kinds_map_to() -> None:
    from wasmdeck._metadata import CapabilityRequest
    from wasmdeck.packages._consent import grants_for

    grants, left = grants_for([CapabilityRequest("systemcontrol"), CapabilityRequest("midi")])
    assert not grants
    assert left[0].startswith("systemcontrol (maps to nothing in wasmdeck")
    assert left[1].startswith("midi (not a host API in wasmdeck")
    assert not any("unknown to this host" in line for line in left)
