"""The database behind the marketplace: one schema, two engines (SQLite, PostgreSQL).

Everything the server knows lives here (and the package files in the blob
store), so any number of server processes can run in front of one PostgreSQL:
a process keeps nothing between requests but its connections. SQL is written
once, with ``?`` placeholders; a ``Dialect`` says what differs: the id column,
the placeholder, full-text search (an FTS5 table on SQLite, a ``tsvector``
column with a GIN index on PostgreSQL) and how a publish is serialized per
package (``BEGIN IMMEDIATE`` / ``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Database", "Tx", "open_database"]

SCHEMA_VERSION = 1

# {id} is the auto-numbered key: INTEGER PRIMARY KEY (SQLite's rowid, which the
# FTS table shares) or BIGSERIAL PRIMARY KEY. Times are seconds since the epoch.
# Sessions keep only the hash of their id; a session lives while the API token
# it was opened with does (token_hash). rate_limits holds one token bucket per
# client and kind of request (_limits.py), UNLOGGED on PostgreSQL: losing it in
# a crash only refills the buckets, and a count needs no WAL flush.
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id {id}, name TEXT NOT NULL UNIQUE, admin INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY, account_id BIGINT NOT NULL REFERENCES accounts(id),
    label TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, account_id BIGINT NOT NULL REFERENCES accounts(id),
    public_key TEXT NOT NULL, added_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS packages (
    id {id}, name TEXT NOT NULL UNIQUE, owner_id BIGINT NOT NULL REFERENCES accounts(id),
    description TEXT NOT NULL, keywords TEXT NOT NULL, author TEXT NOT NULL,
    category TEXT, homepage TEXT, license TEXT, readme TEXT NOT NULL,
    latest TEXT NOT NULL, signer_key_id TEXT NOT NULL, deprecated TEXT,
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    downloads BIGINT NOT NULL DEFAULT 0, rating_sum BIGINT NOT NULL DEFAULT 0,
    rating_count BIGINT NOT NULL DEFAULT 0, rating DOUBLE PRECISION NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS versions (
    package_id BIGINT NOT NULL REFERENCES packages(id), version TEXT NOT NULL,
    sort_key TEXT NOT NULL, digest TEXT NOT NULL, file_digest TEXT NOT NULL,
    size BIGINT NOT NULL, key_id TEXT NOT NULL, manifest TEXT NOT NULL,
    published_at DOUBLE PRECISION NOT NULL, yanked TEXT,
    downloads BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (package_id, version));
CREATE TABLE IF NOT EXISTS downloads_daily (
    package_id BIGINT NOT NULL REFERENCES packages(id), version TEXT NOT NULL,
    day TEXT NOT NULL, count BIGINT NOT NULL, PRIMARY KEY (package_id, version, day));
CREATE TABLE IF NOT EXISTS reviews (
    package_id BIGINT NOT NULL REFERENCES packages(id),
    account_id BIGINT NOT NULL REFERENCES accounts(id), rating INTEGER NOT NULL,
    body TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL, hidden INTEGER NOT NULL DEFAULT 0,
    reports INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (package_id, account_id));
CREATE TABLE IF NOT EXISTS review_reports (
    package_id BIGINT NOT NULL, author_id BIGINT NOT NULL, reporter_id BIGINT NOT NULL,
    reason TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (package_id, author_id, reporter_id));
CREATE TABLE IF NOT EXISTS rotations (
    package_id BIGINT NOT NULL REFERENCES packages(id), from_key TEXT NOT NULL,
    to_key TEXT NOT NULL, consent TEXT, reason TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY, account_id BIGINT NOT NULL REFERENCES accounts(id),
    token_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL);
CREATE {unlogged}TABLE IF NOT EXISTS rate_limits (
    key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL,
    allowed INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
CREATE INDEX IF NOT EXISTS rate_limits_at ON rate_limits (at);
CREATE INDEX IF NOT EXISTS packages_downloads ON packages (downloads);
CREATE INDEX IF NOT EXISTS packages_updated ON packages (updated_at);
CREATE INDEX IF NOT EXISTS packages_category ON packages (category);
CREATE INDEX IF NOT EXISTS tokens_account ON tokens (account_id);
"""

