"""What ``runtime/_capi.py`` relies on in wasmtime-py and CPython, checked against the pin.

The runtime calls wasmtime's C API through the bindings wasmtime-py ships
and reaches a few of its private attributes; all of that lives in
``runtime/_capi.py`` (the last test keeps it there). A wasmtime upgrade that
moves any of it fails here, by name, rather than somewhere in a call.
"""

from __future__ import annotations

import ctypes
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component
from watgen import abi_module

import wasmdeck
from wasmdeck.runtime import _capi as capi

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "wasmdeck"


def test_the_installed_wasmtime_is_the_pinned_one() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("wasmtime")]
    assert pins == [f"wasmtime=={metadata.version('wasmtime')}"]


@pytest.mark.parametrize(
    "name",
    [
        *capi.C_FUNCTIONS,
        "wasmtime_linker_define_func_unchecked",
        "wasmtime_config_host_memory_creator_set",
    ],
)
def test_each_c_function_exists(name: str) -> None:
    assert hasattr(ffi.dll, name)
    if name in ("wasmtime_linker_define_func_unchecked", "wasmtime_config_host_memory_creator_set"):
        assert callable(getattr(ffi, name))  # called through wasmtime-py's own prototype


def _fields(structure: type[ctypes.Structure]) -> list[tuple[str, int]]:
    return [(name, getattr(structure, name).offset) for name, *_ in structure._fields_]


def test_host_memory_structures_match_the_bindings() -> None:
    assert _fields(capi._LinearMemory) == _fields(ffi.wasmtime_linear_memory_t)
    assert ctypes.sizeof(capi._LinearMemory) == ctypes.sizeof(ffi.wasmtime_linear_memory_t)
    assert _fields(capi._MemoryCreator) == _fields(ffi.wasmtime_memory_creator_t)
    assert ctypes.sizeof(capi._MemoryCreator) == ctypes.sizeof(ffi.wasmtime_memory_creator_t)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (capi.MEMORY_GET, ffi.wasmtime_memory_get_callback_t),
        (capi.MEMORY_GROW, ffi.wasmtime_memory_grow_callback_t),
        (capi.MEMORY_NEW, ffi.wasmtime_new_memory_callback_t),
        (capi.HOST_CALLBACK, ffi.wasmtime_func_unchecked_callback_t),
    ],
)
def test_callback_prototypes_match_the_bindings(ours: type, theirs: type) -> None:
    """Same number of arguments, each (and the result) of the same size."""

    def sizes(proto: type) -> list[int]:
        types = [proto._restype_, *proto._argtypes_]  # type: ignore[attr-defined]
        return [0 if t is None else ctypes.sizeof(t) for t in types]

    assert sizes(ours) == sizes(theirs)


def test_raw_values_and_component_values_have_the_expected_layout() -> None:
    assert ctypes.sizeof(ffi.wasmtime_val_raw_t) == 16
    assert capi.ARGS_BYTES == 32
    for name in ("BOOL", "U8", "S64", "U64", "STRING", "LIST", "RECORD", "OPTION", "RESULT"):
        assert isinstance(getattr(ffi, f"WASMTIME_COMPONENT_{name}").value, int)


