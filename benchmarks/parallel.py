"""Thread scaling: two CPU-bound plugins on two threads, next to raw Wasmtime.

Run: ``python benchmarks/parallel.py [--rounds N]`` (about 30 s by default).

Each round, interleaved, runs the same amount of work four ways, once on one
thread (two jobs one after the other) and once on two threads (one job
each, started together), and records the speedup ``serial / parallel``:

- ``wasmdeck``: ``Plugin.call`` of a plugin whose ``execute`` spins ``N``
  loop iterations; each thread has its own plugin (its own Store);
- ``raw``: the same loop exported by a plain module in a wasmtime-py Store
  on an engine with the same settings (fuel, epoch interruption and an
  epoch thread ticking every 5 ms, as ``wasmdeck.Runtime`` does);
- ``raw-noepoch``: the same without epoch interruption and without a ticker
  thread (fuel only), to see what the epoch thread costs;
- ``hashlib``: SHA-256 over a buffer, C code that releases the GIL: the
  machine's own scaling.

Two workloads: ``long`` (one call of ~20 ms per job) and ``short`` (a job of
400 calls of ~50 µs: the per-call Python part, which holds the GIL, counts).

It prints per-round medians and quartiles of the speedups, the paired ratio
``wasmdeck / raw`` (the target: within 10% of 1), and what the machine was
doing: CPU topology (are the two CPUs SMT siblings?), load average, steal
time (CPU taken by the hypervisor for other guests) and other runnable
processes during each round, and how the speedup of each round relates to
them.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

import wasmdeck
from wasmdeck import Limits

METADATA = json.dumps({"name": "spin", "version": "1", "description": "spins"})


def spin_module(iterations: int) -> bytes:
    """A JSON-ABI plugin whose execute spins; ``spin(n)`` exported for raw Wasmtime."""
    meta = METADATA.encode()
    data = "".join(f"\\{b:02x}" for b in meta)
    return bytes(
        wasmtime.wat2wasm(f"""
    (module
      (memory (export "memory") 1)
      (data (i32.const 1024) "{data}")
      (func $spin (export "spin") (param $n i32) (result i32)
        (local $acc i32)
        (loop $l
          (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $n)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
        (local.get $acc))
      (func (export "alloc") (param i32) (result i32) (i32.const 4096))
      (func (export "init") (result i64)
        (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {len(meta)})))
      (func (export "execute") (param i32 i32) (result i32)
        (drop (call $spin (i32.const {iterations})))
        (i32.const 0)))
    """)
    )


class Raw:
    """Raw wasmtime-py: one Store per job thread, the loop called through Func.__call__."""

    def __init__(self, wasm: bytes, iterations: int, *, epochs: bool) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = epochs
        self.engine = wasmtime.Engine(config)
        self.module = wasmtime.Module(self.engine, wasm)
        self.iterations = iterations
        self.epochs = epochs
        self._stop = threading.Event()
        if epochs:
            threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(0.005):
            self.engine.increment_epoch()

    def job(self) -> Callable[[], object]:
        store = wasmtime.Store(self.engine)
        spin = wasmtime.Instance(store, self.module, []).exports(store)["spin"]
        assert isinstance(spin, wasmtime.Func)
        n = self.iterations

        def run() -> object:
            store.set_fuel(10**12)
            if self.epochs:
                store.set_epoch_deadline(10**6)
            return spin(store, n)

        return run

    def close(self) -> None:
        self._stop.set()


def wasmdeck_job(wasm: bytes, runtime: wasmdeck.Runtime) -> Callable[[], object]:
    plugin = wasmdeck.Plugin(wasm, limits=Limits(fuel=10**12, timeout=60), runtime=runtime)
    return lambda: plugin.call("spin")


def hashlib_job(size: int) -> Callable[[], object]:
    data = os.urandom(size)  # hashlib releases the GIL for buffers over 2 KiB
    return lambda: hashlib.sha256(data).digest()


def serial(jobs: list[Callable[[], object]], calls: int, cpu: list[float] | None = None) -> float:
    """Wall time of the jobs one after the other; appends the CPU time they took to ``cpu``."""
    start, cpu_start = time.perf_counter(), time.thread_time()
    for job in jobs:
        for _ in range(calls):
            job()
    if cpu is not None:
        cpu.append(time.thread_time() - cpu_start)
    return time.perf_counter() - start


def parallel(
    jobs: list[Callable[[], object]], calls: int, on_cpu: list[float], cpu: list[float]
) -> float:
    """Wall time of the jobs run on one thread each.

    Appends each thread's share of its wall time on a CPU to ``on_cpu``, and
    the CPU time of all threads together to ``cpu``.
    """
    barrier = threading.Barrier(len(jobs) + 1)
    ends: list[float] = []
    used: list[float] = []

    def run(job: Callable[[], object]) -> None:
        barrier.wait()
        wall, cpu_start = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            job()
        ends.append(time.perf_counter())
        used.append(time.thread_time() - cpu_start)
        on_cpu.append(used[-1] / (ends[-1] - wall))

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    cpu.append(sum(used))
    return max(ends) - start


def cpu_stat() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as file:
        fields = [int(x) for x in file.readline().split()[1:]]
    idle = fields[3] + fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])
    return total - idle - steal, steal, total


def procs_running() -> int:
    with open("/proc/stat") as file:
        for line in file:
            if line.startswith("procs_running"):
                return int(line.split()[1])
    return 0


def topology() -> list[str]:
    lines = []
    for cpu in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")):
        topo = cpu / "topology"
        if not topo.is_dir():
            continue

        def read(name: str, topo: Path = topo) -> str:
            path = topo / name
            return path.read_text().strip() if path.exists() else "?"

        lines.append(
            f"{cpu.name}: package {read('physical_package_id')}, core {read('core_id')}, "
            f"SMT siblings {read('thread_siblings_list')}"
        )
    freq = Path("/sys/devices/system/cpu/cpu0/cpufreq")
    lines.append(
        "cpufreq: "
        + (
            "present (scaling governor " + (freq / "scaling_governor").read_text().strip() + ")"
            if freq.is_dir()
            else "not exposed to this guest (the hypervisor sets the frequency)"
        )
    )
    return lines


def quartiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"median {statistics.median(values):.2f} (q1 {q[0]:.2f}, q3 {q[2]:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--long-iterations", type=int, default=20_000_000)
    parser.add_argument("--short-iterations", type=int, default=50_000)
    parser.add_argument("--short-calls", type=int, default=400)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs", *topology(), sep="\n  ")
    runtime = wasmdeck.Runtime(cache=False)
    workloads = {
        "long": (args.long_iterations, 1),
        "short": (args.short_iterations, args.short_calls),
    }
    kinds = ("wasmdeck", "raw", "raw-noepoch", "hashlib")
    makers: dict[tuple[str, str], Callable[[], Callable[[], object]]] = {}
    raws: list[Raw] = []
    for workload, (iterations, _) in workloads.items():
        wasm = spin_module(iterations)
        raw, raw_noepoch = (
            Raw(wasm, iterations, epochs=True),
            Raw(wasm, iterations, epochs=False),
        )
        raws += [raw, raw_noepoch]
        makers[workload, "wasmdeck"] = functools.partial(wasmdeck_job, wasm, runtime)
        makers[workload, "raw"] = raw.job
        makers[workload, "raw-noepoch"] = raw_noepoch.job
        makers[workload, "hashlib"] = lambda: hashlib_job(1 << 20)

    # One job per thread per kind; hashlib's size is calibrated to the long job.
    jobs = {key: [make(), make()] for key, make in makers.items()}
    one = serial(jobs["long", "raw"][:1], 1)
    hash_one = serial(jobs["long", "hashlib"][:1], 1)
    hash_calls = {"long": max(1, round(one / hash_one)), "short": 1}
    hash_calls["short"] = max(1, round(serial(jobs["short", "raw"][:1], 400) / hash_one / 400))

    speedups: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
    singles: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
    paired: dict[str, list[float]] = {w: [] for w in workloads}
    # Per long raw round: speedup, CPU busy %, steal %, runnable processes, and the
    # smaller share of wall time either thread was actually on a CPU.
    rounds_load: list[tuple[float, float, float, int, float]] = []
    on_cpu_all: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
    # CPU time of the same work on two threads over on one: above 1 when
    # running side by side makes each instruction slower (SMT siblings,
    # frequency, shared caches or memory bandwidth), whatever the scheduler does.
    cpu_cost: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
    load_before = os.getloadavg()
    started = time.perf_counter()
    for _ in range(args.rounds):
        for workload, (_, calls) in workloads.items():
            round_speed: dict[str, float] = {}
            for kind in kinds:
                key = (workload, kind)
                n = hash_calls[workload] if kind == "hashlib" else calls
                cpu1: list[float] = []
                cpu2: list[float] = []
                t1 = serial(jobs[key], n, cpu1)
                running = procs_running()
                busy0, steal0, total0 = cpu_stat()
                on_cpu: list[float] = []
                t2 = parallel(jobs[key], n, on_cpu, cpu2)
                on_cpu_all[key] += on_cpu
                cpu_cost[key].append(cpu2[0] / max(cpu1[0], 1e-9))
                busy1, steal1, total1 = cpu_stat()
                speed = t1 / t2
                speedups[key].append(speed)
                singles[key].append(t1 / 2 / n * 1000)  # ms per call
                round_speed[kind] = speed
                if kind == "raw" and workload == "long":
                    span = max(1, total1 - total0)
                    rounds_load.append(
                        (
                            speed,
                            100 * (busy1 - busy0) / span,
                            100 * (steal1 - steal0) / span,
                            running,
                            min(on_cpu),
                        )
                    )
            paired[workload].append(round_speed["wasmdeck"] / round_speed["raw"])
    elapsed = time.perf_counter() - started
    for raw in raws:
        raw.close()
    runtime.close()

    print(
        f"\n{args.rounds} rounds in {elapsed:.1f} s; load average {load_before[0]:.2f} "
        f"before, {os.getloadavg()[0]:.2f} after"
    )
    for workload, (iterations, calls) in workloads.items():
        print(f"\n{workload}: {calls} call(s) of {iterations:,} loop iterations per job")
        print(
            f"  {'':<12}{'2-thread speedup':<40}{'one call, ms (spread)':<24}"
            "on CPU  CPU time 2 vs 1 thread"
        )
        for kind in kinds:
            key = (workload, kind)
            single = singles[key]
            print(
                f"  {kind:<12}{quartiles(speedups[key]):<40}"
                f"{statistics.median(single):.2f} ({min(single):.2f}-{max(single):.2f})"
                f"{'':<8}{100 * statistics.median(on_cpu_all[key]):3.0f}%"
                f"    {statistics.median(cpu_cost[key]):.2f}"
            )
        low = sum(s < 1.4 for s in speedups[workload, "raw"])
        print(f"  rounds where raw scaled below 1.4x: {low} of {args.rounds}")
        print(f"  wasmdeck/raw speedup, paired by round: {quartiles(paired[workload])}")

    if rounds_load:
        print(
            "\nlong raw rounds by speedup: CPU busy and steal while the two threads ran, "
            "runnable processes before, the least share of its wall time a thread was on a CPU:"
        )
        for speed, busy, steal, running, cpu in sorted(rounds_load):
            print(
                f"  {speed:.2f}  busy {busy:5.1f}%  steal {steal:4.1f}%  running {running:2d}"
                f"  on CPU {100 * cpu:3.0f}%"
            )
    ratio = statistics.median(paired["long"])
    print(f"\nwasmdeck_over_raw_speedup_long={ratio:.3f}")
    print(f"wasmdeck_over_raw_speedup_short={statistics.median(paired['short']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
