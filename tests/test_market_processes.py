"""``wasmdeck-market`` as users run it: one command on SQLite, and two stateless
server processes in front of one PostgreSQL and one OCI registry."""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from marketfix import Postgres, Registry, free_port, pack, unique

from wasmdeck.packages import load_public_key

WDPK = {"content-type": "application/vnd.wasmdeck.package.v1+wdpk"}


def market(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck_market", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@contextmanager
def serving(*args: str | Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wasmdeck_market", "serve", "--port", str(port), *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        until = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"wasmdeck-market exited: {process.stderr.read() if process.stderr else ''}"
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > until:
                pytest.fail("wasmdeck-market did not start within 60 s")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stderr = process.stderr.read() if process.stderr else ""
        assert "Traceback" not in stderr, stderr


def test_one_command_starts_a_working_marketplace(signer: Path, tmp_path: Path) -> None:
    data = tmp_path / "market"
    made = market("account", "acme", "--data", data)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("wdm_")
    with serving("--data", data) as url:
        auth = {"authorization": f"Bearer {token}"}
        key = load_public_key(signer.with_name(signer.name + ".pub")).to_line()
        assert (
            httpx.post(f"{url}/api/v1/keys", json={"public_key": key}, headers=auth).status_code
            == 201
        )
        path = pack(tmp_path, signer, name="laptop-demo")
        up = httpx.post(
            f"{url}/api/v1/packages", content=path.read_bytes(), headers={**auth, **WDPK}
        )
        assert up.status_code == 201, up.text
        found = httpx.get(f"{url}/api/v1/packages", params={"q": "laptop"}).json()
        assert [p["name"] for p in found["packages"]] == ["laptop-demo"]
        assert httpx.get(f"{url}/openapi.json").json()["openapi"] == "3.1.0"
    assert (data / "market.sqlite3").exists() and any((data / "blobs").rglob("*"))
    # Sign-up over the API is closed unless --open-signup.
    with serving("--data", data) as url:
        closed = httpx.post(f"{url}/api/v1/accounts", json={"name": "x"})
        assert closed.status_code == 403


def test_a_bad_database_url_is_a_clear_error(tmp_path: Path) -> None:
    result = market("serve", "--database", "mysql://x", "--data", tmp_path)
    assert result.returncode == 2 and "postgresql://" in result.stderr
    result = market("serve")
    assert result.returncode == 2 and "--data" in result.stderr


def test_two_processes_serve_one_postgresql_and_one_registry(
    postgres: Postgres, registry: Registry, signer: Path, tmp_path: Path
) -> None:
    shared = ["--database", postgres.new_database(), "--oci", registry.url,
              "--oci-namespace", unique("two"), "--open-signup", "--write-rate", "1000"]  # fmt: skip
    with serving(*shared) as a, serving(*shared) as b:
        account = httpx.post(f"{a}/api/v1/accounts", json={"name": unique("pub")})
        assert account.status_code == 201, account.text
        auth = {"authorization": f"Bearer {account.json()['token']}"}
        key = load_public_key(signer.with_name(signer.name + ".pub")).to_line()
        assert (
            httpx.post(f"{b}/api/v1/keys", json={"public_key": key}, headers=auth).status_code
            == 201
        )
        name = unique("shared")
        v1 = pack(tmp_path, signer, name=name, version="1.0.0").read_bytes()
        assert (
            httpx.post(f"{b}/api/v1/packages", content=v1, headers={**auth, **WDPK}).status_code
            == 201
        )
        assert httpx.get(f"{a}/api/v1/packages/{name}").json()["latest"] == "1.0.0"
        for url in (a, b, a):
            got = httpx.get(f"{url}/api/v1/packages/{name}/versions/1.0.0/download")
            assert got.content == v1
        assert httpx.get(f"{b}/api/v1/packages/{name}/downloads").json()["total"] == 3
        # The same new version published through both at once: exactly one wins.
        v2 = pack(tmp_path, signer, name=name, version="2.0.0").read_bytes()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda url: httpx.post(
                        f"{url}/api/v1/packages", content=v2, headers={**auth, **WDPK}, timeout=30
                    ),
                    [a, b] * 3,
                )
            )
        assert sorted(r.status_code for r in answers) == [201, 409, 409, 409, 409, 409]
        versions = httpx.get(f"{b}/api/v1/packages/{name}").json()["versions"]
        assert [v["version"] for v in versions] == ["2.0.0", "1.0.0"]
        # A new package published through both at once: one wins, no 500.
        fresh = pack(tmp_path, signer, name=unique("fresh")).read_bytes()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda url: httpx.post(
                        f"{url}/api/v1/packages",
                        content=fresh,
                        headers={**auth, **WDPK},
                        timeout=30,
                    ),
                    [a, b] * 2,
                )
            )
        assert sorted(r.status_code for r in answers) == [201, 409, 409, 409], [
            r.text for r in answers
        ]


def test_two_processes_share_the_rate_limits(postgres: Postgres, tmp_path: Path) -> None:
    """Three writes per client, then one per 100 s: over both processes, not per process."""
    shared = ["--database", postgres.new_database(), "--data", tmp_path, "--open-signup",
              "--write-rate", "0.01", "--write-burst", "3"]  # fmt: skip
    with serving(*shared) as a, serving(*shared) as b:
        answers = [
            httpx.post(f"{url}/api/v1/accounts", json={"name": unique("rl")})
            for url in (a, b, a, b, a, b)
        ]
        assert [r.status_code for r in answers] == [201, 201, 201, 429, 429, 429]
        for limited in answers[3:]:
            assert 90 <= int(limited.headers["retry-after"]) <= 100
            assert "too many requests" in limited.json()["error"]["message"]
        # Reads have their own bucket: still served.
        assert httpx.get(f"{b}/api/v1/categories").status_code == 200


def test_two_processes_share_page_sessions(postgres: Postgres, tmp_path: Path) -> None:
    """Log in through one process, use and end the session through the other, as
    behind a load balancer (one site: the cookie is sent to either process)."""
    shared = [
        "--database", postgres.new_database(), "--data", tmp_path, "--open-signup",
        "--write-rate", "1000",
    ]  # fmt: skip
    with serving(*shared) as a, serving(*shared) as b:
        name = unique("who")
        token = httpx.post(f"{a}/api/v1/accounts", json={"name": name}).json()["token"]
        done = httpx.post(f"{a}/login", data={"token": token})
        assert done.status_code == 303, done.text
        (_, session), *_ = done.cookies.items()
        assert session != token

        def page(url: str) -> httpx.Response:
            port = url.rsplit(":", 1)[1]  # each port names its cookie (_pages.cookie_name)
            return httpx.get(f"{url}/publisher", cookies={f"wdm_session_{port}": session})

        assert name in page(b).text and name in page(a).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page(b).text).group(1)  # type: ignore[union-attr]
        port = b.rsplit(":", 1)[1]
        out = httpx.post(
            f"{b}/logout", data={"csrf": csrf}, cookies={f"wdm_session_{port}": session}
        )
        assert out.status_code == 303
        for url in (a, b):
            assert page(url).status_code == 303  # to /login: the session is gone everywhere
