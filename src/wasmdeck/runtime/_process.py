"""Running programs for plugins granted ``process``: argv only, never a shell.

A grant names a program (``process:git`` or ``process:/usr/bin/git``); it is
resolved to an absolute, symlink-free path when the plugin loads. A request
may run only a program whose resolved path is granted, with a scrubbed
environment, a timeout and a cap on captured output.

The program starts in a session (and process group) of its own; when it
exits, times out or the call's deadline passes, the whole group is killed,
so nothing it started in the background outlives the call.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from ._deadline import DeadlinePassed
from ._netclient import HostRequestError, RequestBudget, decode_body, encode_body

__all__ = ["ProcessPolicy"]

# What a child process sees of the environment: enough to find programs, nothing else.
SCRUBBED_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def _resolve(program: str) -> str | None:
    found = program if os.path.isabs(program) else shutil.which(program, path=SCRUBBED_ENV["PATH"])
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        return None
    return os.path.realpath(found)


class ProcessPolicy:
    def __init__(self, scopes: list[str]) -> None:
        self.allowed: dict[str, str] = {}  # resolved path -> the grant that named it
        for scope in scopes:
            path = _resolve(scope)
            if path is None:
                raise ValueError(
                    f"process grant {scope!r}: no executable program by that name or path"
                )
            self.allowed[path] = scope

    def run(
        self, request: Mapping[str, Any], *, deadline: float, max_output: int
    ) -> dict[str, Any]:
        argv = request.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise HostRequestError("invalid_request", "argv must be a non-empty list of strings")
        if any("\0" in a for a in argv):
            raise HostRequestError("invalid_request", "arguments must not contain NUL bytes")
        path = _resolve(argv[0])
        if path is None or path not in self.allowed:
            granted = ", ".join(self.allowed.values()) or "nothing"
            raise HostRequestError(
                "denied",
                f"running {argv[0]!r} is not granted (granted: {granted}); grant it with --grant process:{argv[0]}",
            )
        stdin = decode_body(request, "stdin", "stdin_base64")
        budget = RequestBudget(deadline, request.get("timeout_ms"))
        try:
            child = subprocess.Popen(
                [path, *argv[1:]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=SCRUBBED_ENV,
                cwd="/",
                close_fds=True,
                start_new_session=True,  # its own process group: killed as a whole
            )
        except OSError as exc:
            raise HostRequestError("process", f"cannot start {argv[0]!r}: {exc.strerror}") from None
        try:
            stdout, stderr, truncated, timed_out = _communicate(
                child, stdin, budget.end, max_output
            )
        finally:
            _kill_group(child)
        if timed_out:
            error = budget.expired(f"running {argv[0]!r}")
            if isinstance(error, DeadlinePassed):
                raise error
            raise HostRequestError("timeout", f"{argv[0]!r} did not finish in time and was killed")
        result: dict[str, Any] = {"exit_code": child.returncode}
        result.update(encode_body(stdout, "stdout"))
        result.update(encode_body(stderr, "stderr"))
        if truncated:
            result["truncated"] = True
        return result


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """Kill the child's process group, then reap the child.

    The child is still unreaped here (``_communicate`` waits without
    reaping), so its pid, which is the group's id, cannot have been reused.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None and not stream.closed:
            stream.close()


def _exited(child: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited, without reaping it."""
    try:
        info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _communicate(
    child: subprocess.Popen[bytes], stdin: bytes, end: float, cap: int
) -> tuple[bytes, bytes, bool, bool]:
    """Feed stdin and collect at most ``cap`` bytes of each stream until ``end``.

    Stops when the child has exited and its pipes are drained, or, if
    something it started keeps the pipes open, as soon as the child itself
    has exited (it is watched through a pidfd). Returns (stdout, stderr,
    truncated, timed_out); never reaps the child (see ``_kill_group``).
    """
    assert child.stdin and child.stdout and child.stderr
    buffers = {child.stdout: bytearray(), child.stderr: bytearray()}
    pending_in = memoryview(stdin)
    truncated = timed_out = False
    try:
        pidfd: int | None = os.pidfd_open(child.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: the child's exit is polled
        pidfd = None
    try:
        with selectors.DefaultSelector() as selector:
            for stream in buffers:
                selector.register(stream, selectors.EVENT_READ)
            if pidfd is not None:
                selector.register(pidfd, selectors.EVENT_READ)
            if pending_in:
                selector.register(child.stdin, selectors.EVENT_WRITE)
            else:
                child.stdin.close()
            exited = False
            while any(key.fileobj in buffers for key in selector.get_map().values()):
                left = end - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                events = selector.select(0 if exited else left)
                if exited and not events:
                    break  # the child is gone; what is left open belongs to its group
                for key, _ in events:
                    if key.fileobj is pidfd:
                        selector.unregister(pidfd)
                        exited = True
                    elif key.fileobj is child.stdin:
                        try:
                            written = os.write(child.stdin.fileno(), pending_in[:65536])
                        except BrokenPipeError:
                            written = len(pending_in)
                        pending_in = pending_in[written:]
                        if not pending_in:
                            selector.unregister(child.stdin)
                            child.stdin.close()
                    else:
                        chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                        if not chunk:
                            selector.unregister(key.fileobj)
                            continue
                        buffer = buffers[key.fileobj]  # type: ignore[index]
                        room = cap - len(buffer)
                        if len(chunk) > room:
                            truncated = True
                        buffer += chunk[: max(room, 0)]
                if truncated:
                    break
        if not (timed_out or truncated):
            # The pipes are closed: wait (unreaped) for the exit, within the time left.
            while not _exited(child):
                left = end - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if pidfd is not None:
                    with selectors.DefaultSelector() as waiter:
                        waiter.register(pidfd, selectors.EVENT_READ)
                        waiter.select(left)
                else:
                    time.sleep(min(left, 0.005))
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return bytes(buffers[child.stdout]), bytes(buffers[child.stderr]), truncated, timed_out
