"""Trigger plugins polled: the host runs each one's poll action on a timer.

A plugin whose metadata says ``"type": "trigger"`` names a poll action and an
interval (``"poll": {"action": "watch", "interval_ms": 250}``; the deck's
``poll_ms`` overrides the interval). Its events are what it publishes on the
bus from inside its polls (``events:publish:PATTERN``), which the deck binds
like any event. One ``Poller`` per such plugin calls the action through the
plugin's worker (``_workers.py``), so a poll is queued with the plugin's other
calls, runs under its own limits (timeout, fuel), and is counted in the
metrics under the binding ``(poll)``. A plugin fed by a connection it keeps
open (a WebSocket: an instance's handles live between calls) waits on it
inside its poll, for at most its own timeout.

The interval runs from the end of one poll to the start of the next, so a
slow poll never piles up calls. A poll that fails (an error, a trap, a limit,
a full queue) is logged and the next one waits twice as long as the last,
up to ``MAX_BACKOFF_S``; the first success goes back to the interval. A
plugin removed from the deck (or replaced by a reload) has its poller
stopped before its worker drains; a poll in flight then finishes on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._context import TriggerContext
from .._errors import WasmdeckError

__all__ = ["MAX_BACKOFF_S", "POLL_BINDING", "Poller"]

log = logging.getLogger("wasmdeck.daemon")

MAX_BACKOFF_S = 30.0
POLL_BINDING = "(poll)"  # the binding label of polls in the metrics (no binding has parentheses)

# One call of the poll action: (action, params, context, binding) -> its output.
Submit = Callable[[str, dict[str, Any], TriggerContext, str], Awaitable[bytes]]


class Poller:
    """Polls the trigger plugin ``name`` by calling ``action`` through ``submit``.

    ``sleep`` waits between polls (``asyncio.sleep``; tests pass one that
    records the delays and returns at once).
    """

    def __init__(
        self,
        name: str,
        action: str,
        interval_ms: int,
        submit: Submit,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        max_backoff: float = MAX_BACKOFF_S,
    ) -> None:
        self.name = name
        self.action = action
        self.interval = interval_ms / 1000
        self.max_backoff = max(max_backoff, self.interval)
        self.polls = 0
        self.failures = 0  # all failed polls
        self.failing = 0  # failed polls in a row (0: the last one worked)
        self.delay = self.interval  # before the next poll
        self.last_error: str | None = None
        self._submit = submit
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"poll {self.name}")

    def stop(self) -> None:
        """Poll no more (a poll in flight finishes in the plugin's worker)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            await self._sleep(self.delay)
            await self.poll()

    async def poll(self) -> bool:
        """One poll; True if it worked. Sets ``delay`` for the next one."""
        self.polls += 1
        context = TriggerContext(kind="poll", timestamp=int(time.time() * 1000))
        try:
            await self._submit(self.action, {}, context, POLL_BINDING)
        except (WasmdeckError, ValueError) as exc:
            self.failures += 1
            self.failing += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.delay = min(self.interval * 2**self.failing, self.max_backoff)
            # The first failure and then each doubling's: a poll failing for
            # hours logs a line every max_backoff, not one per interval.
            log.warning(
                "trigger plugin %s: poll %s failed (%d in a row; next in %.3g s): %s",
                self.name,
                self.action,
                self.failing,
                self.delay,
                self.last_error,
            )
            return False
        if self.failing:
            log.info(
                "trigger plugin %s: polling again every %d ms, after %d failed polls",
                self.name,
                round(self.interval * 1000),
                self.failing,
            )
        self.failing = 0
        self.delay = self.interval
        return True

    def status(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "interval_ms": round(self.interval * 1000),
            "polls": self.polls,
            "failures": self.failures,
            "failing": self.failing,
            "next_in_ms": round(self.delay * 1000),
            "last_error": self.last_error,
        }
