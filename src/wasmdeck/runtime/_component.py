"""WebAssembly components: the ``wasmdeck:plugin@1`` WIT world (docs/components.md).

``ComponentPlugin`` is the component-model counterpart of ``CoreModule``:
one compiled component, its linker (WASI preview 2 and the granted
``wasmdeck:plugin`` host interfaces) and at most one live instance, in its
own Store with the plugin's limits (see ``_sandbox``). After a trap or a
limit the instance is thrown away and the next call gets a fresh one.

The host interfaces are bound to the same ``HostAPI`` functions the core
ABI's ``wasmdeck.*`` imports use: each WIT function takes the JSON request
as a string and returns the JSON response as a string (wit/plugin.wit).
"""

from __future__ import annotations

import logging
import re
import struct
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import wasmtime
from wasmtime import TrapCode, component

from .._context import TriggerContext as Context
from .._errors import (
    ABIViolation,
    ImportNotAllowed,
    InvalidMetadata,
    MemoryLimitExceeded,
    MissingExport,
    PluginReportedError,
    PluginTrap,
    StateLimitExceeded,
    WasmdeckError,
)
from .._metadata import MAX_METADATA_BYTES, PluginMetadata
from .._version import __version__
from . import _capi as capi
from ._adapter import MAX_HOST_REQUEST, Adapter, Params, params_json
from ._deadline import DeadlinePassed, time_limit_error
from ._engine import Runtime, error_summary
from ._hostapi import HOST_FUNCTIONS, HostAPI, HostSession
from ._limits import Limits, MiB
from ._memory import MemoryLimit
from ._sandbox import (
    describe_trap,
    instantiation_error,
    limit_error,
    new_store,
    trap_code_of,
)
from ._wasiclock import ComponentClock

__all__ = ["HOST_INTERFACES", "WIT_PACKAGE", "ComponentPlugin"]

WIT_PACKAGE = "wasmdeck:plugin"
WIT_VERSION = "1.3.0"
# The host interfaces of the WIT package: each function and the host API
# function (``_hostapi.HOST_FUNCTIONS``) it is bound to.
HOST_INTERFACES: dict[str, dict[str, str]] = {
    "config": {"get": "config_get"},
    "http": {"request": "http_request"},
    "websocket": {
        "connect": "ws_connect",
        "send": "ws_send",
        "recv": "ws_recv",
        "close": "ws_close",
    },
    "process": {"run": "process_run"},
    "kv": {"get": "kv_get", "set": "kv_set", "delete": "kv_delete", "list": "kv_list"},
    # since 1.2.0
    "events": {"publish": "event_publish"},
    "plugins": {"call": "plugin_call"},
    "state": {
        "get": "state_get",
        "set": "state_set",
        "delete": "state_delete",
        "list": "state_list",
    },
}
_STATE_EXPORTS = ("save-state", "restore-state")
# Served by the component adapter itself, behind no capability (trigger: since 1.1.0).
_BUILTIN_INTERFACES = ("types", "log", "trigger")
_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_IMPORT_NAME = re.compile(r"^wasmdeck:plugin/([a-z][a-z0-9-]*)@(\d+)\.(\d+)\.(\d+)$")
# A component is made of core instances, their number fixed when it is built
# (componentize-py's have 13); the instance limit lets that many in.
COMPONENT_INSTANCES = 64


def _weakly(method: Callable[..., Any]) -> Callable[..., Any]:
    """A bound method of the plugin, as a host function that holds the plugin weakly.

    wasmtime-py keeps a linker's host functions in a module-level table
    until the linker goes, and the linker is the plugin's: bound strongly,
    they would keep every plugin, its compiled component and its linker
    alive for good (each live reload leaked the old version).
    """
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        bound = ref()
        if bound is None:  # (its instances are gone with it: not called then)
            raise wasmtime.WasmtimeError("the plugin was closed")
        return bound(*args)

    return call


def _capability(interface: str) -> str | None:
    functions = HOST_INTERFACES.get(interface)
    if not functions:
        return None
    return HOST_FUNCTIONS[next(iter(functions.values()))].capability


class WitTriggerContext:
    """The ``trigger-context`` record, as wasmtime lowers it (by attribute)."""

    __slots__ = ("mode", "timestamp", "velocity")

    def __init__(self, velocity: int | None, mode: int | None, timestamp: int) -> None:
        self.velocity = velocity
        self.mode = mode
        self.timestamp = timestamp


class ActionRequest:
    """The ``action-request`` record (``params``: the JSON object's text, as UTF-8)."""

    __slots__ = ("action", "context", "extra", "params")

    def __init__(
        self, action: str, params: bytes, context: WitTriggerContext, extra: bytes = b""
    ) -> None:
        self.action = action
        self.params = params
        self.context = context
        # The context fields the record lacks (kind, channel, ...), as JSON
        # members: what the `trigger` interface's `context` adds (wit/plugin.wit).
        self.extra = extra


