"""``wasmdeck compile`` and ``wasmdeck cache``: the persistent compile cache.

Also the progress indicator every command shows while a plugin compiles
for long (an 18 MB Python component takes seconds, once).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any, TextIO

from ..runtime import WASMTIME_VERSION, default_runtime
from ._progress import duration, spinner


def register(subparsers: Any) -> None:
    compile_ = subparsers.add_parser(
        "compile",
        help="compile plugins ahead of time into the compile cache",
        description="Compile each PLUGIN (a core module or a component) with this machine's "
        "wasmtime and keep the result in the compile cache, so that loading it later takes "
        "milliseconds. Plugins already in the cache are only checked.",
    )
    compile_.add_argument("plugins", nargs="+", metavar="PLUGIN", help="a plugin's .wasm file")
    compile_.set_defaults(handler=_compile)

    cache = subparsers.add_parser(
        "cache",
        help="show or clear the compile cache",
        description="The compile cache keeps compiled plugins under $WASMDECK_HOME/cache, "
        "keyed by the plugin's digest, the engine configuration and the wasmtime version. "
        "Its size is capped (WASMDECK_CACHE_SIZE, e.g. 500M or 2G; default 1G): past the cap "
        "the least recently used entries go, except those a running process has loaded.",
    )
    actions = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="where the cache is and what it holds")
    info.set_defaults(handler=_info)
    clear = actions.add_parser("clear", help="delete every compiled plugin in the cache")
    clear.set_defaults(handler=_clear)


def _compile(args: argparse.Namespace) -> int:
    runtime = default_runtime()
    if runtime.cache is None:  # pragma: no cover - the default runtime always has one
        raise ValueError("the compile cache is off")
    for name in args.plugins:
        path = Path(name)
        started = time.perf_counter()
        artifact, hit = runtime.load(path, name=path.name)
        elapsed = time.perf_counter() - started
        kind = "component" if type(artifact).__name__ == "Component" else "module"
        state = "already in the cache" if hit else "compiled"
        print(f"{path}: {kind}, {state} ({duration(elapsed)})")
    return 0


def _info(args: argparse.Namespace) -> int:
    runtime = default_runtime()
    cache = runtime.cache
    if cache is None:  # pragma: no cover
        raise ValueError("the compile cache is off")
    info = cache.info()
    entries = cache.entries()
    current = sum(1 for e in entries if e.get("engine") == runtime.fingerprint)
    print(f"directory: {info.directory}")
    print(f"wasmtime:  {WASMTIME_VERSION} (engine {runtime.fingerprint[:12]})")
    print(f"entries:   {info.entries} ({current} for this wasmtime and engine)")
    used = 100 * info.size / info.max_size
    print(f"size:      {_size(info.size)} of {_size(info.max_size)} ({used:.0f}% of the cap)")
    print(
        "cap:       "
        f"{_size(info.max_size)} (WASMDECK_CACHE_SIZE; least recently used entries go first)"
    )
    for entry in entries:
        mark = " " if entry.get("engine") == runtime.fingerprint else "-"
        print(
            f"  {mark} {entry.get('name') or '?':<32} {entry.get('kind', '?'):<9} "
            f"{_size(entry.get('artifact_size', 0)):>9}  wasmtime {entry.get('wasmtime', '?')}"
        )
    return 0


def _clear(args: argparse.Namespace) -> int:
    cache = default_runtime().cache
    if cache is None:  # pragma: no cover
        raise ValueError("the compile cache is off")
    removed = cache.clear()
    print(f"removed {removed} compiled plugin{'s' if removed != 1 else ''} from {cache.directory}")
    return 0


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


def progress(
    name: str, size: int, stream: TextIO | None = None
) -> contextlib.AbstractContextManager[None]:
    """The compile-cache miss indicator: ``spinner`` with what is compiling."""
    return spinner(
        f"compiling {name} ({_size(size)}), once: it is cached for next time",
        done=f"compiled {name}",
        stream=stream,
    )


def install_progress() -> None:
    """Show a progress indicator for long compiles in every command."""
    default_runtime().progress = progress
