"""Every script in benchmarks/ runs, at its smallest size, to its last figure.

The benchmarks are not timed tests (README, "Speed"): nothing here judges a
figure. What this catches is a benchmark that no longer runs against the
code it measures: a helper renamed under it, a signature it patches that
changed, a window that leaves replies uncounted. Each script runs as a user
runs it, in a process of its own, with arguments that make it short; it
must exit 0, print no traceback, and print the line that carries its
result (``market.py`` on SQLite and on the PostgreSQL server it starts, as
the marketplace tests do: tests/marketfix.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# script, its arguments for a short run, a text its output ends with a figure after.
CASES = [
    ("bus.py", ["--rounds", "1"], "ratio plugin call / direct call"),
    ("call_overhead.py", ["--rounds", "1"], "ratio_extism_over_wasmdeck_1MB="),
    ("component_load.py", [], "python_load_plus_instantiate_ms="),
    ("deck_reload.py", ["--reloads", "2", "--bindings", "20"], "reload_ms="),
    ("instance_policy.py", ["--rounds", "1"], "per_call_over_persistent="),
    ("languages.py", [], "assemblyscript"),
    (
        "market.py",
        ["--packages", "10", "--downloads", "100", "--requests", "20"],
        "install from the marketplace",
    ),
    ("midi_latency.py", ["--notes", "20"], "added_p50_ms="),
    (
        "parallel.py",
        ["--rounds", "1", "--long-iterations", "200000", "--short-calls", "10"],
        "wasmdeck_over_raw_speedup_short=",
    ),
    ("pool.py", ["--rounds", "1"], "pool / raw, paired by round"),
    ("reload.py", ["--reloads", "2", "--rate", "200"], "idle / raw floor"),
    (
        "sustained_load.py",
        ["--seconds", "3", "--window", "2", "--floor-seconds", "1", "--rate", "300"],
        "p99_ms_min=",
    ),
    ("timeouts.py", ["--runs", "1"], '"wasm loop"'),
    ("ui_updates.py", ["--plugins", "2", "--pages", "2"], "this tree"),
    ("webhook_throughput.py", ["--requests", "40", "--rounds", "1"], "ratio_throughput_"),
]


def test_every_benchmark_has_a_case() -> None:
    scripts = {path.name for path in BENCHMARKS.glob("*.py") if not path.name.startswith("_")}
    assert scripts == {script for script, _args, _marker in CASES}


@pytest.mark.toolchain
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("script", "args", "marker"), CASES, ids=[c[0] for c in CASES])
def test_benchmark_runs(script: str, args: list[str], marker: str, tmp_path: Path) -> None:
    env = {**os.environ, "WASMDECK_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=BENCHMARKS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    assert marker in done.stdout, f"{script} did not print {marker!r}:\n{output[-4000:]}"
