"""The local management UI: HTML pages served by ``wasmdeck serve`` under ``/ui/`` (docs/ui.md).

It sits on the control API's server (127.0.0.1, the Host header checked
there, ``_control.py``) and changes things only through the operations the
CLI uses: the plugin manager (``packages/_manager.py``) for installed
plugins, their grants and configuration, and the running daemon for the
deck's mode, bindings and events.

Security, briefly: a login takes the control token and sets an HttpOnly,
SameSite=Strict session cookie; every state-changing request is a POST
carrying the session's CSRF token (checked in constant time) and, when the
browser sends one, an Origin of this server; pages are Jinja2 templates with
autoescaping, scripts come from this server only (a Content-Security-Policy
without inline scripts), and the event log's script writes text, never HTML.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import _json
from .._capabilities import KINDS, describe_request, parse_grant
from .._errors import WasmdeckError
from ..packages import InstalledPlugin, PluginManager
from ..triggers import UnknownMode
from ._ui_market import MarketInstalls

__all__ = ["ManagementUI"]

PREFIX = "/ui"
_FILES = Path(__file__).with_name("_ui_files")
_MAX_FORM = 64 * 1024  # bytes of one submitted form
_SESSION_SECONDS = 12 * 3600
_SHOWN_EVENTS = 200  # events rendered with the page; the rest arrive live
# Everything from this server, nothing inline: an injected <script> would not
# run even if a template forgot to escape.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes the browser send Origin: null
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass
class _Session:
    csrf: str
    expires: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)


class Refused(WasmdeckError):
    """A request the UI does not act on: a status and a message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ManagementUI:
    """The ``/ui`` app. ``token()`` gives the control token; ``port()`` the server's port."""

    def __init__(
        self,
        daemon: Any,
        token: Callable[[], str],
        port: Callable[[], int],
        manager: Callable[[], PluginManager] = PluginManager,
    ) -> None:
        self.daemon = daemon
        self._token = token
        self._port = port
        self._manager = manager
        self._sessions: dict[str, _Session] = {}
        self._market = MarketInstalls()
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_FILES / "templates"),
            autoescape=True,  # every template, whatever its name
            undefined=jinja2.StrictUndefined,
        )
        self._templates.filters["quote"] = lambda text: urllib.parse.quote(str(text), safe="")
        self.app = Starlette(
            routes=[
                Route("/", self.deck_page, methods=["GET"]),
                Route("/login", self.login_page, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self._post(self.logout), methods=["POST"]),
                Route("/plugins", self.plugins_page, methods=["GET"]),
                Route(
                    "/plugins/{name:path}/{verb}", self._post(self.plugin_change), methods=["POST"]
                ),
                Route("/plugins/{name:path}", self.plugin_page, methods=["GET"]),
                Route("/market", self.market_page, methods=["GET"]),
                Route("/market/review", self._post(self.market_review), methods=["POST"]),
                Route("/market/install", self._post(self.market_install), methods=["POST"]),
                Route("/mode", self._post(self.mode), methods=["POST"]),
                Route("/fire", self._post(self.fire), methods=["POST"]),
                Route("/reload", self._post(self.reload), methods=["POST"]),
                Route("/reload/{plugin:path}", self._post(self.reload_plugin), methods=["POST"]),
                Route("/events", self.events_page, methods=["GET"]),
                Route("/events/stream", self.event_stream, methods=["GET"]),
                Mount("/static", app=StaticFiles(directory=_FILES / "static")),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)

    # -- sessions --------------------------------------------------------------

    @property
    def cookie(self) -> str:
        # Cookies do not tell ports apart: two daemons on one machine keep theirs apart.
        return f"wasmdeck_ui_{self._port()}"

    def _session(self, request: Request) -> _Session | None:
        key = request.cookies.get(self.cookie, "")
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires < time.monotonic():
            del self._sessions[key]
            return None
        return session

    def _render(
        self,
        request: Request,
        name: str,
        session: _Session | None,
        code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        flash: list[tuple[str, str]] = []
        if session is not None:
            flash, session.flash = session.flash, []
        page = self._templates.get_template(name).render(
            prefix=PREFIX,
            csrf=session.csrf if session is not None else "",
            flash=flash,
            mode=self.daemon.engine.mode,
            **values,
        )
        return HTMLResponse(page, status_code=code)

    def _post(
        self, handler: Callable[[Request, _Session, dict[str, str]], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A state-changing endpoint: logged in, same origin, the CSRF token in the form."""

        async def endpoint(request: Request) -> Response:
            try:
                session = self._session(request)
                if session is None:
                    raise Refused(403, "not logged in (or the session ended): log in again")
                self._check_origin(request)
                form = await _read_form(request)
                sent = form.get("csrf", "")
                if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                    raise Refused(403, "the form's CSRF token is missing or wrong")
                return await handler(request, session, form)
            except Refused as refused:
                return self._render(
                    request, "refused.html", None, refused.status, message=refused.message
                )

        return endpoint

    def _check_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{request.headers.get('host')}":
            raise Refused(403, "the request comes from another origin")

    def _back(self, session: _Session, to: str, kind: str, text: str) -> Response:
        session.flash.append((kind, text))
        return RedirectResponse(to, status_code=303)

    # -- logging in ------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        return self._render(request, "login.html", None, error=None)

    async def login(self, request: Request) -> Response:
        try:
            self._check_origin(request)
            form = await _read_form(request)
        except Refused as refused:
            return self._render(
                request, "refused.html", None, refused.status, message=refused.message
            )
        if not hmac.compare_digest(form.get("token", "").strip().encode(), self._token().encode()):
            return self._render(
                request, "login.html", None, 401, error="That is not this host's control token."
            )
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]
        key = secrets.token_urlsafe(32)
        self._sessions[key] = _Session(secrets.token_urlsafe(32), now + _SESSION_SECONDS)
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        response.set_cookie(
            self.cookie,
            key,
            max_age=_SESSION_SECONDS,
            path=PREFIX,
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request, session: _Session, form: dict[str, str]) -> Response:
        self._sessions.pop(request.cookies.get(self.cookie, ""), None)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(self.cookie, path=PREFIX)
        return response

    def _page_session(self, request: Request) -> _Session | Response:
        session = self._session(request)
        if session is None:
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        return session

    # -- the deck --------------------------------------------------------------

    async def deck_page(self, request: Request) -> Response:
        session = self._page_session(request)
        if isinstance(session, Response):
            return session
        deck = self.daemon.deck
        status = self.daemon.status()
        bindings = [
            {
                "name": b.name,
                "mode": b.mode,
                "trigger": _describe_trigger(b.trigger),
                "actions": [_describe_action(a) for a in b.actions],
                "fired": status["fired"].get(b.name, 0),
            }
            for b in deck.bindings
        ]
        modes = [{"name": m.name, "color": m.color} for m in deck.modes.values()]
        return self._render(
            request, "deck.html", session, status=status, bindings=bindings, modes=modes
        )

    async def mode(self, request: Request, session: _Session, form: dict[str, str]) -> Response:
        name = form.get("mode", "")
        try:
            self.daemon.set_mode(name)
        except UnknownMode as exc:
            return self._back(session, f"{PREFIX}/", "error", str(exc))
        return self._back(session, f"{PREFIX}/", "ok", f"mode {self.daemon.engine.mode}")

    async def fire(self, request: Request, session: _Session, form: dict[str, str]) -> Response:
        name = form.get("binding", "")
        try:
            self.daemon.fire(name)
        except KeyError:
            return self._back(session, f"{PREFIX}/", "error", f"no binding named {name!r}")
        return self._back(session, f"{PREFIX}/", "ok", f"fired {name}")

    async def reload(self, request: Request, session: _Session, form: dict[str, str]) -> Response:
        ok, message = await self.daemon.reload()
        return self._back(session, f"{PREFIX}/", "ok" if ok else "error", message)

    async def reload_plugin(
        self, request: Request, session: _Session, form: dict[str, str]
    ) -> Response:
        """One plugin of the running deck again, its state handed over (docs/reload.md),
        as ``wasmdeck reload PLUGIN``; back to the deck page, or to the installed
        plugin's page it came from (``back=plugin``)."""
        name = request.path_params["plugin"]
        spec = self.daemon.deck.plugins.get(name)
        page = f"{PREFIX}/"
        if form.get("back") == "plugin" and spec is not None and spec.installed is not None:
            page = f"{PREFIX}/plugins/{urllib.parse.quote(spec.installed, safe='')}"
        try:
            ok, message = await self.daemon.reload_plugin(name)
        except KeyError:
            return self._back(session, page, "error", f"no plugin named {name!r} in the deck")
        return self._back(session, page, "ok" if ok else "error", message)

    # -- installed plugins -----------------------------------------------------

    async def plugins_page(self, request: Request) -> Response:
        session = self._page_session(request)
        if isinstance(session, Response):
            return session

        def read() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            manager = self._manager()
            plugins = [self._describe(manager, p) for p in manager.list()]
            # What `wasmdeck outdated` lists: newer versions on the marketplace.
            return plugins, self._market.offers(manager, [p["name"] for p in plugins])

        try:
            plugins, updates = await asyncio.to_thread(read)
        except WasmdeckError as exc:
            return self._render(request, "refused.html", session, 500, message=exc.message)
        return self._render(request, "plugins.html", session, plugins=plugins, updates=updates)

    async def plugin_page(self, request: Request) -> Response:
        session = self._page_session(request)
        if isinstance(session, Response):
            return session
        name = request.path_params["name"]

        def read() -> dict[str, Any]:
            manager = self._manager()
            plugin = manager.get(name)
            view = self._describe(manager, plugin)
            manifest = plugin.manifest
            shown = manager.config.shown(name)
            view.update(
                description=plugin.metadata.description,
                publisher=manifest.publisher,
                homepage=manifest.homepage,
                license=manifest.license,
                digest=plugin.digest,
                actions=[a.name for a in plugin.metadata.actions or ()],
                requested=[describe_request(r) for r in plugin.requested],
                # A secret's value never leaves the store: the page only says it is set.
                config=[
                    {
                        "key": k,
                        "secret": v == manager.config.SECRET,
                        "value": None if v == manager.config.SECRET else _json.dumps(v).decode(),
                    }
                    for k, v in shown.items()
                ],
            )
            return view

        try:
            plugin = await asyncio.to_thread(read)
            updates = await asyncio.to_thread(self._market.offers, self._manager(), [name])
        except WasmdeckError as exc:
            return self._render(request, "refused.html", session, 404, message=exc.message)
        running = [
            {"deck_name": deck_name, **stats}
            for deck_name, stats in self.daemon.status()["plugins"].items()
            if (spec := self.daemon.deck.plugins.get(deck_name)) is not None
            and spec.installed == name
        ]
        kinds = [{"name": k.name, "risk": k.risk, "help": k.scope_help} for k in KINDS.values()]
        return self._render(
            request,
            "plugin.html",
            session,
            plugin=plugin,
            running=running,
            kinds=kinds,
            updates=updates,
        )

    def _describe(self, manager: PluginManager, plugin: InstalledPlugin) -> dict[str, Any]:
        view = manager.summary(plugin)  # what `wasmdeck list --json` prints
        state = "not loadable" if view["problem"] else "enabled"
        view["state"] = state if plugin.enabled else "disabled"
        view["grants"] = [{"text": str(g), "risk": g.risk} for g in plugin.grants]
        view["signer"] = view["publisher"]
        return view

    async def plugin_change(
        self, request: Request, session: _Session, form: dict[str, str]
    ) -> Response:
        name, verb = request.path_params["name"], request.path_params["verb"]
        page = f"{PREFIX}/plugins/{urllib.parse.quote(name, safe='')}"
        change = _CHANGES.get(verb)
        if change is None:
            raise Refused(404, f"no such change: {verb!r}")
        try:
            message = await asyncio.to_thread(change, self._manager(), name, form)
        except (WasmdeckError, ValueError) as exc:
            text = exc.message if isinstance(exc, WasmdeckError) else str(exc)
            return self._back(session, page, "error", text)
        return self._back(
            session, f"{PREFIX}/plugins" if verb == "uninstall" else page, "ok", message
        )

    # -- installing from the marketplace (_ui_market.py) ----------------------

    async def market_page(self, request: Request) -> Response:
        session = self._page_session(request)
        if isinstance(session, Response):
            return session
        q = request.query_params.get("q", "")[:200]
        try:
            url, found = await asyncio.to_thread(self._market.search, q)
        except WasmdeckError as exc:
            return self._render(request, "refused.html", session, 502, message=exc.message)
        return self._render(request, "market.html", session, q=q, url=url, found=found)

    async def market_review(
        self, request: Request, session: _Session, form: dict[str, str]
    ) -> Response:
        name, version = form.get("name", ""), form.get("version") or None
        try:
            plan = await asyncio.to_thread(
                self._market.review, self._manager(), session.csrf, name, version
            )
        except WasmdeckError as exc:
            back = form.get("back") == "plugin"  # an update refused: back to the plugin
            page = f"{PREFIX}/plugins/{urllib.parse.quote(name, safe='')}" if back else None
            return self._back(session, page or f"{PREFIX}/market", "error", exc.message)
        return self._render(request, "consent.html", session, plan=plan)

    async def market_install(
        self, request: Request, session: _Session, form: dict[str, str]
    ) -> Response:
        try:
            message = await asyncio.to_thread(
                self._market.install, self._manager(), session.csrf, form.get("pending", "")
            )
        except WasmdeckError as exc:
            return self._back(session, f"{PREFIX}/market", "error", exc.message)
        page = f"{PREFIX}/plugins/{urllib.parse.quote(form.get('name', ''), safe='')}"
        return self._back(session, page, "ok", message)

    # -- events ----------------------------------------------------------------

    async def events_page(self, request: Request) -> Response:
        session = self._page_session(request)
        if isinstance(session, Response):
            return session
        recent = list(self.daemon.events)[-_SHOWN_EVENTS:]
        recent.reverse()
        return self._render(
            request,
            "events.html",
            session,
            events=[_event_row(e) for e in recent],
            metrics=self.daemon.status()["plugins"],
        )

    async def event_stream(self, request: Request) -> Response:
        """Server-sent events: one ``data:`` line of JSON per action as it completes."""
        if self._session(request) is None:
            return Response("not logged in", status_code=403, media_type="text/plain")
        queue = self.daemon.listen()

        async def lines() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                while not self.daemon.stopping:
                    try:
                        record = await asyncio.wait_for(queue.get(), 1)
                    except TimeoutError:
                        yield b": idle\n\n"  # finds a reader that left
                        continue
                    yield b"data: " + _json.dumps(_event_row(record)) + b"\n\n"
            finally:
                self.daemon.unlisten(queue)

        return StreamingResponse(lines(), media_type="text/event-stream")


# -- changes to an installed plugin: the manager's own operations ------------------


def _enable(manager: PluginManager, name: str, form: dict[str, str]) -> str:
    plugin = manager.enable(name)
    return f"enabled {plugin.name} {plugin.version} (a running deck uses it from its next reload)"


def _disable(manager: PluginManager, name: str, form: dict[str, str]) -> str:
    plugin = manager.disable(name)
    return f"disabled {plugin.name} {plugin.version} (a running deck keeps it until its reload)"


def _grant(manager: PluginManager, name: str, form: dict[str, str]) -> str:
    grant = parse_grant(form.get("capability", ""))
    plugin = manager.grant(name, grant)
    return f"granted {grant} [{grant.risk} risk] to {plugin.name}"


def _revoke(manager: PluginManager, name: str, form: dict[str, str]) -> str:
    capability = form.get("capability", "")
    plugin = manager.revoke(name, capability)
    problem = manager.problem(plugin)
    note = f"; it will not load now: {problem}" if problem else ""
    return f"took back {capability} from {plugin.name}{note}"


def _set_config(manager: PluginManager, name: str, form: dict[str, str]) -> str:
    name = manager.get(name).name  # it must be installed
    key, text, secret = form.get("key", "").strip(), form.get("value", ""), "secret" in form
    try:
        value: Any = _json.loads(text.encode(), what="the value")
    except ValueError:
        value = text  # plain text, as `wasmdeck config NAME KEY VALUE` takes it
    manager.config.set(name, key, value, secret=secret)
    return f"{key} set" + (" (a secret: it is not shown)" if secret else "")


def _unset_config(manager: PluginManager, name: str, form: dict[str, str]) -> str:
    key = form.get("key", "")
    if not manager.config.unset(manager.get(name).name, key):
        raise ValueError(f"{name} has no configuration key {key!r}")
    return f"removed {key}"


def _uninstall(manager: PluginManager, name: str, form: dict[str, str]) -> str:
    plugin = manager.uninstall(name)
    return f"uninstalled {plugin.name} {plugin.version}"


_CHANGES: dict[str, Callable[[PluginManager, str, dict[str, str]], str]] = {
    "enable": _enable,
    "disable": _disable,
    "grant": _grant,
    "revoke": _revoke,
    "config": _set_config,
    "unset": _unset_config,
    "uninstall": _uninstall,
}


# -- helpers ---------------------------------------------------------------------


async def _read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, bounded in size (no multipart: the UI sends none)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused(415, "a form must be sent as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            raise Refused(413, f"the form is larger than {_MAX_FORM} bytes")
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=32
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, f"the form cannot be read: {exc}") from None
    return dict(pairs)


def _describe_trigger(trigger: Any) -> str:
    parts = [trigger.kind]
    if trigger.kind == "webhook":
        return f"webhook {trigger.method} {trigger.path}"
    for label in ("device", "channel", "note", "controller", "address"):
        value = getattr(trigger, label, None)
        if value not in (None, "", ()):
            if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
                value = value[0]
            parts.append(f"{label} {value}")
    if trigger.notes:
        parts.append(f"notes {', '.join(map(str, trigger.notes))}")
    if trigger.interval_ms:
        parts.append(f"every {trigger.interval_ms} ms")
    if trigger.at:
        parts.append(f"at {trigger.at}")
    return " ".join(str(p) for p in parts)


def _describe_action(action: Any) -> str:
    if action.kind == "plugin":
        return f"{action.plugin}.{action.action or '(its action)'}"
    if action.kind == "mode":
        return f"mode {action.mode}"
    if action.kind == "delay":
        return f"wait {action.delay_ms} ms"
    return f"MIDI {action.midi.type}" if action.midi is not None else action.kind


def _event_row(record: dict[str, Any]) -> dict[str, Any]:
    """One action of the event log as the page shows it (text only; escaped where shown)."""
    stamp = record.get("time")
    action = record.get("action")
    if record.get("plugin"):
        action = f"{record['plugin']}.{record.get('plugin_action') or ''}"
    elif record.get("mode"):
        action = f"mode {record['mode']}"
    return {
        "time": time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else "",
        "binding": str(record.get("binding", "")),
        "trigger": str(record.get("trigger", "")),
        "action": str(action or ""),
        "outcome": "error" if "error" in record else "ok",
        "result": str(record.get("error", record.get("result", ""))),
        "ms": record.get("ms"),
    }
