"""The core-module JSON ABI v1 (DESIGN.md contract 1).

``CoreModule`` owns one compiled plugin module, its linking, and at most one
live instance. Each instance lives in its own wasmtime Store with the
plugin's limits; when a call traps or hits a limit the instance is thrown
away and the next call gets a fresh one, so a failure never leaks into later
calls.

The hot path (``execute``) talks to wasmtime's C API directly (see
``_capi``). The request buffer the plugin's ``alloc`` hands out is kept for
the life of the instance and reused while requests fit: the host owns that
buffer and frees it with ``dealloc`` only when it needs a larger one.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable

import wasmtime
from wasmtime import FuncType, MemoryType, ValType

from .._context import TriggerContext
from .._errors import (
    ABIViolation,
    ImportNotAllowed,
    InvalidMetadata,
    LimitExceeded,
    MemoryLimitExceeded,
    MissingExport,
    PluginReportedError,
    PluginTrap,
    TableLimitExceeded,
    WasmdeckError,
)
from .._metadata import MAX_METADATA_BYTES, PluginMetadata
from . import _capi as capi
from ._adapter import LOG_LEVELS, Adapter, Params, params_json
from ._engine import Runtime, error_summary
from ._hostapi import HOST_FUNCTIONS, HostAPI, HostSession
from ._limits import Limits, MiB
from ._sandbox import describe_trap, instantiation_error, limit_error, new_store
from ._stdio import LineLogger, plugin_logger

__all__ = ["CoreModule"]

WASI_MODULE = "wasi_snapshot_preview1"
HOST_MODULE = "wasmdeck"

_i32, _i64 = ValType.i32(), ValType.i64()
_SIGNATURES: dict[str, tuple[list[ValType], list[ValType]]] = {
    "alloc": ([_i32], [_i32]),
    "dealloc": ([_i32, _i32], []),
    "init": ([], [_i64]),
    "execute": ([_i32, _i32], [_i32]),
    "_initialize": ([], []),
}
_REQUIRED = ("alloc", "init", "execute")
# The ABI's own host functions (module "wasmdeck"), always available.
_PAYLOAD_FUNCS = ("set_output", "set_error")
_BASE_FUNCS: dict[str, tuple[list[ValType], list[ValType]]] = {
    "set_output": ([_i32, _i32], []),
    "set_error": ([_i32, _i32], []),
    "log": ([_i32, _i32, _i32], []),
    "response_read": ([_i32, _i32], [_i32]),
}
# The host API (see _hostapi): JSON request at (ptr, len) in, the length of
# the JSON response out; the plugin then fetches it with response_read.
_JSON_FUNC = ([_i32, _i32], [_i32])


def _host_signature(name: str) -> tuple[list[ValType], list[ValType]] | None:
    if name in _BASE_FUNCS:
        return _BASE_FUNCS[name]
    if name in HOST_FUNCTIONS:
        return _JSON_FUNC
    return None


def _sig(params: list[ValType], results: list[ValType]) -> str:
    return f"({', '.join(map(str, params))}) -> ({', '.join(map(str, results))})"


class _Instance:
    """One store and instance, with the raw handles the hot path needs."""

    __slots__ = (
        "args",
        "args_addr",
        "base",
        "buf_cap",
        "buf_ptr",
        "ctx",
        "error",
        "exports",
        "f_alloc",
        "f_dealloc",
        "f_execute",
        "f_init",
        "f_initialize",
        "mem",
        "mem_size",
        "memory",
        "output",
        "pending",
        "session",
        "store",
        "tables",
        "trap",
        "trap_addr",
        "view",
        "violation",
    )

    def __init__(
        self, store: wasmtime.Store, instance: wasmtime.Instance, session: HostSession
    ) -> None:
        self.store = store
        self.session = session
        self.pending: bytes | None = None  # a host call's response, until response_read
        self.exports = instance.exports(store)
        self.ctx = capi.context_address(store)
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory
        self.mem = capi.address_of(memory._memory)
        # Fixed for the instance's life: the engine is configured with
        # memory_may_move = False.
        self.base = capi.memory_data(self.ctx, self.mem)
        self.refresh()
        self.tables = [e for e in self.exports.values() if isinstance(e, wasmtime.Table)]

        def func(name: str) -> int:
            item = self.exports.get(name)
            return capi.address_of(item._func) if isinstance(item, wasmtime.Func) else 0

        self.f_alloc = func("alloc")
        self.f_dealloc = func("dealloc")
        self.f_init = func("init")
        self.f_execute = func("execute")
        self.f_initialize = func("_initialize")
        self.args = (ctypes.c_ubyte * capi.ARGS_BYTES)()
        self.args_addr = capi.address_of(self.args)
        self.trap = ctypes.c_void_p()
        self.trap_addr = capi.address_of(self.trap)
        self.buf_ptr = 0
        self.buf_cap = 0
        self.output: bytes | None = None
        self.error: bytes | None = None
        self.violation: WasmdeckError | None = None

    def refresh(self) -> None:
        """Re-read the memory size and re-map the view (after the guest grew memory).

        Memory only grows, so between refreshes ``mem_size`` is a lower bound
        and ``view`` covers valid guest memory.
        """
        self.mem_size = capi.memory_data_size(self.ctx, self.mem)
        self.view = capi.memory_view(self.base, self.mem_size)

    def fits(self, ptr: int, length: int) -> bool:
        """Whether ``ptr .. ptr+length`` lies inside the guest's memory (as it is now)."""
        end = ptr + length
        if end > self.mem_size:
            self.refresh()
        return end <= self.mem_size

    def read(self, ptr: int, length: int) -> bytes | None:
        """Guest bytes at ``ptr``, or None when the range is out of bounds."""
        end = ptr + length
        if end > self.mem_size:
            self.refresh()
            if end > self.mem_size:
                return None
        return self.view[ptr:end].tobytes()


