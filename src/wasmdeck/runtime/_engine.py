"""The runtime: one wasmtime engine, its configuration and its epoch clock."""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import platform
import re
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from importlib import metadata
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component

from .._errors import InvalidModule, ModuleTooLarge
from . import _capi as capi
from ._cache import CompileCache, Kind, Lookup
from ._compilejob import compile_in_child
from ._limits import Limits
from ._memory import install as install_host_memory
from ._wasmscan import WasmShape, scan

__all__ = ["Artifact", "Runtime", "default_runtime", "expire_all_deadlines"]

WASM_MAGIC = b"\0asm"
# The version field: a core module's, and a component's (version 0xd, layer 1).
CORE_VERSION = b"\x01\x00\x00\x00"
COMPONENT_VERSION = b"\x0d\x00\x01\x00"
WASMTIME_VERSION = metadata.version("wasmtime")

Artifact = wasmtime.Module | component.Component
# Binaries with more code than this compile in a child process that
# max_compile_cpu can stop; below it a compile takes about a second at most
# (64 KB of loops in one function: 1.2 s here).
IN_PROCESS_CODE_BYTES = 64 * 1024
# Called with (plugin name, wasm size) around a compile that missed the cache.
CompileProgress = Callable[[str, int], AbstractContextManager[object]]


