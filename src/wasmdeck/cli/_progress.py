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

__all__ = ["ProgressBar", "duration", "spinner"]

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


class ProgressBar:
    """A download's progress: on a terminal a bar redrawn in place (at most ten times
    a second), elsewhere one line when it starts and one when it ends."""

    WIDTH = 30

    def __init__(self, what: str, *, stream: TextIO | None = None) -> None:
        self.what = terminal_safe(what)
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0
        self._done = 0
        self._total = 0

    def __call__(self, done: int, total: int) -> None:
        first = self._total == 0
        self._done, self._total = done, max(total, 1)
        if not self.tty:
            if first:
                print(f"wasmdeck: downloading {self.what} ({_size(total)})", file=self.out)
            return
        now = time.monotonic()
        if now - self._drawn < 0.1 and done < total:
            return
        self._drawn = now
        filled = self.WIDTH * done // self._total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        percent = 100 * done // self._total
        print(
            f"\r{self.what} [{bar}] {percent:3d}% {_size(done)}/{_size(total)}",
            end="",
            file=self.out,
            flush=True,
        )

    def finish(self) -> None:
        elapsed = time.monotonic() - self.started
        prefix = "\r\033[K" if self.tty else "wasmdeck: "
        print(
            f"{prefix}downloaded {self.what} ({_size(self._done)}) in {duration(elapsed)}",
            file=self.out,
            flush=True,
        )


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n / 1024:.1f} kB"
