"""Running a toolchain: one subprocess, its output kept for the error message."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

__all__ = ["BuildError", "Progress", "ToolchainMissing", "run_tool"]

# Wraps a long step: called with what is happening ("cargo build"), it returns
# a context manager for the step's duration. The CLI shows a spinner with it.
Progress = Callable[[str], AbstractContextManager[object]]


class BuildError(Exception):
    """A build failed; the message carries the toolchain's output."""


class ToolchainMissing(BuildError):
    """The language's toolchain is not installed; the message says how to get it."""


def no_progress(_what: str) -> AbstractContextManager[object]:
    return nullcontext()


def run_tool(
    command: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    progress: Progress = no_progress,
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
