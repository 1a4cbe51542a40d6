"""One worker per plugin: its calls in order, other plugins' in parallel, bounded queues.

Each plugin has a FIFO queue of at most ``size`` calls and one task that
runs them one at a time (``Plugin.call_async``, on a thread of its own from
the daemon's executor), so a slow or failing plugin holds up only its own
queue. A call that finds the queue full is dropped: counted, logged, and
its binding's later actions skipped — never silently lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._context import TriggerContext
from .._errors import LimitExceeded, WasmdeckError
from ..host import CURRENT, BusEvent
from ..runtime import Plugin
from ._metrics import Metrics

__all__ = ["PluginWorker", "QueueFull"]

log = logging.getLogger("wasmdeck.daemon")


class QueueFull(WasmdeckError):
    """A plugin's queue was full: the call was dropped."""


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
    ) -> None:
        self.name = name
        self.plugin = plugin
        plugin.measure_fuel = True  # for the metrics: fuel used per plugin and binding
        self._metrics = metrics
        self._clock = clock
        self._queue: asyncio.Queue[_Call | None] = asyncio.Queue(size)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"plugin {name}")
        self.busy = False

    def submit(
        self, action: str, params: Mapping[str, Any], context: TriggerContext, binding: str
    ) -> asyncio.Future[bytes]:
        """Queue one call; its future has the output. Raises ``QueueFull`` when full."""
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Call(action, params, context, binding, done, CURRENT.get()))
        except asyncio.QueueFull:
            self._metrics.dropped(self.name, binding)
            log.warning(
                "plugin %s: queue full (%d calls waiting); dropped %s from binding %s",
                self.name,
                self._queue.maxsize,
                action,
                binding,
            )
            raise QueueFull(
                f"its queue is full ({self._queue.maxsize} calls waiting); the call was dropped",
                plugin=self.name,
                action=action,
            ) from None
        return done

    @property
    def pending(self) -> int:
        return self._queue.qsize() + (1 if self.busy else 0)

    async def _run(self) -> None:
        while True:
            call = await self._queue.get()
            if call is None:
                return
            self.busy = True
            start = self._clock()
            error: str | None = None
            limit = False
            token = CURRENT.set(call.event)  # call_async's thread runs in a copy of this context
            try:
                output = await self.plugin.call_async(call.action, call.params, call.context)
            except (WasmdeckError, ValueError) as exc:
                error, limit = type(exc).__name__, isinstance(exc, LimitExceeded)
                if not call.done.cancelled():
                    call.done.set_exception(exc)
            else:
                if not call.done.cancelled():
                    call.done.set_result(output)
            finally:
                CURRENT.reset(token)
                self.busy = False
                # Read here, before this worker's next call: only it calls the plugin.
                fuel = self.plugin.fuel_used
                self._metrics.call(
                    self.name, call.binding, self._clock() - start, error, fuel=fuel, limit=limit
                )

    async def drain(self) -> None:
        """Run what is queued, then stop."""
        await self._queue.put(None)
        await self._task

    def close(self) -> None:
        self._task.cancel()
        self.plugin.close()
