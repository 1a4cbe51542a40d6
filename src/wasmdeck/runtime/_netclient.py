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
import io
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from .._errors import HostRequestError
from ._deadline import DeadlinePassed
from ._netpolicy import Endpoint, NetworkDenied, NetworkPolicy

__all__ = [
    "HostRequestError",
    "RequestBudget",
    "WebSocketSessions",
    "decode_body",
    "encode_body",
    "http_request",
]

HTTP_SCHEMES = ("http", "https")
WS_SCHEMES = ("ws", "wss")
MAX_REDIRECTS = 5
# Sent to the origin the plugin named, never along a redirect to another one.
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
# How long closing an instance's WebSockets may wait for the peers' close frames.
CLOSE_GRACE = 0.1
_T = TypeVar("_T")
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
    pairs: Any = value.items() if isinstance(value, Mapping) else value or []
    if not isinstance(pairs, Iterable) or isinstance(pairs, str | bytes):
        raise HostRequestError(
            "invalid_request", "headers must be an object or a list of [name, value]"
        )
    headers = []
    for pair in pairs:
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


class RequestBudget:
    """When one host request must end: its own ``timeout_ms`` or the call's deadline.

    Every wait of the request (DNS, connect, TLS, each read and write) gets
    only the time left, so a peer that answers a byte at a time cannot
    stretch it. When the time is up because of the call's deadline, the
    call ends (``DeadlinePassed``); a shorter ``timeout_ms`` of the request
    is reported to the plugin as a ``timeout`` error it may handle.
    """

    def __init__(self, deadline: float, requested_ms: object, default: float = 10.0) -> None:
        if requested_ms is not None and (
            type(requested_ms) is not int or requested_ms <= 0  # (bool is not a timeout)
        ):
            raise HostRequestError("invalid_request", "timeout_ms must be a positive integer")
        wanted = requested_ms / 1000 if isinstance(requested_ms, int) else default
        self.deadline = deadline
        self.end = min(time.monotonic() + wanted, deadline)
        self.left("starting the request")

    def left(self, doing: str) -> float:
        """Seconds left; raises ``expired(doing)`` when none are."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.expired(doing)
        return left

    def expired(self, doing: str) -> Exception:
        if self.end >= self.deadline:
            return DeadlinePassed(doing)
        return HostRequestError("timeout", f"timed out {doing}")


def _connect(endpoint: Endpoint, budget: RequestBudget) -> socket.socket:
    doing = f"connecting to {endpoint.host}:{endpoint.port}"
    try:
        return socket.create_connection(
            (endpoint.address, endpoint.port), timeout=budget.left(doing)
        )
    except TimeoutError:
        raise budget.expired(doing) from None
    except OSError as exc:
        raise HostRequestError(
            "connection",
            f"cannot connect to {endpoint.host}:{endpoint.port}: {exc.strerror or exc}",
        ) from None


def _resolve(
    policy: NetworkPolicy, url: str, schemes: tuple[str, ...], budget: RequestBudget, redirect: bool
) -> Endpoint:
    try:
        return policy.resolve(url, schemes=schemes, timeout=budget.left("resolving the host"))
    except NetworkDenied as exc:
        raise HostRequestError(
            "denied", f"redirect refused: {exc}" if redirect else str(exc)
        ) from None
    except TimeoutError:
        raise budget.expired(f"resolving the host of {url}") from None


class _BoundedSocket:
    """A connected socket whose every read and write waits only for the time left.

    ``http.client`` uses a socket through ``sendall``, ``makefile`` and
    ``close``; these recompute the socket's timeout before each operation.
    """

    def __init__(self, sock: socket.socket, budget: RequestBudget, host: str) -> None:
        self._sock = sock
        self._budget = budget
        self._doing = f"waiting for {host}"

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._sock.settimeout(self._budget.left(self._doing))
            view = view[self._sock.send(view) :]

    def recv_into(self, buffer: memoryview) -> int:
        self._sock.settimeout(self._budget.left(self._doing))
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str, *_args: object, **_kwargs: object) -> io.BufferedReader:
        assert mode == "rb"
        return io.BufferedReader(_BoundedReader(self))

    def close(self) -> None:
        # http.client "closes" the socket while the response still reads from
        # it (a socket's makefile keeps it open); the exchange closes the
        # real socket when it is over (_PinnedConnection.close_socket).
        pass


class _BoundedReader(io.RawIOBase):
    def __init__(self, sock: _BoundedSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP to the vetted address, with the URL's host in the Host header."""

    def __init__(self, endpoint: Endpoint, budget: RequestBudget) -> None:
        super().__init__(endpoint.host, endpoint.port)
        self._endpoint = endpoint
        self._budget = budget
        self._socket: socket.socket | None = None

    def connect(self) -> None:
        sock = self._secure(_connect(self._endpoint, self._budget))
        self._socket = sock
        self.sock = _BoundedSocket(sock, self._budget, self._endpoint.host)

    def close_socket(self) -> None:
        self.close()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _secure(self, sock: socket.socket) -> socket.socket:
        return sock


