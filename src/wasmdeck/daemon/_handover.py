"""Several plugins handed over to their new versions at one moment: a deck reload.

``hand_over_together`` runs each pair's ``Plugin.hand_over`` (runtime/_plugin.py)
on a thread of its own: it waits for the old version's call in flight, moves
the state into the new version, and then, still holding the old version's
lock (no call runs on it), waits while the others get that far. Once every
one has, ``swap()`` runs on the loop — the deck, the host's routes and the
workers change between two events — and the threads let go: each old
version closes and the calls that were waiting for it run on the new one,
each once. If a hand-over fails (``save`` or ``restore``), or they do not
all get that far in ``timeout`` seconds, ``swap()`` never runs and nothing
is committed: every old version runs on (docs/reload.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .._errors import ReloadFailed, WasmdeckError
from ..runtime import Plugin

__all__ = ["hand_over_together"]


class _Abandoned(Exception):
    """Raised in a hand-over's commit when another one failed: nothing is committed."""


async def hand_over_together(
    pairs: Mapping[str, tuple[Plugin, Plugin]],
    swap: Callable[[], None],
    *,
    timeout: float,
) -> dict[str, int]:
    """Hand each ``(old, new)`` of ``pairs`` (by deck name) over, ``swap()`` at one moment.

    Returns the bytes of state moved, by name. Raises ``ReloadFailed`` (its
    ``plugin`` the deck name, ``stage`` "save", "restore" or "swap") when any
    failed; then ``swap()`` was not called and every old version runs on.
    """
    if not pairs:
        swap()
        return {}
    loop = asyncio.get_running_loop()
    arrived: set[str] = set()
    everyone: asyncio.Future[None] = loop.create_future()
    decided = threading.Event()
    go = False

    def arrive(name: str) -> None:  # on the loop: one more holds its plugin, its state moved
        arrived.add(name)
        if len(arrived) == len(pairs) and not everyone.done():
            everyone.set_result(None)

    def commit_for(name: str) -> Callable[[], None]:
        def commit() -> None:  # on the hand-over's thread, under the old version's lock
            loop.call_soon_threadsafe(arrive, name)
            decided.wait()
            if not go:
                raise _Abandoned

        return commit

    threads = concurrent.futures.ThreadPoolExecutor(len(pairs), thread_name_prefix="hand-over")
    runs: dict[str, asyncio.Future[int]] = {
        name: loop.run_in_executor(threads, old.hand_over, new, commit_for(name))
        for name, (old, new) in pairs.items()
    }
    try:
        # A hand-over's future ends before the decision only when it failed.
        watched: list[asyncio.Future[Any]] = [everyone, *runs.values()]
        await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        late = sorted(set(pairs) - arrived)
        if everyone.done():
            swap()
            go = True
    finally:
        decided.set()
        await asyncio.wait(runs.values())
        threads.shutdown(wait=False)
    if go:
        return {name: run.result() for name, run in runs.items()}
    for name, run in runs.items():
        error = run.exception()
        if isinstance(error, ReloadFailed):
            raise ReloadFailed(
                f"plugin {name}: the state did not move ({error.stage}): {error.message}",
                stage=error.stage,
                plugin=name,
            ) from error
        if isinstance(error, WasmdeckError):
            raise ReloadFailed(
                f"plugin {name}: the hand-over failed: {error}", stage="swap", plugin=name
            ) from error
        if error is not None and not isinstance(error, _Abandoned):
            raise error
    raise ReloadFailed(
        f"not every plugin could be paused for the hand-over within {timeout:g} s "
        f"(a call in flight did not end): {', '.join(late)}",
        stage="swap",
    )
