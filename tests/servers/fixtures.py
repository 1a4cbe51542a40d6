"""Pytest fixtures for the loopback protocol servers; tests/conftest.py imports them.

Each fixture starts a fresh server for one test and stops it at teardown, so
state (scenes, lights, request logs) never leaks between tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
