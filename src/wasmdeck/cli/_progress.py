"""A progress indicator for long steps (compiles, builds, toolchain installs).

On a terminal a line counts the seconds; elsewhere one line says what is
happening and one when it is done. Steps shorter than half a second show
nothing.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from .._text import terminal_safe

__all__ = ["duration", "spinner"]

SHOW_AFTER = 0.5


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.1f} s"


@contextlib.contextmanager
def spinner(what: str, *, done: str | None = None, stream: TextIO | None = None) -> Iterator[None]:
    """Show that ``what`` is under way once it has taken more than half a second.

    ``done`` is said when it finishes (default: "<what>: done in N s").
    """
    out = stream or sys.stderr
    what = terminal_safe(what)  # it names a plugin: the plugin's own words
    done = None if done is None else terminal_safe(done)
    finished = threading.Event()
    tty = out.isatty()
    started = time.monotonic()

    def report() -> None:
        if finished.wait(SHOW_AFTER):
            return
        if not tty:
            print(f"wasmdeck: {what}...", file=out, flush=True)
            return
        frames = "|/-\\"
        tick = 0
        while not finished.wait(0.1):
            elapsed = time.monotonic() - started
            print(f"\r{frames[tick % 4]} {what}: {elapsed:.1f} s", end="", file=out, flush=True)
            tick += 1

    reporter = threading.Thread(target=report, name="wasmdeck-progress", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        finished.set()
        reporter.join()
        elapsed = time.monotonic() - started
        if elapsed >= SHOW_AFTER:
            prefix = "\r\033[K" if tty else "wasmdeck: "
            message = done or f"{what}: done"
            print(f"{prefix}{message} in {duration(elapsed)}", file=out, flush=True)
