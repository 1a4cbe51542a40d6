"""Plugin-to-plugin calls: chains bounded in depth and time, cycles refused, never waited on.

A plugin's calls are serialized by its lock (``Plugin``), and a call from A
to B runs on A's thread while A waits inside its host function. So A -> A,
or A -> B -> A on one thread, would wait on a lock its own thread holds;
and A -> B on one thread while B -> A runs on another (the daemon's workers
run each plugin on a thread of its own) would wait on each other forever.

Both are found before anyone waits. The chain of a thread's calls (A, B,
...) is kept per thread in ``_CHAINS``: a callee already on it is a cycle. Across
threads, a wait-for graph: a thread inside a nested call records the
plugins its chain holds and the plugin it waits for; a new wait that would
close a loop of such records is refused. A thread that closes a deadlock
finds it: it records before it looks, and the others in the loop are all
waiting, so recorded (``CallGraph._refuse_a_loop`` says why no lock is needed).
Every wait and every callee's run ends by the caller's deadline
(``Plugin.call_before``), which covers the whole chain, to an epoch tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from threading import get_ident
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


# Each thread's chain of calls, by thread (a nested call runs on its caller's
# thread), while it has one: a dict keyed by get_ident(), which a call looks up
# anyway, is read and written in a third of a threading.local's time.
_CHAINS: dict[int, tuple[str, ...]] = {}


# One plugin-to-plugin call done, for metrics: (caller, callee, action,
# seconds, the error or None, the callee's fuel used or None).
CallObserver = Callable[[str, str, str, float, BaseException | None, int | None], None]


class CallGraph:
    """Who holds and who waits for which plugin, for the calls between plugins.

    ``observe``, when set, is told of each call that ran (the daemon counts
    them in its metrics: the callee's calls, errors and fuel).
    """

    def __init__(self, *, max_depth: int = MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self.calls = 0
        self.observe: CallObserver | None = None
        self._holders: dict[str, int] = {}  # plugin -> the thread whose chain holds it
        self._waiting: dict[int, str] = {}  # thread -> the plugin it waits for

    def call(
        self,
        caller: str,
        resolve: Callable[[str], Plugin],
        name: str,
        action: str,
        params: Mapping[str, Any],
        deadline: float,
    ) -> bytes:
        """Run ``name``'s ``action`` for ``caller`` by ``deadline`` (``resolve``
        finds the plugin of a name); refusals are ``HostRequestError``s (answers
        to the caller), a passed deadline is ``DeadlinePassed`` (the caller's own
        time limit)."""
        me = get_ident()
        chains = _CHAINS
        enclosing = chain = chains.get(me, ())
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
        holders, waiting = self._holders, self._waiting
        outer = waiting.get(me)  # this thread's wait in an enclosing call, if any
        # Records first, then the look for a loop (see _refuse_a_loop).
        added: list[str] = []
        for plugin in chain:
            if plugin not in holders:
                holders[plugin] = me
                added.append(plugin)
        waiting[me] = name
        holder = holders.get(name)
        if holder is not None:
            self._refuse_a_loop(me, holder, chain, name, added, outer)
        chains[me] = (*chain, name)
        self.calls += 1
        observe = self.observe
        started = 0.0 if observe is None else time.perf_counter()
        error: BaseException | None = None
        try:
            # No trigger behind a call: the callee's context has only the time.
            return callee.call_before(deadline, action, params)
        except TimeLimitExceeded as exc:
            error = exc
            if time.monotonic() >= deadline - 0.001:
                raise DeadlinePassed(f"calling plugin {name!r} action {action!r}") from None
            raise HostRequestError("limit", f"{name!r}: {exc}") from None
        except LimitExceeded as exc:
            error = exc
            raise HostRequestError("limit", f"{name!r}: {exc}") from None
        except PluginError as exc:
            error = exc
            raise HostRequestError("failed", f"{name!r}: {exc}") from None
        except RoutingError as exc:
            error = exc
            raise HostRequestError("not_found", str(exc)) from None
        except ValueError as exc:
            error = exc
            raise HostRequestError("invalid_request", f"{name!r}: {exc}") from None
        except WasmdeckError as exc:
            error = exc
            raise HostRequestError("unavailable", f"{name!r}: {exc}") from None
        finally:
            if enclosing:
                chains[me] = enclosing
            else:
                del chains[me]
            if outer is None:
                del waiting[me]
            else:
                waiting[me] = outer
            for plugin in added:
                del holders[plugin]
            if observe is not None:
                seconds = time.perf_counter() - started
                observe(caller, name, action, seconds, error, callee.fuel_used_here())

    def _refuse_a_loop(
        self,
        me: int,
        holder: int | None,
        chain: tuple[str, ...],
        name: str,
        added: list[str],
        outer: str | None,
    ) -> None:
        """Raise ``cycle`` if waiting for ``name`` (held by ``holder``) closes a loop
        of waits; the records of this wait are then undone (``outer``: this
        thread's wait in an enclosing call).

        Without a lock: each thread writes its own records before it reads the
        others', and the GIL orders these steps, so of two threads that close
        a loop at once at least one sees the other's records (both may, and
        both are refused). The records are single-key dict writes.
        """
        holders, waiting = self._holders, self._waiting
        seen: set[int] = set()
        while holder is not None and holder not in seen:
            if holder == me:
                for plugin in added:
                    del holders[plugin]
                if outer is None:
                    del waiting[me]
                else:
                    waiting[me] = outer
                raise HostRequestError(
                    "cycle",
                    f"{_path(chain, name)}: {name!r} is busy in a chain of calls that waits for "
                    f"{chain[-1]!r} (a cycle across threads; waiting would deadlock)",
                )
            seen.add(holder)
            waits_for = waiting.get(holder)
            holder = None if waits_for is None else holders.get(waits_for)


def _path(chain: tuple[str, ...], name: str) -> str:
    return " -> ".join((*chain, name))
