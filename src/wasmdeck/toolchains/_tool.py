"""Running a toolchain: one subprocess, its output kept for the error message."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from .._errors import BuildError, ToolchainMissing

__all__ = [
    "BuildError",
    "BuildProgress",
    "ToolchainMissing",
    "atomic_output",
    "pip_install",
    "run_tool",
]

# Wraps a long step: called with what is happening ("cargo build"), it returns
# a context manager for the step's duration. The CLI shows a spinner with it.
BuildProgress = Callable[[str], AbstractContextManager[object]]


def no_progress(_what: str) -> AbstractContextManager[object]:
    return nullcontext()


def run_tool(
    command: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    progress: BuildProgress = no_progress,
    timeout: float = 1800,
) -> str:
    """Run one toolchain command; return its output, or raise BuildError with it.

    ``what`` names the step for people ("cargo build", "npm install").
    ``env`` is the whole environment (default: this process's).
    """
    try:
        with progress(what):
            result = subprocess.run(
                [os.fspath(c) for c in command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
            )
    except FileNotFoundError as exc:
        raise ToolchainMissing(f"{what}: {exc.filename} is not installed") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what} did not finish within {timeout:g} s") from None
    output = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
    if result.returncode != 0:
        raise BuildError(f"{what} failed (exit code {result.returncode}):\n{output}")
    return output


@contextlib.contextmanager
def atomic_output(output: Path, *, partial_name: str | None = None) -> Iterator[Path]:
    """A path beside ``output`` for a toolchain to write the module to.

    When the block finishes it is moved onto ``output`` in one step; when the
    block fails it is removed: a half-written module is never left behind.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(partial_name or output.name + ".partial")
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)


def pip_install(requirement: str, progress: BuildProgress) -> None:
    """Install a toolchain that PyPI carries into this Python (``ziglang==0.17.1``, see _pins.py)."""
    run_tool(
        [sys.executable, "-m", "pip", "install", "--quiet", requirement],
        what=f"pip install {requirement}",
        progress=progress,
    )