_WORD = re.compile(r"\w+", re.UNICODE)


def search_words(text: str) -> list[str]:
    """The words of a query, lowercased, at most 8 (each matched as a prefix)."""
    return [w.lower() for w in _WORD.findall(text)][:8]


class Tx:
    """One transaction's cursor: ``one``/``all`` return rows as dicts, ``run`` the row count."""

    def __init__(self, db: Database, conn: Any) -> None:
        self.db = db
        self._conn = conn

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        cursor = self._conn.execute(self.db.sql(sql), tuple(args))
        return int(cursor.rowcount)

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(self.db.sql(sql), tuple(args))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def one(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, args)
        return rows[0] if rows else None


class Database:
    """A connection per thread to one database; ``transaction`` is the only way in."""

    name = "?"
    integrity_errors: tuple[type[BaseException], ...] = ()
    lock_row = ""  # appended to a SELECT of the package row a publish changes

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._guard = threading.Lock()

    # -- what each engine says differently -----------------------------------

    def sql(self, text: str) -> str:
        return text

    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin(self, conn: Any, write: bool) -> None:
        raise NotImplementedError

    def _ddl(self) -> list[str]:
        raise NotImplementedError

    def index(self, tx: Tx, package_id: int, fields: dict[str, str]) -> None:
        """(Re)index a package for search: name, description, keywords, author."""
        raise NotImplementedError

    def match(self, words: list[str]) -> tuple[str, str, list[Any]]:
        """(a JOIN, a WHERE condition, its arguments) that keeps the packages whose
        indexed text has every word as a prefix of one of its words; and the
        order of relevance is ``rank``."""
        raise NotImplementedError

    def rank(self, words: list[str]) -> tuple[str, list[Any]]:
        """An ORDER BY expression (best first, ascending) and its arguments."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------

    def _usable(self, conn: Any) -> bool:
        return True

    def connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not self._usable(conn):
            # The server closed it (a restart, a failover): a new one, not a 500 forever.
            with self._guard:
                if conn in self._all:
                    self._all.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()
            conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Tx]:
        conn = self.connection()
        self._begin(conn, write)
        try:
            yield Tx(self, conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def count(self, sql: str, args: Sequence[Any]) -> dict[str, Any]:
        """One statement that counts a request (a rate limit's upsert ``RETURNING`` a
        row), committed at once: on every request, so as cheap as the engine allows."""
        with self.transaction(write=True) as tx:
            row = tx.one(sql, args)
        assert row is not None
        return row

    def create_schema(self) -> None:
        with self.transaction(write=True) as tx:
            for statement in self._ddl():
                tx.run(statement)
            tx.run(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )

    def close(self) -> None:
        with self._guard:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()


def _statements(text: str) -> list[str]:
    return [s.strip() for s in text.split(";") if s.strip()]


class SQLiteDatabase(Database):
    """SQLite in WAL mode (readers never wait for the writer); writes take the lock at
    ``BEGIN IMMEDIATE``, so a publish's checks and its insert see one state."""

    name = "sqlite"
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _begin(self, conn: Any, write: bool) -> None:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _ddl(self) -> list[str]:
        return [
            *_statements(_TABLES.format(id="INTEGER PRIMARY KEY", unlogged="")),
            "CREATE VIRTUAL TABLE IF NOT EXISTS package_search USING fts5("
            "name, description, keywords, author, tokenize='unicode61')",
        ]

    def count(self, sql: str, args: Sequence[Any]) -> dict[str, Any]:
        # Its own connection per thread, synchronous=NORMAL: in WAL mode a commit
        # then waits for no fsync (the next checkpoint syncs) and a power loss can
        # lose the last counts but not corrupt the file. The other connections keep
        # the default FULL, so a publish is durable when it is answered.
        conn = getattr(self._local, "counter", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.counter = conn
            with self._guard:
                self._all.append(conn)
        cursor = conn.execute(sql, tuple(args))  # autocommit: one statement, one transaction
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
        cursor.close()
        assert row is not None
        return dict(zip(names, row, strict=True))

    def index(self, tx: Tx, package_id: int, fields: dict[str, str]) -> None:
        tx.run("DELETE FROM package_search WHERE rowid = ?", (package_id,))
        tx.run(
            "INSERT INTO package_search (rowid, name, description, keywords, author) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                package_id,
                fields["name"],
                fields["description"],
                fields["keywords"],
                fields["author"],
            ),
        )

    def match(self, words: list[str]) -> tuple[str, str, list[Any]]:
        # Each word quoted (so FTS5 syntax in a query is just text) and a prefix.
        query = " ".join(f'"{w}"*' for w in words)
        return (
            "JOIN package_search ON package_search.rowid = p.id",
            "package_search MATCH ?",
            [query],
        )

    def rank(self, words: list[str]) -> tuple[str, list[Any]]:
        # bm25 is lower for a better match; the name weighs most, then keywords.
        return "bm25(package_search, 10.0, 2.0, 4.0, 2.0)", []


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3: ``%s`` placeholders, a ``tsvector`` column."""

    name = "postgresql"
    lock_row = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg

        self.url = url
        self._psycopg = psycopg
        self.integrity_errors = (psycopg.errors.IntegrityError,)

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, autocommit=False)

    def _usable(self, conn: Any) -> bool:
        return not (conn.closed or conn.broken)

    def _begin(self, conn: Any, write: bool) -> None:
        pass  # psycopg opens a transaction at the first statement

    def _ddl(self) -> list[str]:
        return [
            # Two processes starting at once both create the schema: one at a time.
            "SELECT pg_advisory_xact_lock(8470001)",
            *_statements(_TABLES.format(id="BIGSERIAL PRIMARY KEY", unlogged="UNLOGGED ")),
            "ALTER TABLE packages ADD COLUMN IF NOT EXISTS search tsvector",
            "CREATE INDEX IF NOT EXISTS packages_search ON packages USING GIN (search)",
        ]

    def index(self, tx: Tx, package_id: int, fields: dict[str, str]) -> None:
        tx.run(
            "UPDATE packages SET search = "
            "setweight(to_tsvector('simple', ?), 'A') || setweight(to_tsvector('simple', ?), 'B')"
            " || setweight(to_tsvector('simple', ?), 'B') || setweight(to_tsvector('simple', ?), 'C')"
            " WHERE id = ?",
            (
                fields["name"],
                fields["keywords"],
                fields["author"],
                fields["description"],
                package_id,
            ),
        )

    def match(self, words: list[str]) -> tuple[str, str, list[Any]]:
        return "", "p.search @@ to_tsquery('simple', ?)", [self.tsquery(words)]

    def rank(self, words: list[str]) -> tuple[str, list[Any]]:
        return "-ts_rank(p.search, to_tsquery('simple', ?))", [self.tsquery(words)]

    @staticmethod
    def tsquery(words: list[str]) -> str:
        # Words are \w+ only (search_words), so nothing in them is tsquery syntax.
        return " & ".join(f"{w}:*" for w in words)


def open_database(data: Path | None = None, url: str | None = None) -> Database:
    """PostgreSQL when ``url`` (``postgresql://...``) is given, else SQLite in ``data``."""
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"--database must be a postgresql:// URL, not {url!r}")
        db: Database = PostgresDatabase(url)
    else:
        if data is None:
            raise ValueError("give a data directory (--data) or a database URL (--database)")
        data.mkdir(parents=True, exist_ok=True)
        db = SQLiteDatabase(data / "market.sqlite3")
    db.create_schema()
    return db
