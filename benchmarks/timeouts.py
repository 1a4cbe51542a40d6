"""How far past its deadline a call that runs out of time ends (the timeout overshoot).

Run: ``python benchmarks/timeouts.py [--runs N] [--timeout SECONDS]`` (after
``pip install -e '.[test]'``; builds the test plugins with zig and
componentize-py on first use, into ``.cache/bench-builds``).

Every scenario calls a plugin with ``Limits(timeout=T)`` that would run far
longer, and records ``elapsed - T`` for each call that ended with
``TimeLimitExceeded``:

- ``wasm loop``: a C plugin spinning (epoch interruption);
- ``WASI sleep (core)``: a C plugin in ``nanosleep(10 s)`` (poll_oneoff);
- ``WASI sleep (component)``: a Python component in ``time.sleep(10)``;
- ``dripping HTTP``: an HTTP server sending its answer a byte every 50 ms;
- ``WebSocket close``: a peer that never answers the close;
- ``... x2 threads``: the wasm loop and the WASI sleep, two plugins timing
  out at once on two threads (each call's own overshoot is recorded);
- reference, same run: ``raw wasmtime loop``, a wasmtime-py store with the
  same engine settings (fuel + epochs, a 5 ms epoch thread) interrupted by
  its epoch deadline, the floor any wasmtime host has (alone and two at once).

Prints median and max overshoot in milliseconds per scenario.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the hostile peers live with the tests

from hostcall import calls_module  # noqa: E402  (the WAT host-call plugin of the tests)
from servers.hostile import DripHTTPServer, SilentWebSocketServer  # noqa: E402

import wasmdeck  # noqa: E402
from wasmdeck import Limits, TimeLimitExceeded  # noqa: E402
from wasmdeck.toolchains import compile_c, sdk_dir  # noqa: E402
from wasmdeck.toolchains._python import componentize_python  # noqa: E402

BUILDS = ROOT / ".cache" / "bench-builds"


def _built(source: Path, build: Callable[[Path], None]) -> Path:
    digest = hashlib.sha256()
    for path in sorted([source, *sdk_dir("c").glob("*.h")]) if source.is_file() else []:
        digest.update(path.read_bytes())
    if source.is_dir():
        for path in sorted(source.rglob("*.py")):
            digest.update(path.read_bytes())
    output = BUILDS / f"{source.stem}-{digest.hexdigest()[:16]}.wasm"
    if not output.exists():
        BUILDS.mkdir(parents=True, exist_ok=True)
        build(output)
    return output


def c_plugin(name: str) -> Path:
    source = ROOT / "tests" / "plugins" / "c" / f"{name}.c"
    return _built(source, lambda out: compile_c([source], out, include_dirs=[sdk_dir("c")]))


def python_component(name: str) -> Path:
    source = ROOT / "tests" / "plugins" / "python" / name
    return _built(source, lambda out: componentize_python(source, out))


def overshoot_ms(call: Callable[[], object], timeout: float) -> float:
    started = time.monotonic()
    try:
        call()
    except TimeLimitExceeded:
        return (time.monotonic() - started - timeout) * 1000
    raise AssertionError("the call did not time out")


def raw_wasmtime_loop(timeout: float) -> Callable[[], float]:
    """A raw wasmtime-py store with the runtime's engine settings, stopped by its epoch."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module(engine, '(module (func (export "spin") (loop (br 0))))')
    tick = 0.005
    stop = threading.Event()

    def ticker() -> None:
        while not stop.wait(tick):
            engine.increment_epoch()

    threading.Thread(target=ticker, daemon=True).start()

    def run() -> float:
        store = wasmtime.Store(engine)
        store.set_fuel(10**15)
        instance = wasmtime.Instance(store, module, [])
        spin = instance.exports(store)["spin"]
        store.set_epoch_deadline(int(timeout / tick) + 1)
        started = time.monotonic()
        try:
            spin(store)  # type: ignore[operator]
        except wasmtime.Trap:
            return (time.monotonic() - started - timeout) * 1000
        raise AssertionError("did not trap")

    return run


def in_parallel(make: Callable[[], Callable[[], float]]) -> Callable[[], list[float]]:
    """Two plugins (one per thread) timing out at the same moment."""
    first, second = make(), make()

    def run() -> list[float]:
        results: list[float] = []
        barrier = threading.Barrier(2)

        def one(call: Callable[[], float]) -> None:
            barrier.wait()
            results.append(call())

        threads = [threading.Thread(target=one, args=(c,)) for c in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=0.2)
    args = parser.parse_args()
    timeout, runs = args.timeout, args.runs
    limits = Limits(timeout=timeout, fuel=10**15)

    behaviors, sleeper = c_plugin("behaviors"), c_plugin("sleeper")
    component = python_component("sleeper")
    drip = DripHTTPServer(phase="body", interval=0.05, body=b"x" * 10_000).start()
    silent = SilentWebSocketServer().start()

    def spin() -> Callable[[], float]:
        plugin = wasmdeck.Plugin(behaviors, limits=limits)
        return lambda: overshoot_ms(lambda: plugin.call("spin"), timeout)

    def sleep() -> Callable[[], float]:
        plugin = wasmdeck.Plugin(sleeper, limits=limits)
        return lambda: overshoot_ms(lambda: plugin.call("nanosleep", {"ms": 10_000}), timeout)

    py = wasmdeck.Plugin(component, limits=limits)
    http = wasmdeck.Plugin(
        calls_module([("http_request", {"url": drip.url()})]),
        grants=[f"network:127.0.0.1:{drip.port}"],
        limits=limits,
    )
    ws = wasmdeck.Plugin(
        calls_module([("ws_connect", {"url": silent.url()}), ("ws_close", {"id": 1})]),
        grants=[f"network:127.0.0.1:{silent.port}"],
        limits=limits,
    )
    raw = raw_wasmtime_loop(timeout)
    scenarios: dict[str, Callable[[], float | list[float]]] = {
        "raw wasmtime loop (reference)": raw,
        "raw wasmtime loop x2 threads (ref.)": in_parallel(lambda: raw),
        "wasm loop": spin(),
        "WASI sleep (core)": sleep(),
        "WASI sleep (component)": lambda: overshoot_ms(
            lambda: py.call("sleep", {"seconds": 10}), timeout
        ),
        "dripping HTTP": lambda: overshoot_ms(lambda: http.call("go"), timeout),
        "WebSocket close": lambda: overshoot_ms(lambda: ws.call("go"), timeout),
        "wasm loop x2 threads": in_parallel(spin),
        "WASI sleep (core) x2 threads": in_parallel(sleep),
    }
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    try:
        for _ in range(runs):  # rounds interleaved, so noise falls on all alike
            for name, scenario in scenarios.items():
                result = scenario()
                samples[name].extend(result if isinstance(result, list) else [result])
    finally:
        drip.stop()
        silent.stop()
    print(f"timeout overshoot, {runs} rounds, timeout {timeout:g} s (ms past the deadline)")
    print(f"{'scenario':36} {'median':>8} {'max':>8} {'calls':>6}")
    for name, values in samples.items():
        print(f"{name:34} {statistics.median(values):8.1f} {max(values):8.1f} {len(values):6d}")
    print(
        json.dumps(
            {n: [round(statistics.median(v), 2), round(max(v), 2)] for n, v in samples.items()}
        )
    )


if __name__ == "__main__":
    main()
