"""The errors the marketplace answers with: each carries its HTTP status and a code.

They are ``MarketError`` (a ``wasmdeck.WasmdeckError``), the same class the client
raises for a refusal it reads back, so one ``except`` covers both sides.
"""

from __future__ import annotations

from wasmdeck.packages import MarketError

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "ServerError",
    "TooLarge",
    "Unauthorized",
]


class ServerError(MarketError):
    """A refusal with an HTTP status (``status``) and a stable ``code`` for clients."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status=status or self.status, code=code or self.code, retry_after=retry_after
        )


class BadRequest(ServerError):
    """The request (its JSON, its parameters, the package it carries) is not valid."""

    status, code = 422, "invalid"


class Unauthorized(ServerError):
    """No token, or one that is not valid."""

    status, code = 401, "unauthorized"


class Forbidden(ServerError):
    """The account may not do this (another publisher's package, a key it does not own)."""

    status, code = 403, "forbidden"


class NotFound(ServerError):
    """No such package, version, account, key or review."""

    status, code = 404, "not_found"


class Conflict(ServerError):
    """It clashes with what is stored (an existing version, a name taken, the signer)."""

    status, code = 409, "conflict"


class TooLarge(ServerError):
    """The request body is larger than the server accepts."""

    status, code = 413, "too_large"


class RateLimited(ServerError):
    """Too many requests from this client; ``retry_after`` says when to try again."""

    status, code = 429, "rate_limited"
