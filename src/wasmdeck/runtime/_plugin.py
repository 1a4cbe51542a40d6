"""``Plugin``: one loaded plugin, called synchronously or from asyncio."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterable, Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from wasmtime.component import Component

from .._capabilities import Grant, Grants
from .._context import TriggerContext
from .._errors import ActionNotFound, WasmdeckError
from .._metadata import PluginMetadata
from ._component import ActionRequest, ComponentPlugin
from ._component import TriggerContext as WitContext
from ._core import CoreModule
from ._engine import Runtime, default_runtime
from ._hostapi import HostAPI
from ._limits import Limits
from ._stdio import plugin_logger

__all__ = ["Plugin"]


def _not_json(value: object) -> object:
    raise TypeError(f"{type(value).__name__} values are not JSON serializable")


# The C encoder, built once: json.dumps would rebuild it on every call.
_encode = c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", False, False, False)


def _encode_json(value: object, what: str) -> str:
    try:
        return "".join(_encode(value, 0))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} cannot be sent as JSON: {exc}") from None
    except RecursionError:
        raise ValueError(
            f"{what} cannot be sent as JSON: nested too deeply (or circular)"
        ) from None


def _params_json(params: Mapping[str, Any] | None) -> str:
    """``params`` as a JSON object's text; raises ValueError for anything else."""
    if type(params) is dict and params:
        try:
            return "".join(_encode(params, 0))
        except (TypeError, ValueError, RecursionError):
            return _encode_json(params, "params")  # raises with a clear message
    if not params:
        if params is not None and not isinstance(params, Mapping):
            raise ValueError(f"params must be a JSON object (a mapping), not {params!r}")
        return "{}"
    if isinstance(params, Mapping):
        return _encode_json(dict(params), "params")
    raise ValueError(f"params must be a JSON object (a mapping), not {type(params).__name__}")


