"""The ASGI application: the JSON API and ``/openapi.json`` over one ``Market``.

Pages (server-rendered HTML) are added as more routes on the same app, calling
the same ``Market`` methods (``create_app(..., routes=[...])``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ._api import api_routes
from ._limits import Limits, RateLimiter
from ._service import Market
from ._sessions import Sessions

__all__ = ["create_app"]


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app(
    market: Market,
    *,
    limits: Limits | None = None,
    open_signup: bool = False,
    clock: Callable[[], float] | None = None,
    routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The marketplace app. ``open_signup`` lets anyone create an account over the API;
    ``clock`` (wall seconds, as every process behind one database sees them) drives
    the rate limits, which that database keeps (_limits.py)."""
    limits = limits or Limits(max_package=market.max_package)
    app = Starlette(routes=[*api_routes(), Route("/healthz", _health, methods=["GET"]), *routes])
    app.state.market = market
    app.state.limits = limits
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    app.state.limiter = RateLimiter(limits, market.db, **kwargs)
    app.state.sessions = Sessions(market.db, lambda: market.clock())
    app.state.open_signup = open_signup
    return app
