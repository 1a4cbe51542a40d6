"""What both plugin adapters share: a sandboxed Store, and failures as typed errors.

A plugin instance, core module or component, lives in its own Store with the
plugin's limits, fuel, epoch deadline and WASI context (stdio to logging,
the environment allowlist, granted preopens). When a call fails, wasmtime's
trap or error becomes one of the typed errors of ``_errors``, with the same
message whichever ABI the plugin speaks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import wasmtime
from wasmtime import TrapCode

from .._errors import (
    FuelLimitExceeded,
    MemoryLimitExceeded,
    PluginTrap,
    StackLimitExceeded,
    TableLimitExceeded,
    TimeLimitExceeded,
    WasmdeckError,
)
from ._engine import Runtime, error_summary
from ._hostapi import HostAPI
from ._limits import Limits, MiB
from ._shutdown import track_output
from ._stdio import LineLogger

__all__ = [
    "allowed_env",
    "describe_trap",
    "instantiation_error",
    "limit_error",
    "new_store",
    "trap_code_of",
]

TRAP_TEXT = {
    TrapCode.UNREACHABLE: "unreachable code reached",
    TrapCode.MEMORY_OUT_OF_BOUNDS: "out-of-bounds memory access",
    TrapCode.TABLE_OUT_OF_BOUNDS: "out-of-bounds table access",
    TrapCode.INDIRECT_CALL_TO_NULL: "indirect call to a null table entry",
    TrapCode.BAD_SIGNATURE: "indirect call with the wrong signature",
    TrapCode.INTEGER_OVERFLOW: "integer overflow",
    TrapCode.INTEGER_DIVISION_BY_ZERO: "integer divide by zero",
    TrapCode.BAD_CONVERSION_TO_INTEGER: "invalid conversion to integer",
}

# Wasmtime's wording of each trap ("wasm trap: <text>"), for errors that carry
# only a message: a component call reports its trap as a WasmtimeError.
_TRAP_WORDING = {
    "all fuel consumed by WebAssembly": TrapCode.OUT_OF_FUEL,
    "interrupt": TrapCode.INTERRUPT,
    "call stack exhausted": TrapCode.STACK_OVERFLOW,
    "wasm `unreachable` instruction executed": TrapCode.UNREACHABLE,
    "out of bounds memory access": TrapCode.MEMORY_OUT_OF_BOUNDS,
    "undefined element: out of bounds table access": TrapCode.TABLE_OUT_OF_BOUNDS,
    "uninitialized element": TrapCode.INDIRECT_CALL_TO_NULL,
    "indirect call type mismatch": TrapCode.BAD_SIGNATURE,
    "integer overflow": TrapCode.INTEGER_OVERFLOW,
    "integer divide by zero": TrapCode.INTEGER_DIVISION_BY_ZERO,
    "invalid conversion to integer": TrapCode.BAD_CONVERSION_TO_INTEGER,
}
_TRAP_LINE = re.compile(r"^(?:\d+:\s*)?wasm trap:\s*(.*)$")


def allowed_env(names: Iterable[str]) -> dict[str, str]:
    """The allowlisted variables that are set in this process's environment."""
    return {name: os.environ[name] for name in names if name in os.environ}


def new_store(
    runtime: Runtime,
    limits: Limits,
    host: HostAPI,
    env: dict[str, str],
    stdout: LineLogger,
    stderr: LineLogger,
    *,
    fuel: int,
    ticks: int,
    min_instances: int = 0,
) -> wasmtime.Store:
    """A Store with the plugin's limits, its WASI context, fuel and an epoch deadline.

    ``min_instances`` raises the instance limit for binaries made of several
    core instances (a component: their number is fixed when it is built).
    """
    store = wasmtime.Store(runtime.engine)
    # No memory_size: the host's memory enforces max_memory, and records the
    # grows it refuses (see _memory.MemoryLimit); the caller instantiates
    # inside its MemoryLimit's ``creating()``.
    store.set_limits(
        table_elements=limits.max_table_elements,
        instances=max(limits.max_instances, min_instances),
        tables=limits.max_tables,
        memories=limits.max_memories,
    )
    wasi = wasmtime.WasiConfig()
    wasi.env = list(env.items())
    for preopen in host.preopens:
        wasi.preopen_dir(str(preopen.host), preopen.guest, preopen.writable)
    # (released by wasmtime's I/O threads, which the exit waits for: _shutdown)
    wasi.stdout_custom = track_output(stdout.write)
    wasi.stderr_custom = track_output(stderr.write)
    store.set_wasi(wasi)
    store.set_fuel(fuel)
    store.set_epoch_deadline(ticks)
    return store


def instantiation_error(exc: wasmtime.WasmtimeError, limits: Limits, plugin: str) -> WasmdeckError:
    """Instantiation refused: over the memory or table limit, or a failure to start."""
    text = str(exc)
    if "memory" in text and ("limit" in text or "exceeds" in text):
        return MemoryLimitExceeded(
            f"its initial memory is larger than the {limits.max_memory / MiB:g} MiB "
            f"memory limit ({error_summary(exc)})",
            value=limits.max_memory,
            plugin=plugin,
        )
    if "table" in text and ("limit" in text or "exceeds" in text):
        return TableLimitExceeded(
            f"its initial table exceeds the limit of {limits.max_table_elements} "
            f"elements ({error_summary(exc)})",
            value=limits.max_table_elements,
            plugin=plugin,
        )
    return PluginTrap(f"could not be instantiated: {error_summary(exc)}", plugin=plugin)


def trap_code_of(message: str) -> tuple[TrapCode | None, str | None]:
    """The trap code and wasmtime's wording of the trap in an error message, if any."""
    for line in reversed(message.splitlines()):
        match = _TRAP_LINE.match(line.strip())
        if match:
            text = match.group(1).strip()
            return _TRAP_WORDING.get(text), text
    return None, None


def describe_trap(code: TrapCode | None, message: str) -> tuple[str, str | None]:
    """A trap in words for the plugin's user, and its code's name (``unreachable``, ...)."""
    name = code.name.lower() if code is not None else None
    if code in TRAP_TEXT:
        return TRAP_TEXT[code], name
    # Wasmtime puts the cause after the backtrace ("wasm trap: ..."); the
    # backtrace itself means nothing to the plugin's user.
    _, text = trap_code_of(message)
    if text:
        return text, name
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return (lines[-1] if lines else "trap"), name


def limit_error(
    code: TrapCode | None,
    *,
    limits: Limits,
    max_stack: int,
    where: str,
    plugin: str,
    action: str | None,
) -> WasmdeckError | None:
    """The limit a trap code means (fuel, timeout, stack), or None for other traps."""
    if code == TrapCode.OUT_OF_FUEL:
        return FuelLimitExceeded(
            f"ran out of fuel{where}: used its whole budget of {limits.fuel:,} (fuel limit)",
            value=limits.fuel,
            plugin=plugin,
            action=action,
        )
    if code == TrapCode.INTERRUPT:
        return TimeLimitExceeded(
            f"stopped{where} after running past its {limits.timeout:g} s time limit (timeout)",
            value=limits.timeout,
            plugin=plugin,
            action=action,
        )
    if code == TrapCode.STACK_OVERFLOW:
        return StackLimitExceeded(
            f"overflowed its {max_stack // 1024} KiB wasm stack{where} "
            "(max_stack; deep or unbounded recursion?)",
            value=max_stack,
            plugin=plugin,
            action=action,
        )
    return None
