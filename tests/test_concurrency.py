"""Async calls and real parallelism.

Parallelism is shown without timing thresholds: two plugins, each on its own
thread, log a tick between slices of busy work. If wasm held the GIL, one
plugin's ticks would all come before the other's; interleaved ticks prove
both ran at once. The first tick of each plugin waits (up to 20 s) for the
other plugin's first tick, so a loaded machine that starts one thread late
cannot let the first plugin finish alone; calls that could not run at the
same time would still end with one plugin's ticks all first.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from watgen import abi_module

import wasmdeck
from wasmdeck import Limits

TICKS = 40


def ticker(name: str, work: int = 200_000) -> wasmdeck.Plugin:
    imports = (
        '(import "wasmdeck" "set_output" (func $set_output (param i32 i32)))'
        '(import "wasmdeck" "log" (func $log (param i32 i32 i32)))'
    )
    body = f"""
        (local.set $len (i32.const {TICKS}))
        (loop $tick
          (local.set $ptr (i32.const {work}))
          (loop $busy
            (local.set $ptr (i32.sub (local.get $ptr) (i32.const 1)))
            (br_if $busy (i32.gt_s (local.get $ptr) (i32.const 0))))
          (call $log (i32.const 1) (i32.const 7000) (i32.const {len(name)}))
          (local.set $len (i32.sub (local.get $len) (i32.const 1)))
          (br_if $tick (i32.gt_s (local.get $len) (i32.const 0))))
        (i32.const 0)"""
    wasm = abi_module(
        body,
        imports=imports,
        metadata={"name": name, "version": "1", "description": "ticks"},
        extra=f'(data (i32.const 7000) "{name}")',
    )
    return wasmdeck.Plugin(wasm, limits=Limits(fuel=10**12, timeout=60))


@pytest.fixture
def ticks(caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.set_level(logging.INFO, logger="wasmdeck.plugin")
    order: list[str] = []
    started = {"alpha": threading.Event(), "beta": threading.Event()}

    class Collect(logging.Handler):
        def handle(self, record: logging.LogRecord) -> bool:  # (no handler lock: it waits)
            name = record.getMessage()
            order.append(name)
            if name in started and not started[name].is_set():
                started[name].set()
                started["beta" if name == "alpha" else "alpha"].wait(timeout=20)
            return True

    handler = Collect()
    logger = logging.getLogger("wasmdeck.plugin")
    logger.addHandler(handler)
    yield order
    logger.removeHandler(handler)


def interleaved(order: list[str]) -> bool:
    """True when neither plugin's ticks all come before the other's."""
    a = [i for i, name in enumerate(order) if name == "alpha"]
    b = [i for i, name in enumerate(order) if name == "beta"]
    return a[0] < b[-1] and b[0] < a[-1]


def test_two_plugins_run_in_parallel_threads(ticks: list[str]) -> None:
    alpha, beta = ticker("alpha"), ticker("beta")
    start = threading.Barrier(2)

    def run(plugin: wasmdeck.Plugin) -> None:
        start.wait()
        plugin.call("go")

    threads = [threading.Thread(target=run, args=(p,)) for p in (alpha, beta)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert ticks.count("alpha") == TICKS and ticks.count("beta") == TICKS
    assert interleaved(ticks), "the plugins did not run at the same time"


async def test_async_calls_run_in_parallel(ticks: list[str]) -> None:
    alpha, beta = ticker("alpha"), ticker("beta")
    results = await asyncio.gather(alpha.call_async("go"), beta.call_async("go"))
    assert results == [b"", b""]
    assert interleaved(ticks)


async def test_event_loop_keeps_running_during_a_call() -> None:
    slow = ticker("slow", work=2_000_000)
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(heartbeat())
    await slow.call_async("go")
    task.cancel()
    assert beats > 10  # the loop was not blocked while the plugin ran


def test_calls_on_one_plugin_are_serialized() -> None:
    counter = wasmdeck.Plugin(abi_module())  # each call writes/reads the same buffer
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(500):
                assert counter.call("ok") == b"ok"
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


async def test_async_errors_are_the_same_typed_errors() -> None:
    spin = wasmdeck.Plugin(
        abi_module("(loop $l (br $l)) (i32.const 0)"), limits=Limits(fuel=10_000)
    )
    with pytest.raises(wasmdeck.FuelLimitExceeded):
        await spin.call_async("spin")
    assert await spin.call_async("ok") == b"ok"
