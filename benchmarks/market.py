"""The marketplace under load: search and package-page latency and throughput,
and the publish and install time of a 20 MB package.

Run: ``python benchmarks/market.py [--packages 1000] [--downloads 100000]
[--requests 2000]`` (after ``pip install -e '.[test]'``; PostgreSQL is
started from Debian's ``postgresql`` as for the tests).

For SQLite and for PostgreSQL, it publishes ``--packages`` packages through
``Market.publish`` (signed, verified, as an upload is), records
``--downloads`` download events spread over versions and 90 days, serves the
app on uvicorn on loopback and measures, with one keep-alive client and then
8 client threads:

- ``search``: ``GET /api/v1/packages?q=WORD`` (a word in ~10% of the packages);
- ``package``: ``GET /api/v1/packages/NAME``;
- reference, same server and run: ``/healthz``, a constant response, the
  floor of the stack (uvicorn, starlette, the loopback; not rate-limited).

Before serving, the cost of the rate limit every request pays (one upsert
in the database, shared by all server processes) next to a ``SELECT 1``.

Then a 20 MB package (a module with a 20 MB custom section): its publish
(``POST``, verified on the server) and its install from the marketplace
(``fetch_from_market`` + ``PluginManager.install``), next to the install of
the same file from disk as the reference.

Prints p50/p99 in ms and requests/s per case, and the ratios to the floor.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the servers and the WAT plugin live with the tests

from marketfix import free_port, running_postgres  # noqa: E402
from pkghelp import metadata  # noqa: E402
from watgen import abi_module  # noqa: E402

from wasmdeck.packages import (  # noqa: E402
    MarketClient,
    Package,
    PluginManager,
    build_manifest,
    fetch_from_market,
    generate_key,
    load_signing_key,
    sign_package,
)
from wasmdeck_market import FileBlobs, Limits, Market, open_database  # noqa: E402
from wasmdeck_market._limits import RateLimiter  # noqa: E402

WORDS = ["midi", "obs", "lights", "scenes", "osc", "timer", "hue", "audio", "video", "stream"]


def package_bytes(
    key_path: Path, name: str, version: str = "1.0.0", pad: int = 0, **extra: object
) -> bytes:
    module = abi_module(metadata=metadata(name, version, **extra))
    if pad:  # a custom section: the module stays valid, its metadata unchanged
        payload = b"\x03pad" + b"\0" * pad
        module += b"\x00" + _leb(len(payload)) + payload
    package = Package.create(module, build_manifest(metadata(name, version, **extra)))
    return sign_package(package, load_signing_key(key_path)).encode()


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def seed(market: Market, key_path: Path, packages: int, downloads: int) -> tuple[list[str], str]:
    account, token = market.create_account("bench")
    market.add_key(account, key_path.with_name(key_path.name + ".pub").read_text())
    rng = random.Random(7)
    names = []
    for i in range(packages):
        name = f"plugin-{i:05d}"
        words = rng.sample(WORDS, 2) if i % 10 == 0 else ["misc"]
        market.publish(
            account,
            package_bytes(
                key_path, name, keywords=words, description=f"{' '.join(words)} plugin {i}"
            ),
        )
        names.append(name)
    start = 20_000 * 86_400.0
    with market.db.transaction(write=True) as tx:
        ids = {r["name"]: r["id"] for r in tx.all("SELECT id, name FROM packages")}
        per_day: dict[tuple[int, str], int] = {}
        for _ in range(downloads):
            pid = ids[rng.choice(names)]
            day = time.strftime("%Y-%m-%d", time.gmtime(start + rng.randrange(90) * 86_400))
            per_day[(pid, day)] = per_day.get((pid, day), 0) + 1
        for (pid, day), count in per_day.items():
            tx.run(
                "INSERT INTO downloads_daily (package_id, version, day, count) VALUES (?, '1.0.0', ?, ?)",
                (pid, day, count),
            )
        totals: dict[int, int] = {}
        for (pid, _), count in per_day.items():
            totals[pid] = totals.get(pid, 0) + count
        for pid, total in totals.items():
            tx.run("UPDATE packages SET downloads = ? WHERE id = ?", (total, pid))
            tx.run("UPDATE versions SET downloads = ? WHERE package_id = ?", (total, pid))
    return names, token


def measure(
    url: str, paths: Callable[[int], str], requests: int, threads: int
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, requests/s) over ``requests`` requests from ``threads`` clients."""
    per_thread = requests // threads

    def run(t: int) -> list[float]:
        times = []
        with httpx.Client(base_url=url) as http:
            for i in range(per_thread):
                began = time.perf_counter()
                response = http.get(paths(t * per_thread + i))
                times.append(time.perf_counter() - began)
                assert response.status_code == 200, response.text
        return times

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        times = [x for chunk in pool.map(run, range(threads)) for x in chunk]
    wall = time.perf_counter() - began
    times.sort()
    return (
        statistics.median(times) * 1000,
        times[int(len(times) * 0.99) - 1] * 1000,
        len(times) / wall,
    )


