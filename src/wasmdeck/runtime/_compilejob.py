"""Compiling in a child process, so that ``Limits.max_compile_cpu`` can be enforced.

wasmtime offers no way to interrupt a compile, and its cost can explode with
what a binary holds (one 256 KB function of loops took 12 s here, a 1 MB one
150 s). A child process can be killed: it builds an engine with the same
settings as the runtime's (so the artifact is valid for it), compiles, and
writes the serialized artifact to stdout; the parent deserializes it — the
same step a compile-cache hit takes. The child imports only wasmtime
(about 0.1 s), so only binaries with more than a little code go this way
(see ``Runtime._compile``); the result is cached like any compile.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from typing import Any

__all__ = ["compile_in_child"]

# The child: bound its own CPU time, read the binary from stdin, compile it,
# write the artifact. Past the soft CPU limit the kernel ends it (SIGXCPU).
_CHILD = """
import json, resource, sys, wasmtime
from wasmtime import component
kind, settings, cpu = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
config = wasmtime.Config()
for name, value in settings.items():
    setattr(config, name, value)
engine = wasmtime.Engine(config)
wasm = sys.stdin.buffer.read()
try:
    made = component.Component(engine, wasm) if kind == "component" else wasmtime.Module(engine, wasm)
except wasmtime.WasmtimeError as exc:
    sys.stderr.write(str(exc))
    sys.exit(3)
sys.stdout.buffer.write(made.serialize())
"""


def compile_in_child(
    wasm: bytes, kind: str, settings: dict[str, Any], cpu_seconds: float
) -> bytes | str | None:
    """The serialized artifact for ``wasm``, compiled by an engine built from ``settings``;
    wasmtime's message (a ``str``) if it rejects the binary; ``None`` if the
    compile was stopped at the limit.

    ``cpu_seconds`` bounds the compile's CPU time (all its threads), which
    does not grow when the machine is busy the way wall-clock time does (a
    componentize-py component: 13 CPU seconds, 4.5 s wall alone here, 52 s
    with the machine loaded 9-fold); wall-clock time is bounded at ten times
    that, as a backstop.
    """
    cpu = max(1, math.ceil(cpu_seconds))
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _CHILD, kind, json.dumps(settings), str(cpu)],
            input=wasm,
            capture_output=True,
            timeout=10 * cpu,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child
        return None
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return None
    if done.returncode == 3:
        return done.stderr.decode("utf-8", "replace")
    if done.returncode != 0 or not done.stdout:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [
            f"exit status {done.returncode}"
        ]
        raise RuntimeError(f"the compiling process failed: {reason[0]}")
    return done.stdout
