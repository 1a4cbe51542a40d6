"""The core-module JSON ABI v1 (docs/abi.md; docs/architecture.md, "The two ABIs").

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

import time
import weakref
from collections.abc import Callable
from typing import NamedTuple

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
from . import _payload as payload
from ._adapter import LOG_LEVELS, MAX_HOST_REQUEST, Adapter, Params, params_json
from ._deadline import DeadlinePassed, time_limit_error
from ._engine import Runtime, error_summary
from ._hostapi import HOST_FUNCTIONS, HostAPI, HostSession
from ._limits import Limits, MiB
from ._memory import MemoryLimit
from ._sandbox import describe_trap, instantiation_error, limit_error, new_store
from ._wasiclock import poll_oneoff

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
    # Optional, as a pair: the plugin's state across a live reload (docs/reload.md).
    "save_state": ([], [_i64]),
    "restore_state": ([_i32, _i32], [_i32]),
}
_REQUIRED = ("alloc", "init", "execute")
_STATE_EXPORTS = ("save_state", "restore_state")
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


# The hot path's callees, bound once (a module global is found faster than an
# attribute of a module).
_monotonic = time.monotonic
_set_fuel = capi.set_fuel
_set_epoch_deadline = capi.set_epoch_deadline
_pack_args = capi.pack_args
_call_prepared = capi.call_prepared
_unpack_i32 = capi.unpack_i32
_unpack_i64 = capi.unpack_i64
_args_views = capi.ARGS_VIEWS
_unpack_two_u32, _pack_i32_result = capi.unpack_two_u32, capi.pack_i32_result
_reset_header, _read_header = payload.reset_header, payload.read_header
# The copier's four imports (the plugin's memory, the box's out and table, the
# plugin's execute) and its run export, in _link_with_helpers's region.
_COPIER_EXTERNS = 5
_STATE, _DATA = payload.STATE, payload.DATA


def _host_signature(name: str) -> tuple[list[ValType], list[ValType]] | None:
    if name in _BASE_FUNCS:
        return _BASE_FUNCS[name]
    if name in HOST_FUNCTIONS:
        return _JSON_FUNC
    return None


def _sig(params: list[ValType], results: list[ValType]) -> str:
    return f"({', '.join(map(str, params))}) -> ({', '.join(map(str, results))})"


# The signatures' text, written once (each ValType's text is a C call).
_SIGNATURE_TEXTS = {name: _sig(*signature) for name, signature in _SIGNATURES.items()}
_host_texts: dict[str, str] = {}  # by host function: as many as the host has


def _host_signature_text(name: str) -> str | None:
    """``_host_signature``'s text, kept once made."""
    text = _host_texts.get(name)
    if text is None and (signature := _host_signature(name)) is not None:
        text = _host_texts[name] = _sig(*signature)
    return text


class _Extern(NamedTuple):
    """An import's or export's type as the checks need it, read once."""

    kind: str  # "FuncType", "MemoryType", ... (wasmtime's class name)
    signature: str | None  # a function's, as _sig writes it
    is_64: bool = False  # a 64-bit memory


class _ModuleShape(NamedTuple):
    imports: tuple[tuple[str, str, _Extern], ...]  # (module, name, type), in order
    exports: dict[str, _Extern]


def _extern(ty: object) -> _Extern:
    if isinstance(ty, FuncType):
        return _Extern("FuncType", _sig(ty.params, ty.results))
    return _Extern(type(ty).__name__, None, isinstance(ty, MemoryType) and ty.is_64)


# Read through wasmtime-py, each import and export costs several C calls (each
# of which gives up the GIL: under load, a wait for it); a reload of a binary
# in use gets the same Module back (Runtime.load's shared artifacts), so its
# shape is read once per compiled module.
_shapes: weakref.WeakKeyDictionary[wasmtime.Module, _ModuleShape] = weakref.WeakKeyDictionary()


def _shape_of(module: wasmtime.Module) -> _ModuleShape:
    shape = _shapes.get(module)
    if shape is None:
        shape = _ModuleShape(
            tuple((imp.module, imp.name or "", _extern(imp.type)) for imp in module.imports),
            {e.name: _extern(e.type) for e in module.exports},
        )
        _shapes[module] = shape
    return shape


