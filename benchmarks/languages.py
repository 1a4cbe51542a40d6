"""Per language: build time, .wasm size and call round trip of the json template.

Run: ``python benchmarks/languages.py [LANG...]`` (after ``pip install -e '.[test]'``
and ``wasmdeck toolchain --install``).

For each language ``wasmdeck`` builds plugins in, in one run: the ``json``
template is created in a fresh directory and built twice — the first build
("fresh") pays for the project's own first compile (the toolchain's shared
caches are whatever this machine has), the second ("rebuild") is an
unchanged rebuild — then its ``scale`` action is called 2,000 times through
``wasmdeck.Plugin.call``. Calls are reported as a ratio to the C template's,
measured in the same run.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import wasmdeck
from wasmdeck.build import LANGUAGES, BuildError, build_project, new_project

CONTEXT = wasmdeck.TriggerContext(velocity=100)


def call_us(wasm: Path) -> float:
    with wasmdeck.Plugin(wasm) as plugin:
        for _ in range(200):
            plugin.call("scale", {"max": 254}, CONTEXT)
        gc.disable()
        try:
            rounds = []
            for _ in range(10):
                started = time.perf_counter_ns()
                for _ in range(200):
                    plugin.call("scale", {"max": 254}, CONTEXT)
                rounds.append((time.perf_counter_ns() - started) / 200 / 1000)
        finally:
            gc.enable()
    return statistics.median(rounds)


def measure(lang: str, workdir: Path) -> tuple[float, float, int, float] | str:
    project = workdir / lang
    new_project(project, f"bench-{lang}", lang, "json")
    try:
        started = time.perf_counter()
        build_project(project)
        fresh = time.perf_counter() - started
        started = time.perf_counter()
        wasm = build_project(project)
        rebuild = time.perf_counter() - started
    except BuildError as exc:
        return str(exc).splitlines()[0]
    return fresh, rebuild, wasm.stat().st_size, call_us(wasm)


def main() -> None:
    wanted = sys.argv[1:] or list(LANGUAGES)
    if "c" not in wanted:
        wanted.insert(0, "c")
    results: dict[str, tuple[float, float, int, float] | str] = {}
    with tempfile.TemporaryDirectory(prefix="wasmdeck-bench-") as scratch:
        for lang in wanted:
            print(f"building the json template in {LANGUAGES[lang].title}...", file=sys.stderr)
            results[lang] = measure(lang, Path(scratch))
    c_call = results["c"][3] if not isinstance(results["c"], str) else float("nan")
    print(
        f"{'language':<16}{'fresh build s':>14}{'rebuild s':>11}{'wasm bytes':>14}"
        f"{'call µs':>10}{'call / C':>10}"
    )
    for lang, result in results.items():
        if isinstance(result, str):
            print(f"{lang:<16}not built: {result}")
            continue
        fresh, rebuild, size, call = result
        print(
            f"{lang:<16}{fresh:>14.1f}{rebuild:>11.1f}{size:>14,}{call:>10.1f}"
            f"{call / c_call:>10.1f}"
        )


if __name__ == "__main__":
    main()
