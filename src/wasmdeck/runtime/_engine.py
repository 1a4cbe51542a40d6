"""The runtime: one wasmtime engine, its configuration and its epoch clock."""

from __future__ import annotations

import math
import re
import threading
import weakref

import wasmtime

from .._errors import InvalidModule

__all__ = ["Runtime", "default_runtime"]

WASM_MAGIC = b"\0asm"
# A core module's version field; components carry a different one.
CORE_VERSION = b"\x01\x00\x00\x00"


class Runtime:
    """A wasmtime engine configured for sandboxed plugins.

    Fuel metering and epoch interruption are always on. One daemon thread
    advances the engine's epoch every ``tick`` seconds; a call's timeout is a
    number of ticks, so it is enforced within about one tick of the deadline.
    ``max_stack`` bounds the wasm stack of every plugin on this runtime.

    Plugins share a runtime unless given their own; a runtime is safe to use
    from many threads.
    """

    def __init__(self, *, max_stack: int = 512 * 1024, tick: float = 0.005) -> None:
        if type(max_stack) is not int or not 64 * 1024 <= max_stack <= 64 * 1024 * 1024:
            raise ValueError(f"max_stack must be 64 KiB to 64 MiB in bytes, not {max_stack!r}")
        if not 0.0005 <= tick <= 1.0:
            raise ValueError(f"tick must be 0.0005 to 1 seconds, not {tick!r}")
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.max_wasm_stack = max_stack
        # Linear memory never moves (growth stays inside its reservation), so
        # an instance's memory base address can be read once and kept.
        config.memory_may_move = False
        self.max_stack = max_stack
        self.tick = tick
        self.engine = wasmtime.Engine(config)
        self._stopped = threading.Event()
        self._ticker = threading.Thread(
            target=_advance_epoch,
            args=(weakref.ref(self.engine), self._stopped, tick),
            name="wasmdeck-epoch",
            daemon=True,
        )
        self._ticker.start()

    def deadline_ticks(self, timeout: float) -> int:
        """Epoch ticks that cover ``timeout`` seconds (one more for the partial tick)."""
        return math.ceil(timeout / self.tick) + 1

    def compile(self, wasm: bytes, *, name: str) -> wasmtime.Module:
        """Compile a core module, or raise ``InvalidModule`` naming what is wrong."""
        if wasm[:4] != WASM_MAGIC:
            raise InvalidModule(
                "not a WebAssembly module (it does not start with the \\0asm magic bytes)",
                plugin=name,
            )
        if wasm[4:8] != CORE_VERSION:
            raise InvalidModule(
                "this is a WebAssembly component or an unknown binary version; "
                "only core modules (wasm32-wasip1) are supported by this runtime",
                plugin=name,
            )
        try:
            return wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise InvalidModule(
                f"wasmtime rejected the module: {error_summary(exc)}", plugin=name
            ) from None

    def close(self) -> None:
        """Stop the epoch thread. Plugins on this runtime must not be called afterwards."""
        self._stopped.set()
        self._ticker.join()


def _advance_epoch(
    engine_ref: weakref.ref[wasmtime.Engine], stopped: threading.Event, tick: float
) -> None:
    # Holds only a weak reference, so an abandoned runtime's engine can be freed.
    while not stopped.wait(tick):
        engine = engine_ref()
        if engine is None:
            return
        engine.increment_epoch()
        del engine


def error_summary(exc: BaseException) -> str:
    """Wasmtime's message on one line: what failed, and its innermost cause."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    causes = [
        line for line in lines[1:] if line != "Caused by:" and not line.startswith("wasm backtrace")
    ]
    if not causes:
        return lines[0]
    cause = re.sub(r"^\d+:\s*", "", causes[-1])
    return f"{lines[0]}: {cause}"


_default: Runtime | None = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process-wide runtime that plugins use unless given their own."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Runtime()
        return _default