class _Instance:
    __slots__ = (
        "ctx",
        "execute",
        "f_execute",
        "instance",
        "memory_limit",
        "session",
        "store",
        "violation",
    )

    def __init__(
        self,
        store: wasmtime.Store,
        instance: component.Instance,
        session: HostSession,
        memory_limit: MemoryLimit,
    ) -> None:
        self.store = store
        self.instance = instance
        self.session = session
        self.memory_limit = memory_limit
        self.violation: WasmdeckError | None = None
        execute = instance.get_func(store, "execute")
        assert execute is not None  # checked on load
        self.execute = execute
        # The raw handles of the direct call (see _Request).
        self.ctx = capi.context_address(store)
        self.f_execute = capi.func_address(execute)


class _ComponentShape(NamedTuple):
    """What loading needs of a compiled component's imports and exports."""

    imports: tuple[str, ...]  # the import names, in order
    exports: frozenset[str]
    functions: frozenset[str]  # the exports that are functions
    state_pair_fits: bool  # save-state and restore-state have the `stateful` signatures
    direct_call: bool  # execute has the WIT signature _Request lays out

    @property
    def keeps_state(self) -> bool:
        """It exports both of the `stateful` world's functions."""
        return all(name in self.functions for name in _STATE_EXPORTS)

    def as_note(self) -> dict[str, object]:
        """The shape as JSON, for the compile cache (``from_note``)."""
        return {
            "imports": list(self.imports),
            "exports": sorted(self.exports),
            "functions": sorted(self.functions),
            "state_pair_fits": self.state_pair_fits,
            "direct_call": self.direct_call,
        }

    @classmethod
    def from_note(cls, note: object) -> _ComponentShape | None:
        """The shape ``as_note`` wrote, or None for anything else."""
        if not isinstance(note, dict) or set(note) != _NOTE_FIELDS:
            return None
        names = [note["imports"], note["exports"], note["functions"]]
        if not all(isinstance(n, list) and all(isinstance(x, str) for x in n) for n in names):
            return None
        flags = note["state_pair_fits"], note["direct_call"]
        if not all(isinstance(flag, bool) for flag in flags):
            return None
        return cls(
            imports=tuple(note["imports"]),
            exports=frozenset(note["exports"]),
            functions=frozenset(note["functions"]),
            state_pair_fits=flags[0],
            direct_call=flags[1],
        )


_NOTE_FIELDS = {"imports", "exports", "functions", "state_pair_fits", "direct_call"}
# The compile cache's note of a component's shape (Runtime.note). Named after
# this version of wasmdeck, which another may read differently, and the
# shape's format: raise it when what _read_shape derives changes.
_SHAPE_FORMAT = 1
_SHAPE_NOTE = f"component-shape/{__version__}/{_SHAPE_FORMAT}"


# Read through wasmtime-py, a component's imports and exports cost hundreds of
# C calls (each of which gives up the GIL: under load, a wait for it); a
# reload of a binary in use gets the same Component back (Runtime.load's
# shared artifacts), so its shape is read once per compiled component, as a
# core module's is (_core._shape_of), and kept as a note in the compile
# cache: a binary loaded from the cache (an update, another process) does
# not read it again.
_shapes: weakref.WeakKeyDictionary[component.Component, _ComponentShape] = (
    weakref.WeakKeyDictionary()
)


def _shape_of(compiled: component.Component, runtime: Runtime) -> _ComponentShape:
    shape = _shapes.get(compiled)
    if shape is not None:
        return shape
    shape = _ComponentShape.from_note(runtime.noted(compiled, _SHAPE_NOTE))
    if shape is None:
        shape = _read_shape(compiled, runtime.engine)
        runtime.note(compiled, _SHAPE_NOTE, shape.as_note())
    _shapes[compiled] = shape
    return shape


def _read_shape(compiled: component.Component, engine: wasmtime.Engine) -> _ComponentShape:
    ctype = compiled.type
    imports = tuple(ctype.imports(engine))
    exports = ctype.exports(engine)
    functions = frozenset(
        name
        for name, item in exports.items()
        if isinstance(getattr(item, "ty", None), component.FuncType)
    )
    execute = getattr(exports.get("execute"), "ty", None)
    return _ComponentShape(
        imports=imports,
        exports=frozenset(exports),
        functions=functions,
        state_pair_fits=all(name in exports for name in _STATE_EXPORTS)
        and _state_pair_fits(exports),
        direct_call=isinstance(execute, component.FuncType) and _direct_call_fits(execute),
    )


