"""Serving a starlette app on uvicorn inside the daemon's loop.

uvicorn would install its own SIGINT/SIGTERM handlers; the daemon owns the
signals (it drains plugin calls before exiting), so they are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["HttpServer"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:
        pass


class HttpServer:
    """An ASGI app listening on ``host:port`` (port 0: any free port; see ``port``)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by each accepted connection (Linux): uvicorn writes a
        # response's head and body apart, and with Nagle the body waited for
        # the client's delayed ACK, ~40 ms per request on a kept-alive connection.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((host, port))
        # Listening now, not when uvicorn's task first runs: a client that
        # connects right after "serving" is printed waits in the backlog
        # instead of being refused.
        self._socket.listen(2048)
        self.host, self.port = host, self._socket.getsockname()[1]
        # HTTP parsed by httptools (a dependency of wasmdeck[serve]; pyproject.toml).
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._socket]), name=f"http {self.host}:{self.port}"
        )

    async def close(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._socket.close()
