"""The marketplace's public pages: browse, search, a package, the publisher's view
(versions, yank, keys and signer rotation), reporting reviews and moderating them.

Server-rendered HTML (Jinja2, autoescaping on every template) over the same
``Market`` methods the JSON API calls (``_service.py``); nothing here decides a
rule of its own. Every field a package supplies is untrusted and reaches the
page only escaped; the Content-Security-Policy allows no inline script at all,
and the pages need none.

Logging in takes an account's API token and keeps it in an HttpOnly,
SameSite=Strict cookie; the CSRF token of the POST forms is an HMAC of that
token, so any server process behind one database checks it (no session
table). The Origin, when the browser sends one, must be this host.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
import math
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from wasmdeck.packages import MarketError

from ._errors import BadRequest, Forbidden, Unauthorized
from ._limits import RateLimiter, read_body
from ._service import SORTS, Account, Market

__all__ = ["page_routes"]

_log = logging.getLogger("wasmdeck_market")
_FILES = Path(__file__).with_name("_pages_files")
COOKIE = "wdm_session"  # + "_PORT" when the site has a port (cookie_name)
PER_PAGE = 20
_MAX_FORM = 16 << 10
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_FILES / "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
)
_templates.filters["quote"] = lambda text: urllib.parse.quote(str(text), safe="")
_templates.filters["date"] = lambda stamp: (
    datetime.datetime.fromtimestamp(float(stamp), datetime.UTC).strftime("%Y-%m-%d")
    if stamp is not None
    else ""
)
_templates.filters["size"] = lambda n: (
    f"{n} bytes" if n < 10_000 else f"{n / 1024:.0f} KiB" if n < 10 << 20 else f"{n >> 20} MiB"
)


def cookie_name(request: Request) -> str:
    """The session cookie's name on this site: a browser sends a host's cookies to
    every port of it, so marketplaces on two ports of one host (or this and
    ``wasmdeck serve``'s UI) each keep their own login instead of replacing the
    other's. The port is the one the browser asked for (the Host header)."""
    port = request.url.port
    return f"{COOKIE}_{port}" if port else COOKIE


def csrf_token(api_token: str) -> str:
    """The CSRF token of a logged-in browser: only who holds the API token can make it."""
    return hmac.new(api_token.encode(), b"wasmdeck-market csrf", hashlib.sha256).hexdigest()


def _render(
    name: str, request: Request, account: Account | None, status: int = 200, **values: Any
) -> HTMLResponse:
    token = request.cookies.get(cookie_name(request))
    page = _templates.get_template(name).render(
        account=account,
        csrf=csrf_token(token) if account is not None and token else "",
        sorts=SORTS,
        **values,
    )
    return HTMLResponse(page, status_code=status, headers=_HEADERS)


def _account(market: Market, request: Request) -> Account | None:
    token = request.cookies.get(cookie_name(request))
    if not token:
        return None
    try:
        return market.authenticate(token)
    except Unauthorized:
        return None  # a revoked token: shown as logged out


Page = Callable[[Market, Request, Account | None], Awaitable[Response]]


def _page(
    handler: Page, *, write: bool = False, login: bool = False, csrf: bool = True
) -> Callable[[Request], Awaitable[Response]]:
    """A page: rate-limited like the API; a POST must come from this origin and,
    logged in, carry the CSRF token; a refusal is an error page with its status.
    (Logging in has no CSRF token yet: its form carries the API token itself.)"""

    async def endpoint(request: Request) -> Response:
        market: Market = request.app.state.market
        limiter: RateLimiter = request.app.state.limiter
        account: Account | None = None
        try:
            limiter.check(
                request.client.host if request.client else "?", "write" if write else "read"
            )
            account = await run_in_threadpool(_account, market, request)
            if write:
                _check_origin(request)
                form = await _read_form(request)
                request.state.form = form
                if account is None and login:
                    raise Unauthorized("log in first (with your account's API token)")
                if account is not None and csrf:
                    token = request.cookies.get(cookie_name(request), "")
                    if not hmac.compare_digest(
                        form.get("csrf", "").encode(), csrf_token(token).encode()
                    ):
                        raise Forbidden("the form's CSRF token is missing or wrong")
            elif login and account is None:
                return RedirectResponse("/login", status_code=303)
            return await handler(market, request, account)
        except MarketError as exc:
            if exc.retry_after is None:
                return _render(
                    "error.html", request, account, exc.status or 400, message=exc.message
                )
            # A rate limit: the header as the API sends it (_api.py), and the page says it.
            wait = str(max(1, math.ceil(exc.retry_after)))
            message = f"{exc.message} (try again in {wait} s)"
            page = _render("error.html", request, account, exc.status, message=message)
            page.headers["retry-after"] = wait
            return page
        except Exception:
            _log.exception("%s %s failed", request.method, request.url.path)
            return _render(
                "error.html", request, account, 500, message="the marketplace failed; try again"
            )

    return endpoint


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("the form was sent from another site")


async def _read_form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("a form must be sent as application/x-www-form-urlencoded")
    body = await read_body(request, _MAX_FORM)
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=16
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the form cannot be read: {exc}") from None
    return dict(pairs)


def _number(request: Request, name: str) -> int:
    text = request.query_params.get(name, "") or "1"
    if not text.isdigit() or len(text) > 5:
        raise BadRequest(f"{name} must be a whole number")
    return int(text)


# -- pages -------------------------------------------------------------------------


async def browse(market: Market, request: Request, account: Account | None) -> Response:
    q = request.query_params.get("q", "")[:200]
    category = request.query_params.get("category") or None
    sort = request.query_params.get("sort") or None
    page = _number(request, "page")
    found = await run_in_threadpool(
        lambda: market.search(q, category=category, sort=sort, page=page, per_page=PER_PAGE)
    )
    categories = await run_in_threadpool(market.categories)
    pages = max(1, -(-found["total"] // PER_PAGE))

    def link(**change: Any) -> str:
        params = {"q": q, "category": category or "", "sort": found["sort"], "page": page, **change}
        return "/?" + urllib.parse.urlencode({k: v for k, v in params.items() if v})

    return _render(
        "browse.html",
        request,
        account,
        q=q,
        category=category,
        found=found,
        categories=categories,
        page=page,
        pages=pages,
        previous=link(page=page - 1) if page > 1 else None,
        next=link(page=page + 1) if page < pages else None,
    )


async def package(
    market: Market, request: Request, account: Account | None, notice: str = ""
) -> Response:
    name = str(request.path_params["name"])
    info = await run_in_threadpool(market.package, name)
    reviews = await run_in_threadpool(market.reviews, name)  # hidden ones left out
    mine = next((r for r in reviews if account is not None and r["author"] == account.name), None)
    return _render(
        "package.html", request, account, package=info, reviews=reviews, mine=mine, notice=notice
    )


async def report(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    name, author = str(request.path_params["name"]), str(request.path_params["author"])
    reason = request.state.form.get("reason", "")
    await run_in_threadpool(market.report, account, name, author, reason)
    return await package(market, request, account, f"reported {author}'s review to the moderators")


async def review(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    name = str(request.path_params["name"])
    form: dict[str, str] = request.state.form
    rating = form.get("rating", "")
    if not rating.isdigit():
        raise BadRequest("choose a rating from 1 to 5")
    await run_in_threadpool(market.review, account, name, int(rating), form.get("body", ""))
    return RedirectResponse(
        f"/packages/{urllib.parse.quote(name, safe='')}#reviews", status_code=303
    )


async def login_page(market: Market, request: Request, account: Account | None) -> Response:
    return _render("login.html", request, account, error=None)


async def login(market: Market, request: Request, account: Account | None) -> Response:
    token = request.state.form.get("token", "").strip()
    try:
        await run_in_threadpool(market.authenticate, token)
    except Unauthorized:
        return _render("login.html", request, None, 401, error="That API token is not valid here.")
    response = RedirectResponse("/publisher", status_code=303)
    response.set_cookie(cookie_name(request), token, path="/", httponly=True, samesite="strict")
    return response


async def logout(market: Market, request: Request, account: Account | None) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(cookie_name(request), path="/")
    return response


async def publisher(
    market: Market, request: Request, account: Account | None, notice: str = ""
) -> Response:
    assert account is not None

    def read() -> dict[str, Any]:
        info = market.account(account.name)
        info["packages"] = [market.package(p["name"]) for p in info["packages"]]
        return info

    info = await run_in_threadpool(read)
    return _render("publisher.html", request, account, info=info, notice=notice)


async def yank(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    form: dict[str, str] = request.state.form
    name, version = form.get("name", ""), form.get("version", "")
    undo = "undo" in form
    reason = None if undo else form.get("reason", "")
    await run_in_threadpool(market.yank, account, name, version, reason)
    # The page itself, not a redirect: a notice in the address could be forged by a link.
    return await publisher(
        market, request, account, f"{'restored' if undo else 'yanked'} {name} {version}"
    )


# -- keys (the publisher's view) ------------------------------------------------------


async def add_key(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    added = await run_in_threadpool(
        market.add_key, account, request.state.form.get("public_key", "")
    )
    return await publisher(market, request, account, f"registered key {added['key_id']}")


async def revoke_key(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    key_id = request.state.form.get("key_id", "")
    await run_in_threadpool(market.revoke_key, account, key_id)
    return await publisher(market, request, account, f"revoked key {key_id}")


async def rotate(market: Market, request: Request, account: Account | None) -> Response:
    """A package's next versions signed by another of the account's keys: with the old
    key's consent (its signature, made where the key is: ``wasmdeck market consent``)
    or, left empty, as an explicit rotation; the service checks either."""
    assert account is not None
    form: dict[str, str] = request.state.form
    name, key_id = form.get("name", ""), form.get("key_id", "")
    consent = form.get("consent", "").strip() or None
    await run_in_threadpool(
        lambda: market.rotate(account, name, key_id, consent=consent, reason=form.get("reason", ""))
    )
    how = "with the old key's consent" if consent else "as an explicit rotation, without consent"
    return await publisher(market, request, account, f"{name} is now signed by key {key_id}, {how}")


# -- moderation ------------------------------------------------------------------------


async def moderation(
    market: Market, request: Request, account: Account | None, notice: str = ""
) -> Response:
    assert account is not None
    reported = await run_in_threadpool(market.reports, account)  # moderators only
    return _render("moderation.html", request, account, reports=reported, notice=notice)


async def hide(market: Market, request: Request, account: Account | None) -> Response:
    assert account is not None
    form: dict[str, str] = request.state.form
    name, author, hidden = form.get("name", ""), form.get("author", ""), form.get("hidden") == "1"
    await run_in_threadpool(market.hide, account, name, author, hidden)
    what = "hid" if hidden else "showed again"
    return await moderation(market, request, account, f"{what} {author}'s review of {name}")


def page_routes() -> list[BaseRoute]:
    """The pages, for ``create_app(market, routes=page_routes())``."""
    return [
        Route("/", _page(browse), methods=["GET"]),
        Route("/packages/{name}", _page(package), methods=["GET"]),
        Route("/packages/{name}/review", _page(review, write=True, login=True), methods=["POST"]),
        Route("/login", _page(login_page), methods=["GET"]),
        Route("/login", _page(login, write=True, csrf=False), methods=["POST"]),
        Route("/logout", _page(logout, write=True, login=True), methods=["POST"]),
        Route("/publisher", _page(publisher, login=True), methods=["GET"]),
        Route("/publisher/yank", _page(yank, write=True, login=True), methods=["POST"]),
        Route("/publisher/keys", _page(add_key, write=True, login=True), methods=["POST"]),
        Route(
            "/publisher/keys/revoke", _page(revoke_key, write=True, login=True), methods=["POST"]
        ),
        Route("/publisher/rotate", _page(rotate, write=True, login=True), methods=["POST"]),
        Route(
            "/packages/{name}/reviews/{author}/report",
            _page(report, write=True, login=True),
            methods=["POST"],
        ),
        Route("/moderation", _page(moderation, login=True), methods=["GET"]),
        Route("/moderation/hide", _page(hide, write=True, login=True), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=_FILES / "static"), name="static"),
    ]
