"""Counters of the running deck, per plugin and binding: calls, errors, drops, latency.

Kept in a prometheus-client registry of the daemon's own (served as
Prometheus text on the control API, ``/metrics``) and, for ``wasmdeck
status``, the last calls' latencies per plugin, from which p50 and p99 are
read exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["Metrics"]

_WINDOW = 2048  # latencies kept per plugin for the percentiles
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 5, 30)


@dataclass
class _PluginStats:
    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    drops: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("plugin", "binding")
        self._calls = Counter("wasmdeck_calls", "Plugin calls", labels, registry=self.registry)
        self._errors = Counter(
            "wasmdeck_errors", "Failed plugin calls", (*labels, "error"), registry=self.registry
        )
        self._drops = Counter(
            "wasmdeck_drops", "Events dropped: a full queue", labels, registry=self.registry
        )
        self._latency = Histogram(
            "wasmdeck_call_seconds",
            "Plugin call latency",
            labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._triggers = Counter(
            "wasmdeck_triggers", "Bindings fired", ("binding",), registry=self.registry
        )
        # prometheus-client's labels() looks the child up under a lock on every
        # call; the children of each (plugin, binding) are kept here instead.
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._fired: dict[str, Any] = {}
        self.plugins: dict[str, _PluginStats] = {}
        self.bindings: dict[str, int] = {}
        self.events_in = 0
        self.events_dropped = 0

    def _stats(self, plugin: str) -> _PluginStats:
        stats = self.plugins.get(plugin)
        if stats is None:
            stats = self.plugins[plugin] = _PluginStats()
        return stats

    def fired(self, binding: str) -> None:
        self.bindings[binding] = self.bindings.get(binding, 0) + 1
        child = self._fired.get(binding)
        if child is None:
            child = self._fired[binding] = self._triggers.labels(binding)
        child.inc()

    def call(self, plugin: str, binding: str, seconds: float, error: str | None) -> None:
        stats = self._stats(plugin)
        stats.calls += 1
        stats.latencies.append(seconds)
        children = self._children.get((plugin, binding))
        if children is None:
            children = self._children[(plugin, binding)] = (
                self._calls.labels(plugin, binding),
                self._latency.labels(plugin, binding),
            )
        children[0].inc()
        children[1].observe(seconds)
        if error is not None:
            stats.errors[error] = stats.errors.get(error, 0) + 1
            self._errors.labels(plugin, binding, error).inc()

    def dropped(self, plugin: str, binding: str) -> None:
        self._stats(plugin).drops += 1
        self._drops.labels(plugin, binding).inc()

    def prometheus(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def summary(self) -> dict[str, Any]:
        plugins = {}
        for name, stats in self.plugins.items():
            ordered = sorted(stats.latencies)
            plugins[name] = {
                "calls": stats.calls,
                "errors": dict(stats.errors),
                "drops": stats.drops,
                "p50_ms": _percentile(ordered, 0.50),
                "p99_ms": _percentile(ordered, 0.99),
            }
        return {
            "plugins": plugins,
            "bindings": dict(self.bindings),
            "events_in": self.events_in,
            "events_dropped": self.events_dropped,
        }


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, int(q * len(ordered)))
    return round(ordered[index] * 1000, 3)
