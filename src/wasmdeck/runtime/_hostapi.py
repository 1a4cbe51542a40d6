"""Host functions plugins may call, gated by the capabilities granted.

This module is ABI-independent: each function takes a request dict and
returns a response dict (the JSON a plugin exchanges with the host). The
core-module adapter binds them to ``wasmdeck.*`` imports, the component
adapter to WIT imports — one implementation for both.

A failed request is not an exception for the plugin: the response is
``{"error": {"kind": ..., "message": ...}}`` and the plugin decides what to
do. Refusals (``kind == "denied"``) are also logged as warnings, so the user
sees what a plugin tried and what to grant.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._capabilities import Grants
from ._kv import KeyValueStore
from ._limits import Limits
from ._netclient import HostRequestError, WebSocketSessions, decode_body, encode_body, http_request
from ._netpolicy import NetworkPolicy
from ._process import ProcessPolicy

__all__ = ["HOST_FUNCTIONS", "HostAPI", "HostFunction", "HostSession", "Preopen"]


@dataclass(frozen=True, slots=True)
class HostFunction:
    name: str
    capability: str | None  # None: always available
    description: str


HOST_FUNCTIONS: dict[str, HostFunction] = {
    f.name: f
    for f in (
        HostFunction("config_get", None, "read a value of the plugin's configuration"),
        HostFunction("http_request", "network", "make an HTTP request"),
        HostFunction("ws_connect", "network", "open a WebSocket"),
        HostFunction("ws_send", "network", "send a WebSocket message"),
        HostFunction("ws_recv", "network", "receive a WebSocket message"),
        HostFunction("ws_close", "network", "close a WebSocket"),
        HostFunction("process_run", "process", "run a granted program"),
        HostFunction("kv_get", "kv", "read a stored value"),
        HostFunction("kv_set", "kv", "store a value"),
        HostFunction("kv_delete", "kv", "delete a stored value"),
        HostFunction("kv_list", "kv", "list stored keys"),
    )
}


@dataclass(frozen=True, slots=True)
class Preopen:
    """A directory granted with ``fs``: where it is on the host and in the guest."""

    host: Path
    guest: str
    writable: bool


def _preopens(scopes: list[str]) -> list[Preopen]:
    preopens = []
    for scope in scopes:
        guest, _, rest = scope.partition("=")
        host, _, mode = rest.rpartition(":")
        path = Path(host).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"fs grant {scope!r}: {host!r} is not an existing directory")
        preopens.append(Preopen(path, guest.rstrip("/") or "/", mode == "rw"))
    return preopens


def _kv_namespace(grants: Grants, identity: str) -> str:
    """Whose kv data a plugin reaches (docs/host-api.md, "kv"): the namespace the
    user named in its grant (``kv:NAMESPACE``), else the identity its loader gives
    (the installed plugin and its signer, or the file it was loaded from)."""
    named = [scope for scope in grants.scopes("kv") if scope]
    if len(set(named)) > 1:
        raise ValueError(f"kv may be granted one namespace, not {', '.join(sorted(named))}")
    return f"ns:{named[0]}" if named else identity


class HostAPI:
    """Everything one plugin has been granted, ready to serve its instances.

    Grants are checked and resolved once here (hosts parsed, programs found,
    directories resolved), so a bad grant fails when the plugin loads.
    """

    def __init__(
        self,
        plugin: str,
        grants: Grants,
        *,
        limits: Limits,
        config: Mapping[str, Any] | None = None,
        logger: logging.Logger,
        kv_namespace: str | None = None,
        metadata_only: bool = False,
    ) -> None:
        self.plugin = plugin
        self.grants = grants
        self.limits = limits
        self.config = dict(config or {})
        self.logger = logger
        self.network = NetworkPolicy(grants.scopes("network"))
        self.process = ProcessPolicy(grants.scopes("process"))
        self.preopens = _preopens(grants.scopes("fs"))
        self.env_names = grants.scopes("env")
        # Loaded only to read its metadata (``wasmdeck info``): imports of functions
        # not granted link to stubs that refuse (``HostSession.call``), and the
        # capabilities they need are collected in ``missing``.
        self.metadata_only = metadata_only
        self.missing: set[str] = set()
        self.kv_namespace = _kv_namespace(grants, kv_namespace or f"name:{plugin}")
        self._kv: KeyValueStore | None = None
        self._tls: ssl.SSLContext | None = None

    def granted(self, function: str) -> bool:
        capability = HOST_FUNCTIONS[function].capability
        return capability is None or self.grants.allows(capability)

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    @property
    def kv(self) -> KeyValueStore:
        if self._kv is None:
            self._kv = KeyValueStore(self.kv_namespace, quota=self.limits.max_kv_bytes)
        return self._kv

    def session(self) -> HostSession:
        """State owned by one instance (its WebSockets), closed with it."""
        return HostSession(self)

    def close(self) -> None:
        if self._kv is not None:
            self._kv.close()
            self._kv = None


class HostSession:
    def __init__(self, api: HostAPI) -> None:
        self.api = api
        self._websockets: WebSocketSessions | None = None
        self._handlers: dict[str, Callable[[Mapping[str, Any], float], dict[str, Any]]] = {
            "config_get": self._config_get,
            "http_request": self._http_request,
            "ws_connect": lambda r, d: self.websockets.connect(r, d),
            "ws_send": lambda r, d: self.websockets.send(r, d),
            "ws_recv": lambda r, d: self.websockets.receive(r, d),
            "ws_close": lambda r, d: self.websockets.close(r, d),
            "process_run": self._process_run,
            "kv_get": self._kv_get,
            "kv_set": self._kv_set,
            "kv_delete": lambda r, d: {"deleted": self.api.kv.delete(r.get("key"), deadline=d)},
            "kv_list": lambda r, d: {"keys": self.api.kv.keys(r.get("prefix", ""), deadline=d)},
        }

    @property
    def websockets(self) -> WebSocketSessions:
        if self._websockets is None:
            self._websockets = WebSocketSessions(
                self.api.network, max_message=self.api.limits.max_response, tls=self.api.tls
            )
        return self._websockets

    def call(self, function: str, request: object, deadline: float) -> dict[str, Any]:
        """Serve one host call; failures come back as ``{"error": {...}}``."""
        api = self.api
        try:
            if not api.granted(function):
                capability = HOST_FUNCTIONS[function].capability
                raise HostRequestError(
                    "denied", f"{function} needs the {capability!r} capability, not granted"
                )
            if not isinstance(request, Mapping):
                raise HostRequestError("invalid_request", "the request must be a JSON object")
            return self._handlers[function](request, deadline)
        except HostRequestError as exc:
            if exc.kind == "denied":
                api.logger.warning("refused %s: %s", function, exc)
            return {"error": {"kind": exc.kind, "message": str(exc)}}

    def close(self) -> None:
        if self._websockets is not None:
            self._websockets.close_all()

    # -- handlers -----------------------------------------------------------

    def _config_get(self, request: Mapping[str, Any], _deadline: float) -> dict[str, Any]:
        key = request.get("key")
        if key is None:
            return {"value": self.api.config}
        if not isinstance(key, str):
            raise HostRequestError("invalid_request", "key must be a string")
        return {"value": self.api.config.get(key)}

    def _http_request(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        api = self.api
        return http_request(
            api.network,
            request,
            deadline=deadline,
            max_response=api.limits.max_response,
            tls=api.tls,
        )

    def _process_run(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        return self.api.process.run(
            request, deadline=deadline, max_output=self.api.limits.max_response
        )

    def _kv_get(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        value = self.api.kv.get(request.get("key"), deadline=deadline)
        return {"value": None} if value is None else encode_body(value, "value")

    def _kv_set(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        value = decode_body(request, "value", "value_base64")
        self.api.kv.set(request.get("key"), value, deadline=deadline)
        return {}
