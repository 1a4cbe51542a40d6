"""The JSON API under ``/api/v1``, described by the OpenAPI document it serves.

Each route is declared once (``API``): method, path, summary, whether it needs
a token and whether it writes (for the rate limits); ``/openapi.json`` is
built from the same table, so every route is described. Handlers turn a
request into one call of ``Market`` and its answer into JSON; a refusal is
``{"error": {"code", "message"}}`` with the error's status.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wasmdeck.packages import PACKAGE_CONTENT_TYPE, JSONInputError, MarketError, json_loads

from ._errors import BadRequest
from ._limits import RateLimiter, read_body
from ._service import Account, Market

__all__ = ["API", "Endpoint", "api_routes", "error_response", "openapi"]

_log = logging.getLogger("wasmdeck_market")

Handler = Callable[[Market, Request, Account | None], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """One route of the API and what the OpenAPI document says of it."""

    method: str
    path: str
    summary: str
    handler: Handler
    auth: bool = False
    write: bool = False
    query: tuple[str, ...] = ()
    body: dict[str, Any] | None = None  # a JSON Schema of the JSON body
    package_body: bool = False
    response: str = "application/json"
    tags: tuple[str, ...] = field(default=())


def error_response(exc: MarketError) -> JSONResponse:
    headers = {}
    retry = exc.retry_after
    if retry is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry)))
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}},
        status_code=exc.status,
        headers=headers,
    )


def _json(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(value, status_code=status)


async def _body(request: Request, market: Market) -> dict[str, Any]:
    limits = request.app.state.limits
    data = await read_body(request, limits.max_json)
    try:
        value = json_loads(data or b"{}", what="the request body", max_bytes=limits.max_json)
    except JSONInputError as exc:
        raise BadRequest(str(exc)) from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def _int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 6:
        raise BadRequest(f"{name} must be a whole number")
    return int(text)


def _param(request: Request, name: str) -> str:
    return str(request.path_params[name])


# -- handlers ------------------------------------------------------------------------


async def create_account(market: Market, request: Request, _: Account | None) -> Response:
    if not request.app.state.open_signup:
        raise MarketError(
            "sign-up is closed here; an operator creates accounts (wasmdeck-market account NAME)",
            status=403,
            code="forbidden",
        )
    body = await _body(request, market)
    account, token = await run_in_threadpool(market.create_account, _str(body, "name"))
    return _json({"name": account.name, "token": token}, 201)


async def me(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    info = await run_in_threadpool(market.account, account.name)
    return _json({**info, "admin": account.admin})


async def new_token(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request, market)
    token = await run_in_threadpool(market.new_token, account, body.get("label", "token"))
    return _json({"token": token}, 201)


async def revoke_token(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    token = _bearer(request)
    assert token is not None  # authenticated with it
    await run_in_threadpool(market.revoke_token, account, token)
    return _json({"revoked": True})


async def add_key(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request, market)
    return _json(await run_in_threadpool(market.add_key, account, _str(body, "public_key")), 201)


async def revoke_key(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    return _json(await run_in_threadpool(market.revoke_key, account, _param(request, "key_id")))


async def get_account(market: Market, request: Request, _: Account | None) -> Response:
    return _json(await run_in_threadpool(market.account, _param(request, "account")))


async def publish(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    data = await read_body(request, request.app.state.limits.max_package)
    return _json(await run_in_threadpool(market.publish, account, data), 201)


async def search(market: Market, request: Request, _: Account | None) -> Response:
    q = request.query_params
    result = await run_in_threadpool(
        lambda: market.search(
            q.get("q", ""),
            category=q.get("category") or None,
            sort=q.get("sort") or None,
            page=_int(request, "page", 1),
            per_page=_int(request, "per_page", 20),
        )
    )
    return _json(result)


async def categories(market: Market, request: Request, _: Account | None) -> Response:
    return _json({"categories": await run_in_threadpool(market.categories)})


async def package(market: Market, request: Request, _: Account | None) -> Response:
    return _json(await run_in_threadpool(market.package, _param(request, "name")))


async def version(market: Market, request: Request, _: Account | None) -> Response:
    return _json(
        await run_in_threadpool(market.version, _param(request, "name"), _param(request, "version"))
    )


async def download(market: Market, request: Request, _: Account | None) -> Response:
    name, number = _param(request, "name"), _param(request, "version")
    entry, data = await run_in_threadpool(market.download, name, number)
    return Response(
        data,
        media_type=PACKAGE_CONTENT_TYPE,
        headers={
            "content-disposition": f'attachment; filename="{name}-{number}.wdpk"',
            "x-wasmdeck-sha256": entry["file_digest"],
        },
    )


async def yank(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request, market)
    reason = body.get("reason")
    if request.method == "DELETE":
        reason = None
    elif reason is None:
        raise BadRequest("a yank needs a reason")
    return _json(
        await run_in_threadpool(
            market.yank, account, _param(request, "name"), _param(request, "version"), reason
        )
    )


async def deprecate(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request, market)
    reason = None if request.method == "DELETE" else body.get("reason")
    if request.method != "DELETE" and reason is None:
        raise BadRequest("deprecating needs a reason")
    return _json(
        await run_in_threadpool(market.deprecate, account, _param(request, "name"), reason)
    )


async def rotate(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request, market)
    key_id = body.get("key_id")
    if not isinstance(key_id, str):
        raise BadRequest("key_id must be the new key's id")
    return _json(
        await run_in_threadpool(
            lambda: market.rotate(
                account,
                _param(request, "name"),
                key_id,
                consent=body.get("consent"),
                reason=_str(body, "reason"),
            )
        )
    )


async def downloads(market: Market, request: Request, _: Account | None) -> Response:
    return _json(await run_in_threadpool(market.downloads, _param(request, "name")))


async def reviews(market: Market, request: Request, _: Account | None) -> Response:
    return _json({"reviews": await run_in_threadpool(market.reviews, _param(request, "name"))})


async def put_review(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request, market)
    return _json(
        await run_in_threadpool(
            market.review, account, _param(request, "name"), body.get("rating"), body.get("body")
        )
    )


async def report_review(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request, market)
    return _json(
        await run_in_threadpool(
            market.report,
            account,
            _param(request, "name"),
            _param(request, "author"),
            _str(body, "reason"),
        )
    )


async def hide_review(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request, market)
    hidden = body.get("hidden", True)
    if not isinstance(hidden, bool):
        raise BadRequest("hidden must be true or false")
    return _json(
        await run_in_threadpool(
            market.hide, account, _param(request, "name"), _param(request, "author"), hidden
        )
    )


async def reports(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    return _json({"reports": await run_in_threadpool(market.reports, account)})


_REASON = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 500}},
    "required": ["reason"],
}
_PKG = "/api/v1/packages/{name}"

API: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/api/v1/accounts",
        "Create an account (when the server allows sign-up); answers its first API token",
        create_account,
        write=True,
        body={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    ),
    Endpoint("GET", "/api/v1/me", "The account of the token: keys and packages", me, auth=True),
    Endpoint(
        "POST",
        "/api/v1/tokens",
        "A new API token for the account",
        new_token,
        auth=True,
        write=True,
        body={"type": "object", "properties": {"label": {"type": "string"}}},
    ),
    Endpoint(
        "DELETE",
        "/api/v1/tokens",
        "Revoke the token this request is made with",
        revoke_token,
        auth=True,
        write=True,
    ),
    Endpoint(
        "POST",
        "/api/v1/keys",
        "Register an ed25519 public key (the .pub line of `wasmdeck keygen`)",
        add_key,
        auth=True,
        write=True,
        body={
            "type": "object",
            "properties": {"public_key": {"type": "string"}},
            "required": ["public_key"],
        },
    ),
    Endpoint(
        "DELETE",
        "/api/v1/keys/{key_id}",
        "Revoke one of the account's keys",
        revoke_key,
        auth=True,
        write=True,
    ),
    Endpoint("GET", "/api/v1/accounts/{account}", "A publisher: keys, packages", get_account),
    Endpoint(
        "POST",
        "/api/v1/packages",
        "Publish a signed package file (the body is the .wdpk)",
        publish,
        auth=True,
        write=True,
        package_body=True,
    ),
    Endpoint(
        "GET",
        "/api/v1/packages",
        "Search: full text over name, description, keywords, author",
        search,
        query=("q", "category", "sort", "page", "per_page"),
    ),
    Endpoint("GET", "/api/v1/categories", "Categories with their package counts", categories),
    Endpoint("GET", _PKG, "A package: description, versions, capabilities, signer", package),
    Endpoint("GET", _PKG + "/versions/{version}", "One version", version),
    Endpoint(
        "GET",
        _PKG + "/versions/{version}/download",
        "The package file of a version (counted as a download)",
        download,
        response=PACKAGE_CONTENT_TYPE,
    ),
    Endpoint(
        "POST",
        _PKG + "/versions/{version}/yank",
        "Yank a version, with a reason",
        yank,
        auth=True,
        write=True,
        body=_REASON,
    ),
    Endpoint(
        "DELETE",
        _PKG + "/versions/{version}/yank",
        "Take a yank back",
        yank,
        auth=True,
        write=True,
    ),
    Endpoint(
        "POST",
        _PKG + "/deprecate",
        "Deprecate a package, with a reason",
        deprecate,
        auth=True,
        write=True,
        body=_REASON,
    ),
    Endpoint(
        "DELETE", _PKG + "/deprecate", "Take a deprecation back", deprecate, auth=True, write=True
    ),
    Endpoint(
        "POST",
        _PKG + "/rotate",
        "Let another of the account's keys sign the next versions (with the old key's "
        "consent, or as an explicit rotation)",
        rotate,
        auth=True,
        write=True,
        body={
            "type": "object",
            "properties": {
                "key_id": {"type": "string"},
                "consent": {"type": "string", "description": "base64 signature by the old key"},
                "reason": {"type": "string"},
            },
            "required": ["key_id", "reason"],
        },
    ),
    Endpoint("GET", _PKG + "/downloads", "Download counts per day and per version", downloads),
    Endpoint("GET", _PKG + "/reviews", "Ratings and reviews (hidden ones left out)", reviews),
    Endpoint(
        "PUT",
        _PKG + "/reviews",
        "Rate and review (one per account; again to edit)",
        put_review,
        auth=True,
        write=True,
        body={
            "type": "object",
            "properties": {
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "body": {"type": "string", "maxLength": 4000},
            },
            "required": ["rating"],
        },
    ),
    Endpoint(
        "POST",
        _PKG + "/reviews/{author}/report",
        "Report a review to the moderators",
        report_review,
        auth=True,
        write=True,
        body=_REASON,
    ),
    Endpoint(
        "POST",
        _PKG + "/reviews/{author}/hide",
        "Hide or show a review (moderators)",
        hide_review,
        auth=True,
        write=True,
        body={"type": "object", "properties": {"hidden": {"type": "boolean"}}},
    ),
    Endpoint("GET", "/api/v1/reports", "Reported reviews (moderators)", reports, auth=True),
)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _endpoint(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        market: Market = request.app.state.market
        limiter: RateLimiter = request.app.state.limiter
        try:
            client = request.client.host if request.client else "?"
            limiter.check(client, "write" if endpoint.write else "read")
            account = None
            if endpoint.auth:
                account = await run_in_threadpool(market.authenticate, _bearer(request))
            return await endpoint.handler(market, request, account)
        except MarketError as exc:
            return error_response(exc)
        except Exception:
            # A fault of ours or of a backend (the database or registry went away):
            # logged with its traceback here, a plain 500 for the client.
            _log.exception("%s %s failed", request.method, request.url.path)
            return error_response(
                MarketError("the marketplace failed; try again", status=500, code="internal")
            )

    return handle


def api_routes() -> list[Route]:
    """The API's routes, one per path (a path's methods share one handler)."""
    by_path: dict[str, list[Endpoint]] = {}
    for endpoint in API:
        by_path.setdefault(endpoint.path, []).append(endpoint)
    routes = []
    for path, endpoints in by_path.items():
        handlers = {e.method: _endpoint(e) for e in endpoints}

        async def dispatch(
            request: Request,
            handlers: dict[str, Callable[[Request], Awaitable[Response]]] = handlers,
        ) -> Response:
            return await handlers[request.method](request)

        routes.append(Route(path, dispatch, methods=list(handlers)))
    routes.append(Route("/openapi.json", _openapi, methods=["GET"]))
    return routes


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi())


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API."""
    paths: dict[str, dict[str, Any]] = {}
    error = {"$ref": "#/components/schemas/Error"}
    for e in API:
        params = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in e.path.split("/")
            if part.startswith("{")
        ]
        params += [{"name": q, "in": "query", "schema": {"type": "string"}} for q in e.query]
        op: dict[str, Any] = {
            "summary": e.summary,
            "operationId": f"{e.method.lower()}_{e.handler.__name__}",
            "parameters": params,
            "responses": {
                "200" if e.method in ("GET", "PUT", "DELETE") else "201": {
                    "description": "OK",
                    "content": {e.response: {"schema": {}}},
                },
                "default": {
                    "description": "A refusal",
                    "content": {"application/json": {"schema": error}},
                },
            },
        }
        if e.auth:
            op["security"] = [{"token": []}]
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": e.body}},
            }
        if e.package_body:
            op["requestBody"] = {
                "required": True,
                "content": {
                    PACKAGE_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}
                },
            }
        paths.setdefault(e.path, {})[e.method.lower()] = op
    paths["/healthz"] = {
        "get": {
            "summary": "Liveness: the process answers",
            "operationId": "get_health",
            "responses": {"200": {"description": "OK"}},
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document",
            "operationId": "get_openapi",
            "responses": {"200": {"description": "OK"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "wasmdeck marketplace", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
    }
