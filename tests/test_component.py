"""Component plugins (wit/plugin.wit, docs/components.md) behind the same Python API as core modules.

The plugins are Python, built from ``tests/plugins/python`` with
componentize-py in the test run. They go through what core plugins go
through: metadata, routing, errors, limits and containment, WASI, the host
API and its grants, async calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from componentgen import COMPILED, PLUGINS, build_python

import wasmdeck
from wasmdeck import (
    ActionNotFound,
    FuelLimitExceeded,
    ImportNotAllowed,
    InvalidModule,
    Limits,
    MemoryLimitExceeded,
    MissingExport,
    OutputLimitExceeded,
    PluginReportedError,
    PluginTrap,
    Runtime,
    StackLimitExceeded,
    TimeLimitExceeded,
    TriggerContext,
)

MiB = 1024 * 1024


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    """A runtime whose compile cache is kept across test runs (``.cache/compiled``)."""
    return Runtime(cache=COMPILED)


@pytest.fixture(scope="session")
def behaviors_component() -> Path:
    return build_python(PLUGINS / "behaviors")


@pytest.fixture(scope="session")
def kv_component() -> Path:
    return build_python(PLUGINS / "kvuser", imports=["kv"])


@pytest.fixture
def component(behaviors_component: Path, runtime: Runtime) -> wasmdeck.Plugin:
    plugin = wasmdeck.Plugin(behaviors_component, runtime=runtime)
    yield plugin
    plugin.close()


def load(path: Path, runtime: Runtime, **kwargs: object) -> wasmdeck.Plugin:
    return wasmdeck.Plugin(path, runtime=runtime, **kwargs)  # type: ignore[arg-type]


# -- loading and metadata -------------------------------------------------------


def test_a_component_loads_behind_the_plugin_api(component: wasmdeck.Plugin) -> None:
    assert component.abi == "component-v1"
    meta = component.metadata
    assert (meta.name, meta.version, meta.author) == ("py-behaviors", "1.2.3", "wasmdeck tests")
    assert meta.actions is not None
    assert {"ok", "echo", "count", "spin"} <= {a.name for a in meta.actions}
    assert next(a for a in meta.actions if a.name == "ok").description == "Answer ok"
    assert repr(component) == "<Plugin 'py-behaviors' 1.2.3 (component-v1)>"


def test_bytes_load_as_well_as_files(behaviors_component: Path, runtime: Runtime) -> None:
    plugin = wasmdeck.Plugin(behaviors_component.read_bytes(), runtime=runtime)
    assert plugin.call("ok") == b"ok"


# -- routing and results ------------------------------------------------------------


def test_params_and_context_reach_the_plugin(component: wasmdeck.Plugin) -> None:
    context = TriggerContext(velocity=100, mode=-2, timestamp=1732500000123)
    params = {"scene": "Live", "nested": {"list": [1, 2.5, None, "ü"]}}
    import json

    assert json.loads(component.call("echo", params, context)) == {
        "params": params,
        "context": {"velocity": 100, "mode": -2, "timestamp": 1732500000123},
    }
    empty = json.loads(component.call("echo"))
    assert empty["params"] == {}
    assert empty["context"]["velocity"] is None and empty["context"]["mode"] is None
    assert abs(empty["context"]["timestamp"] - time.time() * 1000) < 60_000


def test_outputs_of_every_kind(component: wasmdeck.Plugin) -> None:
    assert component.call("binary") == bytes(range(256))
    assert component.call("nothing") == b""


def test_text_and_numbers_round_trip_exactly(component: wasmdeck.Plugin) -> None:
    # The request is lowered into C component values by wasmdeck itself
    # (_component._Request): non-ASCII text, none versus 0, the type limits.
    import json

    params = {"scene": "Ünïcödé ✓ 🎛 日本語", "empty": ""}
    for velocity, mode, timestamp in (
        (0, 0, 0),
        (127, -(2**63), 2**64 - 1),
        (None, 2**63 - 1, 1),
        (5, None, 1732500000123),
        (None, None, 7),
    ):
        context = TriggerContext(velocity=velocity, mode=mode, timestamp=timestamp)
        assert json.loads(component.call("echo", params, context)) == {
            "params": params,
            "context": {"velocity": velocity, "mode": mode, "timestamp": timestamp},
        }
    with pytest.raises(PluginReportedError, match=r"fail.: kaputt ✗ 🎛 日本語$"):
        component.call("fail", {"message": "kaputt ✗ 🎛 日本語"})
    assert component.call("ok") == b"ok"


def test_what_its_wit_types_cannot_carry_is_refused_before_the_call(
    component: wasmdeck.Plugin,
) -> None:
    with pytest.raises(ValueError, match="does not fit its WIT types"):
        component.call("echo", {}, TriggerContext(mode=2**63))
    with pytest.raises(ValueError, match="not valid Unicode"):
        component.call("echo", {"text": "\ud800"})
    assert component.call("echo", {"text": "ok"}, TriggerContext(mode=2**63 - 1))


def test_large_outputs_and_the_output_limit(behaviors_component: Path, runtime: Runtime) -> None:
    import json

    plugin = load(behaviors_component, runtime, limits=Limits(fuel=10**11))  # max_output: 1 MiB
    blob = "é" * 100_000  # ~600 KB of JSON (as \u00e9)
    assert json.loads(plugin.call("echo", {"blob": blob}))["params"]["blob"] == blob
    with pytest.raises(OutputLimitExceeded, match=r"returned 1,\d{3},\d{3} bytes, more than"):
        plugin.call("echo", {"blob": "x" * 1_100_000})
    assert plugin.call("ok") == b"ok"
    small = load(behaviors_component, runtime, limits=Limits(max_output=100))
    with pytest.raises(OutputLimitExceeded, match="returned 200 bytes, more than"):
        small.call("fail", {"message": "x" * 200})  # an error message counts too
    with pytest.raises(PluginReportedError, match=r"fail.: short$"):
        small.call("fail", {"message": "short"})


def test_params_as_bytes_reach_the_component_as_given(component: wasmdeck.Plugin) -> None:
    import json

    echoed = json.loads(component.call("echo", b'{"a": [1, "\xc3\xa9"]}'))
    assert echoed["params"] == {"a": [1, "é"]}


def test_undeclared_actions_and_bad_params_are_refused_before_the_call(
    component: wasmdeck.Plugin,
) -> None:
    with pytest.raises(ActionNotFound, match="does not declare this action"):
        component.call("missing")
    with pytest.raises(ValueError, match="JSON object"):
        component.call("echo", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        component.call("echo", {"x": object()})
    assert component.call("ok") == b"ok"


def test_state_lives_on_the_instance_until_reset(component: wasmdeck.Plugin) -> None:
    assert [component.call("count") for _ in range(3)] == [b"1", b"2", b"3"]
    component.reset()
    assert component.call("count") == b"1"


# -- errors ----------------------------------------------------------------------


def test_a_reported_error_names_plugin_and_action(component: wasmdeck.Plugin) -> None:
    with pytest.raises(PluginReportedError) as caught:
        component.call("fail", {"message": "the scene does not exist"})
    error = caught.value
    assert (error.plugin, error.action, error.message) == (
        "py-behaviors",
        "fail",
        "the scene does not exist",
    )
    assert str(error) == "plugin 'py-behaviors', action 'fail': the scene does not exist"
    assert component.call("count") == b"1"  # an error is not a trap: the instance lives on


def test_an_unexpected_exception_is_an_error_with_its_traceback_logged(
    component: wasmdeck.Plugin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmdeck.plugin")
    with pytest.raises(PluginReportedError, match="ValueError: something broke"):
        component.call("crash")
    logged = [r.getMessage() for r in caplog.records if r.name == "wasmdeck.plugin.py-behaviors"]
    assert "Traceback (most recent call last):" in logged
    assert "ValueError: something broke" in logged


# -- limits and containment -------------------------------------------------------


@pytest.fixture
def neighbour(component: wasmdeck.Plugin) -> wasmdeck.Plugin:
    assert component.call("count") == b"1"
    return component


def assert_contained(plugin: wasmdeck.Plugin, neighbour: wasmdeck.Plugin) -> None:
    assert plugin.call("count") == b"1"  # a fresh instance serves the next call
    assert neighbour.call("count") == b"2"  # and the neighbour kept its state


def test_an_endless_loop_is_stopped_shortly_after_the_timeout(
    behaviors_component: Path, runtime: Runtime, neighbour: wasmdeck.Plugin
) -> None:
    plugin = load(behaviors_component, runtime, limits=Limits(timeout=0.3, fuel=10**15))
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded) as caught:
        plugin.call("spin")
    assert 0.3 <= time.monotonic() - started < 1.3
    error = caught.value
    assert (error.plugin, error.action, error.limit, error.value) == (
        "py-behaviors",
        "spin",
        "timeout",
        0.3,
    )
    assert str(error) == (
        "plugin 'py-behaviors', action 'spin': stopped after running past its 0.3 s "
        "time limit (timeout)"
    )
    assert_contained(plugin, neighbour)


def test_fuel_exhaustion(
    behaviors_component: Path, runtime: Runtime, neighbour: wasmdeck.Plugin
) -> None:
    plugin = load(behaviors_component, runtime, limits=Limits(fuel=20_000_000))
    with pytest.raises(FuelLimitExceeded) as caught:
        plugin.call("spin")
    assert caught.value.value == 20_000_000
    assert "ran out of fuel: used its whole budget of 20,000,000 (fuel limit)" in str(caught.value)
    assert_contained(plugin, neighbour)


def test_memory_limit(
    behaviors_component: Path,
    runtime: Runtime,
    neighbour: wasmdeck.Plugin,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugin = load(behaviors_component, runtime, limits=Limits(max_memory=48 * MiB, fuel=10**12))
    with pytest.raises(MemoryLimitExceeded) as caught:
        plugin.call("grow")
    assert (caught.value.limit, caught.value.value, caught.value.action) == (
        "max_memory",
        48 * MiB,
        "grow",
    )
    assert "reached its 48 MiB memory limit" in str(caught.value)
    assert_contained(plugin, neighbour)


def test_initial_memory_over_the_limit_fails_to_load(
    behaviors_component: Path, runtime: Runtime
) -> None:
    with pytest.raises(MemoryLimitExceeded, match="initial memory is larger than the 1 MiB"):
        load(behaviors_component, runtime, limits=Limits(max_memory=1 * MiB))


def test_stack_overflow(
    behaviors_component: Path, runtime: Runtime, neighbour: wasmdeck.Plugin
) -> None:
    plugin = load(behaviors_component, runtime, limits=Limits(fuel=10**12))
    with pytest.raises(StackLimitExceeded) as caught:
        plugin.call("recurse")
    assert caught.value.value == runtime.max_stack
    assert "overflowed its 512 KiB wasm stack" in str(caught.value)
    assert_contained(plugin, neighbour)


def test_python_recursion_limit_is_the_plugins_own_error(
    behaviors_component: Path, runtime: Runtime
) -> None:
    plugin = load(behaviors_component, runtime, limits=Limits(fuel=10**12))
    with pytest.raises(PluginReportedError, match="RecursionError"):
        plugin.call("recurse", {"limit": 1000})


def test_output_limit(behaviors_component: Path, runtime: Runtime) -> None:
    plugin = load(behaviors_component, runtime, limits=Limits(max_output=100))
    with pytest.raises(OutputLimitExceeded, match="returned 256 bytes, more than its max_output"):
        plugin.call("binary")
    assert plugin.call("ok") == b"ok"


# -- WASI preview 2 ------------------------------------------------------------------


def test_stdio_and_the_host_log_go_to_the_plugins_logger(
    component: wasmdeck.Plugin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wasmdeck.plugin")
    assert component.call("talk") == b"said"
    records = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "wasmdeck.plugin.py-behaviors"
    ]
    assert records == [
        (logging.INFO, "hello from stdout"),
        (logging.WARNING, "hello from stderr"),
        (logging.WARNING, "hello from the host log"),
    ]


def test_environment_is_empty_unless_granted(
    behaviors_component: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("WASMDECK_TEST_VISIBLE", "yes")
    monkeypatch.setenv("WASMDECK_TEST_HIDDEN", "no")
    names = {"names": ["WASMDECK_TEST_VISIBLE", "WASMDECK_TEST_HIDDEN", "PATH", "HOME"]}
    plain = load(behaviors_component, runtime)
    assert set(json.loads(plain.call("env", names)).values()) == {None}
    granted = load(behaviors_component, runtime, grants=["env:WASMDECK_TEST_VISIBLE"])
    assert json.loads(granted.call("env", names)) == {
        "WASMDECK_TEST_VISIBLE": "yes",
        "WASMDECK_TEST_HIDDEN": None,
        "PATH": None,
        "HOME": None,
    }


def test_files_only_in_granted_directories(
    behaviors_component: Path, runtime: Runtime, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "scene.txt").write_text("Live")
    plain = load(behaviors_component, runtime)
    with pytest.raises(PluginReportedError, match=r"cannot read /data/scene\.txt"):
        plain.call("read", {"path": "/data/scene.txt"})

    read_only = load(behaviors_component, runtime, grants=[f"fs:/data={data}:ro"])
    assert read_only.call("read", {"path": "/data/scene.txt"}) == b"Live"
    with pytest.raises(PluginReportedError, match=r"cannot write /data/new\.txt"):
        read_only.call("write", {"path": "/data/new.txt", "text": "x"})
    with pytest.raises(PluginReportedError, match="cannot read"):
        read_only.call("read", {"path": "/data/../../etc/passwd"})

    read_write = load(behaviors_component, runtime, grants=[f"fs:/data={data}:rw"])
    assert read_write.call("write", {"path": "/data/new.txt", "text": "written"}) == b"written"
    assert (data / "new.txt").read_text() == "written"


def test_clocks_and_randomness(component: wasmdeck.Plugin) -> None:
    import json

    first, second = (json.loads(component.call("clock")) for _ in range(2))
    assert abs(first["now_ms"] - time.time() * 1000) < 60_000
    assert first["random"] != second["random"]


# -- host API and grants -------------------------------------------------------------


def test_config_through_the_host_interface(behaviors_component: Path, runtime: Runtime) -> None:
    plugin = load(behaviors_component, runtime, config={"bridge": "192.168.1.20"})
    assert plugin.call("config", {"key": "bridge"}) == b'{"value":"192.168.1.20"}'
    assert plugin.call("config", {"key": "missing"}) == b'{"value":null}'


def test_an_interface_left_out_of_the_build_is_a_clear_error(component: wasmdeck.Plugin) -> None:
    with pytest.raises(PluginReportedError, match="built without the 'kv' host interface"):
        component.call("kv")


def test_a_component_importing_an_ungranted_interface_fails_to_load(
    kv_component: Path, runtime: Runtime
) -> None:
    with pytest.raises(ImportNotAllowed) as caught:
        load(kv_component, runtime)
    assert str(caught.value) == (
        "plugin 'py-kvuser.wasm': imports wasmdeck:plugin/kv@1.3.0, which needs the 'kv' "
        "capability; it was not granted (grant it with --grant kv)"
    ).replace("py-kvuser.wasm", kv_component.name)


def test_a_shared_compiled_component_is_judged_by_each_loads_grants(
    kv_component: Path, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While one plugin of the binary is loaded, another load shares its
    # compiled code and the imports read from it (_component._shape_of): the
    # grants are still each load's own.
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    with load(kv_component, runtime, grants=["kv"]) as granted:
        with pytest.raises(ImportNotAllowed, match="needs the 'kv' capability"):
            load(kv_component, runtime)
        with load(kv_component, runtime, grants=["kv"]) as again:
            assert again._impl._component is granted._impl._component  # type: ignore[attr-defined]
            assert again.call("bump") == b"1"


def test_a_granted_interface_works(
    kv_component: Path, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    with load(kv_component, runtime, grants=["kv"]) as plugin:
        assert plugin.metadata.capabilities[0].kind == "kv"
        assert [plugin.call("bump") for _ in range(3)] == [b"1", b"2", b"3"]
    with load(kv_component, runtime, grants=["kv"]) as plugin:
        assert plugin.call("bump") == b"4"  # state persists across loads


# Small hand-written components: what the loader refuses before running anything.


@pytest.mark.parametrize(
    ("wat", "error", "message"),
    [
        ("(component)", MissingExport, "does not export the function 'metadata'"),
        # Components built against 1.0.0 (before the trigger interface) still link.
        (
            '(component (import "wasmdeck:plugin/log@1.0.0" (instance)))',
            MissingExport,
            "does not export the function 'metadata'",
        ),
        (
            '(component (import "wasmdeck:plugin/trigger@1.1.0" (instance)))',
            MissingExport,
            "does not export the function 'metadata'",
        ),
        (
            '(component (import "wasmdeck:plugin/process@1.0.0" (instance)))',
            ImportNotAllowed,
            "needs the 'process' capability; it was not granted (grant it with --grant "
            "process:SCOPE)",
        ),
        (
            '(component (import "wasmdeck:plugin/telepathy@1.0.0" (instance)))',
            ImportNotAllowed,
            "which wasmdeck does not provide",
        ),
        # The interfaces of 1.2.0, each behind its capability.
        (
            '(component (import "wasmdeck:plugin/events@1.2.0" (instance)))',
            ImportNotAllowed,
            "needs the 'events' capability; it was not granted",
        ),
        (
            '(component (import "wasmdeck:plugin/plugins@1.2.0" (instance)))',
            ImportNotAllowed,
            "needs the 'plugins' capability; it was not granted",
        ),
        (
            '(component (import "wasmdeck:plugin/state@1.2.0" (instance)))',
            ImportNotAllowed,
            "needs the 'state' capability; it was not granted",
        ),
        (
            '(component (import "wasmdeck:plugin/log@2.0.0" (instance)))',
            ImportNotAllowed,
            "this host provides wasmdeck:plugin@1.3.0",
        ),
        (
            '(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))',
            ImportNotAllowed,
            "use wasmdeck:plugin/http instead",
        ),
        (
            '(component (import "acme:thing/api" (instance)))',
            ImportNotAllowed,
            "imports acme:thing/api, which wasmdeck does not provide",
        ),
    ],
)
def test_the_loader_refuses_what_it_cannot_serve(
    wat: str, error: type[Exception], message: str, runtime: Runtime
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        wasmdeck.Plugin(wasmtime.wat2wasm(wat), runtime=runtime)


def _exporting(*names: str) -> bytes:
    """A component exporting ``names``, each a function returning u32."""
    exports = "".join(f'(export "{name}" (func $f))' for name in names)
    return wasmtime.wat2wasm(f"""(component
      (core module $m (func (export "f") (result i32) i32.const 0))
      (core instance $i (instantiate $m))
      (func $f (result u32) (canon lift (core func $i "f")))
      {exports})""")


def test_the_state_pair_of_a_live_reload_is_checked_on_load(runtime: Runtime) -> None:
    # docs/reload.md: both or neither, with the `stateful` world's signatures.
    with pytest.raises(MissingExport, match="exports 'save-state' but not 'restore-state'"):
        wasmdeck.Plugin(_exporting("metadata", "execute", "save-state"), runtime=runtime)
    with pytest.raises(MissingExport, match=r"must be func\(\) -> list<u8>"):
        wasmdeck.Plugin(
            _exporting("metadata", "execute", "save-state", "restore-state"), runtime=runtime
        )


def test_a_broken_component_is_an_invalid_module(runtime: Runtime) -> None:
    with pytest.raises(InvalidModule, match="wasmtime rejected the component"):
        wasmdeck.Plugin(b"\0asm\x0d\x00\x01\x00\x99", runtime=runtime)


def test_a_trap_while_loading_is_reported(runtime: Runtime) -> None:
    wat = """(component
      (core module $m (func (export "boom") (result i32) unreachable))
      (core instance $i (instantiate $m))
      (func $f (result u32) (canon lift (core func $i "boom")))
      (export "metadata" (func $f))
      (export "execute" (func $f)))"""
    with pytest.raises(PluginTrap, match="trapped in metadata: unreachable code reached"):
        wasmdeck.Plugin(wasmtime.wat2wasm(wat), runtime=runtime)


# -- async -------------------------------------------------------------------------------


async def test_calls_from_asyncio_run_in_parallel_threads(
    behaviors_component: Path, runtime: Runtime, component: wasmdeck.Plugin
) -> None:
    other = load(behaviors_component, runtime)
    results = await asyncio.gather(
        *(component.call_async("count") for _ in range(3)),
        *(other.call_async("echo", {"n": n}) for n in range(3)),
    )
    assert sorted(results[:3]) == [b"1", b"2", b"3"]
    assert [r.startswith(b'{"params":{"n":') for r in results[3:]] == [True] * 3


async def test_async_limits_are_typed_errors(behaviors_component: Path, runtime: Runtime) -> None:
    plugin = load(behaviors_component, runtime, limits=Limits(fuel=20_000_000))
    with pytest.raises(FuelLimitExceeded):
        await plugin.call_async("spin")
    assert await plugin.call_async("ok") == b"ok"


# -- compile cache ----------------------------------------------------------------------


def test_a_host_routes_to_components_and_core_modules_alike(
    component: wasmdeck.Plugin, velocity_wasm: Path, runtime: Runtime
) -> None:
    host = wasmdeck.PluginHost()
    host.add(component)
    core = host.load(velocity_wasm, runtime=runtime)
    assert {p.abi for p in host} == {"component-v1", "core-v1"}
    # By action name alone: "scale" is the C plugin's, "fail" the component's.
    hit = TriggerContext(velocity=127)
    assert host.call("scale", {"max": 10}, hit) == b'{"value":10,"velocity":127}'
    with pytest.raises(wasmdeck.PluginReportedError) as caught:
        host.call("fail", {"message": "no"})
    assert caught.value.plugin == "py-behaviors"
    with pytest.raises(wasmdeck.ActionNotFound):
        host.call("teleport")
    host.remove(core.name)
    core.close()


def test_a_component_is_served_from_the_compile_cache(
    behaviors_component: Path, runtime: Runtime, component: wasmdeck.Plugin
) -> None:
    started = time.perf_counter()
    compiled, hit = runtime.load(behaviors_component, name=behaviors_component.name)
    elapsed = time.perf_counter() - started
    assert hit and isinstance(compiled, wasmtime.component.Component)
    assert elapsed < 0.5, elapsed  # milliseconds in fact; compiling takes seconds


def test_a_component_from_the_cache_has_its_shape_noted_not_read_again(
    behaviors_component: Path,
    runtime: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # runtime/_component.py: reading a component's imports and exports
    # through wasmtime-py costs hundreds of GIL-releasing C calls (~2 ms of
    # a reload under load), so the compile cache keeps them as a note.
    from wasmdeck.runtime import _component
    from wasmdeck.runtime._cache import CompileCache

    load(behaviors_component, runtime).close()  # the entry has its note now
    artifact, _ = runtime.load(behaviors_component, name="behaviors")
    key = runtime._keys[artifact]  # type: ignore[attr-defined]
    copy = tmp_path / "cache"
    copy.mkdir()
    for suffix in (".cwasm", ".json"):
        shutil.copyfile(COMPILED.directory / f"{key}{suffix}", copy / f"{key}{suffix}")
    reads: list[object] = []
    read_shape = _component._read_shape

    def counted(*args: Any) -> Any:
        reads.append(args)
        return read_shape(*args)

    monkeypatch.setattr(_component, "_read_shape", counted)
    fresh = Runtime(cache=CompileCache(copy))  # as another process: nothing shared
    plugin = load(behaviors_component, fresh)
    assert reads == []
    assert json.loads(plugin.call("echo", {"x": 1}))["params"] == {"x": 1}
    assert plugin.keeps_state is load(behaviors_component, runtime).keeps_state
    plugin.close()
    # A note that is not a shape is not believed: read again, and noted again.
    header_path = copy / f"{key}.json"
    header = json.loads(header_path.read_text())
    (name,) = (n for n in header["notes"] if n.startswith("component-shape/"))
    header["notes"][name]["imports"] = "wasi:cli/run"
    header_path.write_text(json.dumps(header))
    again = Runtime(cache=CompileCache(copy))
    plugin = load(behaviors_component, again)
    assert len(reads) == 1
    assert json.loads(plugin.call("echo", {"x": 1}))["params"] == {"x": 1}
    plugin.close()
    noted = json.loads(header_path.read_text())["notes"][name]
    assert isinstance(noted["imports"], list)
    for each in (fresh, again):
        each.close()
