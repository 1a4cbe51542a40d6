"""Counters of the running deck, per plugin and binding: calls, errors, limit hits, fuel, drops, latency.

Kept in a prometheus-client registry of the daemon's own (served as
Prometheus text on the control API, ``/metrics``) and, for ``wasmdeck
status``, the last calls' latencies per plugin, from which p50 and p99 are
read exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

__all__ = ["Metrics"]

_WINDOW = 2048  # latencies kept per plugin for the percentiles
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 5, 30)


@dataclass
class _PluginStats:
    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # by class
    limit_hits: dict[str, int] = field(default_factory=dict)  # the LimitExceeded ones, by class
    drops: int = 0
    fuel_used: int = 0  # over the calls whose fuel is known (all but failures other than fuel)
    fuel_calls: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))

    def summary(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": dict(self.errors),
            "limit_hits": dict(self.limit_hits),
            "drops": self.drops,
            "fuel_used": self.fuel_used,
            "fuel_per_call": round(self.fuel_used / self.fuel_calls) if self.fuel_calls else None,
        }


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
        self._limits = Counter(
            "wasmdeck_limit_hits",
            "Plugin calls stopped by a sandbox limit",
            (*labels, "limit"),
            registry=self.registry,
        )
        self._fuel = Counter(
            "wasmdeck_fuel_used", "Fuel the plugin calls used", labels, registry=self.registry
        )
        # prometheus-client's labels() looks the child up under a lock on every
        # call; the children of each (plugin, binding) are kept here instead.
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._fired: dict[str, Any] = {}
        self.plugins: dict[str, _PluginStats] = {}
        self.bindings: dict[str, int] = {}  # fired, by binding
        self.binding_calls: dict[str, _PluginStats] = {}  # the plugin calls of each binding
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

    def call(
        self,
        plugin: str,
        binding: str,
        seconds: float,
        error: str | None,
        *,
        fuel: int | None = None,
        limit: bool = False,
    ) -> None:
        """One call done: ``error`` its class (``limit``: a sandbox limit), ``fuel`` used."""
        for stats in (self._stats(plugin), self._binding(binding)):
            stats.calls += 1
            if error is not None:
                stats.errors[error] = stats.errors.get(error, 0) + 1
                if limit:
                    stats.limit_hits[error] = stats.limit_hits.get(error, 0) + 1
            if fuel is not None:
                stats.fuel_used += fuel
                stats.fuel_calls += 1
        self._stats(plugin).latencies.append(seconds)
        children = self._children.get((plugin, binding))
        if children is None:
            children = self._children[(plugin, binding)] = (
                self._calls.labels(plugin, binding),
                self._latency.labels(plugin, binding),
            )
        children[0].inc()
        children[1].observe(seconds)
        if error is not None:
            self._errors.labels(plugin, binding, error).inc()
            if limit:
                self._limits.labels(plugin, binding, error).inc()
        if fuel is not None:
            self._fuel.labels(plugin, binding).inc(fuel)

    def _binding(self, name: str) -> _PluginStats:
        stats = self.binding_calls.get(name)
        if stats is None:
            stats = self.binding_calls[name] = _PluginStats()
        return stats

    def dropped(self, plugin: str, binding: str) -> None:
        self._stats(plugin).drops += 1
        self._binding(binding).drops += 1
        self._drops.labels(plugin, binding).inc()

    def watch_bus(self, stats: Callable[[], dict[str, Any]]) -> None:
        """Export the event bus's counts (host/_bus.py ``EventBus.stats``) as well."""
        self.registry.register(_BusCollector(stats))

    def prometheus(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def summary(self) -> dict[str, Any]:
        plugins = {}
        for name, stats in self.plugins.items():
            ordered = sorted(stats.latencies)
            plugins[name] = {
                **stats.summary(),
                "p50_ms": _percentile(ordered, 0.50),
                "p99_ms": _percentile(ordered, 0.99),
            }
        bindings = {
            name: {"fired": fired, **self._binding(name).summary()}
            for name, fired in self.bindings.items()
        }
        return {
            "plugins": plugins,
            "fired": dict(self.bindings),
            "bindings": bindings,
            "events_in": self.events_in,
            "events_dropped": self.events_dropped,
        }


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, int(q * len(ordered)))
    return round(ordered[index] * 1000, 3)


class _BusCollector:
    """The bus's counters, read when /metrics is: published, refused (loops), and
    per subscriber delivered, dropped (its queue full) and failed."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def describe(self) -> list[Any]:
        return []  # described at collection: no fixed set of subscribers

    def collect(self) -> Iterator[Any]:
        stats = self._stats()
        yield CounterMetricFamily(
            "wasmdeck_bus_published", "Events published on the bus", value=stats["published"]
        )
        yield CounterMetricFamily(
            "wasmdeck_bus_refused",
            "Events refused at the hop limit (loops)",
            value=stats["refused"],
        )
        for key, help_text in (
            ("delivered", "Events handled by a subscriber"),
            ("dropped", "Events dropped: a subscriber's queue was full"),
            ("failed", "Events whose subscriber failed"),
        ):
            family = CounterMetricFamily(f"wasmdeck_bus_{key}", help_text, labels=["subscriber"])
            for name, counts in stats["subscribers"].items():
                family.add_metric([name], counts[key])
            yield family
