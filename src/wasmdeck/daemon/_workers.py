"""One worker per plugin: its calls in order, other plugins' in parallel, bounded queues.

Each plugin has a thread of its own that runs its calls one at a time, in
the order they were submitted (a FIFO of at most ``size`` waiting calls),
so a slow or failing plugin holds up only its own queue. A plugin with an
instance pool (``pool = N`` in the deck) has N threads: up to N of its calls
run at once, started in the order submitted. A call that finds the queue
full is dropped: counted, logged, and its binding's later actions skipped —
never silently lost. Drops are logged once a second at most per plugin
(the first at once, then how many more since): under overload a log line
per drop cost more than the call would have, and made the overload worse.

The loop hands a call over with one ``SimpleQueue.put`` and gets its result
back through an ``Inbox``: no task, executor or future chain per call, which
at 5,000 MIDI events/s was most of the loop's time, and one wake-up of the
loop for a burst of results rather than one each
(benchmarks/sustained_load.py).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._context import TriggerContext
from .._errors import LimitExceeded, WasmdeckError
from ..host import CURRENT, BusEvent
from ..runtime import Plugin
from ._inbox import Inbox
from ._metrics import Metrics

__all__ = ["PluginWorker", "QueueFull"]

log = logging.getLogger("wasmdeck.daemon")


class QueueFull(WasmdeckError):
    """A plugin's queue was full: the call was dropped."""


DROP_LOG_INTERVAL = 1.0  # seconds between two "queue full" log lines of one plugin


@dataclass(slots=True)
class _Call:
    action: str
    params: Mapping[str, Any]
    context: TriggerContext
    binding: str
    done: asyncio.Future[bytes]
    event: BusEvent | None  # the bus event behind the call: its publishes are a hop further


class PluginWorker:
    def __init__(
        self,
        name: str,
        plugin: Plugin,
        metrics: Metrics,
        *,
        size: int = 256,
        clock: Callable[[], float] = time.perf_counter,
        inbox: Inbox | None = None,
    ) -> None:
        self.name = name
        self.plugin = plugin
        plugin.measure_fuel = True  # for the metrics: fuel used per plugin and binding
        self._metrics = metrics
        self._clock = clock
        self._size = size
        self._loop = asyncio.get_running_loop()
        self._inbox = inbox or Inbox(self._loop)
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._pending = 0  # submitted and not finished (the loop's count)
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self._closing = False  # drain() or close() was called: no more calls
        self._drops_unlogged = 0  # dropped since the last "queue full" line
        self._drop_log_after = -float("inf")  # the clock's time for the next line
        self._running = plugin.limits.pool  # threads not yet stopped (the loop's count)
        self._threads = [
            threading.Thread(target=self._run, name=f"plugin {name}", daemon=True)
            for _ in range(plugin.limits.pool)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, action: str, params: Mapping[str, Any], context: TriggerContext, binding: str
    ) -> asyncio.Future[bytes]:
        """Queue one call; its future has the output. Raises ``QueueFull`` when full."""
        if self._closing:
            raise WasmdeckError("the plugin is being stopped", plugin=self.name, action=action)
        if self._pending >= self._size + len(self._threads):  # ``size`` waiting, the rest running
            self._metrics.dropped(self.name, binding)
            self._log_drop(action, binding)
            raise QueueFull(
                f"its queue is full ({self._size} calls waiting); the call was dropped",
                plugin=self.name,
                action=action,
            )
        done: asyncio.Future[bytes] = self._loop.create_future()
        self._pending += 1
        self._calls.put(_Call(action, params, context, binding, done, CURRENT.get()))
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

    def _run(self) -> None:
        # The plugin's thread: calls until the None that drain() or close() sends.
        while (call := self._calls.get()) is not None:
            start = self._clock()
            token = CURRENT.set(call.event)  # what the plugin publishes during the call
            try:
                output: bytes | BaseException = self.plugin.call(
                    call.action, call.params, call.context
                )
            except Exception as exc:  # delivered to the caller, whatever it is
                output = exc
            finally:
                CURRENT.reset(token)
            seconds = self._clock() - start
            # Read here, before this thread's next call: only it calls the plugin
            # (a pool's calls overlap, and it measures none: None).
            fuel = self.plugin.fuel_used
            self._hand_back(self._finished, call, output, seconds, fuel)
        self._hand_back(self._thread_stopped)

    def _thread_stopped(self) -> None:
        self._running -= 1
        if self._running == 0 and not self._stopped.done():
            self._stopped.set_result(None)

    def _hand_back(self, callback: Callable[..., object], *args: Any) -> None:
        self._inbox.put(callback, *args)

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

    async def drain(self) -> None:
        """Run what is queued, then stop."""
        self._stop()
        await asyncio.shield(self._stopped)

    def _stop(self) -> None:
        if not self._closing:
            self._closing = True
            self._log_unreported_drops()
            for _ in self._threads:  # one None for each thread
                self._calls.put(None)

    def close(self) -> None:
        self._stop()
        self.plugin.close()
