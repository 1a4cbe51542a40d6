"""The event bus and plugin-to-plugin calls, next to a direct host call.

Run: ``python benchmarks/bus.py [--rounds N]`` (about 20 s).

Built from source: the C teamwork plugin of the tests
(tests/plugins/c/teamwork), in a ``PluginHost``.

- **Delivery latency**: from ``publish`` to the moment a subscriber's
  handler starts — where ``PluginHost`` starts the subscriber's action
  (host/_host.py ``_deliver``) — with 1 and with 10 subscribers, each
  handler then running the plugin's ``echo``. Published from Python and
  from inside a plugin (its ``publish`` action, so the host call and the
  grant check count too). The goal: under 50 µs added per subscriber.
- **Plugin-to-plugin call**: ``a`` calling ``b``'s ``echo`` through
  ``plugins.call``, less ``a``'s own ``echo`` (the outer call), next to the
  reference, a direct ``PluginHost.call`` of ``b``'s ``echo``. The goal:
  the plugin call under 2x the direct call.

Medians over rounds; each round interleaves the ways measured.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import wasmdeck
from wasmdeck.host import BusEvent, PluginHost
from wasmdeck.toolchains import build_project

ROOT = Path(__file__).resolve().parent.parent
LINK = ["plugins:link-unused", "state:link-unused"]


class Stamps:
    """What each subscriber's handler saw: publish -> handler start, in seconds."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.latencies: list[float] = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def handler(self, plugin: wasmdeck.Plugin) -> Any:
        def handle(event: BusEvent) -> None:
            started = time.perf_counter()
            plugin.call("echo", {"i": 1})  # the action itself, as PluginHost runs it
            with self._lock:
                self.latencies.append(started - event.published)
                if len(self.latencies) == self.expected:
                    self.done.set()

        return handle


def delivery(wasm: Path, subscribers: int, events: int, from_plugin: bool) -> list[float]:
    """Latencies (s) of every delivery of ``events`` events to ``subscribers``."""
    with PluginHost() as host:
        publisher = host.add(
            wasmdeck.Plugin(wasm, grants=["events:publish:bench.*", *LINK]), name="pub"
        )
        stamps = Stamps(subscribers * events)
        for i in range(subscribers):
            plugin = wasmdeck.Plugin(wasm, grants=["events:publish:none", *LINK])
            host.add(plugin, name=f"sub{i}")
            host.bus.subscribe("bench.*", stamps.handler(plugin), name=f"sub{i}")
        for _ in range(events):
            if from_plugin:
                publisher.call("publish", {"topic": "bench.tick", "payload": {"n": 1}})
            else:
                host.bus.publish("bench.tick", {"n": 1}, source="bench")
            # One event in flight at a time: latency, not queueing.
            host.bus.settle()
        stamps.done.wait(30)
        return stamps.latencies


def calls(wasm: Path, count: int) -> dict[str, float]:
    """Median seconds per call: direct, a's own echo, and a -> b through plugins.call."""
    with PluginHost() as host:
        a = host.add(
            wasmdeck.Plugin(wasm, grants=["plugins:b", "events:publish:none", "state:none"]),
            name="a",
        )
        host.add(wasmdeck.Plugin(wasm, grants=["events:publish:none", *LINK]), name="b")
        request = {"plugin": "b", "action": "echo", "params": {"i": 1}}
        ways = {
            "direct": lambda: host.call("echo", {"i": 1}, plugin="b"),
            "outer": lambda: a.call("echo", {"i": 1}),
            "nested": lambda: a.call("call", request),
        }
        for way in ways.values():
            way()
        times: dict[str, list[float]] = {name: [] for name in ways}
        gc.disable()
        try:
            for _ in range(count):
                for name, way in ways.items():
                    start = time.perf_counter()
                    way()
                    times[name].append(time.perf_counter() - start)
        finally:
            gc.enable()
        return {name: statistics.median(values) for name, values in times.items()}


def us(seconds: float) -> str:
    return f"{seconds * 1e6:7.1f} µs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # The teamwork plugin's metadata subscribes to "*"; the call benchmark and
    # the subscribers of the latency one are granted narrower topics on
    # purpose, which the host would warn of for every plugin it adds.
    logging.getLogger("wasmdeck.host").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WASMDECK_HOME"] = str(Path(tmp) / "home")
        (Path(tmp) / "home").mkdir()
        project = Path(tmp) / "teamwork"
        import shutil

        shutil.copytree(ROOT / "tests" / "plugins" / "c" / "teamwork", project)
        wasm = build_project(project)
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

        print("\ndelivery latency, publish -> subscriber action start (median of each run):")
        results: dict[tuple[int, bool], list[float]] = {}
        for _ in range(args.rounds):
            for from_plugin in (False, True):
                for subscribers in (1, 10):
                    lat = delivery(wasm, subscribers, 200, from_plugin)
                    results.setdefault((subscribers, from_plugin), []).append(
                        statistics.median(lat)
                    )
                    results.setdefault((-subscribers, from_plugin), []).append(max(lat))
        for from_plugin in (False, True):
            where = "a plugin's publish" if from_plugin else "host.bus.publish"
            one = statistics.median(results[(1, from_plugin)])
            ten = statistics.median(results[(10, from_plugin)])
            print(f"  from {where}:")
            print(f"    1 subscriber:   {us(one)}")
            print(f"    10 subscribers: {us(ten)} (median over the ten)")
            print(f"    added per subscriber: {us((ten - one) / 9)} (goal: < 50 µs)")

        print("\nplugin-to-plugin call (medians over rounds of 2,000 calls):")
        rounds = [calls(wasm, 2000) for _ in range(args.rounds)]
        direct = statistics.median(r["direct"] for r in rounds)
        outer = statistics.median(r["outer"] for r in rounds)
        nested = statistics.median(r["nested"] for r in rounds)
        print(f"  direct PluginHost.call of b.echo:   {us(direct)}")
        print(f"  a.echo (the outer call alone):      {us(outer)}")
        print(f"  a -> b.echo through plugins.call:   {us(nested)}")
        added = nested - outer
        print(f"  the plugin call, less the outer:    {us(added)}")
        print(f"  ratio plugin call / direct call:    {added / direct:.2f}x (goal: < 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
