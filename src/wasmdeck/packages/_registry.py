"""The registry of installed plugins: one SQLite file under the home.

One row per plugin, written in a single transaction (SQLite's rollback
journal, synchronous=FULL), so a process killed at any moment leaves the
previous state. After every change a copy is taken with SQLite's backup API
(``registry.sqlite3.bak``, replaced atomically); ``repair`` restores from it
when the database itself is damaged.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .._errors import RegistryCorrupt, StateReadOnly
from .._home import home
from ._files import fsync_dir

__all__ = ["Registry", "Row"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE plugins (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    manifest BLOB NOT NULL,
    key_id TEXT,
    public_key BLOB,
    signature BLOB,
    enabled INTEGER NOT NULL,
    grants TEXT NOT NULL,
    policy TEXT,
    installed_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""
_COLUMNS = (
    "name",
    "version",
    "digest",
    "manifest",
    "key_id",
    "public_key",
    "signature",
    "enabled",
    "grants",
    "policy",
    "installed_at",
    "updated_at",
)
_REPAIR_HINT = "run 'wasmdeck doctor --repair' to restore it from its backup"


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    version: str
    digest: str
    manifest: bytes
    key_id: str | None
    public_key: bytes | None
    signature: bytes | None
    enabled: bool
    grants: tuple[str, ...]
    policy: str | None
    installed_at: float
    updated_at: float

    def values(self) -> tuple[object, ...]:
        return (
            self.name,
            self.version,
            self.digest,
            self.manifest,
            self.key_id,
            self.public_key,
            self.signature,
            int(self.enabled),
            json.dumps(list(self.grants)),
            self.policy,
            self.installed_at,
            self.updated_at,
        )

    @classmethod
    def from_values(cls, values: tuple[object, ...]) -> Row:
        (name, version, digest, manifest, key_id, public_key, signature, enabled, grants, policy,
         installed_at, updated_at) = values  # fmt: skip
        try:
            grant_list = json.loads(str(grants))
            if not isinstance(grant_list, list) or not all(isinstance(g, str) for g in grant_list):
                raise ValueError
            return cls(
                name=_text(name),
                version=_text(version),
                digest=_text(digest),
                manifest=_blob(manifest),
                key_id=None if key_id is None else _text(key_id),
                public_key=None if public_key is None else _blob(public_key),
                signature=None if signature is None else _blob(signature),
                enabled=bool(enabled),
                grants=tuple(grant_list),
                policy=None if policy is None else _text(policy),
                installed_at=float(installed_at),  # type: ignore[arg-type]
                updated_at=float(updated_at),  # type: ignore[arg-type]
            )
        except (TypeError, ValueError):
            raise RegistryCorrupt(f"the registry row of plugin {name!r} is damaged") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _blob(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError
    return value


class Registry:
    """Installed plugins' rows in ``$WASMDECK_HOME/registry.sqlite3``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else home() / "registry.sqlite3"
        self.backup_path = self.path.with_name(self.path.name + ".bak")

    # -- connections -----------------------------------------------------------

    def _open(self, path: Path, *, create: bool = False) -> sqlite3.Connection:
        """Open and check a registry database; only with ``create`` may it be new."""
        mode = "rwc" if create else "rw"
        uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode={mode}"
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
            (check,) = conn.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version == 0:
                conn.execute("BEGIN IMMEDIATE")
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version == 0:
                    conn.execute(_SCHEMA)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            elif version != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"unknown schema version {version}")
            columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(plugins)"))
            if columns != _COLUMNS:
                raise sqlite3.DatabaseError("the plugins table has an unexpected shape")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def connect(self) -> sqlite3.Connection:
        """A checked connection. A new registry is created only on first use: when the
        file is missing but its backup exists, it was lost (deleted, say, during an
        install), and creating an empty one would silently drop every plugin."""
        if not self.path.exists() and self.backup_path.exists():
            raise RegistryCorrupt(
                f"the plugin registry {self.path} is missing but its backup exists; {_REPAIR_HINT}"
            )
        try:
            return self._open(self.path, create=not self.backup_path.exists())
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def _error(self, exc: sqlite3.DatabaseError) -> RegistryCorrupt | StateReadOnly:
        """What a database error means for the user: read-only state, or damage."""
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")) or (
            isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc)
        ):
            if self.path.exists():
                return StateReadOnly(
                    f"the plugin registry {self.path} (or its directory) is read-only "
                    f"({exc}); nothing was changed: make it writable to change plugins"
                )
            return RegistryCorrupt(f"the plugin registry {self.path} is missing; {_REPAIR_HINT}")
        return RegistryCorrupt(
            f"the plugin registry {self.path} is damaged ({exc}); {_REPAIR_HINT}"
        )

    @contextlib.contextmanager
    def transaction(self, hook: object = None) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), then a fresh backup."""
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                if callable(hook):
                    hook()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._backup(conn)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def _backup(self, conn: sqlite3.Connection) -> None:
        temp = self.backup_path.with_name(f".{self.backup_path.name}.{os.getpid()}.partial")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        target = sqlite3.connect(temp)
        try:
            conn.backup(target)
        finally:
            target.close()
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.backup_path)
        fsync_dir(self.path.parent)

    # -- reading ---------------------------------------------------------------

    def rows(self) -> list[Row]:
        conn = self.connect()
        try:
            values = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM plugins ORDER BY name")
            return [Row.from_values(tuple(v)) for v in values]
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def get(self, name: str) -> Row | None:
        conn = self.connect()
        try:
            found = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM plugins WHERE name = ?", (name,)
            ).fetchone()
            return None if found is None else Row.from_values(tuple(found))
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    @staticmethod
    def put(conn: sqlite3.Connection, row: Row) -> None:
        marks = ", ".join("?" * len(_COLUMNS))
        conn.execute(
            f"INSERT OR REPLACE INTO plugins ({', '.join(_COLUMNS)}) VALUES ({marks})",
            row.values(),
        )

    @staticmethod
    def delete(conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute("DELETE FROM plugins WHERE name = ?", (name,)).rowcount > 0

    @staticmethod
    def referenced(conn: sqlite3.Connection) -> set[str]:
        return {d for (d,) in conn.execute("SELECT digest FROM plugins")}

    # -- repair ----------------------------------------------------------------

    def check(self) -> str | None:
        """None when the database opens and its rows read, else what is wrong."""
        try:
            self.rows()
        except RegistryCorrupt as exc:
            return exc.message
        return None

    def restore(self) -> str:
        """Replace a damaged database by its backup, or by an empty one; say which."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        missing = not self.path.exists()
        if not missing:
            os.replace(self.path, aside)
        journal = self.path.with_name(self.path.name + "-journal")
        if journal.exists():
            os.replace(journal, aside.with_name(aside.name + "-journal"))
        try:
            if not self.backup_path.exists():
                raise sqlite3.DatabaseError("no backup")
            self._open(self.backup_path).close()
            source = sqlite3.connect(self.backup_path)
            target = sqlite3.connect(self.path)
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
            count = len(self.rows())
        except (sqlite3.DatabaseError, RegistryCorrupt):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._open(self.path, create=True).close()
            return (
                f"the registry was damaged and its backup unusable; it was moved to "
                f"{aside.name} and a new, empty registry was created: install your plugins again"
            )
        if missing:
            return f"the registry was missing; restored from {self.backup_path.name} ({count} plugin(s))"
        return (
            f"the registry was damaged; restored from {self.backup_path.name} "
            f"({count} plugin(s); damaged copy kept as {aside.name})"
        )

    def backup_digests(self) -> set[str]:
        """The module digests the backup (the last committed state) refers to."""
        try:
            conn = self._open(self.backup_path)
        except sqlite3.DatabaseError:
            return set()
        try:
            return self.referenced(conn)
        except sqlite3.DatabaseError:
            return set()
        finally:
            conn.close()
