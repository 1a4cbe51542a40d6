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
from typing import Any, Protocol

from .._capabilities import Grants
from .._json import dumps
from .._topics import is_host_topic, matches, valid_topic
from ._kv import KeyValueStore, SharedState
from ._limits import Limits
from ._netclient import HostRequestError, WebSocketSessions, decode_body, encode_body, http_request
from ._netpolicy import NetworkPolicy
from ._process import ProcessPolicy

__all__ = ["HOST_FUNCTIONS", "HostAPI", "HostFunction", "HostLinks", "HostSession", "Preopen"]

MAX_EVENT_PAYLOAD = 64 * 1024  # bytes of JSON; an event is a notice, not a transfer


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
        HostFunction("event_publish", "events", "publish an event"),
        HostFunction("plugin_call", "plugins", "call another plugin's action"),
        HostFunction("state_get", "state", "read a shared value"),
        HostFunction("state_set", "state", "store a shared value (compare-and-swap)"),
        HostFunction("state_delete", "state", "delete a shared value"),
        HostFunction("state_list", "state", "list shared keys"),
    )
}


class HostLinks(Protocol):
    """What a plugin reaches beyond its own sandbox: the bus and the other plugins.

    The host layer (host/_links.py) gives each plugin it holds one, for that
    plugin; without one (a lone ``Plugin``) publishing and calling answer
    ``unavailable``. The grant was checked here before either is asked;
    failures raise ``HostRequestError`` (an answer to the plugin) or
    ``DeadlinePassed``.
    """

    def publish(self, topic: str, payload: object, deadline: float) -> int:
        """Publish from this plugin; returns how many subscribers it was queued for."""
        ...

    def call(self, plugin: str, action: str, params: Mapping[str, Any], deadline: float) -> bytes:
        """Run another plugin's action by this deadline; returns its output."""
        ...

    def state_changed(self, namespace: str, key: str, version: int, deleted: bool) -> None:
        """A shared value changed (published as ``wasmdeck.state.NAMESPACE``)."""
        ...


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
        self._state: SharedState | None = None
        self._tls: ssl.SSLContext | None = None
        self.links: HostLinks | None = None  # set by the host layer (PluginHost)
        self.publish_patterns = grants.topics("publish")
        self.callees = [(*s.partition(":")[::2],) for s in grants.scopes("plugins")]
        self.namespaces = _namespaces(grants)
        # Checked on every host call: worked out once.
        self._granted = frozenset(
            name
            for name, f in HOST_FUNCTIONS.items()
            if f.capability is None or grants.allows(f.capability)
        )

    def granted(self, function: str) -> bool:
        return function in self._granted

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

    @property
    def state(self) -> SharedState:
        if self._state is None:
            self._state = SharedState(quota=self.limits.max_kv_bytes)
        return self._state

    def session(self) -> HostSession:
        """State owned by one instance (its WebSockets), closed with it."""
        return HostSession(self)

    def close(self) -> None:
        if self._kv is not None:
            self._kv.close()
            self._kv = None
        if self._state is not None:
            self._state.close()
            self._state = None


