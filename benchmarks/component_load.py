"""Ready-to-call time of a plugin: cold compile vs the compile cache, and call cost.

Run: ``python benchmarks/component_load.py`` (after ``pip install -e '.[test]'``).

For the Python ``json`` template built as a component (componentize-py,
~18 MB with CPython inside) and the same template in C as a core module
(zig), in one run:

- ``cold_compile``: wasmtime compiling the binary, no cache;
- ``cached_load``: ``Runtime.load`` from a warm compile cache (deserialize);
- ``cached_ready``: ``wasmdeck.Plugin(path)`` from a warm cache: load,
  instantiate, run ``init``/``metadata`` — ready for its first call;
- ``instantiate``: a fresh store and instance of an already-loaded plugin
  (and ``load_plus_instantiate``, the two added: the issue's "ready" goal);
- ``instantiate_and_call``: a fresh instance and its first call;
- ``call``: one ``scale`` call round trip (params, context, output).

The last lines give the ratios: cold compile over cached ready, and a
component call over a core-module call.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmdeck
from wasmdeck.runtime import Runtime
from wasmdeck.runtime._cache import CompileCache
from wasmdeck.toolchains import build_project, new_project

CONTEXT = wasmdeck.TriggerContext(velocity=100)


def median_ms(
    fn: Callable[[], object],
    rounds: int,
    *,
    warm_up: bool = True,
    cleanup: Callable[[object], object] = lambda _: None,
) -> float:
    """Median time of ``fn()`` in ms; ``cleanup(result)`` runs after, untimed."""
    if warm_up:
        cleanup(fn())  # and it fills the cache entry, where there is one
    gc.disable()
    try:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            result = fn()
            times.append((time.perf_counter() - started) * 1000)
            cleanup(result)
    finally:
        gc.enable()
    return statistics.median(times)


def build(lang: str, workdir: Path) -> Path:
    project = workdir / lang
    new_project(project, f"bench-{lang}", lang, "json")
    return build_project(project)


def measure(label: str, wasm: Path, cache_dir: Path, *, cold_rounds: int) -> dict[str, float]:
    data = wasm.read_bytes()
    uncached = Runtime(cache=None)
    cold = median_ms(lambda: uncached.compile(data, name=wasm.name), cold_rounds, warm_up=False)
    cached = Runtime(cache=CompileCache(cache_dir))
    load = median_ms(lambda: cached.load(wasm, name=wasm.name), 20)

    # Ready: from the file to a plugin that can take its first call (closing
    # it afterwards is not part of that).
    ready_ms = median_ms(
        lambda: wasmdeck.Plugin(wasm, runtime=cached), 20, cleanup=lambda p: p.close()
    )
    plugin = wasmdeck.Plugin(wasm, runtime=cached)
    impl = plugin._impl  # the ABI adapter: a store and instance, nothing run in it
    instantiate = median_ms(impl._instantiate, 20, cleanup=lambda _: impl.reset())

    def fresh_instance() -> None:
        plugin.reset()  # the next call starts a new instance
        plugin.call("scale")

    instantiate_and_call = median_ms(fresh_instance, 20)
    call_us = median_ms(lambda: plugin.call("scale", {"max": 254}, CONTEXT), 2000) * 1000
    results = {
        "cold_compile_ms": cold,
        "cached_load_ms": load,
        "cached_ready_ms": ready_ms,
        "instantiate_ms": instantiate,
        "load_plus_instantiate_ms": load + instantiate,
        "instantiate_and_call_ms": instantiate_and_call,
        "call_us": call_us,
    }
    print(f"\n{label}: {wasm.stat().st_size / 1e6:.2f} MB")
    for name, value in results.items():
        print(f"  {name:<26}{value:>12.3f}")
    return results


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wasmdeck-bench-") as scratch:
        workdir = Path(scratch)
        print("building the json template in Python (componentize-py) and C (zig)...")
        python_wasm = build("python", workdir)
        c_wasm = build("c", workdir)
        python = measure("python component", python_wasm, workdir / "cache", cold_rounds=1)
        core = measure("c core module", c_wasm, workdir / "cache", cold_rounds=20)
    print()
    print(
        f"python_cold_over_cached_ready={python['cold_compile_ms'] / python['cached_ready_ms']:.0f}"
    )
    print(f"c_cold_over_cached_ready={core['cold_compile_ms'] / core['cached_ready_ms']:.0f}")
    print(f"python_cached_ready_ms={python['cached_ready_ms']:.2f}")
    print(f"python_load_plus_instantiate_ms={python['load_plus_instantiate_ms']:.2f}")
    print(f"component_call_over_core_call={python['call_us'] / core['call_us']:.1f}")


if __name__ == "__main__":
    main()
