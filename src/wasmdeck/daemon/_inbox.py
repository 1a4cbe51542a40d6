"""The loop's inbox: callbacks from other threads (plugin workers, MIDI input), one wake-up per burst."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Inbox"]


class Inbox:
    """Where threads hand callbacks to the loop: one wake-up for all that are waiting.

    ``call_soon_threadsafe`` writes the loop's self-pipe on every call; a
    JACK period brings about 27 notes at 5,000/s, so results come in bursts,
    and one wake-up runs them all. The flag is cleared before the queue is
    emptied, so an item put at any moment is run by this wake-up or causes
    the next one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._signalled = False

    def put(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop (from any thread)."""
        self._items.append((callback, args))
        if not self._signalled:
            self._signalled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        self._signalled = False
        items = self._items
        while items:
            callback, args = items.popleft()
            try:
                callback(*args)
            except Exception as exc:  # one failing callback must not strand the others
                self._loop.call_exception_handler(
                    {"message": "Inbox callback failed", "exception": exc}
                )