class _PinnedTLSConnection(_PinnedConnection):
    def __init__(self, endpoint: Endpoint, budget: RequestBudget, context: ssl.SSLContext) -> None:
        super().__init__(endpoint, budget)
        self.default_port = 443
        self._tls = context

    def _secure(self, sock: socket.socket) -> socket.socket:
        host = self._endpoint.host
        try:
            # One handshake under one timeout: CPython's ssl module keeps a
            # deadline across the handshake's reads and writes.
            sock.settimeout(self._budget.left(f"in the TLS handshake with {host}"))
            return self._tls.wrap_socket(sock, server_hostname=host)
        except ssl.SSLError as exc:
            sock.close()
            raise HostRequestError("tls", f"TLS with {host} failed: {exc.reason or exc}") from None
        except BaseException:
            sock.close()
            raise


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return (
        scheme,
        (parts.hostname or "").rstrip("."),
        port or {"http": 80, "https": 443}.get(scheme),
    )


def http_request(
    policy: NetworkPolicy,
    request: Mapping[str, Any],
    *,
    deadline: float,
    max_response: int,
    tls: ssl.SSLContext,
) -> dict[str, Any]:
    """Perform one HTTP request for a plugin (following vetted redirects).

    The whole request, redirects included, ends within its ``timeout_ms``
    (10 s by default) and the call's deadline (see ``RequestBudget``).
    """
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
    budget = RequestBudget(deadline, request.get("timeout_ms"))

    for hop in range(MAX_REDIRECTS + 1):
        endpoint = _resolve(policy, url, HTTP_SCHEMES, budget, redirect=hop > 0)
        status, reason, response_headers, data = _exchange(
            endpoint, method, headers, body, budget, max_response, tls
        )
        location = next((v for k, v in response_headers if k.lower() == "location"), None)
        if follow and status in (301, 302, 303, 307, 308) and location:
            target = urljoin(url, location)
            if _origin(target) != _origin(url):
                # Credentials were meant for the origin the plugin named (as
                # httpx strips Authorization; it drops Cookie on every
                # redirect, having its own cookie jar).
                headers = [(k, v) for k, v in headers if k.lower() not in CREDENTIAL_HEADERS]
            url = target
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, body = "GET", b""
                headers = [
                    (k, v)
                    for k, v in headers
                    if k.lower() not in ("content-type", "content-length")
                ]
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
    budget: RequestBudget,
    max_response: int,
    tls: ssl.SSLContext,
) -> tuple[int, str, list[list[str]], bytes]:
    if endpoint.scheme == "https":
        conn: _PinnedConnection = _PinnedTLSConnection(endpoint, budget, tls)
    else:
        conn = _PinnedConnection(endpoint, budget)
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
    except (HostRequestError, DeadlinePassed):
        raise
    except TimeoutError:
        raise budget.expired(f"waiting for {endpoint.host}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise HostRequestError("connection", f"request to {endpoint.host} failed: {exc}") from None
    finally:
        conn.close_socket()


def _within(
    budget: RequestBudget, doing: str, work: Callable[[], _T], abort: Callable[[], None]
) -> _T:
    """Run blocking ``work`` for at most the time left; on time-out ``abort`` it.

    For library calls that take no timeout of their own (a WebSocket send
    to a peer that stops reading): the work runs on a helper thread, and
    ``abort`` (closing the socket) makes it return.
    """
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:
            outcome.append((False, exc))

    left = budget.left(doing)
    helper = threading.Thread(target=run, name="wasmdeck-bounded", daemon=True)
    helper.start()
    helper.join(left)
    if helper.is_alive():
        abort()
        helper.join(1.0)
        raise budget.expired(doing)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


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
        budget = RequestBudget(deadline, request.get("timeout_ms"))
        endpoint = _resolve(self._policy, url, WS_SCHEMES, budget, redirect=False)
        sock = _connect(endpoint, budget)
        try:
            connection = connect(
                url,
                sock=sock,
                ssl=self._tls if endpoint.scheme == "wss" else None,
                server_hostname=endpoint.host if endpoint.scheme == "wss" else None,
                subprotocols=subprotocols,
                additional_headers=headers,
                # The whole opening handshake (TLS included) under one deadline.
                open_timeout=budget.left(f"opening a WebSocket to {endpoint.host}"),
                close_timeout=CLOSE_GRACE,  # each close sets its own (see close())
                max_size=self._max_message,
                compression=None,
                user_agent_header="wasmdeck",
                proxy=None,  # never through a proxy: the vetted address is the peer
                legacy=True,  # the connection outlives this call (no `with` block)
            )
        except TimeoutError:
            sock.close()
            raise budget.expired(f"opening a WebSocket to {endpoint.host}") from None
        except (InvalidHandshake, InvalidURI, OSError) as exc:
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

    def send(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        connection = self._get(request)
        if request.get("data_base64") is not None:
            payload: str | bytes = decode_body(request, "data", "data_base64")
        elif isinstance(request.get("text"), str):
            payload = request["text"]
        else:
            raise HostRequestError("invalid_request", "send needs 'text' or 'data_base64'")
        budget = RequestBudget(deadline, request.get("timeout_ms"))
        try:
            # A peer that stops reading would block the send for ever: give
            # up at the time left, and drop the connection (a frame cut in
            # two leaves the stream unusable).
            _within(
                budget,
                "sending on a WebSocket",
                lambda: connection.send(payload),
                lambda: self._drop(request["id"]),
            )
        except ConnectionClosed as exc:
            raise HostRequestError("closed", f"the WebSocket is closed ({exc})") from None
        except HostRequestError as exc:
            if exc.kind == "timeout":
                raise HostRequestError(
                    "timeout", "sending on the WebSocket timed out; it was closed"
                ) from None
            raise
        return {}

    def receive(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        connection = self._get(request)
        budget = RequestBudget(deadline, request.get("timeout_ms"))
        try:
            message = connection.recv(timeout=budget.left("receiving on a WebSocket"))
        except TimeoutError:
            if budget.end >= budget.deadline:
                raise DeadlinePassed("receiving on a WebSocket") from None
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

    def close(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        connection = self._get(request)
        budget = RequestBudget(deadline, request.get("timeout_ms"))
        del self._connections[request["id"]]
        # The close handshake waits for the peer's close frame at most for
        # the time left; then the socket is closed regardless.
        connection.close_timeout = budget.left("closing a WebSocket")
        with contextlib.suppress(Exception):
            connection.close()
        if time.monotonic() >= budget.deadline:
            raise DeadlinePassed("closing a WebSocket (the peer did not answer the close)")
        return {}

    def _drop(self, handle: int) -> None:
        connection = self._connections.pop(handle, None)
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.socket.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):
                connection.close_socket()

    def close_all(self) -> None:
        """Close every connection, waiting at most ``CLOSE_GRACE`` in all for the peers."""
        connections, self._connections = list(self._connections.values()), {}
        end = time.monotonic() + CLOSE_GRACE
        for connection in connections:
            connection.close_timeout = max(0.0, end - time.monotonic())
            with contextlib.suppress(Exception):  # best effort: the instance is going away
                connection.close()
