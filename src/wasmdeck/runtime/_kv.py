"""Key-value state for plugins granted ``kv``: one SQLite file, a namespace per plugin."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from .._home import home
from ._netclient import HostRequestError

__all__ = ["KeyValueStore"]

MAX_KEY = 256


class KeyValueStore:
    """A plugin's private keys and values, with a quota on their total size."""

    _lock = threading.Lock()  # one writer at a time within this process

    def __init__(self, namespace: str, *, quota: int, path: Path | None = None) -> None:
        self.namespace = namespace
        self.quota = quota
        self.path = path or home() / "kv.sqlite3"
        self._db = sqlite3.connect(
            self.path, timeout=10, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kv (plugin TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
            " PRIMARY KEY (plugin, key))"
        )

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _key(key: object) -> str:
        if not isinstance(key, str) or not 0 < len(key.encode()) <= MAX_KEY:
            raise HostRequestError("invalid_request", f"key must be a string of 1-{MAX_KEY} bytes")
        return key

    def get(self, key: object) -> bytes | None:
        row = self._db.execute(
            "SELECT value FROM kv WHERE plugin = ? AND key = ?", (self.namespace, self._key(key))
        ).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, key: object, value: bytes) -> None:
        key = self._key(key)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (used,) = self._db.execute(
                    "SELECT COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) FROM kv WHERE plugin = ? AND key != ?",
                    (self.namespace, key),
                ).fetchone()
                if used + len(key.encode()) + len(value) > self.quota:
                    raise HostRequestError(
                        "quota",
                        f"storing {key!r} would exceed the plugin's {self.quota:,}-byte kv quota",
                    )
                self._db.execute(
                    "INSERT INTO kv (plugin, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
                    (self.namespace, key, value),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, key: object) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM kv WHERE plugin = ? AND key = ?", (self.namespace, self._key(key))
            )
        return cursor.rowcount > 0

    def keys(self, prefix: object = "") -> list[str]:
        if not isinstance(prefix, str):
            raise HostRequestError("invalid_request", "prefix must be a string")
        rows = self._db.execute(
            "SELECT key FROM kv WHERE plugin = ? AND substr(key, 1, ?) = ? ORDER BY key",
            (self.namespace, len(prefix), prefix),
        )
        return [row[0] for row in rows]
