"""Abuse limits: a token bucket per client and kind of request, and bounded bodies.

The buckets live in the database (the ``rate_limits`` table, _db.py), so
several server processes in front of one PostgreSQL share them: N processes
allow the rate once, not N times. A request costs one upsert that refills the
bucket by the time since its last request, takes a token when there is one
and answers whether it did (``Database.count``: UNLOGGED on PostgreSQL, a
connection that waits for no fsync on SQLite). The clock (wall seconds, the
same in every process) is injected, so tests step time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from ._db import Database
from ._errors import RateLimited, TooLarge

__all__ = ["Limits", "RateLimiter", "read_body"]

# refill = min(burst, tokens + elapsed * rate), elapsed never negative (two
# processes' clocks may disagree a little); a token is taken when refill >= 1.
_REFILL = (
    "CASE WHEN rate_limits.tokens + {elapsed} * ? > ? THEN ? "
    "ELSE rate_limits.tokens + {elapsed} * ? END"
).format(
    elapsed="(CASE WHEN excluded.at > rate_limits.at THEN excluded.at - rate_limits.at ELSE 0 END)"
)
_TAKE = (
    "INSERT INTO rate_limits (key, tokens, at, allowed) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (key) DO UPDATE SET "
    f"tokens = CASE WHEN {_REFILL} >= 1 THEN {_REFILL} - 1 ELSE {_REFILL} END, "
    f"allowed = CASE WHEN {_REFILL} >= 1 THEN 1 ELSE 0 END, "
    "at = CASE WHEN excluded.at > rate_limits.at THEN excluded.at ELSE rate_limits.at END "
    "RETURNING tokens, allowed"
)
_SWEEP_EVERY = 1024  # requests of a process between two sweeps of full buckets


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests per second (sustained) and burst, for reads and for writes; body sizes."""

    read_rate: float = 50.0
    read_burst: int = 200
    write_rate: float = 2.0
    write_burst: int = 30
    max_json: int = 64 << 10
    max_package: int = 64 << 20


class RateLimiter:
    """Token buckets keyed by (client, kind), kept in ``db``; full ones are swept."""

    def __init__(
        self,
        limits: Limits,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.db = db
        self.clock = clock
        self._checks = 0
        self._lock = threading.Lock()

    def check(self, client: str, kind: str) -> None:
        """Take a token of ``client``'s ``kind`` bucket, or raise ``RateLimited`` with
        the seconds until there is one. Blocking (the database): call it off the loop."""
        rate, burst = (
            (self.limits.write_rate, self.limits.write_burst)
            if kind == "write"
            else (self.limits.read_rate, self.limits.read_burst)
        )
        rate, full = float(rate), float(burst)
        now = self.clock()
        refill = [rate, full, full, rate]
        row = self.db.count(_TAKE, [f"{kind}:{client}"[:300], full - 1.0, now, *refill * 4])
        with self._lock:
            self._checks += 1
            sweep = self._checks % _SWEEP_EVERY == 0
        if sweep:
            self._sweep(now)
        if not row["allowed"]:
            raise RateLimited(
                "too many requests; slow down",
                retry_after=max(0.0, (1.0 - float(row["tokens"])) / rate),
            )

    def _sweep(self, now: float) -> None:
        # A bucket untouched for as long as the slowest one takes to fill is full:
        # the same as no row.
        slowest = max(
            self.limits.read_burst / self.limits.read_rate,
            self.limits.write_burst / self.limits.write_rate,
        )
        with self.db.transaction(write=True) as tx:
            tx.run("DELETE FROM rate_limits WHERE at < ?", (now - slowest,))


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it is known to pass ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
