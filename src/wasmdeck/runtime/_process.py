"""Running programs for plugins granted ``process``: argv only, never a shell.

A grant names a program (``process:git`` or ``process:/usr/bin/git``); it is
resolved to an absolute, symlink-free path when the plugin loads. A request
may run only a program whose resolved path is granted, with a scrubbed
environment, a timeout and a cap on captured output.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from ._netclient import HostRequestError, decode_body, encode_body

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
        timeout_ms = request.get("timeout_ms")
        if timeout_ms is not None and (not isinstance(timeout_ms, int) or timeout_ms <= 0):
            raise HostRequestError("invalid_request", "timeout_ms must be a positive integer")
        timeout = min((timeout_ms or 10_000) / 1000, deadline - time.monotonic())
        if timeout <= 0:
            raise HostRequestError("timeout", "the call's time limit is already used up")
        try:
            child = subprocess.Popen(
                [path, *argv[1:]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=SCRUBBED_ENV,
                cwd="/",
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise HostRequestError("process", f"cannot start {argv[0]!r}: {exc.strerror}") from None
        stdout, stderr, truncated, timed_out = _communicate(child, stdin, timeout, max_output)
        result: dict[str, Any] = {"exit_code": child.returncode}
        result.update(encode_body(stdout, "stdout"))
        result.update(encode_body(stderr, "stderr"))
        if truncated:
            result["truncated"] = True
        if timed_out:
            raise HostRequestError(
                "timeout", f"{argv[0]!r} did not finish within {timeout:.3g} s and was killed"
            )
        return result


def _communicate(
    child: subprocess.Popen[bytes], stdin: bytes, timeout: float, cap: int
) -> tuple[bytes, bytes, bool, bool]:
    """Feed stdin, collect at most ``cap`` bytes of each stream, kill at the deadline."""
    assert child.stdin and child.stdout and child.stderr
    end = time.monotonic() + timeout
    buffers = {child.stdout: bytearray(), child.stderr: bytearray()}
    pending_in = memoryview(stdin)
    truncated = timed_out = False
    with selectors.DefaultSelector() as selector:
        for stream in buffers:
            selector.register(stream, selectors.EVENT_READ)
        if pending_in:
            selector.register(child.stdin, selectors.EVENT_WRITE)
        else:
            child.stdin.close()
        while selector.get_map():
            left = end - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(left):
                if key.fileobj is child.stdin:
                    try:
                        written = os.write(child.stdin.fileno(), pending_in[:65536])
                    except BrokenPipeError:
                        written = len(pending_in)
                    pending_in = pending_in[written:]
                    if not pending_in:
                        selector.unregister(child.stdin)
                        child.stdin.close()
                    continue
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
    if timed_out or truncated:
        child.kill()
    try:
        child.wait(timeout=max(end - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        timed_out = True
    for stream in (child.stdin, child.stdout, child.stderr):
        if not stream.closed:
            stream.close()
    return bytes(buffers[child.stdout]), bytes(buffers[child.stderr]), truncated, timed_out