def test_private_attributes_of_wasmtime_objects() -> None:
    """``Store._context``, ``Memory._memory``, ``Func._func``, ``*._from_ptr``, ``ptr()``."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module(
        engine,
        """(module (memory (export "memory") 1)
           (func (export "add") (param i32 i32) (result i32)
             (i32.add (local.get 0) (local.get 1))))""",
    )
    exports = wasmtime.Instance(store, module, []).exports(store)
    memory, add = exports["memory"], exports["add"]
    assert isinstance(memory, wasmtime.Memory) and isinstance(add, wasmtime.Func)
    assert isinstance(memory._memory, ffi.wasmtime_memory_t)
    assert isinstance(add._func, ffi.wasmtime_func_t)
    assert isinstance(store._context(), ctypes.POINTER(ffi.wasmtime_context_t))
    assert isinstance(wasmtime.Config().ptr(), ctypes.POINTER(ffi.wasm_config_t))
    assert isinstance(wasmtime.Linker(engine).ptr(), ctypes.POINTER(ffi.wasmtime_linker_t))
    assert callable(wasmtime.Trap._from_ptr) and callable(wasmtime.WasmtimeError._from_ptr)

    # And the helpers built on them do what the hot path needs.
    ctx = capi.context_address(store)
    args, args_addr = capi.args_buffer()
    trap, trap_addr = capi.pointer_slot()
    capi.pack_args(args, 0, 40, 2)
    error = capi.call_unchecked(ctx, capi.func_address(add), args_addr, 2, trap_addr)
    assert (error, trap.value) == (None, None)
    assert capi.unpack_i32(args)[0] == 42
    mem = capi.memory_address(memory)
    assert capi.memory_data_size(ctx, mem) == 65536
    assert capi.memory_data(ctx, mem) == ctypes.addressof(
        ctypes.c_ubyte.from_address(ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value)
    )


def test_private_attribute_of_component_functions() -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    compiled = component.Component(
        engine,
        """(component
             (core module $m (func (export "f") (result i32) (i32.const 7)))
             (core instance $i (instantiate $m))
             (func (export "f") (result u32) (canon lift (core func $i "f"))))""",
    )
    instance = component.Linker(engine).instantiate(store, compiled)
    func = instance.get_func(store, "f")
    assert func is not None and func(store) == 7
    assert isinstance(func._func, ffi.wasmtime_component_func_t)
    assert capi.func_address(func) == ctypes.addressof(func._func)


def test_errors_and_traps_are_taken_over() -> None:
    error = capi.error_new("made by the test")
    taken = capi.take_error(error)
    assert isinstance(taken, wasmtime.WasmtimeError) and "made by the test" in str(taken)
    trap = capi.take_trap(capi.trap_new(b"a trap", 6))
    assert isinstance(trap, wasmtime.Trap) and "a trap" in str(trap)
    capi.raise_pending_host_exception()  # nothing pending: no error


def test_the_fuel_counter_is_found_and_writing_it_is_set_fuel() -> None:
    # The call path refills fuel by writing the store's counter (capi.fuel_counter);
    # on the pinned wasmtime it must be found, or every call pays the C call again.
    runtime = wasmdeck.Runtime()
    for _ in range(3):  # the offset is searched for once, then checked per store
        store = wasmtime.Store(runtime.engine)
        ctx = capi.context_address(store)
        assert not capi.set_fuel(ctx, 12_345)
        counter = capi.fuel_counter(ctx, 12_345)
        assert counter is not None and counter[0] == -12_345
        counter[0] = -987_654
        assert store.get_fuel() == 987_654
        assert not capi.set_fuel(ctx, 55)
        assert counter[0] == -55
        del counter
    # Given a figure the store does not hold, it is not handed out.
    assert capi.fuel_counter(ctx, 56) is None
    assert capi.fuel_counter(ctx, 0) is None and capi.fuel_counter(ctx, 2**63) is None


def test_a_core_plugin_refills_its_fuel_through_the_counter() -> None:
    plugin = wasmdeck.Plugin(abi_module(), limits=wasmdeck.Limits(fuel=10_000))
    assert plugin.call("ok") == b"ok"
    live = plugin._impl._live  # type: ignore[attr-defined]
    assert live.fuel is not None
    for _ in range(200):  # each call gets the whole 10,000 again
        assert plugin.call("ok") == b"ok"
    assert live.fuel[0] > -10_000 and plugin._impl._live is live  # type: ignore[attr-defined]


# Names that reach into wasmtime-py's or CPython's internals.
_PRIVATE = re.compile(
    r"wasmtime\._|from wasmtime[\w.]* import _|\w\._(?:func|memory|ptr|from_ptr|consume)\b"
    r"|\w\._context\("
    r"|\bimport ctypes\b|\bfrom ctypes\b|pythonapi"
)
# _capi is where they live; _memory maps memory with libc through ctypes (mmap,
# mprotect), which is the operating system's API, not wasmtime's or CPython's.
_ALLOWED = {"runtime/_capi.py", "runtime/_memory.py"}


def test_wasmtime_and_cpython_internals_stay_in_capi() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        where = str(path.relative_to(SRC))
        if where in _ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _PRIVATE.search(line.split("#")[0]):
                found.append(f"{where}:{number}: {line.strip()}")
    assert found == []


def test_memory_module_uses_no_wasmtime_internals() -> None:
    text = (SRC / "runtime" / "_memory.py").read_text()
    assert "wasmtime" not in re.sub(r"(?s)\"\"\".*?\"\"\"|#.*", "", text)
