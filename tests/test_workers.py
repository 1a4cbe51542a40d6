"""The per-plugin workers of ``wasmdeck serve``: calls in order, bounded, on shared threads.

Run with the C test plugin (tests/plugins/c/behaviors.c): ``count`` counts
its calls, ``fail`` fails.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from wasmdeck import Limits, PluginError, TimeLimitExceeded, TriggerContext, WasmdeckError
from wasmdeck.daemon._inbox import Inbox
from wasmdeck.daemon._metrics import Metrics
from wasmdeck.daemon._workers import CallThreads, PluginWorker, QueueFull
from wasmdeck.runtime import Plugin

CONTEXT = TriggerContext(velocity=1)


async def test_calls_run_in_order_and_each_result_reaches_its_caller(
    behaviors_wasm: Path,
) -> None:
    metrics = Metrics()
    worker = PluginWorker("b", Plugin(behaviors_wasm), metrics)
    try:
        actions = ["count", "count", "fail", "count", "count"]
        futures = [worker.submit(a, {}, CONTEXT, "pad") for a in actions]
        assert worker.pending == 5
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 20)
        assert results[:2] == [b"1", b"2"] and results[3:] == [b"3", b"4"]
        assert isinstance(results[2], PluginError)
        assert worker.pending == 0
        summary = metrics.summary()["plugins"]["b"]
        assert summary["calls"] == 5 and summary["errors"] == {type(results[2]).__name__: 1}
    finally:
        await worker.drain()
        worker.close()


async def test_a_full_queue_drops_the_call_and_counts_it(behaviors_wasm: Path) -> None:
    metrics = Metrics()
    worker = PluginWorker("b", Plugin(behaviors_wasm), metrics, size=2)
    try:
        # Two waiting and one running at most; the loop has not let any finish yet.
        futures = [worker.submit("count", {}, CONTEXT, "pad") for _ in range(3)]
        with pytest.raises(QueueFull, match="queue is full"):
            worker.submit("count", {}, CONTEXT, "pad")
        assert metrics.summary()["plugins"]["b"]["drops"] == 1
        assert await asyncio.wait_for(asyncio.gather(*futures), 20) == [b"1", b"2", b"3"]
        assert await worker.submit("count", {}, CONTEXT, "pad") == b"4"  # room again
    finally:
        await worker.drain()
        worker.close()


async def test_drain_finishes_what_is_queued_and_takes_no_more(behaviors_wasm: Path) -> None:
    worker = PluginWorker("b", Plugin(behaviors_wasm), Metrics())
    futures = [worker.submit("count", {}, CONTEXT, "pad") for _ in range(3)]
    await asyncio.wait_for(worker.drain(), 20)
    assert [f.result() for f in futures] == [b"1", b"2", b"3"]
    # A call after the drain is refused at once, never left waiting for a thread that is gone.
    with pytest.raises(WasmdeckError, match="being stopped"):
        await asyncio.wait_for(worker.submit("count", {}, CONTEXT, "pad"), 5)
    worker.close()


async def test_the_inbox_runs_every_callback_from_racing_threads_exactly_once() -> None:
    # Four threads put at once while the loop empties the inbox: an item put
    # between the loop's last look and its clearing of the flag would be stranded.
    loop = asyncio.get_running_loop()
    inbox = Inbox(loop)
    seen: list[tuple[int, int]] = []
    each = 5000
    all_done = asyncio.Event()

    def record(thread: int, n: int) -> None:
        seen.append((thread, n))
        if len(seen) == 4 * each:
            all_done.set()

    def put_all(thread: int) -> None:
        for n in range(each):
            inbox.put(record, thread, n)
            if n % 8 == 7:
                time.sleep(0)  # let the loop run between puts: the race is at its edges

    threads = [threading.Thread(target=put_all, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.wait_for(all_done.wait(), 30)
    for thread in threads:
        thread.join()
    assert sorted(seen) == [(t, n) for t in range(4) for n in range(each)]
    assert [n for t, n in seen if t == 2] == list(range(each))  # in order per thread


async def test_a_failing_inbox_callback_does_not_strand_the_others() -> None:
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
    inbox = Inbox(loop)
    done = asyncio.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    inbox.put(fail)
    inbox.put(done.set)
    await asyncio.wait_for(done.wait(), 5)
    assert [str(e) for e in errors] == ["boom"]


async def test_drops_are_logged_once_a_second_with_the_count_of_the_others(
    behaviors_wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Under overload a log line per dropped call cost more than the call; the
    # count is still exact in the metrics and in the lines (an injected clock).
    now = [100.0]
    metrics = Metrics()
    worker = PluginWorker("b", Plugin(behaviors_wasm), metrics, size=1, clock=lambda: now[0])
    try:
        futures = [worker.submit("count", {}, CONTEXT, "pad") for _ in range(2)]

        def drop() -> None:
            with pytest.raises(QueueFull):
                worker.submit("count", {}, CONTEXT, "pad")

        with caplog.at_level("WARNING", logger="wasmdeck.daemon"):
            for _ in range(5):
                drop()
            now[0] += 0.5
            drop()  # still within the second: counted, not logged
            now[0] += 0.6
            drop()  # past it: logged, with the six before it
            lines = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
            assert lines == [
                "plugin b: queue full (1 calls waiting); dropped count from binding pad",
                "plugin b: queue full (1 calls waiting); dropped count from binding pad"
                " and 5 more since the last report",
            ]
            drop()
            drop()
            assert metrics.summary()["plugins"]["b"]["drops"] == 9
            await asyncio.wait_for(asyncio.gather(*futures), 20)
            await worker.drain()  # what was not reported yet is, at the stop
            assert caplog.records[-1].getMessage() == (
                "plugin b: 2 more calls dropped (queue full) since the last report"
            )
    finally:
        await worker.drain()
        worker.close()


async def test_a_stuck_call_gets_a_spare_thread_so_other_plugins_go_on(
    behaviors_wasm: Path,
) -> None:
    # One shared thread; the spinning plugin holds it until its 3 s timeout.
    # The other plugin's calls must not wait for that: a spare takes them.
    threads = CallThreads(asyncio.get_running_loop(), threads=1, spare_after=0.05)
    spinner = PluginWorker(
        "spin",
        Plugin(behaviors_wasm, limits=Limits(timeout=3, fuel=10**13)),
        Metrics(),
        threads=threads,
    )
    counter = PluginWorker("count", Plugin(behaviors_wasm), Metrics(), threads=threads)
    try:
        spinning = spinner.submit("spin", {}, CONTEXT, "pad")
        counted = [counter.submit("count", {}, CONTEXT, "pad") for _ in range(3)]
        assert await asyncio.wait_for(asyncio.gather(*counted), 20) == [b"1", b"2", b"3"]
        assert not spinning.done()  # the counts ran beside it, not after it
        assert threads.count == 2
        with pytest.raises(TimeLimitExceeded):
            await asyncio.wait_for(spinning, 20)
        async with asyncio.timeout(20):  # the spare ends: it is not needed any more
            while threads.count > 1:
                await asyncio.sleep(0.01)
        assert await counter.submit("count", {}, CONTEXT, "pad") == b"4"
    finally:
        for worker in (spinner, counter):
            await worker.drain()
            worker.close()
        threads.close()


async def test_plugins_sharing_one_thread_keep_each_ones_order(behaviors_wasm: Path) -> None:
    threads = CallThreads(asyncio.get_running_loop(), threads=1)
    workers = [
        PluginWorker(f"b{n}", Plugin(behaviors_wasm), Metrics(), threads=threads) for n in range(3)
    ]
    try:
        futures = [[w.submit("count", {}, CONTEXT, "pad") for _ in range(50)] for w in workers]
        for each in futures:
            results = await asyncio.wait_for(asyncio.gather(*each), 20)
            assert results == [str(n).encode() for n in range(1, 51)]
    finally:
        for worker in workers:
            await worker.drain()
            worker.close()
        threads.close()


async def test_a_pool_runs_as_many_calls_at_once_as_it_has_instances(
    behaviors_wasm: Path,
) -> None:
    # Two slots: two spins run at once (each on an instance of the pool, on
    # two threads), so both end by their timeout at about the same time.
    threads = CallThreads(asyncio.get_running_loop(), threads=2)
    pooled = Plugin(behaviors_wasm, limits=Limits(timeout=1, pool=2, fuel=10**13))
    worker = PluginWorker("pooled", pooled, Metrics(), threads=threads)
    try:
        started = time.monotonic()
        spins = [worker.submit("spin", {}, CONTEXT, "pad") for _ in range(2)]
        results = await asyncio.wait_for(asyncio.gather(*spins, return_exceptions=True), 20)
        assert all(isinstance(r, TimeLimitExceeded) for r in results)
        assert time.monotonic() - started < 1.9  # together, not one after the other
    finally:
        await worker.drain()
        worker.close()
        threads.close()


def test_call_threads_need_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CallThreads(asyncio.new_event_loop(), threads=0)
