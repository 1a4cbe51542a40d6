"""Call overhead of the trigger -> plugin -> result path, against references.

Run: ``python benchmarks/call_overhead.py [--rounds N]`` (needs
``pip install -e '.[test,bench]'``; about a minute).

In one run, on the same machine, interleaved round by round, it measures
(medians of the rounds' per-call means):

- wasmdeck: ``Plugin.call(action, params, context)`` on an echo plugin, at
  three request sizes: ~100 B, ~10 KB and ~1 MB (a params string of that
  size): JSON encoding, the copy into the sandbox, fuel and deadline, the
  call, and the output copied back; and the same with the params already
  encoded (``bytes``, checked to be a JSON object);
- Extism's Python SDK on an equivalent echo plugin, given the same request
  (``json.dumps`` of the same values, then ``Plugin.call``), and given the
  already-encoded bytes;
- one raw Wasmtime call of an exported ``add``: through wasmtime-py's
  ``Func.__call__``, and through the C API directly (the floor);
- a fresh instance: wasmdeck's (store, WASI, instance, ``_initialize``,
  ``init``) and Extism's (``Plugin`` from a ``CompiledPlugin``), next to
  raw Wasmtime's on the same echo module: wasmtime-py's public API (a
  ``Store`` with a ``WasiConfig``, ``InstancePre.instantiate``, then
  ``_initialize`` and ``init``) and the C API's floor (the same through
  ctypes calls of the C API, nothing else: ``capi_instantiate_floor``).

Both echo plugins are compiled from C in ``benchmarks/plugins`` with zig.
Ratios, not absolute times, are the result: machines are noisy. The last
lines are ``ratio_extism_over_wasmdeck_<size>=<number>`` (end-to-end, same
Python values in, same bytes out).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

import wasmdeck
from wasmdeck.runtime import _capi as capi
from wasmdeck.toolchains import compile_c

HERE = Path(__file__).resolve().parent
PARAMS = {"scene": "Live", "transition": "fade"}
CONTEXT = wasmdeck.TriggerContext(velocity=100, mode=2, timestamp=1732500000123)


def batch_us(fn: Callable[[], object], batch: int) -> float:
    """Mean µs per call over one batch of ``batch`` calls."""
    start = time.perf_counter_ns()
    for _ in range(batch):
        fn()
    return (time.perf_counter_ns() - start) / batch / 1000


def interleaved(
    cases: dict[str, tuple[Callable[[], object], int]], rounds: int
) -> dict[str, float]:
    """Median per-call µs of each case, the cases taking turns in every round."""
    for fn, batch in cases.values():  # warm up
        for _ in range(batch // 10 + 1):
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    gc.disable()
    try:
        for _ in range(rounds):
            for name, (fn, batch) in cases.items():
                times[name].append(batch_us(fn, batch))
    finally:
        gc.enable()
    return {name: statistics.median(values) for name, values in times.items()}


def build(out: Path) -> tuple[Path, Path]:
    echo = compile_c([HERE / "plugins" / "echo.c"], out / "echo.wasm")
    echo_extism = compile_c([HERE / "plugins" / "echo_extism.c"], out / "echo_extism.wasm")
    return echo, echo_extism


SIZES = {"100B": 0, "10KB": 10_000, "1MB": 1_000_000}
BATCH = {"100B": 4000, "10KB": 1000, "1MB": 10}


def capi_instantiate_floor(
    engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> Callable[[], None]:
    """A fresh instance through the C API and nothing else, the floor of wasmdeck's.

    A store, the instance, its ``_initialize`` and ``init``, the store freed:
    the work of wasmdeck's fresh instance on the default engine, with no WASI
    context, limits, fuel, payload helpers or checks.
    """
    void_p = ctypes.c_void_p

    def c_function(name: str, restype: object, *argtypes: object) -> Any:
        # A function object of its own: ffi.dll's are wasmtime-py's, typed by it.
        return ctypes.CFUNCTYPE(restype, *argtypes)((f"wasmtime_{name}", ffi.dll))

    store_new = c_function("store_new", void_p, void_p, void_p, void_p)
    store_context = c_function("store_context", void_p, void_p)
    store_delete = c_function("store_delete", None, void_p)
    pre_instantiate = c_function("instance_pre_instantiate", void_p, *[void_p] * 4)
    export_get = c_function(
        "instance_export_get",
        ctypes.c_bool,
        void_p,
        void_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        void_p,
    )
    func_call = c_function(
        "func_call_unchecked", void_p, void_p, void_p, void_p, ctypes.c_size_t, void_p
    )
    engine_ptr, pre_ptr = capi.pointer_of(engine), capi.pointer_of(pre)
    instance = (ctypes.c_ubyte * capi.INSTANCE_SIZE)()
    externs = (ctypes.c_ubyte * (2 * capi.EXTERN_SIZE))()
    args = (ctypes.c_ubyte * capi.ARGS_BYTES)()
    trap = ctypes.c_void_p()
    instance_at, args_at, trap_at = (ctypes.addressof(x) for x in (instance, args, trap))
    initialize_at = ctypes.addressof(externs)
    init_at = initialize_at + capi.EXTERN_SIZE

    def fresh_instance(buffers: object = (instance, externs, args)) -> None:  # kept alive
        store = store_new(engine_ptr, None, None)
        ctx = store_context(store)
        error = pre_instantiate(pre_ptr, ctx, instance_at, trap_at)
        assert not error and not trap.value
        if export_get(ctx, instance_at, b"_initialize", 11, initialize_at):
            func_call(ctx, initialize_at + capi.EXTERN_OF, args_at, 1, trap_at)
        assert export_get(ctx, instance_at, b"init", 4, init_at)
        error = func_call(ctx, init_at + capi.EXTERN_OF, args_at, 1, trap_at)
        assert not error and not trap.value
        store_delete(store)

    return fresh_instance


def params_of(size: str) -> dict[str, str]:
    extra = SIZES[size]
    return {**PARAMS, "blob": "x" * extra} if extra else PARAMS


def extism_json(ext: Any, values: Mapping[str, object]) -> object:
    return ext.call("echo", json.dumps(values, separators=(",", ":")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    try:
        import extism  # type: ignore[import-untyped]
    except ImportError:
        print("this benchmark needs Extism's SDK: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        echo_path, extism_path = build(Path(tmp))
        echo_wasm, extism_wasm = echo_path.read_bytes(), extism_path.read_bytes()

    plugin = wasmdeck.Plugin(echo_wasm)
    ext_compiled = extism.extism.CompiledPlugin(extism_wasm, wasi=True)
    ext = extism.Plugin(ext_compiled)
    cases: dict[str, tuple[Callable[[], object], int]] = {}
    for size in SIZES:
        params = params_of(size)
        params_bytes = json.dumps(params, separators=(",", ":")).encode()
        request = plugin._request("echo", params, CONTEXT)
        assert plugin.call("echo", params, CONTEXT) == request
        assert plugin.call("echo", params_bytes, CONTEXT) == request
        values = {"action": "echo", "params": params, "context": CONTEXT.to_dict()}
        ext_bytes = json.dumps(values, separators=(",", ":")).encode()
        assert ext.call("echo", ext_bytes) == ext_bytes
        print(f"request {size}: {len(request):,} bytes")
        batch = BATCH[size]
        call = plugin.call
        cases[f"wasmdeck_call_{size}"] = (functools.partial(call, "echo", params, CONTEXT), batch)
        cases[f"wasmdeck_call_bytes_{size}"] = (
            functools.partial(call, "echo", params_bytes, CONTEXT),
            batch,
        )
        cases[f"extism_call_json_{size}"] = (
            functools.partial(extism_json, ext, values),
            max(1, batch // 4),
        )
        cases[f"extism_call_bytes_{size}"] = (
            functools.partial(ext.call, "echo", ext_bytes),
            max(1, batch // 4),
        )

    # Raw wasmtime: the same echo module's `add`, in a plain store.
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    linker.define_func(
        "wasmdeck",
        "set_output",
        wasmtime.FuncType([wasmtime.ValType.i32()] * 2, []),
        lambda p, n: None,
    )
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    add = linker.instantiate(store, wasmtime.Module(engine, echo_wasm)).exports(store)["add"]
    assert isinstance(add, wasmtime.Func) and add(store, 2, 3) == 5
    raw_args = (ctypes.c_ubyte * capi.ARGS_BYTES)()
    raw_trap = ctypes.c_void_p()
    ctx, func = capi.context_address(store), capi.address_of(add._func)
    args_addr, trap_addr = capi.address_of(raw_args), capi.address_of(raw_trap)

    def raw_call() -> None:
        capi.pack_args(raw_args, 0, 2, 3)
        capi.call_unchecked(ctx, func, args_addr, 2, trap_addr)

    pre = linker.instantiate_pre(wasmtime.Module(engine, echo_wasm))

    def raw_instantiate() -> None:
        fresh = wasmtime.Store(engine)
        fresh.set_wasi(wasmtime.WasiConfig())
        exports = pre.instantiate(fresh).exports(fresh)
        initialize = exports.get("_initialize")
        if initialize is not None:
            initialize(fresh)  # type: ignore[operator]
        exports["init"](fresh)  # type: ignore[operator]

    floor = capi_instantiate_floor(engine, pre)
    cases["wasmtime_py_func_call"] = (lambda: add(store, 2, 3), 2000)
    cases["wasmtime_capi_call"] = (raw_call, 20_000)
    cases["wasmdeck_instantiate"] = (plugin._impl._start, 200)  # type: ignore[attr-defined]
    cases["extism_instantiate"] = (lambda: extism.Plugin(ext_compiled), 50)
    cases["wasmtime_py_instantiate"] = (raw_instantiate, 200)
    cases["wasmtime_capi_instantiate"] = (floor, 200)

    results = interleaved(cases, args.rounds)
    print()
    print(f"{'measurement':<30}{'median µs':>12}")
    for name, value in results.items():
        print(f"{name:<30}{value:>12.2f}")
    print()
    small = results["wasmdeck_call_100B"]
    print(f"wasmdeck_call_100B_over_capi_floor={small / results['wasmtime_capi_call']:.2f}")
    print(f"wasmtime_py_func_call_over_wasmdeck={results['wasmtime_py_func_call'] / small:.2f}")
    print(f"wasmdeck_10KB_over_100B={results['wasmdeck_call_10KB'] / small:.2f}")
    print(f"wasmdeck_bytes_10KB_over_100B={results['wasmdeck_call_bytes_10KB'] / small:.2f}")
    print(
        "ratio_extism_over_wasmdeck_instantiate="
        f"{results['extism_instantiate'] / results['wasmdeck_instantiate']:.2f}"
    )
    instantiate = results["wasmdeck_instantiate"]
    print(
        "wasmdeck_instantiate_over_wasmtime_py="
        f"{instantiate / results['wasmtime_py_instantiate']:.2f}"
    )
    print(
        "wasmdeck_instantiate_over_capi_floor="
        f"{instantiate / results['wasmtime_capi_instantiate']:.2f}"
    )
    for size in SIZES:
        ours = results[f"wasmdeck_call_{size}"]
        print(
            f"ratio_extism_bytes_over_wasmdeck_{size}="
            f"{results[f'extism_call_bytes_{size}'] / results[f'wasmdeck_call_bytes_{size}']:.2f}"
        )
        print(f"ratio_extism_over_wasmdeck_{size}={results[f'extism_call_json_{size}'] / ours:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
