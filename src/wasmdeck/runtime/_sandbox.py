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
from . import _capi as capi
from ._engine import Runtime, error_summary
from ._hostapi import HostAPI
from ._limits import Limits, MiB
from ._stdio import LineLogger

__all__ = [
    "WasiSetup",
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


class WasiSetup:
    """A plugin's WASI context, prepared once and applied to each new Store.

    The environment allowlist and the granted preopens are encoded once and
    stdout/stderr go to the plugin's ``LineLogger``s through two C callbacks
    made once (wasmtime-py's ``WasiConfig`` builds all of it again per
    store). A ``wasi_config_t`` cannot be reused: the store takes it over.
    """

    __slots__ = ("_env", "_names", "_preopens", "_stderr", "_stdout", "_values")

    def __init__(
        self, env: dict[str, str], host: HostAPI, stdout: LineLogger, stderr: LineLogger
    ) -> None:
        self._env = len(env)
        self._names = capi.char_pointers([name.encode() for name in env])
        self._values = capi.char_pointers([value.encode() for value in env.values()])
        self._preopens = [
            (str(p.host).encode(), p.guest.encode(), p.writable) for p in host.preopens
        ]
        # Looked up at each write: the loggers are renamed once metadata names the plugin.
        self._stdout = capi.output_callback(lambda data: stdout.write(data))
        self._stderr = capi.output_callback(lambda data: stderr.write(data))

    def apply(self, ctx: int) -> None:
        """Give the store at ``ctx`` a fresh WASI context."""
        config = capi.wasi_config_new()
        if self._env and not capi.wasi_config_set_env(config, self._env, self._names, self._values):
            raise wasmtime.WasmtimeError("could not set the WASI environment")
        for host_path, guest_path, writable in self._preopens:
            if not capi.wasi_config_preopen_dir(config, host_path, guest_path, writable):
                raise wasmtime.WasmtimeError(
                    f"could not open the granted directory {host_path.decode()!r}"
                )
        capi.wasi_config_set_stdout_custom(config, self._stdout, None, None)
        capi.wasi_config_set_stderr_custom(config, self._stderr, None, None)
        error = capi.context_set_wasi(ctx, config)
        if error:
            raise capi.take_error(error)  # type: ignore[misc]


def new_store(
    runtime: Runtime,
    limits: Limits,
    wasi: WasiSetup | None,
    *,
    fuel: int,
    ticks: int,
    min_instances: int = 0,
    payload_helpers: bool = False,
) -> capi.OwnedStore:
    """A store with the plugin's limits, its WASI context, fuel and an epoch deadline.

    ``min_instances`` raises
    the instance limit for binaries made of several core instances (a
    component: their number is fixed when it is built). ``payload_helpers``
    makes room for the two helper instances of ``_payload`` (one memory, one
    table), on top of what the plugin may use.
    """
    extra = 1 if payload_helpers else 0
    # No memory_size: the host's memory enforces max_memory and records the
    # grows it refuses (see _memory.MemoryLimit); the caller instantiates
    # inside its MemoryLimit's ``creating()``.
    store = capi.new_store(
        runtime.engine,
        runtime.engine_address,
        table_elements=limits.max_table_elements,
        instances=max(limits.max_instances, min_instances) + 2 * extra,
        tables=limits.max_tables + extra,
        memories=limits.max_memories + extra,
    )
    ctx = store.context
    if wasi is not None:  # None: the module imports no WASI function
        wasi.apply(ctx)
    error = capi.set_fuel(ctx, fuel)
    if error:
        raise capi.take_error(error)  # type: ignore[misc]
    capi.set_epoch_deadline(ctx, ticks)
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
