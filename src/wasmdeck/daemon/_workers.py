"""Plugin calls on a few shared threads: each plugin's in order, a stuck one never blocking the rest.

Every plugin has a queue of its own (at most ``size`` waiting calls) and
runs at most ``pool`` of them at once (one, unless the deck gives it an
instance pool), started in the order submitted. The calls of all plugins
run on one set of threads (``CallThreads``): few, because each thread that
wakes for a call fights the loop for the GIL. At 5,000 MIDI events/s into
20 plugins for 10 minutes, a thread per plugin cost the host 196 µs of CPU
per event, one shared thread 154 (benchmarks/sustained_load.py). So that a slow or
stuck plugin still never delays another for long, a call that has run
longer than ``spare_after`` (20 ms) while others wait gets a spare thread
started in its place; spares end when they are no longer needed.

A call that finds its plugin's queue full is dropped: counted, logged, and
its binding's later actions skipped — never silently lost. Drops are logged
once a second at most per plugin (the first at once, then how many more
since): under overload a log line per drop cost more than the call would
have, and made the overload worse.

The loop hands a call over with a lock and a ``SimpleQueue.put`` and gets
its result back through an ``Inbox``: no task, executor or future chain per
call, and one wake-up of the loop for a burst of results rather than one
each.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._context import TriggerContext
from .._errors import LimitExceeded, WasmdeckError
from ..host import CURRENT, BusEvent
from ..runtime import Plugin
from ._inbox import Inbox
from ._metrics import Metrics

__all__ = ["CallThreads", "PluginWorker", "QueueFull"]

log = logging.getLogger("wasmdeck.daemon")


class QueueFull(WasmdeckError):
    """A plugin's queue was full: the call was dropped."""


DROP_LOG_INTERVAL = 1.0  # seconds between two "queue full" log lines of one plugin
# Seconds a call may run while others wait before a spare thread starts.
# At 5 ms, calls slowed only by waiting for the GIL under load started a
# spare about once every 2 s, and each extra thread made the waits worse; at
# 20 ms, 5 in 10 minutes (benchmarks/sustained_load.py).
SPARE_AFTER = 0.02
SPARE_IDLE = 0.5  # seconds between an idle spare thread's looks at whether it is still needed


class _Thread:
    """One of ``CallThreads``' threads and when its current call started (0: idle)."""

    __slots__ = ("busy_since", "spare")

    def __init__(self, spare: bool) -> None:
        self.busy_since = 0.0
        self.spare = spare


class CallThreads:
    """The threads that run plugin calls: ``threads`` shared by all plugins, spares while calls are stuck.

    A plugin's worker puts itself in the run queue once per call it may
    start; a thread takes it, runs the worker's next call, and comes back.
    The loop looks every ``spare_after`` seconds while any thread is busy:
    when work waits and fewer than ``threads`` threads are in calls younger
    than that, it starts spares. A spare ends after a call when enough
    threads are free of stuck calls again, or when it finds that so while it
    has nothing to do (looking every ``SPARE_IDLE`` seconds).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        threads: int = 1,
        spare_after: float = SPARE_AFTER,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self._loop = loop
        self._core = threads
        self._spare_after = spare_after
        self._clock = clock
        self._runnable: queue.SimpleQueue[PluginWorker | None] = queue.SimpleQueue()
        self._threads: list[_Thread] = []
        self._lock = threading.Lock()  # _threads: the loop starts threads, threads end themselves
        self._looking = False  # a look is scheduled on the loop
        self._closed = False
        for _ in range(threads):
            self._start(spare=False)

    def runnable(self, worker: PluginWorker) -> None:
        """Let a thread run one call of ``worker`` (from any thread)."""
        self._runnable.put(worker)

    def watch(self) -> None:
        """Look for stuck calls soon (on the loop; after work was handed over)."""
        if not self._looking and not self._closed:
            self._looking = True
            self._loop.call_later(self._spare_after, self._look)

    @property
    def count(self) -> int:
        """Threads running now, spares included."""
        return len(self._threads)

    def _look(self) -> None:
        self._looking = False
        if self._closed:
            return
        free, busy = self._free()
        if not busy:
            return  # all idle: the next hand-over looks again
        waiting = self._runnable.qsize()
        for _ in range(min(waiting, self._core - free)):
            self._start(spare=True)
        self.watch()

    def _free(self) -> tuple[int, bool]:
        """Threads not in a stuck call (one older than ``spare_after``), and whether any is busy."""
        old = self._clock() - self._spare_after
        with self._lock:
            since = [t.busy_since for t in self._threads]
        stuck = sum(1 for s in since if s and s <= old)
        return len(since) - stuck, any(since)

    def _start(self, *, spare: bool) -> None:
        me = _Thread(spare)
        with self._lock:
            self._threads.append(me)
        name = "wasmdeck spare call thread" if spare else "wasmdeck call thread"
        threading.Thread(target=self._serve, args=(me,), name=name, daemon=True).start()

    def _serve(self, me: _Thread) -> None:
        runnable, clock = self._runnable, self._clock
        try:
            while True:
                try:
                    worker = runnable.get(timeout=SPARE_IDLE) if me.spare else runnable.get()
                except queue.Empty:
                    if self._needed():
                        continue
                    return  # a spare with nothing to do, and the stuck calls over
                if worker is None:
                    return  # close()
                me.busy_since = clock() or 1e-9  # (0 means idle)
                try:
                    worker._run_next()
                finally:
                    me.busy_since = 0.0
                if me.spare and not self._needed():
                    return
        finally:
            with self._lock:
                self._threads.remove(me)

    def _needed(self) -> bool:
        # Needed (by the spare asking, itself free) while without it fewer
        # than the core count would be free of stuck calls.
        return self._free()[0] - 1 < self._core

    def close(self) -> None:
        """End the threads once the calls handed over before are done (those stuck: when they end)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            count = len(self._threads)
        for _ in range(count):
            self._runnable.put(None)


