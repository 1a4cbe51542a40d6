"""Per language: build time, .wasm size and call round trip of the json template.

Run: ``python benchmarks/languages.py [LANG...]`` (after ``pip install -e '.[test]'``
and ``wasmdeck toolchain --install``).

For each language ``wasmdeck`` builds plugins in, in one run: the ``json``
template is created in a fresh directory and built twice — the first build
("fresh") pays for the project's own first compile (the toolchain's shared
caches are whatever this machine has), the second ("rebuild") is an
unchanged rebuild — then its ``scale`` action is called through
``wasmdeck.Plugin.call``, in rounds interleaved across the languages. Calls
are reported as a ratio to the C template's, measured in the same run.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import wasmdeck
from wasmdeck.toolchains import LANGUAGES, BuildError, build_project, new_project

CONTEXT = wasmdeck.TriggerContext(velocity=100)


def calls_us(wasms: dict[str, Path], rounds: int = 15, batch: int = 200) -> dict[str, float]:
    """Median µs per call for each plugin, its rounds interleaved with the others'.

    Interleaving spreads the machine's noise over every language alike.
    """
    plugins = {lang: wasmdeck.Plugin(wasm) for lang, wasm in wasms.items()}
    times: dict[str, list[float]] = {lang: [] for lang in plugins}
    try:
        for plugin in plugins.values():
            for _ in range(batch):
                plugin.call("scale", {"max": 254}, CONTEXT)
        gc.disable()
        for _ in range(rounds):
            for lang, plugin in plugins.items():
                started = time.perf_counter_ns()
                for _ in range(batch):
                    plugin.call("scale", {"max": 254}, CONTEXT)
                times[lang].append((time.perf_counter_ns() - started) / batch / 1000)
    finally:
        gc.enable()
        for plugin in plugins.values():
            plugin.close()
    return {lang: statistics.median(values) for lang, values in times.items()}


def build_twice(lang: str, workdir: Path) -> tuple[float, float, Path] | str:
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
    return fresh, rebuild, wasm


def main() -> None:
    wanted = sys.argv[1:] or list(LANGUAGES)
    if "c" not in wanted:
        wanted.insert(0, "c")
    builds: dict[str, tuple[float, float, Path] | str] = {}
    with tempfile.TemporaryDirectory(prefix="wasmdeck-bench-") as scratch:
        for lang in wanted:
            print(f"building the json template in {LANGUAGES[lang].title}...", file=sys.stderr)
            builds[lang] = build_twice(lang, Path(scratch))
        built = {lang: b[2] for lang, b in builds.items() if not isinstance(b, str)}
        print("calling scale 3,000 times in each, interleaved...", file=sys.stderr)
        calls = calls_us(built)
        sizes = {lang: wasm.stat().st_size for lang, wasm in built.items()}
    c_call = calls.get("c", float("nan"))
    print(
        f"{'language':<16}{'fresh build s':>14}{'rebuild s':>11}{'wasm bytes':>14}"
        f"{'call µs':>10}{'call / C':>10}"
    )
    for lang, result in builds.items():
        if isinstance(result, str):
            print(f"{lang:<16}not built: {result}")
            continue
        fresh, rebuild, _ = result
        call = calls[lang]
        print(
            f"{lang:<16}{fresh:>14.1f}{rebuild:>11.1f}{sizes[lang]:>14,}{call:>10.1f}"
            f"{call / c_call:>10.1f}"
        )


if __name__ == "__main__":
    main()