def _direct_call_fits(functype: component.FuncType) -> bool:
    """Whether ``execute`` has exactly the WIT signature ``_Request`` lays out.

    ``func(request: action-request) -> result<list<u8>, string>``, the record
    fields in their WIT order. Any other signature is called through
    wasmtime-py's generic conversion instead.
    """
    params = functype.params
    result = functype.result
    if len(params) != 1 or not isinstance(result, component.ResultType):
        return False
    ok, err = result.ok, result.err
    if not (
        isinstance(ok, component.ListType)
        and isinstance(ok.element, component.U8)
        and isinstance(err, component.String)
    ):
        return False
    request = params[0][1]
    if not isinstance(request, component.RecordType):
        return False
    fields = request.fields
    if [name for name, _ in fields] != ["action", "params", "context"]:
        return False
    if not all(isinstance(ty, component.String) for _, ty in fields[:2]):
        return False
    context = fields[2][1]
    if not isinstance(context, component.RecordType):
        return False
    context_fields = context.fields
    if [name for name, _ in context_fields] != ["velocity", "mode", "timestamp"]:
        return False
    velocity, mode, timestamp = (ty for _, ty in context_fields)
    return (
        isinstance(velocity, component.OptionType)
        and isinstance(velocity.payload, component.U8)
        and isinstance(mode, component.OptionType)
        and isinstance(mode.payload, component.S64)
        and isinstance(timestamp, component.U64)
    )


def _state_pair_fits(exports: Mapping[str, object]) -> bool:
    """Whether save-state and restore-state have the signatures of the `stateful` world."""
    save = getattr(exports["save-state"], "ty", None)
    restore = getattr(exports["restore-state"], "ty", None)
    if not isinstance(save, component.FuncType) or not isinstance(restore, component.FuncType):
        return False

    def bytes_list(ty: object) -> bool:
        return isinstance(ty, component.ListType) and isinstance(ty.element, component.U8)

    result = restore.result
    return (
        not save.params
        and bytes_list(save.result)
        and len(restore.params) == 1
        and bytes_list(restore.params[0][1])
        and isinstance(result, component.ResultType)
        and result.ok is None
        and isinstance(result.err, component.String)
    )


# The request block of _Request: C component values (capi.CV_*), in one buffer.
_VAL, _ENTRY, _OF = capi.CV_SIZE, capi.CV_ENTRY_SIZE, capi.CV_OF
_ARG = 0  # the action-request record: the call's one argument
_RESULT = _VAL  # the call's result slot
_VELOCITY = 2 * _VAL  # the u8 an option<u8> points to when it is some
_MODE = 3 * _VAL  # the s64 of option<s64>
_FIELDS = 4 * _VAL  # action-request's entries: action, params, context
_CONTEXT = _FIELDS + 3 * _ENTRY  # trigger-context's entries: velocity, mode, timestamp
_NAMES = _CONTEXT + 3 * _ENTRY  # the field names the entries point to
_FIELD_NAMES = (b"action", b"params", b"context", b"velocity", b"mode", b"timestamp")
_BLOCK = _NAMES + sum(map(len, _FIELD_NAMES))


def _entry_val(entries: int, index: int) -> int:
    return entries + index * _ENTRY + capi.CV_ENTRY_VAL


# Where each call writes: (size, data) of the two strings, the option pointers,
# the option payloads and the timestamp.
_ACTION_VEC = _entry_val(_FIELDS, 0) + _OF + capi.CV_VEC_SIZE
_PARAMS_VEC = _entry_val(_FIELDS, 1) + _OF + capi.CV_VEC_SIZE
_VELOCITY_PTR = _entry_val(_CONTEXT, 0) + _OF
_MODE_PTR = _entry_val(_CONTEXT, 1) + _OF
_TIMESTAMP = _entry_val(_CONTEXT, 2) + _OF
_u8, _s64, _u64 = struct.Struct("<B"), struct.Struct("<q"), struct.Struct("<Q")
_kind = _u8
assert capi.CV_VEC_DATA == capi.CV_VEC_SIZE + 8
_vec = struct.Struct("<QQ")  # (size, data)
# A result value: its kind, then is_ok and the pointer to the payload value.
_result_head = struct.Struct(
    f"<B{_OF + capi.CV_RESULT_OK - 1}x?{capi.CV_RESULT_VAL - capi.CV_RESULT_OK - 1}xQ"
)
# A string or list value: its kind, then (size, data).
_vec_value = struct.Struct(f"<B{_OF + capi.CV_VEC_SIZE - 1}xQQ")
_STRINGS = 4096  # the initial size of the buffer the two strings are copied into


