"""The host's HTTP and WebSocket clients, for plugins granted ``network``.

Requests and responses are plain dicts (the JSON the plugin exchanges with
the host). Every connection goes to an address the ``NetworkPolicy`` vetted;
redirects are followed by hand so each hop is vetted again. TLS is verified
with the system's trust store. Bodies are text when they are UTF-8, else
``body_base64``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import re
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

from .._errors import HostRequestError
from ._netpolicy import Endpoint, NetworkDenied, NetworkPolicy

__all__ = ["HostRequestError", "WebSocketSessions", "decode_body", "encode_body", "http_request"]

HTTP_SCHEMES = ("http", "https")
WS_SCHEMES = ("ws", "wss")
MAX_REDIRECTS = 5
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def encode_body(data: bytes, key: str = "body") -> dict[str, str]:
    """``{key: text}`` when ``data`` is UTF-8, else ``{key_base64: ...}``."""
    try:
        return {key: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{key}_base64": base64.b64encode(data).decode()}


def decode_body(
    request: Mapping[str, Any], text_key: str = "body", b64_key: str = "body_base64"
) -> bytes:
    if request.get(b64_key) is not None:
        try:
            return base64.b64decode(request[b64_key], validate=True)
        except (ValueError, TypeError):
            raise HostRequestError("invalid_request", f"{b64_key} is not valid base64") from None
    body = request.get(text_key)
    if body is None:
        return b""
    if not isinstance(body, str):
        raise HostRequestError("invalid_request", f"{text_key} must be a string")
    return body.encode()


def _headers(value: object) -> list[tuple[str, str]]:
    pairs = value.items() if isinstance(value, Mapping) else value or []
    headers = []
    for pair in pairs:  # type: ignore[union-attr]
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise HostRequestError(
                "invalid_request", "headers must be an object or a list of [name, value]"
            )
        name, val = pair
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise HostRequestError("invalid_request", f"invalid header name {name!r}")
        if not isinstance(val, str) or "\r" in val or "\n" in val:
            raise HostRequestError("invalid_request", f"invalid value for header {name!r}")
        headers.append((name, val))
    return headers


def _remaining(deadline: float, requested_ms: object, default: float = 10.0) -> float:
    if requested_ms is not None and (not isinstance(requested_ms, int) or requested_ms <= 0):
        raise HostRequestError("invalid_request", "timeout_ms must be a positive integer")
    wanted = requested_ms / 1000 if isinstance(requested_ms, int) else default
    left = deadline - time.monotonic()
    if left <= 0:
        raise HostRequestError("timeout", "the call's time limit is already used up")
    return min(wanted, left)


def _connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((endpoint.address, endpoint.port), timeout=timeout)
    except TimeoutError:
        raise HostRequestError(
            "timeout", f"connecting to {endpoint.host}:{endpoint.port} timed out"
        ) from None
    except OSError as exc:
        raise HostRequestError(
            "connection",
            f"cannot connect to {endpoint.host}:{endpoint.port}: {exc.strerror or exc}",
        ) from None


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP to the vetted address, with the URL's host in the Host header."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout=timeout)
        self._endpoint = endpoint

    def connect(self) -> None:
        self.sock = _connect(self._endpoint, self.timeout)  # type: ignore[arg-type]


class _PinnedTLSConnection(http.client.HTTPSConnection):
    def __init__(self, endpoint: Endpoint, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout=timeout, context=context)
        self._endpoint = endpoint
        self._tls = context

    def connect(self) -> None:
        sock = _connect(self._endpoint, self.timeout)  # type: ignore[arg-type]
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self._endpoint.host)
        except ssl.SSLError as exc:
            sock.close()
            raise HostRequestError(
                "tls", f"TLS with {self._endpoint.host} failed: {exc.reason or exc}"
            ) from None


def http_request(
    policy: NetworkPolicy,
    request: Mapping[str, Any],
    *,
    deadline: float,
    max_response: int,
    tls: ssl.SSLContext,
) -> dict[str, Any]:
    """Perform one HTTP request for a plugin (following vetted redirects)."""
    url = request.get("url")
    if not isinstance(url, str):
        raise HostRequestError("invalid_request", "url must be a string")
    method = request.get("method", "GET")
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise HostRequestError("invalid_request", f"invalid method {method!r}")
    method = method.upper()
    headers = _headers(request.get("headers"))
    body = decode_body(request)
    follow = request.get("follow_redirects", True)
    timeout = _remaining(deadline, request.get("timeout_ms"))

    for _hop in range(MAX_REDIRECTS + 1):
        try:
            endpoint = policy.resolve(url, schemes=HTTP_SCHEMES)
        except NetworkDenied as exc:
            raise HostRequestError(
                "denied", str(exc) if _hop == 0 else f"redirect refused: {exc}"
            ) from None
        status, reason, response_headers, data = _exchange(
            endpoint, method, headers, body, timeout, max_response, tls
        )
        location = next((v for k, v in response_headers if k.lower() == "location"), None)
        if follow and status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, body = "GET", b""
                headers = [
                    (k, v)
                    for k, v in headers
                    if k.lower() not in ("content-type", "content-length")
                ]
            timeout = _remaining(deadline, request.get("timeout_ms"))
            continue
        return {
            "status": status,
            "reason": reason,
            "headers": response_headers,
            "url": url,
            **encode_body(data),
        }
    raise HostRequestError("redirects", f"more than {MAX_REDIRECTS} redirects")


def _exchange(
    endpoint: Endpoint,
    method: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout: float,
    max_response: int,
    tls: ssl.SSLContext,
) -> tuple[int, str, list[list[str]], bytes]:
    if endpoint.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedTLSConnection(endpoint, timeout, tls)
    else:
        conn = _PinnedConnection(endpoint, timeout)
    try:
        conn.putrequest(method, endpoint.path, skip_accept_encoding=True)
        names = {k.lower() for k, _ in headers}
        for name, value in headers:
            conn.putheader(name, value)
        if (body or method in ("POST", "PUT", "PATCH")) and "content-length" not in names:
            conn.putheader("Content-Length", str(len(body)))
        if "user-agent" not in names:
            conn.putheader("User-Agent", "wasmdeck")
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read(max_response + 1)
        if len(data) > max_response:
            raise HostRequestError(
                "too_large",
                f"the response from {endpoint.host} is larger than the {max_response:,}-byte cap",
            )
        return response.status, response.reason, [[k, v] for k, v in response.getheaders()], data
    except HostRequestError:
        raise
    except TimeoutError:
        raise HostRequestError("timeout", f"{endpoint.host} did not answer in time") from None
    except (OSError, http.client.HTTPException) as exc:
        raise HostRequestError("connection", f"request to {endpoint.host} failed: {exc}") from None
    finally:
        conn.close()


class WebSocketSessions:
    """The WebSocket connections one plugin instance owns (closed with it)."""

    def __init__(
        self, policy: NetworkPolicy, *, max_message: int, tls: ssl.SSLContext, limit: int = 8
    ) -> None:
        self._policy = policy
        self._max_message = max_message
        self._tls = tls
        self._limit = limit
        self._connections: dict[int, Any] = {}
        self._next_id = 1

    def connect(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        from websockets.exceptions import InvalidHandshake, InvalidURI
        from websockets.sync.client import connect

        url = request.get("url")
        if not isinstance(url, str):
            raise HostRequestError("invalid_request", "url must be a string")
        if len(self._connections) >= self._limit:
            raise HostRequestError(
                "limit", f"a plugin may hold at most {self._limit} WebSocket connections"
            )
        subprotocols = request.get("subprotocols") or None
        if subprotocols is not None and (
            not isinstance(subprotocols, list) or not all(isinstance(p, str) for p in subprotocols)
        ):
            raise HostRequestError("invalid_request", "subprotocols must be a list of strings")
        headers = _headers(request.get("headers"))
        timeout = _remaining(deadline, request.get("timeout_ms"))
        try:
            endpoint = self._policy.resolve(url, schemes=WS_SCHEMES)
        except NetworkDenied as exc:
            raise HostRequestError("denied", str(exc)) from None
        sock = _connect(endpoint, timeout)
        try:
            connection = connect(
                url,
                sock=sock,
                ssl=self._tls if endpoint.scheme == "wss" else None,
                server_hostname=endpoint.host if endpoint.scheme == "wss" else None,
                subprotocols=subprotocols,  # type: ignore[arg-type]
                additional_headers=headers,
                open_timeout=timeout,
                max_size=self._max_message,
                compression=None,
                user_agent_header="wasmdeck",
                proxy=None,  # never through a proxy: the vetted address is the peer
                legacy=True,  # the connection outlives this call (no `with` block)
            )
        except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
            sock.close()
            raise HostRequestError(
                "connection", f"WebSocket handshake with {endpoint.host} failed: {exc}"
            ) from None
        handle = self._next_id
        self._next_id += 1
        self._connections[handle] = connection
        return {"id": handle, "subprotocol": connection.subprotocol}

    def _get(self, request: Mapping[str, Any]) -> Any:
        handle = request.get("id")
        connection = self._connections.get(handle) if isinstance(handle, int) else None
        if connection is None:
            raise HostRequestError("invalid_request", f"no open WebSocket with id {handle!r}")
        return connection

    def send(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        connection = self._get(request)
        if request.get("data_base64") is not None:
            payload: str | bytes = decode_body(request, "data", "data_base64")
        elif isinstance(request.get("text"), str):
            payload = request["text"]
        else:
            raise HostRequestError("invalid_request", "send needs 'text' or 'data_base64'")
        try:
            connection.send(payload)
        except ConnectionClosed as exc:
            raise HostRequestError("closed", f"the WebSocket is closed ({exc})") from None
        return {}

    def receive(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        connection = self._get(request)
        timeout = _remaining(deadline, request.get("timeout_ms"))
        try:
            message = connection.recv(timeout=timeout)
        except TimeoutError:
            return {"timeout": True}
        except ConnectionClosed as exc:
            received = exc.rcvd
            return {
                "closed": True,
                "code": received.code if received else None,
                "reason": received.reason if received else "",
            }
        if isinstance(message, str):
            return {"text": message}
        return {"data_base64": base64.b64encode(message).decode()}

    def close(self, request: Mapping[str, Any]) -> dict[str, Any]:
        connection = self._get(request)
        del self._connections[request["id"]]
        connection.close()
        return {}

    def close_all(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            with contextlib.suppress(Exception):  # best effort: the instance is going away
                connection.close()
