"""Pytest fixtures for the loopback protocol servers; tests/conftest.py imports them.

Each fixture starts a fresh server for one test and stops it at teardown, so
state (scenes, lights, request logs) never leaks between tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from websockets.sync.server import ServerConnection, serve

from .hue import HueBridge
from .obs import ObsWebSocketServer
from .webhook import WebhookServer


@pytest.fixture
def obs_server() -> Iterator[ObsWebSocketServer]:
    """obs-websocket v5 with a password: ``.host``, ``.port``, ``.password``, ``.state``, ``.requests``."""
    with ObsWebSocketServer(password="wasmdeck-obs") as server:
        yield server


@pytest.fixture
def hue_bridge() -> Iterator[HueBridge]:
    """A Hue v1 bridge with a registered user (``.username``) and three lights; ``.requests`` logs."""
    with HueBridge() as bridge:
        yield bridge


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    """Records every request (``.requests``); answers 200 ``{"ok": true}`` until told otherwise."""
    with WebhookServer() as server:
        yield server


@pytest.fixture
def echo_server() -> Iterator[tuple[int, list[str]]]:
    """A WebSocket echo server (subprotocol ``echo.v1``): ``(port, seen)``.

    It echoes text and binary messages, records them in ``seen`` (binary ones
    as ``bytes:<hex>``) and closes with code 4000 on ``bye``.
    """
    seen: list[str] = []

    def handler(connection: ServerConnection) -> None:
        for message in connection:
            seen.append(message if isinstance(message, str) else f"bytes:{message.hex()}")
            if message == "bye":
                connection.close(code=4000, reason="bye")
                return
            connection.send(message)

    with serve(handler, "127.0.0.1", 0, subprotocols=["echo.v1"]) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.socket.getsockname()[1], seen
        server.shutdown()
        thread.join(timeout=5)