class _Request:
    """``execute`` called through the C API directly, without wasmtime-py's conversion.

    The ``action-request`` argument is laid out once as C component values in
    a buffer owned here (wasmtime only reads arguments); each call writes the
    strings' bytes and the numbers into it, calls
    ``wasmtime_component_func_call``, reads the ``result<list<u8>, string>``
    out of the result slot, and frees it with ``wasmtime_component_val_delete``.
    One per plugin: calls on a plugin are serialized.
    """

    __slots__ = ("base", "block", "strings", "strings_addr", "strings_view", "view")

    def __init__(self) -> None:
        self.block, self.base, self.view = capi.byte_buffer(_BLOCK)
        self._strings(_STRINGS)
        base, view = self.base, self.view
        names = []
        at = _NAMES
        for name in _FIELD_NAMES:
            view[at : at + len(name)] = name
            names.append((len(name), base + at))
            at += len(name)

        def entry(entries: int, index: int, kind: int) -> int:
            """Name field ``index`` of a record's entries; return where its value goes."""
            where = entries + index * _ENTRY
            name = names[index if entries == _FIELDS else 3 + index]
            _vec.pack_into(view, where + capi.CV_ENTRY_NAME + capi.CV_VEC_SIZE, *name)
            value = where + capi.CV_ENTRY_VAL
            _kind.pack_into(view, value, kind)
            return value

        def record(value: int, entries: int) -> None:
            _kind.pack_into(view, value, capi.CV_RECORD)
            _vec.pack_into(view, value + _OF + capi.CV_VEC_SIZE, 3, base + entries)

        record(_ARG, _FIELDS)
        entry(_FIELDS, 0, capi.CV_STRING)
        entry(_FIELDS, 1, capi.CV_STRING)
        record(entry(_FIELDS, 2, capi.CV_RECORD), _CONTEXT)
        entry(_CONTEXT, 0, capi.CV_OPTION)  # NULL: none until a call sets it
        entry(_CONTEXT, 1, capi.CV_OPTION)
        entry(_CONTEXT, 2, capi.CV_U64)
        _kind.pack_into(view, _VELOCITY, capi.CV_U8)
        _kind.pack_into(view, _MODE, capi.CV_S64)
        # _RESULT stays zero (bool false) between calls: wasmtime drops what
        # the slot holds before it writes the result.

    def _strings(self, size: int) -> None:
        self.strings, self.strings_addr, self.strings_view = capi.byte_buffer(size)

    def lower(self, request: ActionRequest) -> None:
        """Write ``request`` into the argument (raises ValueError for what cannot be sent)."""
        params = request.params
        try:
            action = str.encode(request.action)
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"the action name or params contain text that is not valid Unicode: {exc.reason}"
            ) from None
        context = request.context
        velocity, mode = context.velocity, context.mode
        view = self.view
        try:
            if velocity is None:
                _u64.pack_into(view, _VELOCITY_PTR, 0)
            else:
                _u8.pack_into(view, _VELOCITY + _OF, velocity)
                _u64.pack_into(view, _VELOCITY_PTR, self.base + _VELOCITY)
            if mode is None:
                _u64.pack_into(view, _MODE_PTR, 0)
            else:
                _s64.pack_into(view, _MODE + _OF, mode)
                _u64.pack_into(view, _MODE_PTR, self.base + _MODE)
            _u64.pack_into(view, _TIMESTAMP, context.timestamp)
        except struct.error:
            raise ValueError(
                f"the trigger context does not fit its WIT types (velocity: option<u8>, "
                f"mode: option<s64>, timestamp: u64): velocity={velocity!r}, mode={mode!r}, "
                f"timestamp={context.timestamp!r}"
            ) from None
        size = len(action) + len(params)
        if size > len(self.strings_view) or (size <= _STRINGS < len(self.strings_view)):
            self._strings(max(size, _STRINGS))  # grow, or give a big buffer back
        strings, at = self.strings_view, len(action)
        strings[:at] = action
        strings[at:size] = params
        _vec.pack_into(view, _ACTION_VEC, at, self.strings_addr)
        _vec.pack_into(view, _PARAMS_VEC, len(params), self.strings_addr + at)

    def lift(self, max_output: int) -> bytes | str | int:
        """Take the result out of its slot and free it.

        Returns the output bytes, the error message, or, when the output (in
        bytes) or the message (in characters) is longer than ``max_output``,
        its length (the output is then not read).
        """
        view = self.view
        try:
            kind, is_ok, payload = _result_head.unpack_from(view, _RESULT)
            if kind != capi.CV_RESULT or not payload:
                raise WasmdeckError(f"execute returned an unexpected value (kind {kind})")
            kind, size, data = _vec_value.unpack_from(capi.string_at(payload, _vec_value.size))
            if is_ok and kind == capi.CV_LIST:
                if size > max_output:
                    return int(size)
                if not size:
                    return b""
                # list<u8>: one component value per byte, the byte at its payload.
                return capi.readonly_view(data, size * _VAL)[_OF::_VAL].tobytes()
            if not is_ok and kind == capi.CV_STRING:
                text = capi.string_at(data, size).decode() if size else ""
                # (in characters, as the error message was always measured)
                return len(text) if len(text) > max_output else text
            raise WasmdeckError(f"execute returned an unexpected value (kind {kind})")
        finally:
            capi.component_val_delete(self.base + _RESULT)
            view[_RESULT] = capi.CV_BOOL  # the slot holds bool false again


