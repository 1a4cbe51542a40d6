"""The host functions, as plain Python calls.

Each call goes to the host through the ``wasmdeck:plugin`` WIT interfaces
(see docs/host-api.md for every request and response field). A request the
host refuses or that fails raises ``HostError`` with the host's ``kind``
(``denied``, ``timeout``, ``connection``, ...) and message.

``log`` and ``config`` are always there. The others are built into the
plugin only when its project names their interface (``[build] interfaces``
in wasmdeck.toml: ``http`` and ``websocket`` need ``network``; ``process``,
``kv``, ``events``, ``plugins`` and ``state`` the capability of that name),
and work only when the user granted it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "HostError",
    "config",
    "event_publish",
    "http_get",
    "http_request",
    "kv_delete",
    "kv_get",
    "kv_list",
    "kv_set",
    "log",
    "plugin_call",
    "process_run",
    "state_delete",
    "state_get",
    "state_list",
    "state_set",
    "ws_close",
    "ws_connect",
    "ws_recv",
    "ws_send",
]

# The capability that brings each interface in, for the error when it was left out.
_CAPABILITIES = {"http": "network", "websocket": "network"}  # the others: their own name
_LEVELS = ("debug", "info", "warning", "error")


class HostError(Exception):
    """The host refused or could not serve a request."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


# The bindings componentize-py generates exist only for the interfaces the
# build's worlds import, and only modules imported while the component is
# initialized (at build time) are in it: so import them all here, up front.
_INTERFACES: dict[str, Any] = {}
try:
    from wit_world.imports import log as _log

    _INTERFACES["log"] = _log
except ImportError:
    pass
try:
    from wit_world.imports import trigger as _trigger  # since wasmdeck:plugin@1.1.0

    _INTERFACES["trigger"] = _trigger
except ImportError:
    pass
try:
    from wit_world.imports import config as _config

    _INTERFACES["config"] = _config
except ImportError:
    pass
try:
    from wit_world.imports import http as _http

    _INTERFACES["http"] = _http
except ImportError:
    pass
try:
    from wit_world.imports import websocket as _websocket

    _INTERFACES["websocket"] = _websocket
except ImportError:
    pass
try:
    from wit_world.imports import process as _process

    _INTERFACES["process"] = _process
except ImportError:
    pass
try:
    from wit_world.imports import kv as _kv

    _INTERFACES["kv"] = _kv
except ImportError:
    pass
try:
    from wit_world.imports import events as _events  # since wasmdeck:plugin@1.2.0

    _INTERFACES["events"] = _events
except ImportError:
    pass
try:
    from wit_world.imports import plugins as _plugins

    _INTERFACES["plugins"] = _plugins
except ImportError:
    pass
try:
    from wit_world.imports import state as _state

    _INTERFACES["state"] = _state
except ImportError:
    pass


def _interface(name: str) -> Any:
    module = _INTERFACES.get(name)
    if module is None:
        capability = _CAPABILITIES.get(name, name)
        raise HostError(
            "unavailable",
            f"the plugin was built without the {name!r} host interface: name it in "
            f"[build] interfaces of wasmdeck.toml (it needs the {capability!r} capability) "
            "and build it again",
        )
    return module


def _call(interface: str, function: str, request: Mapping[str, Any]) -> dict[str, Any]:
    module = _interface(interface)
    # Compact, as the host writes JSON: such a request is parsed once (wasmdeck/_json.py).
    text = json.dumps(request, separators=(",", ":"), ensure_ascii=False)
    response = json.loads(getattr(module, function)(text))
    error = response.get("error") if isinstance(response, dict) else None
    if error:
        raise HostError(error.get("kind", "error"), error.get("message", ""))
    return response


def log(level: str, message: str) -> None:
    """Log ``message`` on the host at ``level``: debug, info, warning or error."""
    module = _interface("log")
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}, not {level!r}")
    module.log(getattr(module.Level, level.upper()), message)


def config(key: str | None = None) -> Any:
    """One value of the plugin's configuration (None if unset), or all of it."""
    return _call("config", "get", {} if key is None else {"key": key})["value"]


def http_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    body: str | bytes | None = None,
    timeout_ms: int | None = None,
    follow_redirects: bool = True,
) -> dict[str, Any]:
    """An HTTP request to a granted host; the response has status, headers, body."""
    request: dict[str, Any] = {"method": method, "url": url, "follow_redirects": follow_redirects}
    if headers is not None:
        request["headers"] = dict(headers) if isinstance(headers, Mapping) else list(headers)
    if isinstance(body, bytes):
        request["body_base64"] = base64.b64encode(body).decode()
    elif body is not None:
        request["body"] = body
    if timeout_ms is not None:
        request["timeout_ms"] = timeout_ms
    return _call("http", "request", request)


