"""Abuse limits: a token bucket per client and kind of request, and bounded bodies.

Buckets live in the process: with several server processes each enforces its
own (a proxy in front, or the database, would be the place for one shared
count). The clock is injected, so tests step time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from ._errors import RateLimited, TooLarge

__all__ = ["Limits", "RateLimiter", "read_body"]


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
    """Token buckets keyed by (client, kind); the oldest of ``max_clients`` are dropped."""

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, client: str, kind: str) -> None:
        rate, burst = (
            (self.limits.write_rate, self.limits.write_burst)
            if kind == "write"
            else (self.limits.read_rate, self.limits.read_burst)
        )
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop((client, kind), (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[(client, kind)] = (tokens, now)
                raise RateLimited(
                    "too many requests; slow down", retry_after=max(0.0, (1.0 - tokens) / rate)
                )
            self._buckets[(client, kind)] = (tokens - 1.0, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)


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
