"""Webhook triggers: HTTP on 127.0.0.1 by default, each binding with its own secret.

A request names a binding by method and path. It must carry the binding's
bearer token (``Authorization: Bearer ...``) or the HMAC-SHA256 of its raw
body (hex, optionally ``sha256=`` first, in the binding's header), both
compared in constant time. Bodies over ``listen.webhook_max_body`` are
refused (413) before they are read whole, requests over
``listen.webhook_rate_per_minute`` per binding too (429). The JSON body is
``{body.*}`` to the binding's params.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .. import _json
from ..deck import Binding
from ..triggers import WebhookEvent

__all__ = ["WebhookApp"]


class WebhookApp:
    def __init__(self, daemon: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._daemon = daemon
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        daemon = self._daemon
        deck = daemon.deck
        candidates = [
            b
            for b in daemon.engine.webhook_bindings()
            if b.trigger.path == request.url.path and b.trigger.method == request.method
        ]
        if not candidates:
            return _error(404, "no webhook binding for this method and path")
        limit = deck.listen.webhook_max_body
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return _error(413, f"the body is larger than {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, f"the body is larger than {limit} bytes")
        allowed = [b for b in candidates if self._authorized(b, request, bytes(body))]
        if not allowed:
            return _error(401, "missing or wrong credentials for this webhook")
        now = self._clock()
        for binding in allowed:
            recent = self._recent.setdefault(binding.name, deque())
            while recent and now - recent[0] >= 60:
                recent.popleft()
            if len(recent) >= deck.listen.webhook_rate_per_minute:
                return _error(429, "too many requests for this webhook; try again later")
            recent.append(now)
        payload: Any = None
        if body:
            try:
                payload = _json.loads(bytes(body), what="the webhook body")
            except _json.JSONInputError as exc:
                return _error(400, str(exc))
        event = WebhookEvent(request.method, request.url.path, payload, dict(request.query_params))
        names = {b.name for b in allowed}
        fired = [f.binding.name for f in daemon.feed(event, only=names)]
        return JSONResponse({"fired": fired}, status_code=202)

    def _authorized(self, binding: Binding, request: Request, body: bytes) -> bool:
        auth = binding.trigger.auth
        secret = self._daemon.secrets.get(binding.name)
        if auth is None or secret is None:
            return False
        if auth.scheme == "bearer":
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), secret)
        signature = request.headers.get(auth.header, "").removeprefix("sha256=")
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature.encode(), expected.encode())


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)