class CoreModule(Adapter):
    """A compiled core-module plugin and its (at most one) live instance.

    Not thread-safe: the caller serializes calls (``Plugin`` holds a lock).
    """

    abi = "core-v1"

    def __init__(
        self,
        runtime: Runtime,
        module: wasmtime.Module,
        *,
        label: str,
        limits: Limits,
        host: HostAPI,
    ) -> None:
        super().__init__(
            runtime,
            label=label,
            limits=limits,
            host=host,
            stdout=LineLogger(plugin_logger(label), logging.INFO, "stdout"),
            stderr=LineLogger(plugin_logger(label), logging.WARNING, "stderr"),
        )
        self._live: _Instance | None = None
        self._check_exports(module)
        imported = self._check_imports(module)
        linker = wasmtime.Linker(runtime.engine)
        linker.define_wasi()
        self._callbacks = []  # keeps the ctypes callbacks alive as long as the linker
        for name in imported:
            params, results = _host_signature(name)  # type: ignore[misc]
            if name in _PAYLOAD_FUNCS:
                function = self._payload_callback(name)
            else:
                function = getattr(self, f"_host_{name}", None) or self._json_callback(name)
            callback = capi.HOST_CALLBACK(function)
            self._callbacks.append(callback)
            capi.define_host_func(linker, HOST_MODULE, name, FuncType(params, results), callback)
        try:
            self._pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise ImportNotAllowed(f"cannot link the module: {exc}", plugin=label) from None
        self._linker = linker
        self._named(self._read_metadata())

    # -- loading -----------------------------------------------------------

    def _check_exports(self, module: wasmtime.Module) -> None:
        exports = {e.name: e.type for e in module.exports}
        memory = exports.get("memory")
        if not isinstance(memory, MemoryType):
            raise MissingExport(
                "the module must export its linear memory as 'memory'", plugin=self.label
            )
        if memory.is_64:
            raise MissingExport("'memory' must be a 32-bit memory (wasm32)", plugin=self.label)
        for name, (params, results) in _SIGNATURES.items():
            ty = exports.get(name)
            if ty is None:
                if name in _REQUIRED:
                    raise MissingExport(
                        f"the module does not export {name!r} {_sig(params, results)}, "
                        "which the JSON ABI requires",
                        plugin=self.label,
                    )
                continue
            if not isinstance(ty, FuncType) or (
                list(map(str, ty.params)) != list(map(str, params))
                or list(map(str, ty.results)) != list(map(str, results))
            ):
                found = (
                    _sig(ty.params, ty.results) if isinstance(ty, FuncType) else type(ty).__name__
                )
                raise MissingExport(
                    f"export {name!r} must be a function {_sig(params, results)}, found {found}",
                    plugin=self.label,
                )

    def _check_imports(self, module: wasmtime.Module) -> list[str]:
        """Refuse imports the host does not provide; return the host functions used."""
        used: list[str] = []
        for imp in module.imports:
            where = f"{imp.module}.{imp.name}"
            if imp.module == WASI_MODULE and isinstance(imp.type, FuncType):
                continue  # checked by the linker: only real WASI preview 1 functions link
            signature = _host_signature(imp.name) if imp.module == HOST_MODULE else None
            if signature is not None:
                params, results = signature
                ty = imp.type
                if not isinstance(ty, FuncType) or _sig(ty.params, ty.results) != _sig(
                    params, results
                ):
                    found = (
                        _sig(ty.params, ty.results)
                        if isinstance(ty, FuncType)
                        else type(ty).__name__
                    )
                    raise ImportNotAllowed(
                        f"imports {where} as {found}, but the host provides {_sig(params, results)}",
                        plugin=self.label,
                    )
                if imp.name in HOST_FUNCTIONS and not self.host.granted(imp.name):
                    capability = HOST_FUNCTIONS[imp.name].capability
                    raise self._not_granted(where, capability)  # type: ignore[arg-type]
                if imp.name not in used:
                    used.append(imp.name)
                continue
            kind = type(imp.type).__name__.removesuffix("Type").lower()
            raise ImportNotAllowed(
                f"imports {where} ({kind}), which wasmdeck does not provide; a plugin may "
                f"import WASI preview 1 ({WASI_MODULE}) and the host functions "
                f"{HOST_MODULE}.* (see the ABI reference)",
                plugin=self.label,
            )
        return used

    def _instantiate(self) -> _Instance:
        store = new_store(
            self.runtime,
            self.limits,
            self.host,
            self._env,
            self._stdout,
            self._stderr,
            fuel=self._fuel,
            ticks=self._ticks,
        )
        try:
            instance = self._pre.instantiate(store)
        except wasmtime.Trap as trap:
            raise self._trap_error(trap, None) from None
        except wasmtime.WasmtimeError as exc:
            raise instantiation_error(exc, self.limits, self.label) from None
        live = _Instance(store, instance, self.host.session())
        self._live = live
        if live.f_initialize:
            self._raw_call(live, live.f_initialize, 0, 0, "_initialize")
        return live

    def _read_metadata(self) -> PluginMetadata:
        live = self._instantiate()
        packed = (
            self._raw_call(live, live.f_init, 0, 0, "init", result="i64") & 0xFFFF_FFFF_FFFF_FFFF
        )
        ptr, length = packed >> 32, packed & 0xFFFF_FFFF
        if length == 0:
            raise InvalidMetadata("init returned an empty metadata string", plugin=self.label)
        if length > MAX_METADATA_BYTES:
            raise InvalidMetadata(
                f"init returned a metadata length of {length} bytes, more than the "
                f"{MAX_METADATA_BYTES} allowed",
                plugin=self.label,
            )
        data = live.read(ptr, length)
        if data is None:
            raise ABIViolation(
                f"init returned metadata at {ptr:#x}+{length}, outside the plugin's "
                f"{live.mem_size}-byte memory",
                plugin=self.label,
            )
        return PluginMetadata.from_json(data, plugin=self.label)

    def _start(self) -> _Instance:
        live = self._instantiate()
        # A fresh instance runs init as the first one did, so plugins that set
        # up state there behave the same; the metadata is already known.
        self._raw_call(live, live.f_init, 0, 0, "init", result="i64")
        return live

    # -- calls -------------------------------------------------------------

    def request(self, action: str, params: Params, context: TriggerContext | None) -> bytes:
        """The request JSON of DESIGN.md contract 1, encoded as UTF-8."""
        action_json = self._action_name(action)
        params_bytes = params_json(params)
        if context is None:
            velocity = mode = b"null"
            timestamp = time.time_ns() // 1_000_000
            extra = b""
        else:
            velocity = b"null" if context.velocity is None else b"%d" % context.velocity
            mode = b"null" if context.mode is None else b"%d" % context.mode
            timestamp = context.timestamp
            extra = context.extra_json()  # kind, channel, ...: only those set
        return b'{"action":%b,"params":%b,"context":{"velocity":%b,"mode":%b,"timestamp":%d%b}}' % (
            action_json,
            params_bytes,
            velocity,
            mode,
            timestamp,
            extra,
        )

    def execute(self, action: str, request: bytes) -> bytes:
        """Run one request; return the plugin's output (empty if it set none)."""
        live = self._live or self._start()
        self._action = action
        live.output = live.error = live.violation = None
        size = len(request)
        if size > live.buf_cap:
            self._grow_buffer(live, size)
        ctx = live.ctx
        live.view[live.buf_ptr : live.buf_ptr + size] = request
        self._arm(ctx)
        capi.pack_args(live.args, 0, live.buf_ptr, size)
        error = capi.call_unchecked(ctx, live.f_execute, live.args_addr, 2, live.trap_addr)
        if self._stdout.pending or self._stderr.pending:
            self._flush()
        if error or live.trap.value or live.violation:
            raise self._failure(live, error)
        code = capi.unpack_i32(live.args)[0]
        if live.error is not None:
            raise self._reported(live.error.decode("utf-8", "replace"), code, action)
        if code != 0:
            raise PluginReportedError(
                f"failed with code {code} (the plugin set no error message)",
                code=code,
                plugin=self.label,
                action=action,
            )
        return live.output or b""

    def _discard(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.session.close()  # e.g. the instance's WebSockets

    def _grow_buffer(self, live: _Instance, size: int) -> None:
        capacity = max(1024, 1 << (size - 1).bit_length())
        if live.buf_cap and live.f_dealloc:
            self._raw_call(live, live.f_dealloc, live.buf_ptr, live.buf_cap, "dealloc")
        live.buf_cap = 0
        ptr = self._raw_call(live, live.f_alloc, capacity, 0, "alloc") & 0xFFFF_FFFF
        if not live.fits(ptr, capacity):  # alloc may have grown memory: re-read its size
            self._discard()
            raise ABIViolation(
                f"alloc({capacity}) returned {ptr:#x}, which does not leave {capacity} bytes "
                f"inside the plugin's {live.mem_size}-byte memory",
                plugin=self.label,
                action=self._action,
            )
        live.buf_ptr, live.buf_cap = ptr, capacity

    def _raw_call(
        self, live: _Instance, func: int, a0: int, a1: int, name: str, result: str = "i32"
    ) -> int:
        """Call an ABI export other than execute; raise a typed error on failure."""
        ctx = live.ctx
        live.violation = None
        self._arm(ctx)
        capi.pack_args(live.args, 0, a0 & 0xFFFF_FFFF, a1 & 0xFFFF_FFFF)
        error = capi.call_unchecked(ctx, func, live.args_addr, 2, live.trap_addr)
        self._flush()
        if error or live.trap.value or live.violation:
            raise self._failure(live, error, during=name)
        unpack = capi.unpack_i64 if result == "i64" else capi.unpack_i32
        return unpack(live.args)[0]

    # -- failures ----------------------------------------------------------

    def _failure(
        self, live: _Instance, error: int | None, during: str | None = None
    ) -> WasmdeckError:
        """Turn a failed call into a typed error and discard the instance."""
        self._discard()
        action = self._action if during is None else None
        where = f" in {during}" if during else ""
        if live.trap.value:
            trap = capi.take_trap(live.trap.value)
            live.trap.value = None
        else:
            trap = None
        if live.violation is not None:
            return self._violation_error(live.violation, action)
        if error:
            exc = capi.take_error(error)
            return PluginTrap(
                f"call{where} failed: {error_summary(exc)}", plugin=self.label, action=action
            )
        assert isinstance(trap, wasmtime.Trap)
        return self._trap_error(trap, action, where, live)

    def _trap_error(
        self,
        trap: wasmtime.Trap,
        action: str | None,
        where: str = "",
        live: _Instance | None = None,
    ) -> WasmdeckError:
        code = trap.trap_code
        kwargs = {"plugin": self.label, "action": action}
        limit = limit_error(
            code,
            limits=self.limits,
            max_stack=self.runtime.max_stack,
            where=where,
            plugin=self.label,
            action=action,
        )
        if limit is not None:
            return limit
        text, trap_code = describe_trap(code, trap.message)
        if live is not None:
            limit = self._resource_limit_hit(live, text, where, kwargs)
            if limit is not None:
                return limit
        return PluginTrap(f"trapped{where}: {text}", trap_code=trap_code, **kwargs)

    def _resource_limit_hit(
        self, live: _Instance, text: str, where: str, kwargs: dict[str, str | None]
    ) -> LimitExceeded | None:
        """A trap right at the memory or table limit is that limit's doing.

        Past a limit ``memory.grow`` / ``table.grow`` return -1 rather than
        trap; plugins then typically trap (an allocator's ``unreachable``).
        Wasmtime does not report the failed grow, so we judge by size: within
        a quarter of the limit (allocators often grow by doubling or by large
        steps; at least 1 MiB of memory) counts as hitting it. The message
        keeps the trap's own text either way.
        """
        limits = self.limits
        size = capi.memory_data_size(live.ctx, live.mem)
        if size + max(MiB, limits.max_memory // 4) > limits.max_memory:
            return MemoryLimitExceeded(
                f"reached its {limits.max_memory / MiB:g} MiB memory limit (max_memory; memory "
                f"at {size / MiB:.1f} MiB could not grow) and then trapped{where}: {text}",
                value=limits.max_memory,
                **kwargs,
            )
        for table in live.tables:
            elements = table.size(live.store)
            if elements + max(1, limits.max_table_elements // 4) > limits.max_table_elements:
                return TableLimitExceeded(
                    f"reached its table limit of {limits.max_table_elements} elements "
                    f"(max_table_elements; table at {elements}) and then trapped{where}: {text}",
                    value=limits.max_table_elements,
                    **kwargs,
                )
        return None

    # -- host functions (called from wasm, through ctypes) -------------------

    def _fail(self, violation: WasmdeckError) -> int:
        live = self._live
        if live is not None:
            live.violation = violation
        message = violation.message.encode()
        return capi.trap_new(message, len(message)) or 0

    def _payload_callback(self, name: str) -> Callable[[int, int, int, int], int]:
        """The host side of ``set_output`` / ``set_error``: copy the payload out.

        Runs on every call that returns something, so it is a closure over
        locals rather than a method, and checks bounds against the cached
        memory size before asking wasmtime for the current one.
        """
        core = self
        max_output = self.limits.max_output
        unpack = capi.unpack_two_u32
        is_output = name == "set_output"

        def payload(_env: int, _caller: int, args: int, _nargs: int) -> int:
            try:
                live = core._live
                if live is None:
                    return 0
                ptr, length = unpack(args)
                if length > max_output:
                    return core._fail(core._oversize_output(length, None, name))
                end = ptr + length
                if end > live.mem_size:
                    live.refresh()
                    if end > live.mem_size:
                        return core._fail(
                            ABIViolation(
                                f"{name}({ptr:#x}, {length}) points outside the plugin's "
                                f"{live.mem_size}-byte memory"
                            )
                        )
                if is_output:
                    live.output = live.view[ptr:end].tobytes()
                else:
                    live.error = live.view[ptr:end].tobytes()
                return 0
            except BaseException as exc:  # never let an exception unwind through wasm
                return core._fail(WasmdeckError(f"host function {name} failed: {exc!r}"))

        return payload

    def _host_log(self, _env: int, _caller: int, args: int, _nargs: int) -> int:
        """``log(level, ptr, len)``: one message to the plugin's logger."""
        try:
            live = self._live
            if live is None:
                return 0
            level = capi.unpack_two_u32(args)[0]
            ptr, length = capi.unpack_two_u32(args + capi.ARGS_BYTES // 2)
            oversize = self._oversize_log(length, "byte")
            if oversize is not None:
                return self._fail(oversize)
            data = live.read(ptr, length)
            if data is None:
                return self._fail(
                    ABIViolation(f"log({level}, {ptr:#x}, {length}) points outside memory")
                )
            self._log(LOG_LEVELS[min(level, 3)], data.decode("utf-8", "replace"))
            return 0
        except BaseException as exc:
            return self._fail(WasmdeckError(f"host function log failed: {exc!r}"))

    def _host_response_read(self, _env: int, _caller: int, args: int, _nargs: int) -> int:
        """``response_read(ptr, len) -> n``: copy the pending host response out."""
        try:
            live = self._live
            if live is None:
                return 0
            ptr, length = capi.unpack_two_u32(args)
            pending = live.pending or b""
            count = min(length, len(pending))
            end = ptr + count
            if end > live.mem_size:
                live.refresh()
                if end > live.mem_size:
                    return self._fail(
                        ABIViolation(
                            f"response_read({ptr:#x}, {length}) points outside the plugin's memory"
                        )
                    )
            live.view[ptr:end] = pending[:count]
            live.pending = None
            capi.pack_i32_result(args, count)
            return 0
        except BaseException as exc:
            return self._fail(WasmdeckError(f"host function response_read failed: {exc!r}"))

    def _json_callback(self, name: str) -> Callable[[int, int, int, int], int]:
        """A host API function: JSON request in guest memory, response kept for response_read."""
        core = self

        def host_call(_env: int, _caller: int, args: int, _nargs: int) -> int:
            try:
                live = core._live
                if live is None:
                    return 0
                ptr, length = capi.unpack_two_u32(args)
                oversize = core._oversize_host_request(name, length)
                if oversize is not None:
                    return core._fail(oversize)
                data = live.read(ptr, length)
                if data is None:
                    return core._fail(
                        ABIViolation(
                            f"{name}({ptr:#x}, {length}) points outside the plugin's memory"
                        )
                    )
                live.pending = core._host_call(name, data, live.session)
                capi.pack_i32_result(args, len(live.pending))
                return 0
            except BaseException as exc:
                return core._fail(WasmdeckError(f"host function {name} failed: {exc!r}"))

        return host_call
