"""The control API: what ``wasmdeck status/reload/fire/mode/events`` and the web UI speak.

HTTP on 127.0.0.1 only, version 1 under ``/v1`` (docs/serve.md). Every
request needs ``Authorization: Bearer TOKEN``, the token in
``$WASMDECK_HOME/control.json`` (mode 0600, with the port), and a ``Host``
header naming 127.0.0.1 or localhost with that port, so a web page cannot
reach the API through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from .. import _json
from .._home import home
from ..packages import atomic_write
from ..triggers import UnknownMode
from ._ui import ManagementUI

__all__ = ["ControlAPI", "control_file"]

API_VERSION = 1


def control_file() -> Path:
    """Where a running daemon writes its port and token."""
    return home() / "control.json"


class ControlAPI:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.token = secrets.token_urlsafe(32)
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/v1/status", self.status, methods=["GET"]),
                Route("/v1/reload", self.reload, methods=["POST"]),
                Route("/v1/reload/{plugin}", self.reload_plugin, methods=["POST"]),
                Route("/v1/fire/{binding}", self.fire, methods=["POST"]),
                Route("/v1/mode/{mode}", self.mode, methods=["POST"]),
                Route("/v1/events", self.events, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                # The web UI (docs/ui.md): its own login, by this token, and a session cookie.
                Mount("/ui", app=ManagementUI(daemon, lambda: self.token, lambda: self.port)),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Any) -> Response | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("host") not in (f"127.0.0.1:{self.port}", f"localhost:{self.port}"):
            return JSONResponse({"error": "wrong Host header"}, status_code=421)
        if scope["path"] == "/ui" or scope["path"].startswith("/ui/"):
            return None  # the UI checks its session cookie and CSRF token itself (_ui.py)
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.encode(), self.token.encode()
        ):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        return None

    def publish(self, port: int) -> Path:
        """Write the port and token for the CLI (0600); returns the file."""
        self.port = port
        path = control_file()
        document = {"version": API_VERSION, "port": port, "token": self.token, "pid": os.getpid()}
        atomic_write(path, _json.dumps(document), mode=0o600)
        return path

    def withdraw(self) -> None:
        path = control_file()
        try:
            document = _json.loads(path.read_bytes(), what="control.json")
        except (OSError, _json.JSONInputError):
            return
        if isinstance(document, dict) and document.get("token") == self.token:
            path.unlink(missing_ok=True)

    async def status(self, request: Request) -> Response:
        return JSONResponse(self.daemon.status())

    async def reload(self, request: Request) -> Response:
        ok, message = await self.daemon.reload()
        return JSONResponse({"ok": ok, "message": message}, status_code=200 if ok else 409)

    async def reload_plugin(self, request: Request) -> Response:
        """One plugin, state and all (docs/reload.md): 200, 409 (failed: the old one runs), 404."""
        name = request.path_params["plugin"]
        try:
            ok, message = await self.daemon.reload_plugin(name)
        except KeyError:
            return JSONResponse({"error": f"no plugin named {name!r} in the deck"}, status_code=404)
        return JSONResponse({"ok": ok, "message": message}, status_code=200 if ok else 409)

    async def fire(self, request: Request) -> Response:
        name = request.path_params["binding"]
        try:
            self.daemon.fire(name)
        except KeyError:
            return JSONResponse({"error": f"no binding named {name!r}"}, status_code=404)
        return JSONResponse({"fired": name})

    async def mode(self, request: Request) -> Response:
        try:
            self.daemon.set_mode(request.path_params["mode"])
        except UnknownMode as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"mode": self.daemon.engine.mode})

    async def metrics(self, request: Request) -> Response:
        return Response(
            self.daemon.metrics.prometheus(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def events(self, request: Request) -> Response:
        queue = self.daemon.listen()

        async def lines() -> AsyncIterator[bytes]:
            try:
                while True:
                    try:
                        record = await asyncio.wait_for(queue.get(), 15)
                    except TimeoutError:
                        yield b"\n"  # keeps the connection, shows the reader is gone
                        continue
                    yield _json.dumps(record) + b"\n"
            finally:
                self.daemon.unlisten(queue)

        return StreamingResponse(lines(), media_type="application/x-ndjson")
