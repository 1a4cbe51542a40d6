"""A webhook receiver on loopback: records every request and answers with a small JSON body.

- Any path answers the configured reply (``200 {"ok": true}`` by default);
  ``reply(...)`` changes it for error-path tests, ``reply_for(path, ...)`` for
  one path only.
- ``/redirect/<code>?location=<url>`` answers ``<code>`` (301, 302, 303, 307
  or 308) with that ``Location``; ``redirect_url(...)`` builds such a URL.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

from ._http import LoopbackHTTPServer, RecordedRequest, Response

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
DEFAULT_BODY: dict[str, object] = {"ok": True}


class WebhookServer(LoopbackHTTPServer):
    def __init__(self) -> None:
        super().__init__(self._answer)
        self._replies_lock = threading.Lock()
        self._default = Response.json(DEFAULT_BODY)
        self._by_path: dict[str, Response] = {}

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    def redirect_url(self, code: int, location: str) -> str:
        if code not in REDIRECT_CODES:
            raise ValueError(f"not a redirect status: {code}")
        return f"{self.base_url}/redirect/{code}?location={quote(location, safe='')}"

    def reply(
        self,
        status: int = 200,
        body: object = DEFAULT_BODY,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer every later request (on paths without their own reply) like this."""
        with self._replies_lock:
            self._default = _response(status, body, headers)

    def reply_for(
        self,
        path: str,
        status: int = 200,
        body: object = DEFAULT_BODY,
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._replies_lock:
            self._by_path[path] = _response(status, body, headers)

    def _answer(self, request: RecordedRequest) -> Response:
        parts = request.path.split("/")
        if len(parts) == 3 and parts[1] == "redirect":
            return _redirect(parts[2], request.query.get("location", []))
        with self._replies_lock:
            return self._by_path.get(request.path, self._default)


def _response(status: int, body: object, headers: dict[str, str] | None) -> Response:
    if not 100 <= status <= 599:
        raise ValueError(f"not an HTTP status: {status}")
    if isinstance(body, bytes):
        response = Response(status, body, [("Content-Type", "application/octet-stream")])
    else:
        response = Response(
            status, json.dumps(body).encode(), [("Content-Type", "application/json")]
        )
    response.headers.extend((headers or {}).items())
    return response


def _redirect(code_text: str, locations: list[str]) -> Response:
    code = int(code_text) if code_text.isdigit() else 0
    if code not in REDIRECT_CODES or len(locations) != 1 or not locations[0]:
        return Response.json({"error": "use /redirect/<301|302|303|307|308>?location=<url>"}, 400)
    return Response(code, b"", [("Location", locations[0])])