# The exports the ABI uses, looked up by name in each new instance.
_EXPORTS = (b"memory", b"alloc", b"dealloc", b"init", b"execute", b"_initialize")


# The context's text up to its timestamp, by (velocity, mode); see CoreModule.request.
class _Instance:
    """One store and instance, with the raw handles the hot path needs.

    Made through the C API (``_capi``): the instance, its exports and the
    call arguments live in one buffer owned here.
    """

    __slots__ = (
        "args",
        "args_addr",
        "base",
        "buf_cap",
        "buf_ptr",
        "call",
        "ctx",
        "f_alloc",
        "f_dealloc",
        "f_execute",
        "f_init",
        "f_initialize",
        "f_run",
        "fuel",
        "handles",
        "instance",
        "mem",
        "mem_size",
        "memory_limit",
        "out",
        "out_base",
        "out_mem",
        "pending",
        "session",
        "store",
        "trap",
        "trap_addr",
        "view",
        "violation",
    )

    def __init__(
        self,
        store: capi.OwnedStore,
        ctx: int,
        memory_limit: MemoryLimit,
        imports: int | None = None,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.memory_limit = memory_limit
        # Host-call state (its WebSockets), made at the first host call.
        self.session: HostSession | None = None
        self.pending: bytes | None = None  # a host call's response, until response_read
        # [instance][one extern per _EXPORTS name][call arguments]; with the
        # payload helpers also the region of CoreModule._plan_helpers.
        size = capi.INSTANCE_SIZE + capi.EXTERN_SIZE * len(_EXPORTS) + capi.ARGS_BYTES
        if imports is not None:
            size += 2 * capi.INSTANCE_SIZE + capi.EXTERN_SIZE * (imports + _COPIER_EXTERNS)
        self.handles, base, _ = capi.byte_buffer(size)
        self.instance = base
        self.args_addr = base + capi.INSTANCE_SIZE + capi.EXTERN_SIZE * len(_EXPORTS)
        self.out_mem = 0  # the payload box's memory (see _payload), when linked
        self.out = memoryview(b"")
        self.out_base = 0
        self.args = capi.args_at(self.args_addr)
        self.trap, self.trap_addr = capi.pointer_slot()
        self.buf_ptr = 0
        self.buf_cap = 0
        self.violation: WasmdeckError | None = None
        self.fuel: memoryview | None = None  # the store's fuel counter (capi.fuel_counter)
        self.f_run = 0  # the copier's run (_link_with_helpers), which calls execute
        self.call: tuple[object, ...] = ()  # the hot call's arguments (prepare_call)

    def prepare_call(self) -> None:
        """Make the arguments of ``execute``'s C call once (``capi.call_prepared``):
        the copier's ``run`` when the payload helpers are linked, else ``execute``."""
        func = self.f_run if self.out_mem else self.f_execute
        self.call = capi.prepared_call(self.ctx, func, self.args_addr, 2, self.trap_addr)

    def bind(self, lookups: tuple[tuple[int, bytes, int, int], ...]) -> None:
        """Look up the ABI's exports the module has (``CoreModule._export_lookups``).

        Each lookup is (index in ``_EXPORTS``, name, its length, the offset of
        its extern in this instance's buffer). ``dealloc`` (index 2) is not
        among them: it is looked up only when the host first frees a buffer.
        """
        ctx, instance, get = self.ctx, self.instance, capi.instance_export_get
        found = [0, 0, 0, 0, 0, 0]
        for index, name, size, offset in lookups:
            extern = instance + offset
            if get(ctx, instance, name, size, extern):
                found[index] = extern + capi.EXTERN_OF
        self.mem, self.f_alloc, self.f_dealloc, self.f_init, self.f_execute = found[:5]
        self.f_initialize = found[5]
        # Fixed for the instance's life: the engine is configured with
        # memory_may_move = False.
        self.base = capi.memory_data(ctx, self.mem)
        self.refresh()

    @property
    def tables(self) -> list[wasmtime.Table]:
        """The instance's exported tables (for failure reports only: not fast)."""
        instance = capi.instance_from_raw(self.instance)
        exports = instance.exports(self.store.wasmtime())  # type: ignore[attr-defined]
        return [e for e in exports.values() if isinstance(e, wasmtime.Table)]

    def refresh_out(self) -> None:
        """Re-map the view of the payload box's memory (after the copier grew it)."""
        size = capi.memory_data_size(self.ctx, self.out_mem)
        self.out = capi.writable_view(self.out_base, size)

    def refresh(self) -> None:
        """Re-read the memory size and re-map the view (after the guest grew memory).

        Memory only grows, so between refreshes ``mem_size`` is a lower bound
        and ``view`` covers valid guest memory.
        """
        self.mem_size = capi.memory_data_size(self.ctx, self.mem)
        self.view = capi.writable_view(self.base, self.mem_size)

    def fits(self, ptr: int, length: int) -> bool:
        """Whether ``ptr .. ptr+length`` lies inside the guest's memory (as it is now)."""
        end = ptr + length
        if end > self.mem_size:
            self.refresh()
        return bool(end <= self.mem_size)

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
        )
        self._live: _Instance | None = None
        self._request_heads: dict[str, bytes] = {}  # the request's text before its params
        shape = _shape_of(module)
        self._check_exports(shape)
        imported = self._check_imports(shape)
        linker = wasmtime.Linker(runtime.engine)
        linker.define_wasi()
        self._callbacks = []  # keeps the ctypes callbacks alive as long as the linker
        for name in imported:
            if name in _PAYLOAD_FUNCS:
                continue  # in wasm: see _payload
            params, results = _host_signature(name)  # type: ignore[misc]
            function = getattr(self, f"_host_{name}", None) or self._json_callback(name)
            callback = capi.HOST_CALLBACK(function)
            self._callbacks.append(callback)
            capi.define_host_func(linker, HOST_MODULE, name, FuncType(params, results), callback)
        self._define_wasi_waits(linker)
        self._module = module
        self._helpers = any(name in _PAYLOAD_FUNCS for name in imported)
        # A module that imports nothing of WASI gets no WASI context (it costs
        # a few µs per instance, and the module could not reach it).
        self._uses_wasi = any(module_name == WASI_MODULE for module_name, _, _ in shape.imports)
        if self._helpers:
            # Each instance is linked by hand: the payload box's functions belong
            # to its store, so they cannot be part of an InstancePre.
            box, copier = payload.helper_modules(runtime.engine)
            self._box_ptr, self._copier_ptr = capi.pointer_of(box), capi.pointer_of(copier)
            self._module_ptr = capi.pointer_of(module)
            self._linker_ptr = capi.pointer_of(linker)
            self._import_plan = [
                (
                    module_name.encode(),
                    name.encode(),
                    _PAYLOAD_FUNCS.index(name)
                    if module_name == HOST_MODULE and name in _PAYLOAD_FUNCS
                    else None,
                )
                for module_name, name, _ in shape.imports
            ]
            self._plan_helpers()
        else:
            try:
                self._pre = linker.instantiate_pre(module)
            except wasmtime.WasmtimeError as exc:
                raise ImportNotAllowed(f"cannot link the module: {exc}", plugin=label) from None
            self._pre_ptr = capi.pointer_of(self._pre)
        names = shape.exports
        self._exported = tuple(name.decode() in names for name in _EXPORTS)
        self._export_lookups = tuple(
            (index, name, len(name), capi.INSTANCE_SIZE + index * capi.EXTERN_SIZE)
            for index, name in enumerate(_EXPORTS)
            if self._exported[index] and index != 2  # dealloc: see _grow_buffer
        )
        self.keeps_state = all(name in names for name in _STATE_EXPORTS)
        self._linker = linker
        self._named(self._read_metadata())

    # -- loading -----------------------------------------------------------

    def _check_exports(self, shape: _ModuleShape) -> None:
        exports = shape.exports
        memory = exports.get("memory")
        if memory is None or memory.kind != "MemoryType":
            raise MissingExport(
                "the module must export its linear memory as 'memory'", plugin=self.label
            )
        if memory.is_64:
            raise MissingExport("'memory' must be a 32-bit memory (wasm32)", plugin=self.label)
        for name, expected in _SIGNATURE_TEXTS.items():
            ty = exports.get(name)
            if ty is None:
                if name in _REQUIRED:
                    raise MissingExport(
                        f"the module does not export {name!r} {expected}, "
                        "which the JSON ABI requires",
                        plugin=self.label,
                    )
                continue
            if ty.signature != expected:
                found = ty.signature or ty.kind
                raise MissingExport(
                    f"export {name!r} must be a function {expected}, found {found}",
                    plugin=self.label,
                )
        present = [name for name in _STATE_EXPORTS if name in exports]
        if len(present) == 1:
            (missing,) = set(_STATE_EXPORTS) - set(present)
            raise MissingExport(
                f"the module exports {present[0]!r} but not {missing!r}: a plugin that keeps "
                "its state across a reload exports both (docs/reload.md)",
                plugin=self.label,
            )

    def _check_imports(self, shape: _ModuleShape) -> list[str]:
        """Refuse imports the host does not provide; return the host functions used."""
        used: list[str] = []
        for module_name, name, ty in shape.imports:
            where = f"{module_name}.{name}"
            if module_name == WASI_MODULE and ty.kind == "FuncType":
                continue  # checked by the linker: only real WASI preview 1 functions link
            expected = _host_signature_text(name) if module_name == HOST_MODULE else None
            if expected is not None:
                if ty.signature != expected:
                    found = ty.signature or ty.kind
                    raise ImportNotAllowed(
                        f"imports {where} as {found}, but the host provides {expected}",
                        plugin=self.label,
                    )
                if name in HOST_FUNCTIONS and not self.host.granted(name):
                    capability = HOST_FUNCTIONS[name].capability
                    if self.host.metadata_only:  # linked; HostSession.call refuses it
                        self.host.missing.add(str(capability))
                        if name not in used:
                            used.append(name)
                        continue
                    raise self._not_granted(where, capability)  # type: ignore[arg-type]
                if name not in used:
                    used.append(name)
                continue
            kind = ty.kind.removesuffix("Type").lower()
            raise ImportNotAllowed(
                f"imports {where} ({kind}), which wasmdeck does not provide; a plugin may "
                f"import WASI preview 1 ({WASI_MODULE}) and the host functions "
                f"{HOST_MODULE}.* (see the ABI reference)",
                plugin=self.label,
            )
        return used

    def _instantiate(self) -> _Instance:
        self._epoch_armed = self._epoch.value  # read before new_store arms the deadline
        store = new_store(
            self.runtime,
            self.limits,
            self._wasi if self._uses_wasi else None,
            fuel=self._fuel,
            ticks=self._ticks,
            payload_helpers=self._helpers,
        )
        ctx = store.context
        self._clock_origin = time.monotonic_ns()  # WASI's monotonic clock starts with the store
        fuel_counter = capi.fuel_counter(ctx, self._fuel)
        memory_limit = MemoryLimit(self.limits.max_memory)
        with memory_limit.creating():  # the memories made here get the limit (see _memory)
            if self._helpers:
                live = _Instance(store, ctx, memory_limit, len(self._import_plan))
                self._link_with_helpers(live)
            else:
                live = _Instance(store, ctx, memory_limit)
                error = capi.instance_pre_instantiate(
                    self._pre_ptr, ctx, live.instance, live.trap_addr
                )
                self._check_instantiated(live, error)
                live.bind(self._export_lookups)
        live.fuel = fuel_counter
        live.prepare_call()
        self._live = live
        if live.f_initialize:
            self._raw_call(live, live.f_initialize, 0, 0, "_initialize", arm=False)
        return live

    def _check_instantiated(self, live: _Instance, error: int | None) -> None:
        if live.trap.value:
            trap = capi.take_trap(live.trap.value)
            live.trap.value = None
            raise self._trap_error(trap, None) from None  # type: ignore[arg-type]
        if error:
            exc: wasmtime.WasmtimeError = capi.take_error(error)  # type: ignore[assignment]
            if "incompatible import type" in str(exc) or "unknown import" in str(exc):
                raise ImportNotAllowed(
                    f"cannot link the module: {error_summary(exc)}", plugin=self.label
                )
            raise instantiation_error(exc, self.limits, self.label) from None

    def _link_with_helpers(self, live: _Instance) -> None:
        """Instantiate the payload box, the plugin (importing it) and the copier.

        The box's exports are looked up straight into the import slots that
        take them (see ``_plan_helpers``).
        """
        ctx, trap = live.ctx, live.trap_addr
        region = live.instance + self._helper_region
        box, copier, imports, copier_imports = (region + at for at in self._helper_offsets)
        limit = live.memory_limit
        limit.scratch = True  # the box's out: the host's own memory (see _memory)
        try:
            error = capi.helper_instance_new(ctx, self._box_ptr, None, 0, box, trap)
        finally:
            limit.scratch = False
        if error or live.trap.value:
            self._check_instantiated(live, error)
        for name, at in self._box_lookups:
            capi.instance_export_get(ctx, box, name, len(name), region + at)
        for module, name, at in self._host_imports:
            if not capi.linker_get(
                self._linker_ptr, ctx, module, len(module), name, len(name), region + at
            ):
                raise ImportNotAllowed(
                    f"cannot link the module: {module.decode()}.{name.decode()} is not "
                    "provided by the host",
                    plugin=self.label,
                )
        error = capi.instance_new(
            ctx, self._module_ptr, imports, len(self._import_plan), live.instance, trap
        )
        if error or live.trap.value:
            self._check_instantiated(live, error)
        live.bind(self._export_lookups)
        es = capi.EXTERN_SIZE
        capi.copy_extern(copier_imports, live.mem - capi.EXTERN_OF)  # the plugin's memory
        capi.copy_extern(copier_imports + 3 * es, live.f_execute - capi.EXTERN_OF)
        error = capi.helper_instance_new(ctx, self._copier_ptr, copier_imports, 4, copier, trap)
        if error or live.trap.value:
            self._check_instantiated(live, error)
        run = copier_imports + 4 * es
        capi.instance_export_get(ctx, copier, b"run", 3, run)
        live.f_run = run + capi.EXTERN_OF
        live.out_mem = copier_imports + capi.EXTERN_SIZE + capi.EXTERN_OF
        live.out_base = capi.memory_data(ctx, live.out_mem)
        live.refresh_out()
        payload.write_limit(live.out, self.limits.max_output)
        payload.reset_header(live.out, payload.STATE, -1, -1, 0)

    def _plan_helpers(self) -> None:
        """Where each extern of ``_link_with_helpers`` goes, relative to its region.

        The region (after the instance, its exports and the call arguments):
        [box][copier][the plugin's imports][the copier's imports: the
        plugin's memory, the box's ``out`` and table].
        """
        es, size = capi.EXTERN_SIZE, capi.INSTANCE_SIZE
        self._helper_region = size + es * len(_EXPORTS) + capi.ARGS_BYTES
        count = len(self._import_plan)
        imports = 2 * size
        copier_imports = imports + es * count
        self._helper_offsets = (0, size, imports, copier_imports)
        self._box_lookups = [(b"out", copier_imports + es), (b"table", copier_imports + 2 * es)]
        self._host_imports = []
        for index, (module, name, from_box) in enumerate(self._import_plan):
            if from_box is None:
                self._host_imports.append((module, name, imports + index * es))
            else:
                self._box_lookups.append((name, imports + index * es))

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
        """The request JSON of docs/abi.md ("The request"), encoded as UTF-8.

        The mode goes out twice, as ``mode`` and as ``current_mode`` (the name
        MIDIMon v2.5 plugins read; docs/abi.md, "MIDIMon v2.5 plugins").
        The text before the params is made once per action and kept, the
        context's once per context (``TriggerContext.request_json``).
        """
        head = self._request_heads.get(action)
        if head is None:
            head = b'{"action":%b,"params":' % self._action_name(action)
            if len(self._request_heads) < 256:  # as _action_name's cache
                self._request_heads[action] = head
        params_bytes = params_json(params)
        if context is None:
            return b'%b%b,"context":{"velocity":null,"mode":null,"current_mode":null,' % (
                head,
                params_bytes,
            ) + b'"timestamp":%d}}' % (time.time_ns() // 1_000_000)
        # (join: a third of the instructions of %-formatting the same bytes)
        return b"".join((head, params_bytes, b',"context":', context.request_json(), b"}"))

    def execute(self, action: str, request: bytes) -> bytes:
        """Run one request; return the plugin's output (empty if it set none)."""
        live = self._live or self._start()
        self._action = action
        live.violation = None
        size = len(request)
        if size > live.buf_cap:
            self._grow_buffer(live, size)
        ctx, buf, out = live.ctx, live.buf_ptr, live.out
        live.view[buf : buf + size] = request
        # _arm, inlined: this is the hot path.
        self._deadline = _monotonic() + self.limits.timeout
        if self._log_budget.spent:
            self._log_budget.reset()
        fuel = live.fuel
        if fuel is not None:
            fuel[0] = -self._fuel  # set_fuel without the C call (capi.fuel_counter)
        else:
            error = _set_fuel(ctx, self._fuel)
            if error:
                raise capi.take_error(error)  # type: ignore[misc]  # (fuel is always enabled)
        epoch = self._epoch.value
        if epoch != self._epoch_armed:  # else the deadline armed then still holds (EpochCount)
            self._epoch_armed = epoch
            _set_epoch_deadline(ctx, self._ticks)
        _pack_args(live.args, 0, buf, size)
        error = _call_prepared(*live.call)  # the copier's run, when the payload helpers are linked
        out_mem = live.out_mem
        if self._stdout.pending or self._stderr.pending:
            self._flush()
        if error or live.trap.value or live.violation:
            raise self._failure(live, error)
        if not out_mem:  # the plugin imports neither set_output nor set_error
            code = _unpack_i32(live.args)[0]
            if code:
                raise self._no_message(code, action)
            return b""
        packed = _unpack_i64(live.args)[0]  # see _payload: run
        if packed < 0:  # an error message was set
            out_len, err_len, _ = _read_header(out, _STATE)
            return self._payload_outcome(
                live, action, _DATA + out_len if out_len > 0 else _DATA, err_len
            )
        length_plus_one = packed >> 32
        start = _DATA + length_plus_one - 1 if length_plus_one > 1 else _DATA
        if start > len(out):  # the copier grew the box
            return self._payload_outcome(live, action, start, -1)
        if packed & 0xFFFF_FFFF:  # execute's code (the low half, as _unpack_i32 reads it)
            raise self._no_message(_unpack_i32(live.args)[0], action)
        return out[_DATA:start].tobytes()

    def _payload_outcome(self, live: _Instance, action: str, start: int, err_len: int) -> bytes:
        """``execute``'s outcome past the common case: an error message, or a grown box."""
        end = start + max(err_len, 0)
        if end > len(live.out):
            live.refresh_out()
        code = _unpack_i32(live.args)[0]
        if err_len >= 0:
            raise self._reported(
                live.out[start:end].tobytes().decode("utf-8", "replace"), code, action
            )
        if code:
            raise self._no_message(code, action)
        return live.out[_DATA:start].tobytes()

    def _no_message(self, code: int, action: str) -> PluginReportedError:
        return PluginReportedError(
            f"failed with code {code} (the plugin set no error message)",
            code=code,
            plugin=self.label,
            action=action,
        )

    def _discard(self) -> None:
        live, self._live = self._live, None
        if live is not None and live.session is not None:
            live.session.close()  # e.g. the instance's WebSockets

    def _grow_buffer(self, live: _Instance, size: int) -> None:
        capacity = max(1024, 1 << (size - 1).bit_length())
        if live.buf_cap and self._exported[2]:
            if not live.f_dealloc:  # looked up when first needed: most calls never free
                extern = live.instance + capi.INSTANCE_SIZE + 2 * capi.EXTERN_SIZE
                capi.instance_export_get(live.ctx, live.instance, b"dealloc", 7, extern)
                live.f_dealloc = extern + capi.EXTERN_OF
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

    # -- live reload: the state's hand-over (docs/reload.md) ----------------

    def save_state(self) -> bytes | None:
        """The live instance's ``save_state()``: its bytes, or None with no instance.

        ``save_state() -> i64`` returns ``(ptr << 32) | len``, as ``init``
        does; more than ``max_state`` bytes is ``StateLimitExceeded``.
        """
        live = self._live
        if live is None or not self.keeps_state:
            return None
        function = self._state_export(live, b"save_state")
        packed = self._raw_call(live, function, 0, 0, "save_state", result="i64")
        ptr, length = (packed >> 32) & 0xFFFF_FFFF, packed & 0xFFFF_FFFF
        self._check_state_size(length, "save_state returned")
        data = live.read(ptr, length)
        if data is None:
            raise ABIViolation(
                f"save_state returned {ptr:#x}+{length}, outside the plugin's "
                f"{live.mem_size}-byte memory",
                plugin=self.label,
            )
        return data

    def restore_state(self, state: bytes) -> None:
        """``restore_state(ptr, len) -> i32`` on a fresh instance, the state where
        ``alloc`` put it; non-zero (with ``set_error``'s message) is a refusal."""
        self._check_state_size(len(state), "the saved state is")
        live = self._live or self._start()
        size = len(state)
        if size > live.buf_cap:
            self._grow_buffer(live, size)
        live.view[live.buf_ptr : live.buf_ptr + size] = state
        if live.out_mem:
            _reset_header(live.out, _STATE, -1, -1, 0)
        function = self._state_export(live, b"restore_state")
        code = self._raw_call(live, function, live.buf_ptr, size, "restore_state")
        message = ""
        if live.out_mem:
            out_len, err_len, _ = _read_header(live.out, _STATE)
            if err_len >= 0:
                start = _DATA + max(out_len, 0)
                if start + err_len > len(live.out):
                    live.refresh_out()
                message = live.out[start : start + err_len].tobytes().decode("utf-8", "replace")
        if code or message:
            self._discard()  # half restored: never called
            raise PluginReportedError(
                f"restore_state refused the saved state: {message or f'code {code}'}",
                code=code,
                plugin=self.label,
            )

    def _state_export(self, live: _Instance, name: bytes) -> int:
        """The export ``name`` of ``live`` (looked up when needed: reloads are rare)."""
        self._state_extern, extern, _ = capi.byte_buffer(capi.EXTERN_SIZE)
        if not capi.instance_export_get(live.ctx, live.instance, name, len(name), extern):
            raise MissingExport(f"the instance has no {name.decode()!r}", plugin=self.label)
        return int(extern) + capi.EXTERN_OF

    def _open_session(self, live: _Instance) -> HostSession:
        live.session = self.host.session()
        return live.session

    def _raw_call(
        self,
        live: _Instance,
        func: int,
        a0: int,
        a1: int,
        name: str,
        result: str = "i32",
        *,
        arm: bool = True,
    ) -> int:
        """Call an ABI export other than execute; raise a typed error on failure.

        ``arm=False``: the store is new and already has its fuel and deadline.
        """
        ctx = live.ctx
        live.violation = None
        if arm:
            self._arm(ctx)
        else:
            self._deadline = time.monotonic() + self.limits.timeout
            self._log_budget.reset()
        capi.pack_args(live.args, 0, a0 & 0xFFFF_FFFF, a1 & 0xFFFF_FFFF)
        error = capi.call_unchecked(ctx, func, live.args_addr, 2, live.trap_addr)
        if self._stdout.pending or self._stderr.pending:
            self._flush()
        if error or live.trap.value or live.violation:
            raise self._failure(live, error, during=name)
        unpack = capi.unpack_i64 if result == "i64" else capi.unpack_i32
        value: int = unpack(live.args)[0]
        return value

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
            if live.out_mem and live.violation is None:
                live.violation = self._payload_violation(live)
        else:
            trap = None
        if live.violation is not None:
            return self._violation_error(live.violation, action)
        if error:
            exc: wasmtime.WasmtimeError = capi.take_error(error)  # type: ignore[assignment]
            return PluginTrap(
                f"call{where} failed: {error_summary(exc)}", plugin=self.label, action=action
            )
        assert isinstance(trap, wasmtime.Trap)
        return self._trap_error(trap, action, where, live)

    def _payload_violation(self, live: _Instance) -> WasmdeckError | None:
        """What the payload copier refused before it trapped, if it did (see _payload)."""
        violation = payload.read_header(live.out, payload.STATE)[2]
        if not violation:
            return None
        ptr, length, name = payload.read_violation(live.out)
        if violation == payload.TOO_LARGE:
            return self._oversize_output(length, None, name)
        if violation == payload.OUT_OF_BOUNDS:
            live.refresh()
            return ABIViolation(
                f"{name}({ptr:#x}, {length}) points outside the plugin's "
                f"{live.mem_size}-byte memory"
            )
        return MemoryLimitExceeded(
            f"has no room for the {length:,}-byte payload of {name} within its "
            f"{self.limits.max_memory / MiB:g} MiB memory limit (max_memory)",
            value=self.limits.max_memory,
        )

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
        """A trap after a refused ``memory.grow`` / ``table.grow`` is that limit's doing.

        Past a limit the grow returns -1 rather than trap; plugins then
        typically trap (an allocator's ``unreachable``). The host's memory
        records each grow it refuses (``_memory.MemoryLimit``), so a refusal
        during this call decides, whatever the size asked for. Tables have
        no such hook in wasmtime's C API (no table creator, and the store
        limiter takes fixed numbers and reports nothing), so for a table the
        host can see (an exported one) the size is all the evidence there
        is: within a quarter of the limit counts as hitting it. The message
        keeps the trap's own text either way.
        """
        limits = self.limits
        memory = live.memory_limit
        if memory.refused_since(self._deadline - limits.timeout):
            return MemoryLimitExceeded(
                f"reached its {limits.max_memory / MiB:g} MiB memory limit (max_memory; memory "
                f"at {memory.refused_from / MiB:.1f} MiB could not grow to "
                f"{memory.refused / MiB:.1f} MiB) and then trapped{where}: {text}",
                value=limits.max_memory,
                **kwargs,
            )
        store = live.store.wasmtime()
        for table in live.tables:
            elements = table.size(store)
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

    def _host_log(self, _env: int, _caller: int, args: int, _nargs: int) -> int:
        """``log(level, ptr, len)``: one message to the plugin's logger."""
        try:
            live = self._live
            if live is None:
                return 0
            view = _args_views[args]
            level = _unpack_two_u32(view)[0]
            ptr, length = _unpack_two_u32(view, capi.ARGS_BYTES // 2)
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
            view = _args_views[args]
            ptr, length = _unpack_two_u32(view)
            pending = live.pending or b""
            count = len(pending)
            if length < count:
                count = length
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
            _pack_i32_result(view, 0, count)
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
                view = _args_views[args]
                ptr, length = _unpack_two_u32(view)
                if length > MAX_HOST_REQUEST:
                    return core._fail(core._host_request_too_large(name, length))
                end = ptr + length  # (live.read's common case first, without its call)
                data = (
                    live.view[ptr:end].tobytes() if end <= live.mem_size else live.read(ptr, length)
                )
                if data is None:
                    return core._fail(
                        ABIViolation(
                            f"{name}({ptr:#x}, {length}) points outside the plugin's memory"
                        )
                    )
                session = live.session or core._open_session(live)
                live.pending = response = core._host_call(name, data, session)
                _pack_i32_result(view, 0, len(response))
                return 0
            except DeadlinePassed as exc:
                return core._fail(time_limit_error(core.limits, str(exc)))
            except BaseException as exc:
                return core._fail(WasmdeckError(f"host function {name} failed: {exc!r}"))

        return host_call

    # -- WASI waits bounded by the call's deadline (runtime/_wasiclock.py) -----

    def _define_wasi_waits(self, linker: wasmtime.Linker) -> None:
        """Shadow wasmtime's ``poll_oneoff``, whose sleeps epochs cannot interrupt."""
        linker.allow_shadowing = True
        self._clock_origin = 0
        callback = capi.HOST_CALLBACK(self._host_poll_oneoff)
        self._callbacks.append(callback)
        capi.define_host_func(
            linker, WASI_MODULE, "poll_oneoff", FuncType([_i32] * 4, [_i32]), callback
        )

    def _host_poll_oneoff(self, _env: int, _caller: int, args: int, _nargs: int) -> int:
        try:
            live = self._live
            if live is None:
                return 0
            view = _args_views[args]
            in_ptr, out_ptr = _unpack_two_u32(view)
            count, nevents_ptr = _unpack_two_u32(view, capi.ARGS_BYTES)
            errno = poll_oneoff(
                live,
                in_ptr,
                out_ptr,
                count,
                nevents_ptr,
                deadline=self._deadline,
                origin_ns=self._clock_origin,
            )
            _pack_i32_result(view, 0, errno)
            return 0
        except DeadlinePassed as exc:
            return self._fail(time_limit_error(self.limits, str(exc)))
        except BaseException as exc:
            return self._fail(WasmdeckError(f"host function poll_oneoff failed: {exc!r}"))