def bench_engine(
    label: str, market: Market, storage: list[str], key: Path, args: argparse.Namespace
) -> None:
    began = time.perf_counter()
    names, token = seed(market, key, args.packages, args.downloads)
    print(f"\n{label}: seeded {args.packages} packages, {args.downloads} downloads "
          f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
    rate_limit_cost(market)
    market.close()
    rng = random.Random(3)
    # The server in its own process, as it runs (a server thread in this process
    # would share the GIL with the clients and measure that instead).
    with serving(storage) as url:
        cases = {
            "floor /healthz": lambda i: "/healthz",
            "search": lambda i: f"/api/v1/packages?q={WORDS[i % len(WORDS)]}",
            "package page": lambda i: f"/api/v1/packages/{names[rng.randrange(len(names))]}",
        }
        for threads in (1, 8):
            floor = None
            for case, paths in cases.items():
                p50, p99, rate = measure(url, paths, args.requests, threads)
                floor = floor or p50
                print(f"  {case:16s} x{threads}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                      f"{rate:7.0f} req/s  ({p50 / floor:.1f}x floor)")  # fmt: skip
        big_publish_and_install(url, token, key)


def rate_limit_cost(market: Market, calls: int = 2000) -> None:
    """What the shared rate limit adds to each request (one upsert in the database,
    _limits.py), next to the cheapest database round trip (a ``SELECT 1``)."""
    limiter = RateLimiter(Limits(read_rate=1e9, read_burst=10**9), market.db)

    def select_one() -> None:
        with market.db.transaction() as tx:
            tx.one("SELECT 1 AS one")

    timings = {}
    for case, call in (("SELECT 1", select_one),
                       ("rate-limit check", lambda: limiter.check("bench", "read"))):  # fmt: skip
        call()
        began = time.perf_counter()
        for _ in range(calls):
            call()
        timings[case] = (time.perf_counter() - began) / calls * 1e6
    print(f"  rate-limit check (in process): {timings['rate-limit check']:.0f} us a request, "
          f"{timings['rate-limit check'] / timings['SELECT 1']:.1f}x a SELECT 1 "
          f"({timings['SELECT 1']:.0f} us)")  # fmt: skip


@contextlib.contextmanager
def serving(storage: list[str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wasmdeck_market", "serve", "--port", str(port), *storage,
         "--read-rate", "1e9", "--write-rate", "1e9", "--write-burst", "1000000"],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def big_publish_and_install(url: str, token: str, key: Path) -> None:
    data = package_bytes(key, "big-plugin", pad=20 << 20)
    began = time.perf_counter()
    answer = httpx.post(f"{url}/api/v1/packages", content=data, timeout=120,
                        headers={"authorization": f"Bearer {token}"})  # fmt: skip
    publish = time.perf_counter() - began
    assert answer.status_code == 201, answer.text
    with tempfile.TemporaryDirectory() as home:
        local_file = Path(home) / "big.wdpk"
        local_file.write_bytes(data)
        began = time.perf_counter()
        PluginManager(Path(home) / "a").install(local_file, yes=True)
        local = time.perf_counter() - began
        began = time.perf_counter()
        with MarketClient(url) as client:
            fetched = fetch_from_market(client, "big-plugin")
        PluginManager(Path(home) / "b").install(fetched.data, yes=True)
        remote = time.perf_counter() - began
    size = len(data) / (1 << 20)
    print(f"  {size:.0f} MB package: publish {publish * 1000:.0f} ms; install from the "
          f"marketplace {remote * 1000:.0f} ms vs from disk {local * 1000:.0f} ms "
          f"({remote / local:.2f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packages", type=int, default=1000)
    parser.add_argument("--downloads", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "bench.key"
        generate_key(key)
        engines = args.engines.split(",")
        if "sqlite" in engines:
            data = Path(tmp) / "sqlite"
            market = Market(open_database(data), FileBlobs(data / "blobs"))
            bench_engine("SQLite", market, ["--data", str(data)], key, args)
        if "postgresql" in engines:
            with running_postgres() as pg:
                data, database = Path(tmp) / "pg", pg.new_database()
                market = Market(open_database(url=database), FileBlobs(data / "blobs"))
                storage = ["--database", database, "--data", str(data)]
                bench_engine("PostgreSQL", market, storage, key, args)


if __name__ == "__main__":
    main()
