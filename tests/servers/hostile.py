"""Hostile peers on loopback: each holds a client as long as it can, for the deadline tests.

- ``DripHTTPServer``: a correct HTTP/1.1 answer, written one byte every
  ``interval`` seconds from the status line, the headers or the body on, so
  a client whose timeout applies to each read never times out.
- ``SilentWebSocketServer``: completes the WebSocket opening handshake
  (RFC 6455), then reads and records frames and never sends one: it never
  answers a close, a message or a ping. With ``read=False`` it does not even
  read, so a large message fills the socket buffers and the sender blocks.

Both bind an ephemeral port on ``host`` (127.0.0.1 by default), serve each
connection on a thread, and stop (dropping every connection) when their
context manager exits.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
from types import TracebackType
from typing import Self

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3


class _Server:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.connections = 0  # accepted so far
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Self:
        listener = socket.create_server((self.host, 0))
        listener.settimeout(0.05)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with self._lock:
                self._open.add(connection)
            self._spawn(self._serve_one, connection)

    def _serve_one(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(5)
            self.serve(connection)
        except OSError:
            pass  # the client went away
        finally:
            with self._lock:
                self._open.discard(connection)
            connection.close()

    def serve(self, connection: socket.socket) -> None:
        raise NotImplementedError


def _read_head(connection: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = connection.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the end of the request head")
        head += chunk
    return head


class DripHTTPServer(_Server):
    """Answers ``200 OK`` with ``body``, dripping from ``phase`` (status, headers or body) on."""

    def __init__(
        self,
        *,
        phase: str = "status",
        interval: float = 0.1,
        body: bytes = b"x" * 100,
        host: str = "127.0.0.1",
    ) -> None:
        if phase not in ("status", "headers", "body"):
            raise ValueError(f"phase must be status, headers or body, not {phase!r}")
        super().__init__(host)
        self.phase = phase
        self.interval = interval
        self.body = body
        self.requests: list[bytes] = []  # each request's head

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def response(self) -> tuple[bytes, bytes]:
        """(what is sent at once, what is dripped)."""
        status = b"HTTP/1.1 200 OK\r\n"
        headers = (
            f"Content-Type: text/plain\r\nContent-Length: {len(self.body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        whole = status + headers + self.body
        at = {"status": 0, "headers": len(status), "body": len(status) + len(headers)}[self.phase]
        return whole[:at], whole[at:]

    def serve(self, connection: socket.socket) -> None:
        self.requests.append(_read_head(connection))
        now, dripped = self.response()
        connection.sendall(now)
        for byte in dripped:
            if self._stop.wait(self.interval):
                return
            connection.sendall(bytes([byte]))


class SilentWebSocketServer(_Server):
    """Accepts WebSocket connections, records the opcodes of the frames it gets, answers none."""

    def __init__(self, host: str = "127.0.0.1", *, read: bool = True) -> None:
        super().__init__(host)
        self.read = read
        self.opcodes: list[int] = []  # 1 text, 2 binary, 8 close, 9 ping, ...
        self.received = threading.Condition()

    def url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def serve(self, connection: socket.socket) -> None:
        head = _read_head(connection)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        connection.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        connection.settimeout(None)
        if not self.read:
            self._stop.wait()
            return
        while not self._stop.is_set():
            first = _recv_exactly(connection, 2)
            length = first[1] & 0x7F
            if length == 126:
                length = int.from_bytes(_recv_exactly(connection, 2), "big")
            elif length == 127:
                length = int.from_bytes(_recv_exactly(connection, 8), "big")
            masked = first[1] & 0x80
            _recv_exactly(connection, length + (4 if masked else 0))
            with self.received:
                self.opcodes.append(first[0] & 0x0F)
                self.received.notify_all()


def _recv_exactly(connection: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data