class ComponentPlugin(Adapter):
    """A compiled component plugin and its (at most one) live instance.

    Not thread-safe: the caller serializes calls (``Plugin`` holds a lock).
    """

    abi = "component-v1"

    def __init__(
        self,
        runtime: Runtime,
        compiled: component.Component,
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
        self._component = compiled
        self._live: _Instance | None = None
        self._current: ActionRequest | None = None  # the request being run (trigger.context)

        shape = _shape_of(compiled, runtime)
        interfaces = self._check_imports(shape.imports)
        self._check_exports(shape)
        # The optional pair of the `stateful` world (since 1.3.0; docs/reload.md).
        self.keeps_state = shape.keeps_state
        # With the WIT signature of execute, calls go through _Request;
        # anything else through wasmtime-py.
        self._direct = _Request() if shape.direct_call else None
        self._linker = self._link(interfaces, shape.imports)
        self._named(self._read_metadata())

    # -- loading -----------------------------------------------------------

    def _check_exports(self, shape: _ComponentShape) -> None:
        for name, signature in (
            ("metadata", "func() -> string"),
            ("execute", "func(request: action-request) -> outcome"),
        ):
            if name not in shape.functions:
                raise MissingExport(
                    f"the component does not export the function {name!r} ({signature}) of "
                    f"the {WIT_PACKAGE}@{WIT_VERSION} world; build it against wit/plugin.wit",
                    plugin=self.label,
                )
        present = [name for name in _STATE_EXPORTS if name in shape.exports]
        if len(present) == 1:
            (missing,) = set(_STATE_EXPORTS) - set(present)
            raise MissingExport(
                f"the component exports {present[0]!r} but not {missing!r}: a plugin that "
                "keeps its state across a reload exports both (the `stateful` world)",
                plugin=self.label,
            )
        if present and not shape.state_pair_fits:
            raise MissingExport(
                "the component's save-state and restore-state must be func() -> list<u8> "
                "and func(state: list<u8>) -> result<_, string> (the `stateful` world)",
                plugin=self.label,
            )

    def _check_imports(self, imports: tuple[str, ...]) -> list[tuple[str, str]]:
        """Refuse imports the host does not provide or the user did not grant.

        Returns the ``wasmdeck:plugin`` interfaces used, with their import names.
        """
        used: list[tuple[str, str]] = []
        for name in imports:
            if name.startswith("wasi:"):
                if name.startswith("wasi:http/"):
                    raise ImportNotAllowed(
                        f"imports {name}; wasmdeck does not provide wasi:http (it cannot "
                        f"enforce network grants there): use {WIT_PACKAGE}/http instead",
                        plugin=self.label,
                    )
                continue  # WASI preview 2: the linker says if one is not provided
            match = _IMPORT_NAME.match(name)
            interface = match.group(1) if match else None
            if match is None or (
                interface not in HOST_INTERFACES and interface not in _BUILTIN_INTERFACES
            ):
                raise ImportNotAllowed(
                    f"imports {name}, which wasmdeck does not provide; a component may import "
                    f"WASI preview 2 (wasi:*) and the interfaces of {WIT_PACKAGE}@{WIT_VERSION} "
                    f"(see docs/components.md)",
                    plugin=self.label,
                )
            if match.group(2) != WIT_VERSION.split(".")[0]:
                raise ImportNotAllowed(
                    f"imports {name}, but this host provides {WIT_PACKAGE}@{WIT_VERSION}; "
                    f"rebuild the plugin against that version",
                    plugin=self.label,
                )
            assert interface is not None  # (matched above)
            capability = _capability(interface)
            if capability is not None and not self.host.grants.allows(capability):
                if self.host.metadata_only:  # linked; HostSession.call refuses it
                    self.host.missing.add(capability)
                    used.append((interface, name))
                    continue
                raise self._not_granted(name, capability)
            used.append((interface, name))
        return used

    def _link(
        self, interfaces: list[tuple[str, str]], imports: tuple[str, ...]
    ) -> component.Linker:
        linker = component.Linker(self.runtime.engine)
        linker.add_wasip2()
        self._clock = self._define_wasi_clock(linker, imports)
        with linker.root() as root:
            for interface, import_name in interfaces:
                if interface == "types":
                    continue
                # Define it under the name the component imports: wasmtime
                # matches semver-compatible versions, we checked the major.
                with root.add_instance(import_name) as instance:
                    if interface == "log":
                        instance.add_func("log", _weakly(self._host_log))
                        continue
                    if interface == "trigger":
                        instance.add_func("context", _weakly(self._trigger_context))
                        continue
                    for function, host_function in HOST_INTERFACES[interface].items():
                        instance.add_func(function, self._json_function(host_function))
        return linker

    def _instantiate(self) -> _Instance:
        self._epoch_armed = self._epoch.value  # read before new_store arms the deadline
        store = new_store(
            self.runtime,
            self.limits,
            self._wasi,
            fuel=self._fuel,
            ticks=self._ticks,
            min_instances=COMPONENT_INSTANCES,
        ).wasmtime()  # wasmtime-py's component API takes its Store
        self._deadline = time.monotonic() + self.limits.timeout
        memory_limit = MemoryLimit(self.limits.max_memory)
        try:
            with memory_limit.creating():  # the memories made here get the limit (see _memory)
                if self._clock is not None:
                    self._clock.attach(store)
                instance = self._linker.instantiate(store, self._component)
        except wasmtime.WasmtimeError as exc:
            self._flush()
            text = str(exc)
            if "import" in text and ("not defined" in text or "matching implementation" in text):
                raise ImportNotAllowed(
                    f"cannot link the component: {error_summary(exc)}", plugin=self.label
                ) from None
            code, _ = trap_code_of(text)
            if code is not None:
                raise self._trap_error(exc, code, None, " while starting", memory_limit) from None
            raise instantiation_error(exc, self.limits, self.label) from None
        live = _Instance(store, instance, self.host.session(), memory_limit)
        self._live = live
        return live

    def _read_metadata(self) -> PluginMetadata:
        live = self._instantiate()
        func = live.instance.get_func(live.store, "metadata")
        assert func is not None
        self._arm(live.ctx)
        try:
            text = func(live.store)
        except wasmtime.WasmtimeError as exc:
            raise self._failure(live, exc, during="metadata") from None
        finally:
            self._flush()
        self._check_overslept(None)
        if not isinstance(text, str):
            raise InvalidMetadata("metadata() did not return a string", plugin=self.label)
        data = text.encode()
        if not data:
            raise InvalidMetadata("metadata() returned an empty string", plugin=self.label)
        if len(data) > MAX_METADATA_BYTES:
            raise InvalidMetadata(
                f"metadata() returned {len(data)} bytes, more than the "
                f"{MAX_METADATA_BYTES} allowed",
                plugin=self.label,
            )
        return PluginMetadata.from_json(data, plugin=self.label)

    # -- calls -------------------------------------------------------------

    def request(self, action: str, params: Params, context: Context | None) -> ActionRequest:
        """The ``action-request`` record of docs/components.md (wit/plugin.wit)."""
        self._action_name(action)
        if context is None:
            record = WitTriggerContext(None, None, time.time_ns() // 1_000_000)
            extra = b""
        else:
            record = WitTriggerContext(context.velocity, context.mode, context.timestamp)
            extra = context.extra_json()
        return ActionRequest(action, params_json(params), record, extra)

    def execute(self, action: str, request: ActionRequest) -> bytes:
        """Run one request; return the plugin's output."""
        direct = self._direct
        if direct is None:
            return self._execute_generic(action, request)
        direct.lower(request)
        self._current = request
        live = self._live or self._instantiate()
        self._action = action
        ctx = live.ctx
        live.violation = None
        self._arm(ctx)
        base = direct.base
        error = capi.component_func_call(live.f_execute, ctx, base + _ARG, 1, base + _RESULT, 1)
        if error:
            exc = capi.take_error(error)
            capi.raise_pending_host_exception()  # a Python exception in a host function
            self._flush()
            raise self._failure(live, exc) from None  # type: ignore[arg-type]
        if self._stdout.pending or self._stderr.pending:
            self._flush()
        self._check_overslept(action)
        outcome = direct.lift(self.limits.max_output)
        if type(outcome) is bytes:
            return outcome
        if type(outcome) is int:  # the length of an output or message over the limit
            raise self._oversize_output(outcome, action)
        raise self._reported(outcome, 1, action)  # type: ignore[arg-type]

    def _execute_generic(self, action: str, request: ActionRequest) -> bytes:
        """``execute`` through wasmtime-py's value conversion (an unexpected signature)."""
        self._current = request
        live = self._live or self._instantiate()
        self._action = action
        store = live.store
        live.violation = None
        self._arm(live.ctx)
        # wasmtime-py lowers the record by attribute: params as str here.
        generic = ActionRequest(request.action, request.params, request.context)
        generic.params = request.params.decode()  # type: ignore[assignment]
        try:
            outcome = live.execute(store, generic)
        except wasmtime.WasmtimeError as exc:
            self._flush()
            raise self._failure(live, exc) from None
        if self._stdout.pending or self._stderr.pending:
            self._flush()
        self._check_overslept(action)
        # result<list<u8>, string> lifts untagged: bytes are the output, a str the error.
        if len(outcome) > self.limits.max_output:
            raise self._oversize_output(len(outcome), action)
        if type(outcome) is bytes:
            return outcome
        raise self._reported(outcome, 1, action)

    def _discard(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.session.close()

    def retire(self) -> object:
        """``Adapter.retire``, the compiled component and the linker included (~2 ms
        to free for a Python component; another plugin of the same binary keeps it)."""
        held = (super().retire(), self._component, self._linker)
        del self._component, self._linker  # (never called again: its plugin is closed)
        return held

    # -- live reload: the state's hand-over (docs/reload.md) ----------------

    def save_state(self) -> bytes | None:
        """The live instance's ``save-state()``: its bytes, or None with no instance."""
        live = self._live
        if live is None or not self.keeps_state:
            return None
        data = self._state_call(live, "save-state")
        if not isinstance(data, bytes):
            self._discard()
            raise ABIViolation("save-state did not return a list<u8>", plugin=self.label)
        self._check_state_size(len(data), "save-state returned")
        return data

    def restore_state(self, state: bytes) -> None:
        """``restore-state(state)`` on a fresh instance; an ``err`` is a refusal."""
        self._check_state_size(len(state), "the saved state is")
        live = self._live or self._instantiate()
        outcome = self._state_call(live, "restore-state", state)
        if outcome is not None:  # result<_, string> lifts untagged: None, or the message
            self._discard()  # half restored: never called
            raise PluginReportedError(
                f"restore-state refused the saved state: {outcome}", code=1, plugin=self.label
            )

    def _state_call(self, live: _Instance, name: str, *args: bytes) -> object:
        """One call of a state export, under the call limits, through the C API.

        ``list<u8>`` goes in and out as one component value per byte: laid
        out and read here with strided copies (wasmtime-py's conversion of
        the same takes ~1 µs per byte). Returns the saved bytes, or for
        ``restore-state`` None (``ok``) or the ``err`` message.
        """
        func = live.instance.get_func(live.store, name)
        assert func is not None  # keeps_state: checked on load
        self._current = None
        live.violation = None
        block, base, view = capi.byte_buffer(2 * _VAL)  # [argument][result]
        view[_VAL] = capi.CV_BOOL  # an empty result slot, as in _Request
        keep = []
        if args:
            (state,) = args
            size = len(state)
            values, values_addr, values_view = capi.byte_buffer(max(size, 1) * _VAL)
            values_view[0 : size * _VAL : _VAL] = bytes([capi.CV_U8]) * size
            values_view[_OF : size * _VAL : _VAL] = state
            keep.append(values)
            _kind.pack_into(view, 0, capi.CV_LIST)
            _vec.pack_into(view, _OF + capi.CV_VEC_SIZE, size, values_addr if size else 0)
        self._arm(live.ctx)
        error = capi.component_func_call(
            capi.func_address(func), live.ctx, base, len(args), base + _VAL, 1
        )
        if error:
            exc = capi.take_error(error)
            capi.raise_pending_host_exception()
            self._flush()
            if "too much data is being copied" in str(exc):
                # wasmtime's own bound on one copy between host and guest (a few
                # million list elements); the instance cannot be entered again.
                self._discard()
                raise StateLimitExceeded(
                    f"{name}: the state is larger than wasmtime copies between host and "
                    f"guest at once (the max_state limit is {self.limits.max_state:,} bytes)",
                    value=self.limits.max_state,
                    plugin=self.label,
                ) from None
            raise self._failure(live, exc, during=name) from None  # type: ignore[arg-type]
        self._flush()
        self._check_overslept(None)
        try:
            if not args:  # list<u8>
                kind, size, data = _vec_value.unpack_from(view, _VAL)
                if kind != capi.CV_LIST:
                    return None
                if not size:
                    return b""
                return capi.readonly_view(data, size * _VAL)[_OF::_VAL].tobytes()
            kind, is_ok, payload = _result_head.unpack_from(view, _VAL)
            if kind != capi.CV_RESULT:
                return "restore-state returned an unexpected value"
            if is_ok:
                return None
            if not payload:
                return "(no message)"
            kind, size, data = _vec_value.unpack_from(capi.string_at(payload, _vec_value.size))
            return capi.string_at(data, size).decode("utf-8", "replace") if size else ""
        finally:
            capi.component_val_delete(base + _VAL)
            del block, keep

    # -- failures ----------------------------------------------------------

    def _failure(
        self, live: _Instance, exc: wasmtime.WasmtimeError, during: str | None = None
    ) -> WasmdeckError:
        """Turn a failed call into a typed error and discard the instance."""
        self._discard()
        action = self._action if during is None else None
        where = f" in {during}" if during else ""
        if live.violation is not None:
            return self._violation_error(live.violation, action)
        code, _ = trap_code_of(str(exc))
        if code is None and "wasm trap" not in str(exc):
            return PluginTrap(
                f"call{where} failed: {error_summary(exc)}", plugin=self.label, action=action
            )
        return self._trap_error(exc, code, action, where, live.memory_limit)

    def _trap_error(
        self,
        exc: wasmtime.WasmtimeError,
        code: TrapCode | None,
        action: str | None,
        where: str,
        memory: MemoryLimit,
    ) -> WasmdeckError:
        limits = self.limits
        limit = limit_error(
            code,
            limits=limits,
            max_stack=self.runtime.max_stack,
            where=where,
            plugin=self.label,
            action=action,
        )
        if limit is not None:
            return limit
        text, trap_code = describe_trap(code, str(exc))
        # A trap after the host's memory refused to grow during this call
        # (see _memory; as for core modules).
        if memory.refused_since(self._deadline - limits.timeout):
            return MemoryLimitExceeded(
                f"reached its {limits.max_memory / MiB:g} MiB memory limit (max_memory; memory "
                f"at {memory.refused_from / MiB:.1f} MiB could not grow to "
                f"{memory.refused / MiB:.1f} MiB) and then trapped{where}: {text}",
                value=limits.max_memory,
                plugin=self.label,
                action=action,
            )
        return PluginTrap(
            f"trapped{where}: {text}", trap_code=trap_code, plugin=self.label, action=action
        )

    # -- host functions (called from wasm) -----------------------------------

    def _violation(self, violation: WasmdeckError) -> wasmtime.WasmtimeError:
        """Record why the call must stop; the returned error, raised, traps the guest."""
        live = self._live
        if live is not None:
            live.violation = violation
        return wasmtime.WasmtimeError(violation.message)

    def _trigger_context(self, _store: object) -> str:
        """``trigger.context``: the call's whole trigger context as a JSON object."""
        request = self._current
        if request is None:
            return "{}"
        context = request.context
        velocity = "null" if context.velocity is None else str(context.velocity)
        mode = "null" if context.mode is None else str(context.mode)
        return (
            f'{{"velocity":{velocity},"mode":{mode},"timestamp":{context.timestamp}'
            f"{request.extra.decode()}}}"
        )

    def _host_log(self, _store: object, level: str, message: str) -> None:
        try:
            oversize = self._oversize_log(len(message), "character")
            if oversize is not None:
                raise self._violation(oversize)
            self._log(_LOG_LEVELS.get(level, logging.INFO), message)
        except wasmtime.WasmtimeError:
            raise
        except BaseException as exc:  # never let a Python exception unwind through wasm
            raise self._violation(WasmdeckError(f"host function log failed: {exc!r}")) from None

    def _json_function(self, name: str) -> Callable[[object, str], str]:
        ref = weakref.ref(self)  # (held weakly, as _weakly says why)

        def host_call(_store: object, request_text: str) -> str:
            plugin = ref()
            if plugin is None:
                raise wasmtime.WasmtimeError("the plugin was closed")
            try:
                live = plugin._live
                if live is None:
                    raise plugin._violation(WasmdeckError(f"{name} called with no instance"))
                data = request_text.encode("utf-8", "surrogatepass")
                if len(data) > MAX_HOST_REQUEST:
                    raise plugin._violation(plugin._host_request_too_large(name, len(data)))
                return plugin._host_call(name, data, live.session).decode()
            except wasmtime.WasmtimeError:
                raise
            except DeadlinePassed as exc:
                raise plugin._violation(time_limit_error(plugin.limits, str(exc))) from None
            except BaseException as exc:
                raise plugin._violation(
                    WasmdeckError(f"host function {name} failed: {exc!r}")
                ) from None

        return host_call

    # -- WASI waits bounded by the call's deadline (runtime/_wasiclock.py) -----

    def _define_wasi_clock(
        self, linker: component.Linker, imports: tuple[str, ...]
    ) -> ComponentClock | None:
        """Define the plugin's monotonic clock so its sleeps end at the deadline."""
        name = next((n for n in imports if n.startswith("wasi:clocks/monotonic-clock@")), None)
        if name is None:
            return None
        ref = weakref.ref(self)  # (the clock's functions are the linker's: see _weakly)

        def deadline() -> float:
            plugin = ref()
            return 0.0 if plugin is None else plugin._deadline

        def violation(exc: DeadlinePassed) -> BaseException:
            plugin = ref()
            if plugin is None:
                return wasmtime.WasmtimeError("the plugin was closed")
            return plugin._violation(time_limit_error(plugin.limits, str(exc)))

        clock = ComponentClock(self.runtime.engine, deadline=deadline, violation=violation)
        linker.allow_shadowing = True
        clock.define(linker, name)
        return clock

    def _check_overslept(self, action: str | None) -> None:
        """A call whose sleep was cut short at its deadline ended past it: a timeout."""
        clock = self._clock
        if clock is not None and clock.overslept:
            clock.overslept = False
            if time.monotonic() >= self._deadline:
                self._discard()
                error = time_limit_error(self.limits, "sleeping (wasi:clocks/monotonic-clock)")
                error.plugin, error.action = self.label, action
                error.args = (error._render(),)
                raise error