def _namespaces(grants: Grants) -> dict[str, bool]:
    """Each granted shared namespace, and whether it may be written."""
    namespaces: dict[str, bool] = {}
    for scope in grants.scopes("state"):
        name, _, mode = scope.partition(":")
        namespaces[name] = namespaces.get(name, False) or mode != "ro"
    return namespaces


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
            "event_publish": self._event_publish,
            "plugin_call": self._plugin_call,
            "state_get": self._state_get,
            "state_set": self._state_set,
            "state_delete": self._state_delete,
            "state_list": self._state_list,
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
            if function not in api._granted:  # (api.granted, without its call)
                capability = HOST_FUNCTIONS[function].capability
                raise HostRequestError(
                    "denied", f"{function} needs the {capability!r} capability, not granted"
                )
            # (A parsed request is a dict: the type test spares the ABC's, per call.)
            if type(request) is not dict and not isinstance(request, Mapping):
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

    # -- events, plugin calls, shared state (host/ serves them through links) --

    def _links(self, function: str) -> HostLinks:
        links = self.api.links
        if links is None:
            raise self._unlinked(function)
        return links

    @staticmethod
    def _unlinked(function: str) -> HostRequestError:
        return HostRequestError(
            "unavailable", f"{function} needs a plugin host (the plugin runs on its own)"
        )

    def _event_publish(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        topic = request.get("topic")
        if not valid_topic(topic):
            raise HostRequestError(
                "invalid_request",
                "topic must be 1-128 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit",
            )
        assert isinstance(topic, str)
        if is_host_topic(topic):
            raise HostRequestError("denied", f"{topic!r}: wasmdeck.* topics are the host's own")
        if not any(matches(p, topic) for p in self.api.publish_patterns):
            raise HostRequestError(
                "denied",
                f"publishing {topic!r} needs a grant events:publish:PATTERN matching it; "
                f"granted: {', '.join(self.api.publish_patterns) or '(none)'}",
            )
        payload = request.get("payload")
        size = len(dumps(payload))
        if size > MAX_EVENT_PAYLOAD:
            raise HostRequestError(
                "too_large", f"an event payload may be {MAX_EVENT_PAYLOAD:,} bytes, not {size:,}"
            )
        return {"delivered": self._links("event_publish").publish(topic, payload, deadline)}

    def _plugin_call(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        plugin, action = request.get("plugin"), request.get("action")
        params = request.get("params", {})
        if not isinstance(plugin, str) or not plugin:
            raise HostRequestError("invalid_request", "plugin must be a plugin's name")
        if not isinstance(action, str) or not action:
            raise HostRequestError("invalid_request", "action must be the action's name")
        if type(params) is not dict and not isinstance(params, Mapping):
            raise HostRequestError("invalid_request", "params must be a JSON object")
        # The grants (plugins:NAME[:ACTION], NAME may be *), here rather than in a
        # method of the api: each call of a function was ~5% of a plugin call's
        # own overhead (benchmarks/bus.py); for the same reason a loop, not any().
        for name, what in self.api.callees:
            if (name == plugin or name == "*") and (not what or what == action):
                break
        else:
            raise HostRequestError(
                "denied",
                f"calling {plugin!r} action {action!r} needs a grant plugins:{plugin} or "
                f"plugins:{plugin}:{action}",
            )
        links = self.api.links
        if links is None:
            raise self._unlinked("plugin_call")
        output = links.call(plugin, action, params, deadline)
        try:
            return {"output": output.decode()}  # (encode_body's common case, without its call)
        except UnicodeDecodeError:
            return encode_body(output, "output")

    def _namespace(self, request: Mapping[str, Any], write: bool) -> str:
        namespace = request.get("namespace")
        if not isinstance(namespace, str) or namespace not in self.api.namespaces:
            granted = ", ".join(sorted(self.api.namespaces)) or "(none)"
            raise HostRequestError(
                "denied",
                f"shared namespace {namespace!r} is not granted (state:NAMESPACE); "
                f"granted: {granted}",
            )
        if write and not self.api.namespaces[namespace]:
            raise HostRequestError(
                "denied",
                f"shared namespace {namespace!r} is granted read-only (state:{namespace}:ro)",
            )
        return namespace

    def _state_get(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        namespace = self._namespace(request, write=False)
        value, version = self.api.state.read(namespace, request.get("key"), deadline=deadline)
        answer = {"value": None} if value is None else encode_body(value, "value")
        return {**answer, "version": version}

    def _changed(self, namespace: str, key: str, version: int, deleted: bool) -> None:
        links = self.api.links
        if links is not None:
            links.state_changed(namespace, key, version, deleted)

    def _state_set(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        namespace = self._namespace(request, write=True)
        value = decode_body(request, "value", "value_base64")
        key, expect = request.get("key"), request.get("version")
        done, version, current = self.api.state.write(
            namespace, key, value, expect=expect, deadline=deadline
        )
        if not done:
            held = {"value": None} if current is None else encode_body(current, "value")
            return {"ok": False, "version": version, **held}
        self._changed(namespace, str(key), version, False)
        return {"ok": True, "version": version}

    def _state_delete(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        namespace = self._namespace(request, write=True)
        key, expect = request.get("key"), request.get("version")
        done, version, _ = self.api.state.write(
            namespace, key, None, expect=expect, deadline=deadline
        )
        if expect is not None and not done and version != expect:
            return {"ok": False, "deleted": False, "version": version}
        if done:
            self._changed(namespace, str(key), 0, True)
        return {"ok": True, "deleted": done}

    def _state_list(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        namespace = self._namespace(request, write=False)
        return {
            "keys": self.api.state.keys(namespace, request.get("prefix", ""), deadline=deadline)
        }
