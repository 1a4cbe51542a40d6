"""Counters of the running deck, per plugin and binding: calls, errors, limit hits, fuel, drops, latency.

Kept in a prometheus-client registry of the daemon's own (served as
Prometheus text on the control API, ``/metrics``) and, for ``wasmdeck
status``, the last calls' latencies per plugin, from which p50 and p99 are
read exactly.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

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


@dataclass(slots=True)
class _Series:
    """The Prometheus counts of one (plugin, binding)."""

    calls: int = 0
    drops: int = 0
    fuel: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)  # by class
    limits: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(_BUCKETS) + 1))  # +Inf last


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Counted in plain dicts on the loop and turned into Prometheus families
        # only when /metrics is read: prometheus-client's counters take a lock
        # per increment, five of them per call, which showed at 5,000 MIDI
        # events/s (benchmarks/sustained_load.py).
        self._series: dict[tuple[str, str], _Series] = {}
        self.registry.register(_DeckCollector(self))
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

    def _of(self, plugin: str, binding: str) -> _Series:
        series = self._series.get((plugin, binding))
        if series is None:
            series = self._series[(plugin, binding)] = _Series()
        return series

    def fired(self, binding: str) -> None:
        self.bindings[binding] = self.bindings.get(binding, 0) + 1

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
        stats = self._stats(plugin)
        for each in (stats, self._binding(binding)):
            each.calls += 1
            if error is not None:
                each.errors[error] = each.errors.get(error, 0) + 1
                if limit:
                    each.limit_hits[error] = each.limit_hits.get(error, 0) + 1
            if fuel is not None:
                each.fuel_used += fuel
                each.fuel_calls += 1
        stats.latencies.append(seconds)
        series = self._of(plugin, binding)
        series.calls += 1
        series.seconds += seconds
        series.buckets[bisect.bisect_left(_BUCKETS, seconds)] += 1
        if error is not None:
            series.errors[error] = series.errors.get(error, 0) + 1
            if limit:
                series.limits[error] = series.limits.get(error, 0) + 1
        if fuel is not None:
            series.fuel += fuel

    def _binding(self, name: str) -> _PluginStats:
        stats = self.binding_calls.get(name)
        if stats is None:
            stats = self.binding_calls[name] = _PluginStats()
        return stats

    def dropped(self, plugin: str, binding: str) -> None:
        self._stats(plugin).drops += 1
        self._binding(binding).drops += 1
        self._of(plugin, binding).drops += 1

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


class _DeckCollector:
    """The deck's counts as Prometheus families, made when /metrics is read."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []  # described at collection: the deck's plugins and bindings change

    def collect(self) -> Iterator[Any]:
        labels = ["plugin", "binding"]
        calls = CounterMetricFamily("wasmdeck_calls", "Plugin calls", labels=labels)
        errors = CounterMetricFamily(
            "wasmdeck_errors", "Failed plugin calls", labels=[*labels, "error"]
        )
        limits = CounterMetricFamily(
            "wasmdeck_limit_hits",
            "Plugin calls stopped by a sandbox limit",
            labels=[*labels, "limit"],
        )
        drops = CounterMetricFamily("wasmdeck_drops", "Events dropped: a full queue", labels=labels)
        fuel = CounterMetricFamily(
            "wasmdeck_fuel_used", "Fuel the plugin calls used", labels=labels
        )
        latency = HistogramMetricFamily(
            "wasmdeck_call_seconds", "Plugin call latency", labels=labels
        )
        for (plugin, binding), series in list(self._metrics._series.items()):
            names = [plugin, binding]
            if series.calls:
                calls.add_metric(names, series.calls)
                fuel.add_metric(names, series.fuel)
                cumulative, buckets = 0, []
                for bound, count in zip((*_BUCKETS, float("inf")), series.buckets, strict=True):
                    cumulative += count
                    buckets.append(
                        ("+Inf" if bound == float("inf") else repr(float(bound)), cumulative)
                    )
                latency.add_metric(names, buckets, series.seconds)
            if series.drops:
                drops.add_metric(names, series.drops)
            for error, count in series.errors.items():
                errors.add_metric([*names, error], count)
            for error, count in series.limits.items():
                limits.add_metric([*names, error], count)
        triggers = CounterMetricFamily("wasmdeck_triggers", "Bindings fired", labels=["binding"])
        for binding, count in list(self._metrics.bindings.items()):
            triggers.add_metric([binding], count)
        yield from (calls, errors, limits, drops, fuel, latency, triggers)
