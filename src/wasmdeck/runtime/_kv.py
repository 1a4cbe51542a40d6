"""Key-value state for plugins granted ``kv``: one SQLite file, a namespace per identity.

The namespace is chosen by the host, never by the plugin (docs/host-api.md, "kv"):
``HostAPI`` passes the installed identity, the grant's explicit ``kv:NAMESPACE``,
or the identity of the file the plugin was loaded from.

Every access is bounded by the call's deadline: SQLite's busy wait (another
process holding the write lock) is set to the time the call has left, and a
call that runs out of it waiting ends with ``TimeLimitExceeded``
(``DeadlinePassed``, runtime/_deadline.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .._home import home
from ._deadline import DeadlinePassed, remaining
from ._netclient import HostRequestError

__all__ = ["KeyValueStore", "SharedState"]

MAX_KEY = 256

_Work = Callable[[sqlite3.Connection], object]


class _Store:
    """The SQLite file of kv and shared state: its connection, lock and deadlines."""

    _lock = threading.Lock()  # one writer at a time within this process
    # One connection set up at a time: two first connections to a new file at
    # once (two plugins' first calls) made one fail at once with "database is
    # locked" while the other switched the file to WAL (tests/test_teamwork.py).
    _setup = threading.Lock()

    def __init__(self, *, quota: int, path: Path | None = None) -> None:
        self.quota = quota
        self.path = path or home() / "kv.sqlite3"
        self._db: sqlite3.Connection | None = None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- deadlines -------------------------------------------------------------

    def _left(self, deadline: float) -> float:
        return remaining(deadline, self._waiting)

    @property
    def _waiting(self) -> str:
        return f"waiting for the kv store {self.path} (another process holds its lock)"

    def _timed_out(self) -> DeadlinePassed:
        return DeadlinePassed(self._waiting)

    def _connect(self, deadline: float) -> sqlite3.Connection:
        """The connection, its busy wait set to what the call has left."""
        left = self._left(deadline)
        if self._db is None:
            if not self._setup.acquire(timeout=left):
                raise self._timed_out()
            try:
                self._db = self._open(left)
            finally:
                self._setup.release()
        self._db.execute(f"PRAGMA busy_timeout = {max(1, int(left * 1000))}")
        return self._db

    def _open(self, left: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=left, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS kv (plugin TEXT NOT NULL, key TEXT NOT NULL,"
                " value BLOB NOT NULL, PRIMARY KEY (plugin, key))"
            )
            # Shared state (SharedState): each write takes the namespace's next
            # version from shared_clock, so a version never comes back (no ABA).
            db.execute(
                "CREATE TABLE IF NOT EXISTS shared (namespace TEXT NOT NULL, key TEXT NOT"
                " NULL, value BLOB NOT NULL, version INTEGER NOT NULL,"
                " PRIMARY KEY (namespace, key))"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS shared_clock (namespace TEXT PRIMARY KEY,"
                " version INTEGER NOT NULL)"
            )
        except BaseException:
            db.close()
            raise
        return db

    def _run(self, deadline: float, work: _Work) -> object:
        """Do ``work`` on the connection; SQLite's lock waits end at the deadline."""
        try:
            return work(self._connect(deadline))
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                if time.monotonic() >= deadline - 0.001:
                    raise self._timed_out() from None
                raise HostRequestError("busy", f"the kv store is busy: {exc}") from None
            raise HostRequestError("unavailable", f"the kv store failed: {exc}") from None

    def _write(self, deadline: float, work: _Work) -> object:
        # Not SQLite's lock but this process's: another of its calls is writing.
        waiting = f"waiting for the kv store {self.path} (another call in this process is writing)"
        if not self._lock.acquire(timeout=remaining(deadline, waiting)):
            raise DeadlinePassed(waiting)
        try:
            return self._run(deadline, work)
        finally:
            self._lock.release()

    @staticmethod
    def _key(key: object) -> str:
        if not isinstance(key, str) or not 0 < len(key.encode()) <= MAX_KEY:
            raise HostRequestError("invalid_request", f"key must be a string of 1-{MAX_KEY} bytes")
        return key


