"""Server-side sessions of the public pages: a browser logged in holds an opaque
random session id, never the API token.

A browser sends a host's cookies to every port of it, so whatever the cookie
holds reaches any other server on that host name; an id that only opens pages
of this marketplace, expires, and ends on logout is what may travel there.
Only the id's SHA-256 is stored, in the database, so every server process
behind one database knows every session (no process keeps any). A session
lives while the API token it was opened with does: revoking the token ends
its sessions too. The API does not take a session id (it looks tokens up in
``tokens``, sessions are in ``sessions``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from ._db import Database
from ._errors import Unauthorized
from ._service import Account, hash_token

__all__ = ["SESSION_PREFIX", "SESSION_SECONDS", "Sessions"]

SESSION_PREFIX = "wds_"
SESSION_SECONDS = 12 * 3600.0  # a login lasts a working day, then asks again


class Sessions:
    """Sessions in ``db``; ``clock`` (wall seconds) decides expiry."""

    def __init__(
        self, db: Database, clock: Callable[[], float], lifetime: float = SESSION_SECONDS
    ) -> None:
        self.db = db
        self.clock = clock
        self.lifetime = lifetime

    def start(self, token: str) -> str:
        """A new session for the account of API ``token`` (``Unauthorized`` when it is
        not valid); answers the session id, shown once, to put in the cookie."""
        now = self.clock()
        session = SESSION_PREFIX + secrets.token_urlsafe(32)
        with self.db.transaction(write=True) as tx:
            row = tx.one("SELECT account_id FROM tokens WHERE hash = ?", (hash_token(token),))
            if row is None or not token:
                raise Unauthorized("the API token is not valid")
            tx.run("DELETE FROM sessions WHERE expires_at <= ?", (now,))  # the stale ones
            tx.run(
                "INSERT INTO sessions (hash, account_id, token_hash, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (hash_token(session), row["account_id"], hash_token(token), now,
                 now + self.lifetime),
            )  # fmt: skip
        return session

    def account(self, session: str | None) -> Account | None:
        """The account of a live session, None for no, an unknown, an expired or an
        ended session, or one whose token was revoked."""
        if not session or not session.startswith(SESSION_PREFIX) or len(session) > 100:
            return None
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT a.id, a.name, a.admin FROM sessions s "
                "JOIN tokens t ON t.hash = s.token_hash JOIN accounts a ON a.id = s.account_id "
                "WHERE s.hash = ? AND s.expires_at > ?",
                (hash_token(session), self.clock()),
            )
        if row is None:
            return None
        return Account(int(row["id"]), str(row["name"]), bool(row["admin"]))

    def end(self, session: str | None) -> None:
        """Log out: the session is gone for every process."""
        if session:
            with self.db.transaction(write=True) as tx:
                tx.run("DELETE FROM sessions WHERE hash = ?", (hash_token(session),))
