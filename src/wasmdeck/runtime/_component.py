"""WebAssembly components: the ``wasmdeck:plugin@1`` WIT world (DESIGN.md contract 2).

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

import atexit
import gc
import json
import logging
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

import wasmtime
from wasmtime import TrapCode, component

from .._errors import (
    ImportNotAllowed,
    InvalidMetadata,
    MemoryLimitExceeded,
    MissingExport,
    OutputLimitExceeded,
    PluginReportedError,
    PluginTrap,
    WasmdeckError,
)
from .._metadata import MAX_METADATA_BYTES, PluginMetadata
from ._engine import Runtime, error_summary
from ._hostapi import HOST_FUNCTIONS, HostAPI, HostSession
from ._limits import Limits, MiB
from ._sandbox import (
    allowed_env,
    describe_trap,
    instantiation_error,
    limit_error,
    new_store,
    trap_code_of,
)
from ._stdio import LineLogger, plugin_logger

__all__ = ["HOST_INTERFACES", "WIT_PACKAGE", "ComponentPlugin"]

WIT_PACKAGE = "wasmdeck:plugin"
WIT_VERSION = "1.0.0"
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
}
_BUILTIN_INTERFACES = ("types", "log")
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
# A request bigger than this is refused before it is parsed (as for core modules).
MAX_HOST_REQUEST = 16 * MiB
# What a guest prints just before it traps for want of memory: CPython's
# MemoryError (the Python kit lets it through), Rust's allocation failure.
_OUT_OF_MEMORY = re.compile(r"^(MemoryError\b|memory allocation of \d+ bytes failed)")


def _capability(interface: str) -> str | None:
    functions = HOST_INTERFACES.get(interface)
    if not functions:
        return None
    return HOST_FUNCTIONS[next(iter(functions.values()))].capability


class TriggerContext:
    """The ``trigger-context`` record, as wasmtime lowers it (by attribute)."""

    __slots__ = ("mode", "timestamp", "velocity")

    def __init__(self, velocity: int | None, mode: int | None, timestamp: int) -> None:
        self.velocity = velocity
        self.mode = mode
        self.timestamp = timestamp


class ActionRequest:
    """The ``action-request`` record."""

    __slots__ = ("action", "context", "params")

    def __init__(self, action: str, params: str, context: TriggerContext) -> None:
        self.action = action
        self.params = params
        self.context = context


class _TailLogger(LineLogger):
    """A LineLogger that remembers the last few lines of the current call."""

    __slots__ = ("tail",)

    def __init__(self, logger: logging.Logger, level: int, stream: str) -> None:
        super().__init__(logger, level, stream)
        self.tail: deque[str] = deque(maxlen=16)

    def _emit(self, line: bytes) -> None:
        super()._emit(line)
        self.tail.append(line.decode("utf-8", "replace").strip())


class _Instance:
    __slots__ = ("execute", "instance", "session", "store", "violation")

    def __init__(
        self, store: wasmtime.Store, instance: component.Instance, session: HostSession
    ) -> None:
        self.store = store
        self.instance = instance
        self.session = session
        self.violation: WasmdeckError | None = None
        execute = instance.get_func(store, "execute")
        assert execute is not None  # checked on load
        self.execute = execute


class ComponentPlugin:
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
        self.runtime = runtime
        self.limits = limits
        self.label = label  # the file name until metadata names the plugin
        self.host = host
        self._component = compiled
        self._env = allowed_env(host.env_names)
        self._deadline = 0.0
        self._fuel = limits.fuel
        self._ticks = runtime.deadline_ticks(limits.timeout)
        self._live: _Instance | None = None
        self._action: str | None = None
        self._stdout = _TailLogger(plugin_logger(label), logging.INFO, "stdout")
        self._stderr = _TailLogger(plugin_logger(label), logging.WARNING, "stderr")

        ctype = compiled.type
        interfaces = self._check_imports(ctype.imports(runtime.engine))
        self._check_exports(ctype.exports(runtime.engine))
        self._linker = self._link(interfaces)
        self.metadata = self._read_metadata()
        self.label = self.metadata.name
        for stream in (self._stdout, self._stderr):
            stream.logger = plugin_logger(self.metadata.name)
        host.plugin, host.logger = self.metadata.name, plugin_logger(self.metadata.name)
        _LOADED.add(self)

    # -- loading -----------------------------------------------------------

    def _check_exports(self, exports: dict[str, object]) -> None:
        for name, signature in (
            ("metadata", "func() -> string"),
            ("execute", "func(request: action-request) -> outcome"),
        ):
            item = exports.get(name)
            if not isinstance(getattr(item, "ty", None), component.FuncType):
                raise MissingExport(
                    f"the component does not export the function {name!r} ({signature}) of "
                    f"the {WIT_PACKAGE}@{WIT_VERSION} world; build it against wit/plugin.wit",
                    plugin=self.label,
                )

    def _check_imports(self, imports: dict[str, object]) -> list[tuple[str, str]]:
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
            capability = _capability(interface)  # type: ignore[arg-type]
            if capability is not None and not self.host.grants.allows(capability):
                raise ImportNotAllowed(
                    f"imports {name}, which needs the {capability!r} capability; it was not "
                    f"granted (grant it with --grant {capability}"
                    + (":SCOPE" if capability in ("network", "process") else "")
                    + ")",
                    plugin=self.label,
                )
            used.append((interface, name))  # type: ignore[arg-type]
        return used

    def _link(self, interfaces: list[tuple[str, str]]) -> component.Linker:
        linker = component.Linker(self.runtime.engine)
        linker.add_wasip2()
        with linker.root() as root:
            for interface, import_name in interfaces:
                if interface == "types":
                    continue
                # Define it under the name the component imports: wasmtime
                # matches semver-compatible versions, we checked the major.
                with root.add_instance(import_name) as instance:
                    if interface == "log":
                        instance.add_func("log", self._host_log)
                        continue
                    for function, host_function in HOST_INTERFACES[interface].items():
                        instance.add_func(function, self._json_function(host_function))
        return linker

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
            min_instances=COMPONENT_INSTANCES,
        )
        self._deadline = time.monotonic() + self.limits.timeout
        try:
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
                raise self._trap_error(exc, code, None, " while starting") from None
            raise instantiation_error(exc, self.limits, self.label) from None
        live = _Instance(store, instance, self.host.session())
        self._live = live
        return live

    def _read_metadata(self) -> PluginMetadata:
        live = self._instantiate()
        func = live.instance.get_func(live.store, "metadata")
        assert func is not None
        self._deadline = time.monotonic() + self.limits.timeout
        live.store.set_fuel(self._fuel)
        live.store.set_epoch_deadline(self._ticks)
        try:
            text = func(live.store)
        except wasmtime.WasmtimeError as exc:
            raise self._failure(live, exc, during="metadata") from None
        finally:
            self._flush()
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

    def execute(self, action: str, request: ActionRequest) -> bytes:
        """Run one request; return the plugin's output."""
        live = self._live or self._instantiate()
        self._action = action
        store = live.store
        live.violation = None
        self._stderr.tail.clear()
        self._deadline = time.monotonic() + self.limits.timeout
        store.set_fuel(self._fuel)
        store.set_epoch_deadline(self._ticks)
        try:
            outcome = live.execute(store, request)
        except wasmtime.WasmtimeError as exc:
            self._flush()
            raise self._failure(live, exc) from None
        if self._stdout.pending or self._stderr.pending:
            self._flush()
        # result<list<u8>, string> lifts untagged: bytes are the output, a str the error.
        max_output = self.limits.max_output
        if len(outcome) > max_output:
            raise OutputLimitExceeded(
                f"returned {len(outcome):,} bytes, more than its max_output limit of "
                f"{max_output:,} bytes",
                value=max_output,
                plugin=self.label,
                action=action,
            )
        if type(outcome) is bytes:
            return outcome
        raise PluginReportedError(
            outcome or "(empty error message)", code=1, plugin=self.label, action=action
        )

    def reset(self) -> None:
        """Discard the live instance; the next call starts a fresh one."""
        self._discard()

    def _discard(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.session.close()

    def _flush(self) -> None:
        self._stdout.flush()
        self._stderr.flush()

    # -- failures ----------------------------------------------------------

    def _failure(
        self, live: _Instance, exc: wasmtime.WasmtimeError, during: str | None = None
    ) -> WasmdeckError:
        """Turn a failed call into a typed error and discard the instance."""
        self._discard()
        action = self._action if during is None else None
        where = f" in {during}" if during else ""
        if live.violation is not None:
            violation = live.violation
            violation.plugin, violation.action = self.label, action
            violation.args = (violation._render(),)
            return violation
        code, _ = trap_code_of(str(exc))
        if code is None and "wasm trap" not in str(exc):
            return PluginTrap(
                f"call{where} failed: {error_summary(exc)}", plugin=self.label, action=action
            )
        return self._trap_error(exc, code, action, where)

    def _trap_error(
        self, exc: wasmtime.WasmtimeError, code: TrapCode | None, action: str | None, where: str
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
        # A component's memory is not visible from the host, so a trap at the
        # memory limit is recognized by what the guest said before it trapped.
        if any(_OUT_OF_MEMORY.match(line) for line in self._stderr.tail):
            return MemoryLimitExceeded(
                f"reached its {limits.max_memory / MiB:g} MiB memory limit (max_memory; its "
                f"allocator could not grow memory) and then trapped{where}: {text}",
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

    def _host_log(self, _store: object, level: str, message: str) -> None:
        try:
            if len(message) > self.limits.max_output:
                raise self._violation(
                    OutputLimitExceeded(
                        f"logged a {len(message):,}-character message, more than its "
                        "max_output limit",
                        value=self.limits.max_output,
                    )
                )
            self.host.logger.log(_LOG_LEVELS.get(level, logging.INFO), "%s", message)
        except wasmtime.WasmtimeError:
            raise
        except BaseException as exc:  # never let a Python exception unwind through wasm
            raise self._violation(WasmdeckError(f"host function log failed: {exc!r}")) from None

    def _json_function(self, name: str) -> Callable[[object, str], str]:
        plugin = self

        def host_call(_store: object, request_text: str) -> str:
            try:
                live = plugin._live
                if live is None:
                    raise plugin._violation(WasmdeckError(f"{name} called with no instance"))
                if len(request_text) > MAX_HOST_REQUEST:
                    raise plugin._violation(
                        OutputLimitExceeded(
                            f"{name}: a {len(request_text):,}-character request is too large",
                            value=MAX_HOST_REQUEST,
                        )
                    )
                try:
                    request = json.loads(request_text)
                except (ValueError, RecursionError):
                    response = {
                        "error": {
                            "kind": "invalid_request",
                            "message": f"{name}: the request is not JSON",
                        }
                    }
                else:
                    response = live.session.call(name, request, plugin._deadline)
                return json.dumps(response, separators=(",", ":"), ensure_ascii=False)
            except wasmtime.WasmtimeError:
                raise
            except BaseException as exc:
                raise plugin._violation(
                    WasmdeckError(f"host function {name} failed: {exc!r}")
                ) from None

        return host_call


# A Store whose WASI streams have Python callbacks must be gone before the
# interpreter shuts down (wasmtime's I/O threads would call into a dead
# interpreter and abort the process), so live instances are dropped at exit.
_LOADED: weakref.WeakSet[ComponentPlugin] = weakref.WeakSet()
_exit_lock = threading.Lock()


@atexit.register
def _drop_instances() -> None:
    with _exit_lock:
        plugins = list(_LOADED)
        for plugin in plugins:
            plugin._discard()
        if plugins:
            gc.collect()
