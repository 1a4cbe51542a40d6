"""Both ABIs behave the same when a plugin does the same hostile thing.

``runtime/_adapter.py`` owns request encoding, host-call handling, refusals
and failure mapping for the core-module and the component adapter; these
tests pin that: each case runs once on a hand-written core module (WAT) and
once on the Python test component, and expects the same error type, the same
words, the plugin and action named, and a plugin that works again afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from componentgen import COMPILED, PLUGINS, build_python
from watgen import abi_module

import wasmdeck
from wasmdeck import Limits, OutputLimitExceeded, PluginReportedError, Runtime

MiB = 1024 * 1024
MAX_OUTPUT = 1000
IMPORTS = {
    "log": '(import "wasmdeck" "log" (func $log (param i32 i32 i32)))',
    "request": '(import "wasmdeck" "config_get" (func $call (param i32 i32) (result i32)))',
    "output": "",
    "error": '(import "wasmdeck" "set_error" (func $set_error (param i32 i32)))',
}
BODIES = {
    "log": "(call $log (i32.const 1) (i32.const 0) (i32.const {size}))",
    "request": "(drop (call $call (i32.const 0) (i32.const {size})))",
    "output": "(call $set_output (i32.const 0) (i32.const {size}))",
    "error": "(call $set_error (i32.const 0) (i32.const {size}))",
}
# (what the plugin floods, how many bytes, the error it must end in)
CASES = {
    "log line over max_output": ("log", 2 * MAX_OUTPUT, r"logged a 2,000-\w+ message"),
    "host request over 16 MiB": (
        "request",
        16 * MiB + 64,
        r"sent a 16,777,\d{3}-byte request to config_get, more than the 16,777,216 bytes",
    ),
    "output over max_output": ("output", 2 * MAX_OUTPUT, r"returned 2,000 bytes"),
    "error message over max_output": ("error", 2 * MAX_OUTPUT, r"returned 2,000 bytes"),
}

Load = Callable[[str, int], tuple[wasmdeck.Plugin, dict[str, object]]]


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(cache=COMPILED)


@pytest.fixture(params=["core", "component"])
def load(request: pytest.FixtureRequest, runtime: Runtime) -> Load:
    """A plugin that floods the host with ``size`` bytes of ``what``, and the params to ask it."""
    limits = Limits(max_output=MAX_OUTPUT, fuel=10**11, max_memory=512 * MiB)

    def core(what: str, size: int) -> tuple[wasmdeck.Plugin, dict[str, object]]:
        imports = '(import "wasmdeck" "set_output" (func $set_output (param i32 i32)))'
        body = BODIES[what].format(size=size) + " (i32.const 0)"
        text = "x" * min(size, 4000)  # what the component hands over too
        wasm = abi_module(
            body, imports=imports + IMPORTS[what], extra=f'(data (i32.const 0) "{text}")'
        )
        return wasmdeck.Plugin(wasm, limits=limits, runtime=runtime), {}

    def component(what: str, size: int) -> tuple[wasmdeck.Plugin, dict[str, object]]:
        path = build_python(PLUGINS / "behaviors")
        plugin = wasmdeck.Plugin(path, limits=limits, runtime=runtime)
        return plugin, {"what": what, "size": size}

    return core if request.param == "core" else component


@pytest.mark.parametrize("case", CASES)
def test_the_same_hostile_call_fails_the_same_way(load: Load, case: str) -> None:
    what, size, message = CASES[case]
    plugin, params = load(what, size)
    with pytest.raises(OutputLimitExceeded, match=message) as caught:
        plugin.call("flood", params)
    assert caught.value.limit == "max_output"
    assert (caught.value.plugin, caught.value.action) == (plugin.name, "flood")
    assert plugin.call("ok") == b"ok"  # a fresh instance serves the next call


def test_params_as_encoded_bytes_mean_the_same_on_both(load: Load) -> None:
    plugin, _ = load("output", 10)
    with pytest.raises(
        ValueError, match=r"must be an encoded JSON object \(\{...\}\), not b'\[1, 2\]'"
    ):
        plugin.call("ok", b"[1, 2]")
    with pytest.raises(ValueError, match="must be an encoded JSON object"):
        plugin.call("ok", b'{"a": ')
    with pytest.raises(ValueError, match="not UTF-8"):
        plugin.call("ok", b'{"a": "\xff"}')
    with pytest.raises(ValueError, match="cannot be sent as JSON"):
        plugin.call("ok", {"x": object()})
    assert plugin.call("ok", b' {"a": [1, 2]}\n') == b"ok"
    assert plugin.call("ok", {"big": 2**70}) == plugin.call("ok", {"nan": float("nan")}) == b"ok"


def test_a_reported_error_reads_the_same(load: Load) -> None:
    plugin, params = load("error", 5)
    with pytest.raises(PluginReportedError, match=r"action 'flood': x{5}$"):
        plugin.call("flood", params)
