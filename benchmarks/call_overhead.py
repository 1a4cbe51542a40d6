"""Call overhead of the trigger -> plugin -> result path, against references.

Run: ``python benchmarks/call_overhead.py`` (needs ``pip install -e '.[test,bench]'``).

In one run, on the same machine, it measures (medians of repeated batches):

- wasmdeck: ``Plugin.call(action, params, context)`` on an echo plugin with a
  ~120-byte request: JSON encoding, the copy into the sandbox, fuel and
  deadline, the call, and the output copied back;
- Extism's Python SDK on an equivalent echo plugin, given the same request
  (``json.dumps`` of the same values, then ``Plugin.call``), and also given
  the already-encoded bytes;
- one raw Wasmtime call of an exported ``add``: through wasmtime-py's
  ``Func.__call__``, and through the C API directly (the floor);
- instantiating a fresh plugin instance (store, WASI, instance, ``init``).

Both echo plugins are compiled from C in ``benchmarks/plugins`` with zig.
The last line is ``ratio_extism_over_wasmdeck=<number>`` (end-to-end, same
Python values in, same bytes out). Ratios, not absolute times, are the result:
machines are noisy.
"""

from __future__ import annotations

import ctypes
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

import wasmdeck
from wasmdeck.runtime import _capi as capi
from wasmdeck.toolchains import compile_c

HERE = Path(__file__).resolve().parent
PARAMS = {"scene": "Live", "transition": "fade"}
CONTEXT = wasmdeck.TriggerContext(velocity=100, mode=2, timestamp=1732500000123)


def median_us(fn: Callable[[], object], *, batch: int, rounds: int = 15) -> float:
    """Median per-call time in µs over ``rounds`` batches of ``batch`` calls."""
    for _ in range(batch // 10 + 1):
        fn()
    gc.disable()
    try:
        times = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(batch):
                fn()
            times.append((time.perf_counter_ns() - start) / batch / 1000)
    finally:
        gc.enable()
    return statistics.median(times)


def build(out: Path) -> tuple[Path, Path]:
    echo = compile_c([HERE / "plugins" / "echo.c"], out / "echo.wasm")
    echo_extism = compile_c([HERE / "plugins" / "echo_extism.c"], out / "echo_extism.wasm")
    return echo, echo_extism


def main() -> int:
    try:
        import extism
    except ImportError:
        print("this benchmark needs Extism's SDK: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        echo_path, extism_path = build(Path(tmp))
        echo_wasm, extism_wasm = echo_path.read_bytes(), extism_path.read_bytes()

    plugin = wasmdeck.Plugin(echo_wasm)
    request = plugin._request("echo", PARAMS, CONTEXT)
    request_values = {"action": "echo", "params": PARAMS, "context": CONTEXT.to_dict()}
    assert plugin.call("echo", PARAMS, CONTEXT) == request
    print(f"request: {len(request)} bytes: {request.decode()}")

    ext = extism.Plugin(extism_wasm, wasi=True)
    ext_bytes = json.dumps(request_values, separators=(",", ":")).encode()
    assert ext.call("echo", ext_bytes) == ext_bytes

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

    results = {
        "wasmdeck_call": median_us(lambda: plugin.call("echo", PARAMS, CONTEXT), batch=20_000),
        "extism_call_json": median_us(
            lambda: ext.call("echo", json.dumps(request_values, separators=(",", ":"))), batch=5_000
        ),
        "extism_call_bytes": median_us(lambda: ext.call("echo", ext_bytes), batch=5_000),
        "wasmtime_py_func_call": median_us(lambda: add(store, 2, 3), batch=5_000),
        "wasmtime_capi_call": median_us(raw_call, batch=50_000),
        "wasmdeck_instantiate": median_us(plugin._impl._start, batch=500, rounds=9),
    }

    print()
    print(f"{'measurement':<28}{'median µs':>12}")
    for name, value in results.items():
        print(f"{name:<28}{value:>12.2f}")
    print()
    wd = results["wasmdeck_call"]
    print(f"wasmdeck_call_over_capi_floor={wd / results['wasmtime_capi_call']:.2f}")
    print(f"wasmtime_py_func_call_over_wasmdeck={results['wasmtime_py_func_call'] / wd:.2f}")
    print(f"ratio_extism_bytes_over_wasmdeck={results['extism_call_bytes'] / wd:.2f}")
    print(f"ratio_extism_over_wasmdeck={results['extism_call_json'] / wd:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
