"""A trap after a refused ``memory.grow`` is a memory-limit error, whatever was asked for.

Past ``max_memory`` the host's memory (``runtime/_memory.py``) refuses the
grow (``memory.grow`` returns -1) and records it; a trap later in the same
call is ``MemoryLimitExceeded`` (CLI exit 3), a plugin that copes with -1
gets no error at all, and a trap with no refused grow stays a ``PluginTrap``.
The same for components, for a C plugin's ``malloc`` and a Python
component's ``bytearray``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from componentgen import PLUGINS, build_python
from conftest import ROOT, build_c
from watgen import abi_module

import wasmdeck
from wasmdeck import Limits, MemoryLimitExceeded, PluginTrap, TableLimitExceeded
from wasmdeck.runtime import Runtime

MiB = 1024 * 1024
PAGE = 65536

# One memory.grow of `pages` pages; trap (as an allocator does) when refused.
GROW_OR_TRAP = "(if (i32.eq (memory.grow (i32.const {pages})) (i32.const -1)) (then unreachable))"
# The same grow, answered with an error code instead of a trap.
GROW_OR_FAIL = """
    (if (i32.eq (memory.grow (i32.const {pages})) (i32.const -1))
      (then (return (i32.const 7))))"""


def grow_module(body: str) -> bytes:
    return abi_module(body + " (i32.const 0)")


def test_one_huge_grow_then_trap_is_the_memory_limit() -> None:
    """2 pages in use, 128 MiB allowed, 200 MiB asked for at once (the issue's example)."""
    plugin = wasmdeck.Plugin(grow_module(GROW_OR_TRAP.format(pages=200 * MiB // PAGE)))
    with pytest.raises(MemoryLimitExceeded) as caught:
        plugin.call("grow")
    assert (caught.value.limit, caught.value.value) == ("max_memory", 128 * MiB)
    assert "128 MiB memory limit" in str(caught.value)
    assert "could not grow to 200.1 MiB" in str(caught.value)
    assert "unreachable" in str(caught.value)  # the trap's own words are kept
    assert plugin.call("ok") == b"ok"  # a fresh instance


def test_exit_status_of_a_huge_grow_is_the_limit_status(tmp_path: Path) -> None:
    wasm = tmp_path / "grow.wasm"
    wasm.write_bytes(grow_module(GROW_OR_TRAP.format(pages=200 * MiB // PAGE)))
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", "run", str(wasm), "grow"],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert b"memory limit" in result.stderr


def test_one_page_past_the_limit_then_trap_is_the_memory_limit() -> None:
    limit = 4 * MiB
    body = (
        GROW_OR_TRAP.format(pages=limit // PAGE - 2)  # exactly to the limit: granted
        + GROW_OR_TRAP.format(pages=1)  # one page more: refused
    )
    plugin = wasmdeck.Plugin(grow_module(body), limits=Limits(max_memory=limit))
    with pytest.raises(MemoryLimitExceeded, match=r"memory at 4\.0 MiB could not grow to 4\.1 MiB"):
        plugin.call("grow")


def test_growth_up_to_the_limit_is_granted() -> None:
    body = f"""
        {GROW_OR_TRAP.format(pages=4 * MiB // PAGE - 2)}
        (i32.store (i32.const {4 * MiB - 4}) (i32.const 42))  ;; the last word is usable
        (if (i32.ne (i32.load (i32.const {4 * MiB - 4})) (i32.const 42)) (then unreachable))
        (if (i32.ne (memory.size) (i32.const {4 * MiB // PAGE})) (then unreachable))"""
    plugin = wasmdeck.Plugin(grow_module(body), limits=Limits(max_memory=4 * MiB))
    assert plugin.call("grow") == b""


def test_a_refused_grow_handled_by_the_plugin_is_no_error() -> None:
    body = f"""
        (if (i32.ne (memory.grow (i32.const {200 * MiB // PAGE})) (i32.const -1))
          (then unreachable))  ;; it must be refused
        (call $set_output (i32.const 4096) (i32.const 2))"""
    plugin = wasmdeck.Plugin(grow_module(body))
    assert plugin.call("grow") == b"ok"
    assert plugin.call("grow") == b"ok"  # the same instance, again


def test_a_trap_without_a_refused_grow_stays_a_trap() -> None:
    plugin = wasmdeck.Plugin(grow_module("unreachable"), limits=Limits(max_memory=2 * PAGE))
    with pytest.raises(PluginTrap) as caught:
        plugin.call("trap")  # memory is at its limit, but nothing asked for more
    assert not isinstance(caught.value, MemoryLimitExceeded)


def test_a_refusal_in_an_earlier_call_does_not_classify_a_later_trap() -> None:
    body = f"""
        (if (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 11))) (i32.const 116))
          (then unreachable))  ;; action "trap"
        {GROW_OR_FAIL.format(pages=200 * MiB // PAGE)}"""
    plugin = wasmdeck.Plugin(grow_module(body))
    with pytest.raises(wasmdeck.PluginReportedError):
        plugin.call("grow")  # refused, handled: code 7
    with pytest.raises(PluginTrap) as caught:
        plugin.call("trap")
    assert not isinstance(caught.value, MemoryLimitExceeded)


def test_out_of_bounds_access_in_the_host_memory_traps_cleanly() -> None:
    """Past the memory's size (inside its reservation and guard) is a trap, not a crash."""
    for address in (2 * PAGE, 3 * MiB, 0xFFFF_FFF0):
        body = f"(drop (i32.load (i32.const {address})))"
        plugin = wasmdeck.Plugin(grow_module(body))
        with pytest.raises(PluginTrap, match="out-of-bounds memory access"):
            plugin.call("load")
        assert plugin.call("ok") == b"ok"


@pytest.mark.parametrize("pages", [2, 80])  # 80 pages (5 MiB): a reservation that is reused
def test_a_fresh_instance_starts_with_fresh_memory(pages: int) -> None:
    address = pages * PAGE - 4
    body = f"""
        (if (i32.eq (i32.load (i32.const {address})) (i32.const 0))
          (then (i32.store (i32.const {address}) (i32.const 1)) (return (i32.const 0))))
        (i32.const 5)"""  # code 5 when the word was already set
    plugin = wasmdeck.Plugin(abi_module(body, memory=f'(memory (export "memory") {pages})'))
    assert plugin.call("mark") == b""
    with pytest.raises(wasmdeck.PluginReportedError):
        plugin.call("mark")
    for _ in range(3):
        plugin.reset()
        assert plugin.call("mark") == b""


def test_initial_memory_over_the_limit_is_the_memory_limit() -> None:
    wasm = abi_module(memory='(memory (export "memory") 80)')
    with pytest.raises(MemoryLimitExceeded, match="initial memory is larger than the 4 MiB"):
        wasmdeck.Plugin(wasm, limits=Limits(max_memory=4 * MiB))


def test_no_memory_is_created_without_a_limit() -> None:
    """A module instantiated on the runtime's engine outside a plugin gets no memory."""
    runtime = Runtime(cache=None)
    try:
        module = wasmtime.Module(runtime.engine, '(module (memory (export "memory") 1))')
        store = wasmtime.Store(runtime.engine)
        with pytest.raises(wasmtime.WasmtimeError, match="no memory limit"):
            wasmtime.Instance(store, module, [])
    finally:
        runtime.close()


# -- tables ------------------------------------------------------------------
#
# Wasmtime's C API has no table creator and its store limiter reports
# nothing, so for tables the size of an exported table is the only evidence
# (runtime/_core.py, _resource_limit_hit).

TABLE = '(table $t (export "table") 1 funcref)'


def test_a_table_grown_to_its_limit_then_a_trap_is_the_table_limit() -> None:
    body = """
        (if (i32.eq (table.grow $t (ref.null func) (i32.const 99)) (i32.const -1))
          (then unreachable))
        (if (i32.eq (table.grow $t (ref.null func) (i32.const 1)) (i32.const -1))
          (then unreachable))"""
    plugin = wasmdeck.Plugin(
        abi_module(body + " (i32.const 0)", extra=TABLE), limits=Limits(max_table_elements=100)
    )
    with pytest.raises(TableLimitExceeded, match="table limit of 100 elements"):
        plugin.call("grow")


def test_a_refused_table_grow_handled_by_the_plugin_is_no_error() -> None:
    body = """
        (if (i32.ne (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1))
          (then unreachable))
        (call $set_output (i32.const 4096) (i32.const 2))
        (i32.const 0)"""
    plugin = wasmdeck.Plugin(abi_module(body, extra=TABLE), limits=Limits(max_table_elements=100))
    assert plugin.call("grow") == b"ok"


# -- real plugins ----------------------------------------------------------------


@pytest.fixture(scope="module")
def allocator_wasm() -> Path:
    return build_c(ROOT / "tests" / "plugins" / "c" / "allocator.c")


def test_c_malloc_of_200_mib_then_abort_is_the_memory_limit(allocator_wasm: Path) -> None:
    plugin = wasmdeck.Plugin(allocator_wasm)
    with pytest.raises(MemoryLimitExceeded, match="128 MiB memory limit"):
        plugin.call("take", {"bytes": 200 * MiB})
    assert plugin.call("take", {"bytes": 50 * MiB}) == str(50 * MiB).encode()


def test_c_malloc_failure_handled_by_the_plugin_is_its_own_error(allocator_wasm: Path) -> None:
    plugin = wasmdeck.Plugin(allocator_wasm)
    with pytest.raises(wasmdeck.PluginReportedError, match="out of memory"):
        plugin.call("try", {"bytes": 200 * MiB})


@pytest.fixture(scope="module")
def hog_component() -> Path:
    return build_python(PLUGINS / "hog")


@pytest.fixture(scope="module")
def component_runtime() -> Runtime:
    from componentgen import COMPILED

    return Runtime(cache=COMPILED)


def test_python_component_huge_bytearray_is_the_memory_limit(
    hog_component: Path, component_runtime: Runtime
) -> None:
    plugin = wasmdeck.Plugin(hog_component, runtime=component_runtime)
    with pytest.raises(MemoryLimitExceeded, match="128 MiB memory limit") as caught:
        plugin.call("take", {"bytes": 200 * MiB})
    assert caught.value.action == "take"
    assert plugin.call("take", {"bytes": 1 * MiB}) == str(MiB).encode()


def test_python_component_handling_memory_error_is_its_own_error(
    hog_component: Path, component_runtime: Runtime
) -> None:
    plugin = wasmdeck.Plugin(hog_component, runtime=component_runtime)
    with pytest.raises(wasmdeck.PluginReportedError, match="out of memory"):
        plugin.call("attempt", {"bytes": 200 * MiB})


def test_get_memory_reads_base_size_and_capacity() -> None:
    """What wasmtime calls at each grow: the machine code on x86-64, else the Python callback."""
    import ctypes
    import platform

    from wasmdeck.runtime import _memory

    address = _memory._native_get_memory()
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert address
    if not address:
        pytest.skip("no machine-code get_memory on this machine (the Python callback is used)")
    get = ctypes.CFUNCTYPE(
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    )(address)
    cell = (ctypes.c_uint64 * 3)(0x7F00_1234_0000, 3 * PAGE, 4 << 30)
    size, capacity = ctypes.c_size_t(), ctypes.c_size_t()
    base = get(ctypes.addressof(cell), ctypes.byref(size), ctypes.byref(capacity))
    assert (base, size.value, capacity.value) == (0x7F00_1234_0000, 3 * PAGE, 4 << 30)
