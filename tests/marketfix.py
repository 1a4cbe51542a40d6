"""Fixtures for the marketplace tests: real servers on loopback.

- ``postgres``: a PostgreSQL server (Debian's ``postgresql``) in a temporary
  directory on a free port, run as the ``postgres`` user when the tests run as
  root (it refuses root); one per session, a fresh database per use.
- ``registry``: Debian's ``docker-registry`` (CNCF distribution) on a free port.
- ``MarketServer``: the marketplace app on uvicorn in a thread, over either.

Nothing is skipped when a server is missing: ``scripts/install-system-deps``
installs them, and CI runs it first.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import uvicorn
from pkghelp import pack

from wasmdeck.packages import load_public_key
from wasmdeck_market import (
    FileBlobs,
    Limits,
    Market,
    OciBlobs,
    create_app,
    open_database,
)

_names = itertools.count()


def unique(prefix: str = "pkg") -> str:
    """A name no other test of this session uses (servers are shared per session)."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, what: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if process.poll() is not None:
            out = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"{what} exited with {process.returncode}: {out[-2000:]}", pytrace=False)
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    pytest.fail(f"{what} did not start within {timeout} s", pytrace=False)


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        pytest.fail(
            f"{name} is not installed: run scripts/install-system-deps (Debian's postgresql)",
            pytrace=False,
        )
    return found


@dataclass
class Postgres:
    host: str
    port: int
    _count: itertools.count[int]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"market_{os.getpid()}_{next(self._count)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A PostgreSQL server in a temporary directory, stopped and removed on exit."""
    initdb, server = _tool("initdb"), _tool("postgres")
    root = Path(tempfile.mkdtemp(prefix="wasmdeck-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own user
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(
        [
            *prefix,
            initdb,
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            *prefix,
            server,
            "-D", str(data),
            "-p", str(port),
            "-k", str(root),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    pg = Postgres("127.0.0.1", port, itertools.count())

    def ready() -> bool:
        import psycopg

        with psycopg.connect(pg.url(), connect_timeout=2):
            return True

    try:
        _wait(ready, "postgres", process)
        yield pg
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Registry:
    url: str
    root: Path


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    with running_registry() as reg:
        yield reg


@contextlib.contextmanager
def running_registry() -> Iterator[Registry]:
    """Debian's docker-registry on a free port, stopped and removed on exit."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        pytest.fail(
            "docker-registry is not installed: run scripts/install-system-deps", pytrace=False
        )
    root = Path(tempfile.mkdtemp(prefix="wasmdeck-registry-"))
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(f"{url}/v2/", timeout=2).status_code == 200, "registry", process)
        yield Registry(url, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Served:
    """An ASGI app on uvicorn on loopback, from a thread; ``.url``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        until = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > until or not self._thread.is_alive():
                raise RuntimeError("the marketplace server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


class MarketServer(Served):
    """The marketplace app served on loopback from a thread; ``.url``, ``.market``."""

    def __init__(self, market: Market, **app_options: Any) -> None:
        self.market = market
        super().__init__(create_app(market, **app_options))

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.market.close()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def publisher(self, keyfile: Path, name: str | None = None) -> str:
        """A new account with ``keyfile``'s public key registered; its token."""
        with self.client() as http:
            created = http.post("/api/v1/accounts", json={"name": name or unique("acct")})
            assert created.status_code == 201, created.text
            token = str(created.json()["token"])
            key = load_public_key(keyfile.with_name(keyfile.name + ".pub"))
            added = http.post(
                "/api/v1/keys",
                json={"public_key": key.to_line()},
                headers={"authorization": f"Bearer {token}"},
            )
            assert added.status_code == 201, added.text
        return token

    def publish(self, token: str, path: Path) -> httpx.Response:
        with self.client(token) as http:
            return http.post(
                "/api/v1/packages",
                content=path.read_bytes(),
                headers={"content-type": "application/vnd.wasmdeck.package.v1+wdpk"},
            )


GENEROUS = Limits(read_rate=10_000, read_burst=10_000, write_rate=10_000, write_burst=10_000)


def make_market(kind: str, tmp: Path, request: pytest.FixtureRequest, **options: Any) -> Market:
    """A ``Market`` over SQLite or PostgreSQL (a fresh database), files or OCI blobs."""
    if kind == "postgresql":
        pg: Postgres = request.getfixturevalue("postgres")
        db = open_database(url=pg.new_database())
    else:
        db = open_database(tmp)
    blobs: Any = FileBlobs(tmp / "blobs")
    if options.pop("oci", False):
        reg: Registry = request.getfixturevalue("registry")
        blobs = OciBlobs(reg.url, namespace=unique("ns"))
    return Market(db, blobs, **options)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MarketServer]:
    """One marketplace per database engine for the session (tests use unique names)."""
    tmp = tmp_path_factory.mktemp(f"market-{request.param}")
    with MarketServer(
        make_market(request.param, tmp, request), limits=GENEROUS, open_signup=True
    ) as running:
        yield running


@pytest.fixture
def signer(tmp_path: Path) -> Path:
    """A publisher's signing key file (unencrypted) with its ``.pub`` beside it."""
    return new_key(tmp_path / "signer", "publisher.key")


def new_key(directory: Path, name: str = "other.key") -> Path:
    from wasmdeck.packages import generate_key

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    generate_key(path)
    return path


__all__ = [
    "GENEROUS",
    "MarketServer",
    "Postgres",
    "Registry",
    "Served",
    "free_port",
    "make_market",
    "new_key",
    "pack",
    "postgres",
    "registry",
    "running_postgres",
    "running_registry",
    "server",
    "signer",
    "unique",
]
