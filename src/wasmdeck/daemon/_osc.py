"""OSC triggers over UDP (python-osc), for TouchOSC- and QLab-style surfaces."""

from __future__ import annotations

import asyncio
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import AsyncIOOSCUDPServer

from ..triggers import OscEvent

__all__ = ["OscServer"]


class OscServer:
    def __init__(self, daemon: Any, host: str, port: int) -> None:
        self._daemon = daemon
        self.host, self.port = host, port
        self._transport: asyncio.BaseTransport | None = None

    async def start(self) -> None:
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._message)
        loop: Any = asyncio.get_running_loop()  # python-osc's hint says BaseEventLoop
        server = AsyncIOOSCUDPServer((self.host, self.port), dispatcher, loop)
        self._transport, _ = await server.create_serve_endpoint()
        self.port = self._transport.get_extra_info("sockname")[1]

    def _message(self, address: str, *args: Any) -> None:
        self._daemon.feed(OscEvent(address, tuple(args)))

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