class Plugin:
    """A sandboxed WebAssembly plugin.

    ``source`` is a path to a ``.wasm`` file or the module's bytes. Loading
    compiles the module, checks its exports and imports, and reads its
    metadata; any problem raises a subclass of ``InvalidPlugin``.

    ``limits`` bounds every call (see ``Limits``). ``grants`` are the
    capabilities the user gives the plugin (``"env:LANG"``, ...; see
    ``Grants``); by default it gets none — not even environment variables.
    ``config`` is the plugin's configuration (a bridge address, a token...),
    which it reads through the host API. ``label`` names the plugin in
    messages until its metadata does (default: the file name).

    Calls on one plugin are serialized; different plugins run in parallel
    (wasm runs without holding the GIL).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        limits: Limits | None = None,
        grants: Grants | Iterable[Grant | str] = (),
        config: Mapping[str, Any] | None = None,
        runtime: Runtime | None = None,
        label: str | None = None,
    ) -> None:
        wasm: bytes | Path
        if isinstance(source, bytes | bytearray | memoryview):
            wasm, self.path = bytes(source), None
            label = label or "<bytes>"
        else:
            self.path = wasm = Path(source)
            label = label or self.path.name
        self.limits = limits or Limits()
        self.runtime = runtime or default_runtime()
        if isinstance(grants, str):
            raise TypeError("grants must be an iterable of grants, not one string")
        self.grants = grants if isinstance(grants, Grants) else Grants(grants)
        host = HostAPI(
            label, self.grants, limits=self.limits, config=config, logger=plugin_logger(label)
        )
        compiled = self.runtime.compile(wasm, name=label, limits=self.limits)
        self._impl: CoreModule | ComponentPlugin
        if isinstance(compiled, Component):
            self._impl = ComponentPlugin(
                self.runtime, compiled, label=label, limits=self.limits, host=host
            )
            self._request = self._component_request  # type: ignore[method-assign]
        else:
            self._impl = CoreModule(
                self.runtime, compiled, label=label, limits=self.limits, host=host
            )
        self.metadata: PluginMetadata = self._impl.metadata
        self._actions = (
            None
            if self.metadata.actions is None
            else frozenset(a.name for a in self.metadata.actions)
        )
        self._action_json: dict[str, str] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._per_call = self.limits.instance == "per-call"

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def abi(self) -> str:
        """Which plugin ABI this plugin speaks: ``core-v1`` or ``component-v1``."""
        return self._impl.abi

    def __repr__(self) -> str:
        return f"<Plugin {self.name!r} {self.metadata.version} ({self.abi})>"

    # -- calling -------------------------------------------------------------

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        context: TriggerContext | None = None,
    ) -> bytes:
        """Run ``action`` with ``params`` and return the plugin's output payload.

        Raises ``PluginError`` when the plugin fails, ``LimitExceeded`` when a
        sandbox limit stops it, ``ActionNotFound`` for an action it does not
        declare, and ``ValueError`` for params that are not a JSON object.
        """
        request = self._request(action, params, context)
        with self._lock:
            if self._closed:
                raise WasmdeckError("the plugin is closed", plugin=self.name, action=action)
            if self._per_call:
                try:
                    return self._impl.execute(action, request)
                finally:
                    self._impl.reset()  # Limits(instance="per-call"): nothing carries over
            return self._impl.execute(action, request)

    async def call_async(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        context: TriggerContext | None = None,
    ) -> bytes:
        """``call`` on a worker thread, so the event loop keeps running.

        Cancelling the awaiting task does not stop the plugin early; its
        limits (timeout, fuel) still bound the call.
        """
        request = self._request(action, params, context)
        return await asyncio.to_thread(self._execute, action, request)

    def _execute(self, action: str, request: bytes) -> bytes:
        with self._lock:
            if self._closed:
                raise WasmdeckError("the plugin is closed", plugin=self.name, action=action)
            if self._per_call:
                try:
                    return self._impl.execute(action, request)
                finally:
                    self._impl.reset()  # Limits(instance="per-call"): nothing carries over
            return self._impl.execute(action, request)

    def _request(
        self, action: str, params: Mapping[str, Any] | None, context: TriggerContext | None
    ) -> bytes:
        """The request JSON of DESIGN.md contract 1, encoded as UTF-8.

        The mode goes out twice: as ``mode`` and as ``current_mode``, the name
        MIDIMon v2.5 plugins read (docs/abi.md, "MIDIMon compatibility").
        """
        action_json = self._action_json.get(action) or self._check_action(action)
        params_json = _params_json(params)
        if context is None:
            velocity = mode = "null"
            timestamp = time.time_ns() // 1_000_000
        else:
            velocity = "null" if context.velocity is None else str(context.velocity)
            mode = "null" if context.mode is None else str(context.mode)
            timestamp = context.timestamp
        text = (
            f'{{"action":{action_json},"params":{params_json},"context":'
            f'{{"velocity":{velocity},"mode":{mode},"current_mode":{mode},"timestamp":{timestamp}}}}}'
        )
        try:
            return text.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"params contain text that is not valid Unicode: {exc.reason}"
            ) from None

    def _component_request(
        self, action: str, params: Mapping[str, Any] | None, context: TriggerContext | None
    ) -> ActionRequest:
        """The ``action-request`` record of DESIGN.md contract 2 (wit/plugin.wit)."""
        self._action_json.get(action) or self._check_action(action)
        if context is None:
            record = WitContext(None, None, time.time_ns() // 1_000_000)
        else:
            record = WitContext(context.velocity, context.mode, context.timestamp)
        return ActionRequest(action, _params_json(params), record)

    def _check_action(self, action: str) -> str:
        if not isinstance(action, str) or not action:
            raise ValueError(f"action must be a non-empty string, not {action!r}")
        if self._actions is not None and action not in self._actions:
            declared = ", ".join(sorted(self._actions)) or "(none)"
            raise ActionNotFound(
                f"does not declare this action; it declares: {declared}",
                plugin=self.name,
                action=action,
            )
        encoded = _encode_json(action, "the action name")
        if len(self._action_json) < 256:  # plugins without an action list accept any name
            self._action_json[action] = encoded
        return encoded

    # -- lifecycle -----------------------------------------------------------

    def reset(self) -> None:
        """Discard the plugin's instance (and its memory); the next call starts afresh."""
        with self._lock:
            self._impl.reset()

    def close(self) -> None:
        """Release the plugin's instance. Later calls raise ``WasmdeckError``."""
        with self._lock:
            self._closed = True
            self._impl.reset()
            self._impl.host.close()

    def __enter__(self) -> Plugin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