class KeyValueStore(_Store):
    """One namespace's keys and values, with a quota on their total size."""

    def __init__(self, namespace: str, *, quota: int, path: Path | None = None) -> None:
        super().__init__(quota=quota, path=path)
        self.namespace = namespace

    def get(self, key: object, *, deadline: float) -> bytes | None:
        name = self._key(key)
        row = self._run(
            deadline,
            lambda db: db.execute(
                "SELECT value FROM kv WHERE plugin = ? AND key = ?", (self.namespace, name)
            ).fetchone(),
        )
        return None if row is None else bytes(row[0])  # type: ignore[index]

    def set(self, key: object, value: bytes, *, deadline: float) -> None:
        name = self._key(key)

        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                (used,) = db.execute(
                    "SELECT COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) FROM kv"
                    " WHERE plugin = ? AND key != ?",
                    (self.namespace, name),
                ).fetchone()
                if used + len(name.encode()) + len(value) > self.quota:
                    raise HostRequestError(
                        "quota",
                        f"storing {name!r} would exceed the plugin's {self.quota:,}-byte kv quota",
                    )
                db.execute(
                    "INSERT INTO kv (plugin, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
                    (self.namespace, name, value),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        self._write(deadline, work)

    def delete(self, key: object, *, deadline: float) -> bool:
        name = self._key(key)
        count = self._write(
            deadline,
            lambda db: (
                db.execute(
                    "DELETE FROM kv WHERE plugin = ? AND key = ?", (self.namespace, name)
                ).rowcount
            ),
        )
        return bool(count)

    def keys(self, prefix: object = "", *, deadline: float) -> list[str]:
        if not isinstance(prefix, str):
            raise HostRequestError("invalid_request", "prefix must be a string")
        rows = self._run(
            deadline,
            lambda db: db.execute(
                "SELECT key FROM kv WHERE plugin = ? AND substr(key, 1, ?) = ? ORDER BY key",
                (self.namespace, len(prefix), prefix),
            ).fetchall(),
        )
        return [row[0] for row in rows]  # type: ignore[attr-defined]


class SharedState(_Store):
    """Shared namespaces (``state:NAMESPACE``): values with versions, compare-and-swap.

    The same SQLite file and deadline rules as kv; which namespaces a plugin
    reaches is its grants' business (runtime/_hostapi.py). Every write gives
    the key the namespace's next version; ``expect`` makes a write conditional
    on the version the writer last read (0: the key must be absent). The check
    and the write are one ``BEGIN IMMEDIATE`` transaction, so two writers, in
    this process or another, never both win.
    """

    def read(self, namespace: str, key: object, *, deadline: float) -> tuple[bytes | None, int]:
        """The value and its version; (None, 0) when absent."""
        name = self._key(key)
        row = self._run(
            deadline,
            lambda db: db.execute(
                "SELECT value, version FROM shared WHERE namespace = ? AND key = ?",
                (namespace, name),
            ).fetchone(),
        )
        if row is None:
            return None, 0
        return bytes(row[0]), int(row[1])  # type: ignore[index]

    def write(
        self,
        namespace: str,
        key: object,
        value: bytes | None,
        *,
        expect: int | None,
        deadline: float,
    ) -> tuple[bool, int, bytes | None]:
        """Store (or, ``value=None``, delete) ``key`` if its version is ``expect``
        (any version when None). Returns (done, the version now, the value now)."""
        name = self._key(key)
        if expect is not None and (type(expect) is not int or expect < 0):
            raise HostRequestError("invalid_request", "version must be a non-negative integer")

        def work(db: sqlite3.Connection) -> tuple[bool, int, bytes | None]:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT value, version FROM shared WHERE namespace = ? AND key = ?",
                    (namespace, name),
                ).fetchone()
                current, version = (None, 0) if row is None else (bytes(row[0]), int(row[1]))
                if expect is not None and expect != version:
                    db.execute("ROLLBACK")
                    return False, version, current
                if value is None:
                    if row is not None:
                        db.execute(
                            "DELETE FROM shared WHERE namespace = ? AND key = ?", (namespace, name)
                        )
                    db.execute("COMMIT")
                    return row is not None, 0, None
                (used,) = db.execute(
                    "SELECT COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) FROM shared"
                    " WHERE namespace = ? AND key != ?",
                    (namespace, name),
                ).fetchone()
                if used + len(name.encode()) + len(value) > self.quota:
                    raise HostRequestError(
                        "quota",
                        f"storing {name!r} would exceed the {self.quota:,}-byte quota of "
                        f"shared namespace {namespace!r}",
                    )
                db.execute(
                    "INSERT INTO shared_clock (namespace, version) VALUES (?, 1)"
                    " ON CONFLICT (namespace) DO UPDATE SET version = version + 1",
                    (namespace,),
                )
                (new,) = db.execute(
                    "SELECT version FROM shared_clock WHERE namespace = ?", (namespace,)
                ).fetchone()
                db.execute(
                    "INSERT INTO shared (namespace, key, value, version) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,"
                    " version = excluded.version",
                    (namespace, name, value, new),
                )
                db.execute("COMMIT")
                return True, int(new), value
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        return self._write(deadline, work)  # type: ignore[return-value]

    def keys(self, namespace: str, prefix: object, *, deadline: float) -> list[str]:
        if not isinstance(prefix, str):
            raise HostRequestError("invalid_request", "prefix must be a string")
        rows = self._run(
            deadline,
            lambda db: db.execute(
                "SELECT key FROM shared WHERE namespace = ? AND substr(key, 1, ?) = ? ORDER BY key",
                (namespace, len(prefix), prefix),
            ).fetchall(),
        )
        return [row[0] for row in rows]  # type: ignore[attr-defined]
