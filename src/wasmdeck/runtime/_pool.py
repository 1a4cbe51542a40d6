"""An instance pool: a plugin running up to ``Limits.pool`` calls at once.

Each instance is an adapter of its own (its own Store, memory and host
state: WebSockets, the kv connection), made from the one compiled module
when all those made so far are busy; instances share nothing but kv and
shared state (docs/teamwork.md, "Instance pools"). A call takes a free
instance, waiting for one (at most until its deadline, for a call made on
another's behalf) when all ``size`` are busy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .._errors import TimeLimitExceeded, WasmdeckError
from ._adapter import Adapter

__all__ = ["InstancePool", "Member"]


class Member:
    """One instance of the pool and the lock that makes it one call's at a time."""

    __slots__ = ("impl", "lock")

    def __init__(self, impl: Adapter, lock: threading.Lock) -> None:
        self.impl = impl
        self.lock = lock


class InstancePool:
    def __init__(self, first: Member, size: int, make: Callable[[], Adapter]) -> None:
        self.size = size
        self.members = [first]
        self._free = [first]
        self._make = make
        self._making = 0
        self._ready = threading.Condition(threading.Lock())

    @property
    def busy(self) -> int:
        with self._ready:
            return len(self.members) + self._making - len(self._free)

    def take(self, deadline: float | None, plugin: str, action: str) -> Member:
        """A free instance (made now if there is room); waits for one otherwise."""
        with self._ready:
            while not self._free:
                if len(self.members) + self._making < self.size:
                    self._making += 1
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and (left <= 0 or not self._ready.wait(left)):
                    raise TimeLimitExceeded(
                        f"the caller's time ran out before it could start (all {self.size} "
                        "instances were busy)",
                        value=max(left, 0.0),
                        plugin=plugin,
                        action=action,
                    )
                if left is None:
                    self._ready.wait()
            else:
                member = self._free.pop()
                member.lock.acquire()
                return member
        try:
            member = Member(self._make(), threading.Lock())
        except BaseException:
            with self._ready:
                self._making -= 1
                self._ready.notify()
            raise
        member.lock.acquire()
        with self._ready:
            self._making -= 1
            self.members.append(member)
        return member

    def give(self, member: Member) -> None:
        member.lock.release()
        with self._ready:
            self._free.append(member)
            self._ready.notify()

    def each(self, wait: float | None = None) -> list[Member]:
        """Every instance, each locked (its call in flight done): for reset and close.

        The caller releases them. Raises ``WasmdeckError`` when ``wait`` passes first.
        """
        with self._ready:
            members = list(self.members)
        taken: list[Member] = []
        for member in members:
            if not member.lock.acquire(timeout=-1 if wait is None else wait):
                for done in taken:
                    done.lock.release()
                raise WasmdeckError("an instance's call outlasted the wait")
            taken.append(member)
        return taken
