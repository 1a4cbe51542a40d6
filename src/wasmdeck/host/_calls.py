"""Plugin-to-plugin calls: chains bounded in depth and time, cycles refused, never waited on.

A plugin's calls are serialized by its lock (``Plugin``), and a call from A
to B runs on A's thread while A waits inside its host function. So A -> A,
or A -> B -> A on one thread, would wait on a lock its own thread holds;
and A -> B on one thread while B -> A runs on another (the daemon's workers
run each plugin on a thread of its own) would wait on each other forever.

Both are found before anyone waits. The chain of a thread's calls (A, B,
...) travels in ``_CHAIN``: a callee already on it is a cycle. Across
threads, a wait-for graph: a thread inside a nested call records the
plugins its chain holds and the plugin it waits for; a new wait that would
close a loop of such records is refused. The thread that closes a deadlock
is always the one to find it, since recording and checking happen under one
lock. Every wait and every callee's run ends by the caller's deadline
(``Plugin.call_before``), which covers the whole chain.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._errors import (
    HostRequestError,
    LimitExceeded,
    PluginError,
    RoutingError,
    TimeLimitExceeded,
    WasmdeckError,
)
from ..runtime import DeadlinePassed, Plugin

__all__ = ["MAX_DEPTH", "CallGraph"]

MAX_DEPTH = 8

_CHAIN: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "wasmdeck_call_chain", default=()
)


class CallGraph:
    """Who holds and who waits for which plugin, for the calls between plugins."""

    def __init__(self, *, max_depth: int = MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self.calls = 0
        self._lock = threading.Lock()
        self._holders: dict[str, int] = {}  # plugin -> the thread whose chain holds it
        self._waiting: dict[int, str] = {}  # thread -> the plugin it waits for

    def call(
        self,
        caller: str,
        name: str,
        resolve: Callable[[str], Plugin],
        action: str,
        params: Mapping[str, Any],
        deadline: float,
    ) -> bytes:
        """Run ``name``'s ``action`` for ``caller`` by ``deadline``; refusals are
        ``HostRequestError``s (answers to the caller), a passed deadline is
        ``DeadlinePassed`` (the caller's own time limit)."""
        chain = _CHAIN.get()
        if not chain or chain[-1] != caller:
            chain = (caller,)
        if name in chain:
            raise HostRequestError(
                "cycle",
                f"{_path(chain, name)}: a plugin cannot call itself, directly or around a cycle",
            )
        if len(chain) >= self.max_depth:
            raise HostRequestError(
                "depth",
                f"{_path(chain, name)}: a chain of calls may be {self.max_depth} plugins deep",
            )
        try:
            callee = resolve(name)
        except RoutingError as exc:
            raise HostRequestError("not_found", f"{name!r}: {exc.message}") from None
        me = threading.get_ident()
        outer = self._waiting.get(me)  # this thread's wait in an enclosing call, if any
        added = self._wait_for(me, chain, name)
        token = _CHAIN.set((*chain, name))
        self.calls += 1
        try:
            # No trigger behind a call: the callee's context has only the time.
            return callee.call_before(deadline, action, params)
        except TimeLimitExceeded as exc:
            if time.monotonic() >= deadline - 0.001:
                raise DeadlinePassed(f"calling plugin {name!r} action {action!r}") from None
            raise HostRequestError("limit", f"{name!r}: {exc}") from None
        except LimitExceeded as exc:
            raise HostRequestError("limit", f"{name!r}: {exc}") from None
        except PluginError as exc:
            raise HostRequestError("failed", f"{name!r}: {exc}") from None
        except RoutingError as exc:
            raise HostRequestError("not_found", str(exc)) from None
        except ValueError as exc:
            raise HostRequestError("invalid_request", f"{name!r}: {exc}") from None
        except WasmdeckError as exc:
            raise HostRequestError("unavailable", f"{name!r}: {exc}") from None
        finally:
            _CHAIN.reset(token)
            with self._lock:
                if outer is None:
                    del self._waiting[me]
                else:
                    self._waiting[me] = outer
                for plugin in added:
                    del self._holders[plugin]

    def _wait_for(self, me: int, chain: tuple[str, ...], name: str) -> list[str]:
        """Record that this thread holds ``chain`` and waits for ``name``, unless
        that closes a loop of waits; returns the holdings it added."""
        with self._lock:
            added = [p for p in chain if p not in self._holders]
            for plugin in added:
                self._holders[plugin] = me
            holder = self._holders.get(name)
            seen: set[int] = set()
            while holder is not None and holder not in seen:
                if holder == me:
                    for plugin in added:
                        del self._holders[plugin]
                    raise HostRequestError(
                        "cycle",
                        f"{_path(chain, name)}: {name!r} is busy in a chain of calls that waits for "
                        f"{chain[-1]!r} (a cycle across threads; waiting would deadlock)",
                    )
                seen.add(holder)
                waits_for = self._waiting.get(holder)
                holder = None if waits_for is None else self._holders.get(waits_for)
            self._waiting[me] = name
            return added


def _path(chain: tuple[str, ...], name: str) -> str:
    return " -> ".join((*chain, name))
