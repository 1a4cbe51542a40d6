"""A small DNS server (RFC 1035, UDP) for resolver tests.

``DNSServer(records, silent=...)`` answers ``A`` queries for the names in
``records`` (name -> IPv4 address), an empty answer for their other types
(so ``AAAA`` lookups end at once), ``NXDOMAIN`` for unknown names, and
nothing at all for names in ``silent``: a resolver asking for those waits
until it gives up. ``queries`` records every (name, type) asked.

It binds ``host:port`` (an ephemeral port by default; the system resolver
only speaks to port 53, so tests that go through ``getaddrinfo`` run it in
a network namespace of their own, see tests/netns.py).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from types import TracebackType
from typing import Self

TYPE_A = 1


class DNSServer:
    def __init__(
        self,
        records: dict[str, str],
        *,
        silent: tuple[str, ...] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.records = {name.lower().rstrip("."): address for name, address in records.items()}
        self.silent = {name.lower().rstrip(".") for name in silent}
        self.host, self.port = host, port
        self.queries: list[tuple[str, int]] = []
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, self.port))
        sock.settimeout(0.05)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._socket is not None
        while not self._stop.is_set():
            try:
                query, client = self._socket.recvfrom(512)
            except TimeoutError:
                continue
            answer = self.answer(query)
            if answer is not None:
                self._socket.sendto(answer, client)

    def answer(self, query: bytes) -> bytes | None:
        """The response to one query message, or None to stay silent."""
        if len(query) < 12:
            return None
        ident, flags = struct.unpack_from("!HH", query)
        labels, at = [], 12
        while at < len(query) and query[at]:
            labels.append(query[at + 1 : at + 1 + query[at]].decode("ascii", "replace"))
            at += 1 + query[at]
        if at + 5 > len(query):
            return None
        qtype, _qclass = struct.unpack_from("!HH", query, at + 1)
        question = query[12 : at + 5]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        if name in self.silent:
            return None
        address = self.records.get(name)
        rd = flags & 0x0100
        if address is None:  # NXDOMAIN
            return struct.pack("!HHHHHH", ident, 0x8083 | rd, 1, 0, 0, 0) + question
        if qtype != TYPE_A:  # the name exists, without records of that type
            return struct.pack("!HHHHHH", ident, 0x8080 | rd, 1, 0, 0, 0) + question
        record = struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, 60, 4)
        record += ipaddress.IPv4Address(address).packed
        return struct.pack("!HHHHHH", ident, 0x8080 | rd, 1, 1, 0, 0) + question + record
