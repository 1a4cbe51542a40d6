"""The event bus: plugins and the host publish topics, subscribers get them in order.

Delivery is asynchronous: ``publish`` only queues the event for each
subscription whose pattern matches, and returns. Each subscription has a
bounded queue and one thread that hands it its events one at a time, so a
subscriber sees its events in the order they were published and a slow one
holds up only itself. A full queue drops the event for that subscriber:
counted (``stats``) and logged, never silently.

Loops (A's event makes B publish, which makes A publish, ...) are cut by a
hop count: an event published while a subscriber handles another is one hop
further (``CURRENT`` says which event is being handled, also across the
daemon's worker threads, which copy the context); past ``max_hops`` the
publish is refused with a ``loop`` error naming the trail of events, and the
refusal is recorded in ``problems`` for the event log.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._errors import HostRequestError
from .._topics import matches

__all__ = ["CURRENT", "BusEvent", "EventBus", "Subscription"]

log = logging.getLogger("wasmdeck.bus")

MAX_HOPS = 8
QUEUE_SIZE = 256


@dataclass(frozen=True, slots=True)
class BusEvent:
    topic: str
    payload: Any  # a JSON value
    source: str  # the publishing plugin's name, or "wasmdeck" for the host's own
    hops: int = 0  # how many events led to this one
    trail: tuple[str, ...] = ()  # those events, "topic (source)", oldest first
    published: float = 0.0  # time.perf_counter() at publish

    def params(self) -> dict[str, Any]:
        """The params an action receives for this event."""
        return {"topic": self.topic, "payload": self.payload, "source": self.source}


# The event whose delivery the current code runs for (None: not an event's).
CURRENT: contextvars.ContextVar[BusEvent | None] = contextvars.ContextVar(
    "wasmdeck_bus_event", default=None
)


class Subscription:
    """One subscriber: a pattern (narrowed by ``allowed``, if given), a queue, a thread."""

    def __init__(
        self,
        name: str,
        pattern: str,
        handler: Callable[[BusEvent], object],
        *,
        size: int,
        allowed: Iterable[str] | None = None,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.allowed = None if allowed is None else tuple(allowed)
        self.size = size
        self.delivered = 0
        self.dropped = 0
        self.failed = 0
        self._handler = handler
        self._queue: deque[BusEvent] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        self._busy = False
        self._thread: threading.Thread | None = None

    def accepts(self, topic: str) -> bool:
        if not matches(self.pattern, topic):
            return False
        return self.allowed is None or any(matches(g, topic) for g in self.allowed)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _put(self, event: BusEvent) -> bool:
        with self._ready:
            if self._closed:
                return False
            if len(self._queue) >= self.size:
                self.dropped += 1
                dropped = self.dropped
            else:
                self._queue.append(event)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=f"wasmdeck bus: {self.name}", daemon=True
                    )
                    self._thread.start()
                self._ready.notify_all()
                return True
        # Logged outside the lock; every drop is counted, the log says so at
        # the first and then every 100th, so a flood cannot flood the log too.
        if dropped == 1 or dropped % 100 == 0:
            log.warning(
                "subscriber %s: queue full (%d events); dropped %s (%d dropped so far)",
                self.name,
                self.size,
                event.topic,
                dropped,
            )
        return False

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if self._closed and not self._queue:
                    self._ready.notify_all()
                    return
                event = self._queue.popleft()
                self._busy = True
            token = CURRENT.set(event)
            try:
                self._handler(event)
                self.delivered += 1
            except Exception as exc:  # a subscriber's failure is its own; the bus goes on
                self.failed += 1
                log.warning("subscriber %s failed on %s: %s", self.name, event.topic, exc)
            finally:
                CURRENT.reset(token)
                with self._ready:
                    self._busy = False
                    self._ready.notify_all()

    def settle(self, deadline: float) -> bool:
        """Wait until every queued event was handled (or ``deadline``, monotonic)."""
        with self._ready:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or (self._closed and self._thread is None):
                    return False
                self._ready.wait(left)
        return True

    def close(self, wait: float = 1.0) -> None:
        """Stop after the events already queued (waiting at most ``wait`` s for them)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)


class EventBus:
    """Topics in, subscriptions out; see the module's docstring."""

    def __init__(self, *, queue_size: int = QUEUE_SIZE, max_hops: int = MAX_HOPS) -> None:
        self.queue_size = queue_size
        self.max_hops = max_hops
        self.published = 0
        self.refused = 0
        self.problems: deque[dict[str, Any]] = deque(maxlen=100)
        self.on_problem: list[Callable[[dict[str, Any]], None]] = []
        self._subscriptions: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()

    def subscribe(
        self,
        pattern: str,
        handler: Callable[[BusEvent], object],
        *,
        name: str,
        queue_size: int | None = None,
        allowed: Iterable[str] | None = None,
    ) -> Subscription:
        """Call ``handler`` with each event whose topic matches ``pattern`` (and one
        of ``allowed``, when given), in order, on the subscription's own thread."""
        subscription = Subscription(
            name, pattern, handler, size=queue_size or self.queue_size, allowed=allowed
        )
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription, *, wait: float = 1.0) -> None:
        """Stop delivering to ``subscription`` once its queued events are handled
        (waiting at most ``wait`` s for them)."""
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)
        subscription.close(wait)

    def publish(self, topic: str, payload: Any = None, *, source: str) -> int:
        """Queue an event for every matching subscriber; returns how many.

        Raises ``HostRequestError`` (``loop``) past the hop limit.
        """
        parent = CURRENT.get()
        trail: tuple[str, ...]
        if parent is None:
            hops, trail = 0, ()
        else:
            hops, trail = parent.hops + 1, (*parent.trail, f"{parent.topic} ({parent.source})")
        if hops > self.max_hops:
            self.refused += 1
            chain = " -> ".join((*trail, f"{topic} ({source})"))
            message = (
                f"event {topic!r} from {source!r} refused: it would be hop {hops}, past the "
                f"limit of {self.max_hops} (a loop of events?): {chain}"
            )
            problem = {"time": time.time(), "topic": topic, "source": source, "error": message}
            self.problems.append(problem)
            log.error("%s", message)
            for listener in list(self.on_problem):
                listener(problem)
            raise HostRequestError("loop", message)
        event = BusEvent(topic, payload, source, hops, trail, time.perf_counter())
        self.published += 1
        delivered = 0
        for subscription in self._subscriptions:
            if subscription.accepts(topic) and subscription._put(event):
                delivered += 1
        return delivered

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the events published so far were handled (chains of events
        included, as long as they are in flight); False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while True:
            subscriptions = self._subscriptions
            if not all(s.settle(deadline) for s in subscriptions):
                return False
            if all(not s.queued and not s._busy for s in self._subscriptions):
                return True

    def stats(self) -> dict[str, Any]:
        """Counts for metrics: published, refused (loops), and per subscriber."""
        return {
            "published": self.published,
            "refused": self.refused,
            "subscribers": {
                s.name: {
                    "pattern": s.pattern,
                    "delivered": s.delivered,
                    "dropped": s.dropped,
                    "failed": s.failed,
                    "queued": s.queued,
                }
                for s in self._subscriptions
            },
        }

    def close(self) -> None:
        with self._lock:
            subscriptions, self._subscriptions = self._subscriptions, ()
        for subscription in subscriptions:
            subscription.close()