@dataclass(slots=True)
class _Call:
    action: str
    params: Mapping[str, Any]
    context: TriggerContext
    binding: str
    done: asyncio.Future[bytes]
    event: BusEvent | None  # the bus event behind the call: its publishes are a hop further


class PluginWorker:
    """One plugin's calls: queued in order, run on ``threads`` (its own single thread if not given)."""

    def __init__(
        self,
        name: str,
        plugin: Plugin,
        metrics: Metrics,
        *,
        size: int = 256,
        clock: Callable[[], float] = time.perf_counter,
        inbox: Inbox | None = None,
        threads: CallThreads | None = None,
    ) -> None:
        self.name = name
        self.plugin = plugin
        plugin.measure_fuel = True  # for the metrics: fuel used per plugin and binding
        self._metrics = metrics
        self._clock = clock
        self._size = size
        self._loop = asyncio.get_running_loop()
        self._inbox = inbox or Inbox(self._loop)
        self._own_threads = threads is None
        self._threads = threads or CallThreads(self._loop, threads=plugin.limits.pool)
        self._slots = plugin.limits.pool  # calls that may run at once
        # Shared with the threads, under _lock: the waiting calls, how many
        # run or are about to (at most _slots), and of those how many are
        # still in the run queue (never more than the waiting calls).
        self._lock = threading.Lock()
        self._queue: deque[_Call] = deque()
        self._active = 0
        self._queued = 0
        self._pending = 0  # submitted and not finished (the loop's count)
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self._closing = False  # drain() or close() was called: no more calls
        self._drops_unlogged = 0  # dropped since the last "queue full" line
        self._drop_log_after = -float("inf")  # the clock's time for the next line

    def submit(
        self, action: str, params: Mapping[str, Any], context: TriggerContext, binding: str
    ) -> asyncio.Future[bytes]:
        """Queue one call; its future has the output. Raises ``QueueFull`` when full."""
        if self._closing:
            raise WasmdeckError("the plugin is being stopped", plugin=self.name, action=action)
        if self._pending >= self._size + self._slots:  # ``size`` waiting, the rest running
            self._metrics.dropped(self.name, binding)
            self._log_drop(action, binding)
            raise QueueFull(
                f"its queue is full ({self._size} calls waiting); the call was dropped",
                plugin=self.name,
                action=action,
            )
        done: asyncio.Future[bytes] = self._loop.create_future()
        self._pending += 1
        call = _Call(action, params, context, binding, done, CURRENT.get())
        with self._lock:
            self._queue.append(call)
            start = self._active < self._slots
            if start:
                self._active += 1
                self._queued += 1
        if start:
            self._threads.runnable(self)
        self._threads.watch()
        return done

    def _log_drop(self, action: str, binding: str) -> None:
        now = self._clock()
        if now < self._drop_log_after:
            self._drops_unlogged += 1
            return
        self._drop_log_after = now + DROP_LOG_INTERVAL
        more, self._drops_unlogged = self._drops_unlogged, 0
        log.warning(
            "plugin %s: queue full (%d calls waiting); dropped %s from binding %s%s",
            self.name,
            self._size,
            action,
            binding,
            f" and {more} more since the last report" if more else "",
        )

    def _log_unreported_drops(self) -> None:
        if self._drops_unlogged:
            log.warning(
                "plugin %s: %d more calls dropped (queue full) since the last report",
                self.name,
                self._drops_unlogged,
            )
            self._drops_unlogged = 0

    @property
    def pending(self) -> int:
        return self._pending

    def _run_next(self) -> None:
        # On a call thread: the oldest waiting call, then this worker back in
        # the run queue if more wait than are already queued to start.
        with self._lock:
            self._queued -= 1
            call = self._queue.popleft()
        start = self._clock()
        token = CURRENT.set(call.event)  # what the plugin publishes during the call
        try:
            output: bytes | BaseException = self.plugin.call(call.action, call.params, call.context)
        except Exception as exc:  # delivered to the caller, whatever it is
            output = exc
        finally:
            CURRENT.reset(token)
        seconds = self._clock() - start
        # Read here, before this slot's next call: only it calls the plugin
        # (a pool's calls overlap, and it measures none: None).
        fuel = self.plugin.fuel_used
        self._inbox.put(self._finished, call, output, seconds, fuel)
        with self._lock:
            again = len(self._queue) > self._queued
            if again:
                self._queued += 1
            else:
                self._active -= 1
        if again:
            self._threads.runnable(self)

    def _finished(
        self, call: _Call, output: bytes | BaseException, seconds: float, fuel: int | None
    ) -> None:
        self._pending -= 1
        error = None
        if isinstance(output, BaseException):
            error = type(output).__name__
            if not call.done.cancelled():
                call.done.set_exception(output)
        elif not call.done.cancelled():
            call.done.set_result(output)
        limit = isinstance(output, LimitExceeded)
        self._metrics.call(self.name, call.binding, seconds, error, fuel=fuel, limit=limit)
        if self._closing and self._pending == 0 and not self._stopped.done():
            self._stopped.set_result(None)

    async def drain(self) -> None:
        """Run what is queued, then stop."""
        self._stop()
        await asyncio.shield(self._stopped)

    def _stop(self) -> None:
        if not self._closing:
            self._closing = True
            self._log_unreported_drops()
            if self._pending == 0:
                self._stopped.set_result(None)

    def close(self) -> None:
        self._stop()
        if self._own_threads:
            self._threads.close()
        self.plugin.close()
