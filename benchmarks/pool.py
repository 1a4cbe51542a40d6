"""Instance pools: one plugin with ``Limits(pool=2)`` on two threads, next to raw Wasmtime.

Run: ``python benchmarks/pool.py [--rounds N]`` (about 20 s).

The CPU-bound plugin of benchmarks/parallel.py (its ``execute`` spins ~20
ms). Each round, interleaved, runs two jobs one after the other and then on
two threads at once, and records the speedup ``serial / parallel``:

- ``pool``: the two jobs call the same ``Plugin``, made with ``pool=2``, so
  each thread's calls run on an instance of the pool;
- ``raw``: two wasmtime-py Stores on an engine with the same settings (fuel,
  epoch interruption ticking every 5 ms), one per thread.

The goal: the pool's speedup within 10% of raw Wasmtime's (``pool / raw``
paired by round close to 1). A 2-core machine shared with other work shows
less than 2x for both.
"""

from __future__ import annotations

import argparse
import os

from parallel import Raw, parallel, quartiles, serial, spin_module

import wasmdeck
from wasmdeck import Limits

ITERATIONS = 10_000_000
CALLS = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    wasm = spin_module(ITERATIONS)
    runtime = wasmdeck.Runtime()
    pooled = wasmdeck.Plugin(wasm, limits=Limits(fuel=10**12, timeout=60, pool=2), runtime=runtime)
    raw = Raw(wasm, ITERATIONS, epochs=True)
    raw_jobs = [raw.job(), raw.job()]
    pool_jobs = [lambda: pooled.call("spin"), lambda: pooled.call("spin")]
    for job in (*raw_jobs, *pool_jobs):
        job()  # warm: instances made, code paged in
    speedups: dict[str, list[float]] = {"pool": [], "raw": []}
    paired: list[float] = []
    for _ in range(args.rounds):
        round_speedup = {}
        for name, jobs in (("pool", pool_jobs), ("raw", raw_jobs)):
            one = serial(jobs, CALLS)
            two = parallel(jobs, CALLS, [], [])
            round_speedup[name] = one / two
            speedups[name].append(one / two)
        paired.append(round_speedup["pool"] / round_speedup["raw"])
    raw.close()
    pooled.close()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"two jobs of {CALLS} calls of {ITERATIONS:,} loop iterations, {args.rounds} rounds")
    for name, values in speedups.items():
        print(f"  speedup 1 -> 2 threads, {name:4}: {quartiles(values)}")
    print(f"  pool / raw, paired by round: {quartiles(paired)} (goal: within 10% of 1)")
    print(f"  instances the pool made: {len(pooled._pool.members) if pooled._pool else 1}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
