"""A small threaded HTTP/1.1 server on loopback that hands each request to an app function.

The Hue bridge and the webhook receiver are both "read a request, answer it"
servers; this module holds the socket and thread handling they share, so each
of them is only its protocol. Every request is recorded (method, path, headers,
body) before the app sees it, including ones the app then refuses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

# Large enough for any JSON a plugin sends; small enough that a runaway client
# cannot make the test process buffer without bound.
MAX_BODY = 1 << 20
# A client that stalls mid-request (or keeps an idle keep-alive connection)
# holds a handler thread at most this long.
SOCKET_TIMEOUT = 5.0
WAIT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    target: str  # the request target as sent: path plus query string
    headers: dict[str, str]  # header names lower-cased; a repeated header keeps its last value
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: object, status: int = 200) -> Response:
        # Compact separators: the Hue bridge answers in this form, and the
        # documentation's example exchanges are compared byte for byte.
        body = json.dumps(value, separators=(",", ":")).encode()
        return cls(status, body, [("Content-Type", "application/json")])


App = Callable[[RecordedRequest], Response]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp and httpx expect of a real server
    timeout = SOCKET_TIMEOUT

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            raise _BadRequest(400, "invalid Content-Length") from None
        if length < 0:
            raise _BadRequest(400, "invalid Content-Length")
        if length > MAX_BODY:
            raise _BadRequest(413, "body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:  # bounded: every turn consumes input, and MAX_BODY caps the total
            line = self.rfile.readline(100)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400, "invalid chunk size") from None
            if size == 0:
                self.rfile.readline(100)  # the blank line after the last chunk (no trailers sent)
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise _BadRequest(413, "body too large")
            body += self.rfile.read(size)
            self.rfile.readline(100)

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._send(Response(exc.status, str(exc).encode(), [("Content-Type", "text/plain")]))
            return
        request = RecordedRequest(
            method=self.command,
            target=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        self.server.owner._record(request)
        try:
            response = self.server.owner.app(request)
        except Exception:
            # A bug in a test server must show as a failed request, not a hang.
            log.exception("test server app failed on %s %s", self.command, self.path)
            response = Response(500, b"internal error", [("Content-Type", "text/plain")])
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackHTTPServer


class LoopbackHTTPServer:
    """Serves ``app`` on 127.0.0.1:<ephemeral> in a background thread; a context manager."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = WAIT_TIMEOUT) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._requests)} of {count} requests arrived")
                self._lock.wait(left)
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def start(self) -> Self:
        if self._server is not None:  # already serving (``with server.start():``)
            return self
        server = _Server((self.host, self.port), _Handler)  # port 0: any free one
        server.owner = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        # Idle keep-alive connections would otherwise hold their threads until
        # the socket timeout; shutting them down ends those threads now.
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=WAIT_TIMEOUT)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