def http_get(url: str, **options: Any) -> dict[str, Any]:
    """GET ``url`` (a granted host): ``http_get(url)["body"]``."""
    return http_request("GET", url, **options)


def ws_connect(url: str, **options: Any) -> int:
    """Open a WebSocket to a granted host; returns its id."""
    return _call("websocket", "connect", {"url": url, **options})["id"]


def ws_send(connection: int, message: str | bytes) -> None:
    if isinstance(message, bytes):
        _call(
            "websocket",
            "send",
            {"id": connection, "data_base64": base64.b64encode(message).decode()},
        )
    else:
        _call("websocket", "send", {"id": connection, "text": message})


def ws_recv(connection: int, timeout_ms: int | None = None) -> dict[str, Any]:
    """The next message: ``{"text": ...}``, ``{"data_base64": ...}``, ``{"timeout": true}``..."""
    request: dict[str, Any] = {"id": connection}
    if timeout_ms is not None:
        request["timeout_ms"] = timeout_ms
    return _call("websocket", "recv", request)


def ws_close(connection: int) -> None:
    _call("websocket", "close", {"id": connection})


def process_run(
    argv: Sequence[str], *, stdin: str = "", timeout_ms: int | None = None
) -> dict[str, Any]:
    """Run a granted program; returns exit_code, stdout and stderr."""
    request: dict[str, Any] = {"argv": list(argv), "stdin": stdin}
    if timeout_ms is not None:
        request["timeout_ms"] = timeout_ms
    return _call("process", "run", request)


def kv_get(key: str) -> bytes | None:
    """The stored value of ``key``, or None."""
    response = _call("kv", "get", {"key": key})
    if "value_base64" in response:
        return base64.b64decode(response["value_base64"])
    value = response.get("value")
    return None if value is None else value.encode()


def kv_set(key: str, value: str | bytes) -> None:
    if isinstance(value, bytes):
        _call("kv", "set", {"key": key, "value_base64": base64.b64encode(value).decode()})
    else:
        _call("kv", "set", {"key": key, "value": value})


def kv_delete(key: str) -> bool:
    return bool(_call("kv", "delete", {"key": key})["deleted"])


def kv_list(prefix: str = "") -> list[str]:
    return list(_call("kv", "list", {"prefix": prefix})["keys"])


def event_publish(topic: str, payload: Any = None) -> int:
    """Publish ``payload`` (any JSON value) on ``topic``; how many subscribers get it."""
    return int(_call("events", "publish", {"topic": topic, "payload": payload})["delivered"])


def plugin_call(plugin: str, action: str, params: Mapping[str, Any] | None = None) -> bytes:
    """Run another plugin's action (``plugins:NAME`` granted); its output bytes."""
    response = _call(
        "plugins", "call", {"plugin": plugin, "action": action, "params": dict(params or {})}
    )
    if "output_base64" in response:
        return base64.b64decode(response["output_base64"])
    return str(response.get("output", "")).encode()


def _value(response: Mapping[str, Any]) -> bytes | None:
    if "value_base64" in response:
        return base64.b64decode(response["value_base64"])
    value = response.get("value")
    return None if value is None else str(value).encode()


def state_get(namespace: str, key: str) -> tuple[bytes | None, int]:
    """A shared value and its version: ``(None, 0)`` when absent."""
    response = _call("state", "get", {"namespace": namespace, "key": key})
    return _value(response), int(response["version"])


def state_set(
    namespace: str, key: str, value: str | bytes, *, version: int | None = None
) -> tuple[bool, int]:
    """Store a shared value; with ``version``, only if the key still has it
    (compare-and-swap; 0: only if absent). Returns ``(stored, version now)``."""
    request: dict[str, Any] = {"namespace": namespace, "key": key}
    if isinstance(value, bytes):
        request["value_base64"] = base64.b64encode(value).decode()
    else:
        request["value"] = value
    if version is not None:
        request["version"] = version
    response = _call("state", "set", request)
    return bool(response["ok"]), int(response["version"])


def state_delete(namespace: str, key: str, *, version: int | None = None) -> bool:
    request: dict[str, Any] = {"namespace": namespace, "key": key}
    if version is not None:
        request["version"] = version
    return bool(_call("state", "delete", request)["deleted"])


def state_list(namespace: str, prefix: str = "") -> list[str]:
    return list(_call("state", "list", {"namespace": namespace, "prefix": prefix})["keys"])