class Runtime:
    """A wasmtime engine configured for sandboxed plugins.

    Fuel metering and epoch interruption are always on. One daemon thread
    advances the engine's epoch every ``tick`` seconds; a call's timeout is a
    number of ticks, so it is enforced within about one tick of the deadline.
    ``max_stack`` bounds the wasm stack of every plugin on this runtime.

    Compiled plugins are kept in ``cache`` (a ``CompileCache``; by default
    the one under ``$WASMDECK_HOME/cache``; ``None`` turns caching off).
    With a cache, plugins of one binary loaded while another of it is in
    use share its compiled artifact.
    ``progress``, when set, wraps every compile that misses the cache (the
    CLI shows a progress indicator with it).

    Plugins share a runtime unless given their own; a runtime is safe to use
    from many threads.
    """

    def __init__(
        self,
        *,
        max_stack: int = 512 * 1024,
        tick: float = 0.005,
        cache: CompileCache | bool | None = True,
    ) -> None:
        if type(max_stack) is not int or not 64 * 1024 <= max_stack <= 64 * 1024 * 1024:
            raise ValueError(f"max_stack must be 64 KiB to 64 MiB in bytes, not {max_stack!r}")
        if not 0.0005 <= tick <= 1.0:
            raise ValueError(f"tick must be 0.0005 to 1 seconds, not {tick!r}")
        # Linear memory never moves (growth stays inside its reservation), so
        # an instance's memory base address can be read once and kept. The
        # host allocates it (see _memory: the memory limit is enforced there),
        # which rules out wasmtime's copy-on-write memory images.
        settings: dict[str, object] = {
            "consume_fuel": True,
            "epoch_interruption": True,
            "max_wasm_stack": max_stack,
            "memory_may_move": False,
            "memory_init_cow": False,
        }
        config = wasmtime.Config()
        for name, value in settings.items():
            setattr(config, name, value)
        install_host_memory(config)  # (not a setting compiled code depends on)
        self.max_stack = max_stack
        self._settings = settings  # a compiling child process builds the same engine
        self.tick = tick
        self.engine = wasmtime.Engine(config)
        self.engine_address = capi.pointer_of(self.engine)  # for capi.new_store
        # What compiled code depends on: artifacts are shared only between
        # engines with the same fingerprint.
        self.fingerprint = hashlib.sha256(
            json.dumps(
                {
                    "wasmtime": WASMTIME_VERSION,
                    "machine": platform.machine(),
                    "host_memory": "wasmdeck",
                    **settings,
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()[:32]
        self.cache = CompileCache() if cache is True else (cache or None)
        # The artifacts of this runtime in use, by cache key: a binary loaded
        # again while one is (a reload of the same file, a second deck entry)
        # shares its compiled code instead of deserializing it again
        # (~3 ms for a Python component; benchmarks/reload.py).
        self._shared: weakref.WeakValueDictionary[str, Artifact] = weakref.WeakValueDictionary()
        # The cache key of each artifact from the cache or stored in it (notes).
        self._keys: weakref.WeakKeyDictionary[Artifact, str] = weakref.WeakKeyDictionary()
        self.progress: CompileProgress | None = None
        self._max_ticks = 0  # the longest deadline handed out (expire_deadlines)
        self._stopped = threading.Event()
        self.epoch = EpochCount()
        self._ticker = threading.Thread(
            target=_advance_epoch,
            args=(self.engine, self.epoch, self._stopped, tick),
            name="wasmdeck-epoch",
            daemon=True,
        )
        self._ticker.start()
        weakref.finalize(self, self._stopped.set)
        _running.add(self)

    def deadline_ticks(self, timeout: float) -> int:
        """Epoch ticks that cover ``timeout`` seconds.

        One more for the partial tick, and one more because a store's
        deadline is re-armed only when ``epoch`` has moved (``EpochCount``):
        a deadline armed just before a tick may be kept for the next call.
        """
        ticks = math.ceil(timeout / self.tick) + 2
        self._max_ticks = max(self._max_ticks, ticks)
        return ticks

    def expire_deadlines(self) -> None:
        """Pass every epoch deadline set so far: wasm running now traps at once.

        For interpreter exit (see _shutdown); up to a million ticks (~1 s),
        beyond that a call's own deadline ends it.
        """
        increment = self.engine.increment_epoch
        count = min(self._max_ticks + 1, 1_000_000)
        self.epoch.value += count  # first, as the epoch thread does
        for _ in range(count):
            increment()

    def compile(
        self, source: bytes | os.PathLike[str], *, name: str, limits: Limits | None = None
    ) -> Artifact:
        """Compile a core module or a component (``source`` is its bytes or its file).

        Uses the compile cache when the runtime has one; raises
        ``InvalidModule`` naming what is wrong with the binary, or the limit
        of ``limits`` (module size, function count, function size) it is over.
        """
        return self.load(source, name=name, limits=limits)[0]

    def load(
        self, source: bytes | os.PathLike[str], *, name: str, limits: Limits | None = None
    ) -> tuple[Artifact, bool]:
        """``compile``, also telling whether the artifact came from the cache."""
        limits = limits or Limits()
        cache = self.cache
        path = None if isinstance(source, bytes | bytearray) else Path(source)
        if cache is not None and path is not None:
            known = cache.known_path(path, self.fingerprint)
            if known is not None:
                hit = self._shared.get(known.key) or self._fetch(cache, known)
                if hit is not None:
                    self._keys[hit] = known.key
                    return hit, True
        if path is None:
            wasm, st = bytes(source), None  # type: ignore[arg-type]
        else:
            st = path.stat()
            if st.st_size > limits.max_module_bytes:  # refused before it is read
                _check_size(st.st_size, limits, name)
            wasm = path.read_bytes()
        kind = _kind(wasm, name)
        _check_size(len(wasm), limits, name)
        if cache is None:
            return self._compile(wasm, kind, name, limits), False
        lookup = Lookup(
            CompileCache.key(self.fingerprint, kind, digest := hashlib.sha256(wasm).hexdigest()),
            digest,
            len(wasm),
            kind,
        )
        if path is not None and st is not None:
            cache.remember_path(path, lookup, st)
        hit = self._shared.get(lookup.key) or self._fetch(cache, lookup)
        if hit is not None:
            self._keys[hit] = lookup.key
            return hit, True
        artifact = self._compile(wasm, kind, name, limits)
        cache.store(lookup, self.fingerprint, WASMTIME_VERSION, artifact.serialize(), name=name)
        self._shared[lookup.key] = artifact
        self._keys[artifact] = lookup.key
        return artifact, False

    def noted(self, artifact: Artifact, name: str) -> Any:
        """The compile cache's note ``name`` about ``artifact`` (None: none, or no cache)."""
        key, cache = self._keys.get(artifact), self.cache
        return None if key is None or cache is None else cache.notes(key).get(name)

    def note(self, artifact: Artifact, name: str, value: Any) -> None:
        """Keep ``value`` (JSON) as the compile cache's note ``name`` about ``artifact``."""
        key, cache = self._keys.get(artifact), self.cache
        if key is not None and cache is not None:
            cache.note(key, name, value)

    def _fetch(self, cache: CompileCache, lookup: Lookup) -> Artifact | None:
        hit: Artifact | None = cache.fetch(
            lookup, self.fingerprint, WASMTIME_VERSION, _loader(self, lookup)
        )
        if hit is not None:
            self._shared[lookup.key] = hit
        return hit

    def _compile(self, wasm: bytes, kind: Kind, name: str, limits: Limits) -> Artifact:
        shape = _check_shape(wasm, kind, limits, name)  # only on a cache miss: it reads it all
        progress = self.progress(name, len(wasm)) if self.progress else nullcontext()
        try:
            with progress:
                if shape.code_bytes <= IN_PROCESS_CODE_BYTES:
                    if kind == "component":
                        return component.Component(self.engine, wasm)
                    return wasmtime.Module(self.engine, wasm)
                # Only a child process can be stopped at max_compile_cpu (_compilejob.py).
                data = compile_in_child(wasm, kind, self._settings, limits.max_compile_cpu)
                if data is None:
                    raise ModuleTooLarge(
                        f"compiling the {kind} used more than its max_compile_cpu limit "
                        f"({limits.max_compile_cpu:g} CPU seconds); it was stopped",
                        limit="max_compile_cpu",
                        plugin=name,
                    )
                if isinstance(data, str):  # wasmtime's reason, from the child
                    raise wasmtime.WasmtimeError(data)
                if kind == "component":
                    return component.Component.deserialize(self.engine, data)
                return wasmtime.Module.deserialize(self.engine, data)
        except wasmtime.WasmtimeError as exc:
            raise InvalidModule(
                f"wasmtime rejected the {kind}: {error_summary(exc)}", plugin=name
            ) from None

    def close(self) -> None:
        """Stop the epoch thread. Plugins on this runtime must not be called afterwards."""
        self._stopped.set()
        self._ticker.join()


def _kind(wasm: bytes, name: str) -> Kind:
    if wasm[:4] != WASM_MAGIC:
        raise InvalidModule(
            "not a WebAssembly module (it does not start with the \\0asm magic bytes)",
            plugin=name,
        )
    if wasm[4:8] == CORE_VERSION:
        return "module"
    if wasm[4:8] == COMPONENT_VERSION:
        return "component"
    raise InvalidModule(
        f"unknown WebAssembly binary version {wasm[4:8].hex()}: neither a core module "
        "(wasm32-wasip1) nor a component (WASI preview 2)",
        plugin=name,
    )


def _check_size(size: int, limits: Limits, name: str) -> None:
    if size > limits.max_module_bytes:
        raise ModuleTooLarge(
            f"the binary is {size:,} bytes, more than its max_module_bytes limit "
            f"({limits.max_module_bytes:,})",
            limit="max_module_bytes",
            plugin=name,
        )


def _check_shape(wasm: bytes, kind: Kind, limits: Limits, name: str) -> WasmShape:
    """Refuse, before compiling, a binary whose compile time would be out of bounds."""
    _check_size(len(wasm), limits, name)
    shape = scan(wasm)
    if shape.functions > limits.max_functions:
        raise ModuleTooLarge(
            f"the {kind} defines {shape.functions:,} functions, more than its "
            f"max_functions limit ({limits.max_functions:,})",
            limit="max_functions",
            plugin=name,
        )
    if shape.largest_function > limits.max_function_bytes:
        raise ModuleTooLarge(
            f"the {kind} has a {shape.largest_function:,}-byte function, more than its "
            f"max_function_bytes limit ({limits.max_function_bytes:,})",
            limit="max_function_bytes",
            plugin=name,
        )
    return shape


def _loader(runtime: Runtime, lookup: Lookup) -> Callable[[str], Artifact]:
    if lookup.kind == "component":
        return lambda path: component.Component.deserialize_file(runtime.engine, path)
    return lambda path: wasmtime.Module.deserialize_file(runtime.engine, path)


class EpochCount:
    """How many times the engine's epoch has been advanced, readable without a C call.

    The adapters compare it with its value when they last armed a store's
    epoch deadline, and skip re-arming while it has not moved: the deadline
    then still lies ``deadline_ticks`` (less at most one tick, which
    ``deadline_ticks`` adds) ahead. It is raised before the engine's epoch,
    so it is never behind it.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def _advance_epoch(
    engine: wasmtime.Engine, epoch: EpochCount, stopped: threading.Event, tick: float
) -> None:
    # The thread owns a reference to the engine and stops when its runtime is
    # collected (the finalizer in Runtime.__init__), dropping the engine last.
    # (Through a weak reference, the engine could be freed mid-tick: its
    # __del__ releases the GIL while wasmtime deletes it, and the weak
    # reference still answers then; a tick against it crashed the process.)
    address, increment = capi.pointer_of(engine), capi.increment_epoch
    while not stopped.wait(tick):
        epoch.value += 1
        increment(address)  # engine.increment_epoch(), keeping the GIL (see _capi)


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
# Runtimes whose epoch thread runs. At exit the threads are stopped before the
# interpreter tears down wasmtime's objects: a tick against a half-destroyed
# engine would crash the process after all its work was done.
_running: weakref.WeakSet[Runtime] = weakref.WeakSet()


@atexit.register
def _stop_epoch_threads() -> None:
    for runtime in list(_running):
        runtime.close()


def expire_all_deadlines() -> None:
    """``expire_deadlines`` on every runtime whose epoch thread runs."""
    for runtime in list(_running):
        runtime.expire_deadlines()


def default_runtime() -> Runtime:
    """The process-wide runtime that plugins use unless given their own."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Runtime()
        return _default
