"""The local UI's plugins page with 10 installed plugins: how long it takes when it
asks the marketplace what is newer (``POST /api/v1/updates``, one request)
against one request per plugin.

Run: ``python benchmarks/ui_updates.py [--plugins 10] [--pages 30] [--base DIR]``.
``wasmdeck serve`` and ``wasmdeck-market serve`` run as child processes on
loopback, over a home with ``--plugins`` plugins installed from a marketplace
that lists a newer version of each. Cases, each the median of ``--pages``
page loads after one warm-up:

- ``floor``: the UI's deck page (same server, session and templates; no
  marketplace), the reference;
- ``plugins page``: this tree's UI and marketplace (one update check);
- with ``--base DIR`` (a checkout of an older tree, e.g.
  ``git archive main | tar -x -C DIR``): that tree's UI and marketplace
  (``before``), and this tree's UI against that marketplace (the fallback to
  one request per plugin when the endpoint is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from marketfix import free_port  # noqa: E402
from pkghelp import pack  # noqa: E402

from wasmdeck.packages import PluginManager, generate_key  # noqa: E402
from wasmdeck_market import FileBlobs, Market, open_database  # noqa: E402


def seed(tmp: Path, data: Path, home: Path, plugins: int) -> None:
    """``plugins`` packages at 1.0.0 and 1.1.0 on the marketplace, 1.0.0 installed."""
    key = tmp / "bench.key"
    generate_key(key)
    market = Market(open_database(data), FileBlobs(data / "blobs"))
    account, _ = market.create_account("bench")
    market.add_key(account, key.with_name(key.name + ".pub").read_text())
    manager = PluginManager(home)
    for n in range(plugins):
        for version in ("1.0.0", "1.1.0"):
            path = pack(tmp, key, name=f"plugin-{n:02d}", version=version)
            market.publish(account, path.read_bytes())
            if version == "1.0.0":
                manager.install(path, yes=True)
    market.close()


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str], ready: str) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if ready in line:
                break
        else:
            raise RuntimeError(f"{args[:3]} exited before it was serving")
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def page_times(home: Path, path: str, pages: int) -> list[float]:
    control = json.loads((home / "control.json").read_text())
    base = f"http://127.0.0.1:{control['port']}/ui"
    with httpx.Client(base_url=base, timeout=60) as http:
        login = http.post("/login", data={"token": control["token"]})
        assert login.status_code == 303, login.text
        http.get(path)  # warm-up
        times = []
        for _ in range(pages):
            began = time.perf_counter()
            page = http.get(path)
            times.append(time.perf_counter() - began)
            assert page.status_code == 200, page.text
        if path == "/plugins":
            assert "1.1.0" in page.text, "the page shows no update"
    return times


def run(
    label: str, ui_src: Path, market_src: Path, data: Path, home: Path, args: argparse.Namespace
) -> float:
    port = free_port()
    deck = home.parent / "deck.toml"
    deck.write_text("version = 1\n")
    market_env = {**os.environ, "PYTHONPATH": str(market_src)}
    ui_env = {**os.environ, "PYTHONPATH": str(ui_src), "WASMDECK_HOME": str(home),
              "WASMDECK_MARKET": f"http://127.0.0.1:{port}"}  # fmt: skip
    ui_env.pop("WASMDECK_MARKET_TOKEN", None)
    market_args = ["-m", "wasmdeck_market", "serve", "--port", str(port), "--data", str(data),
                   "--read-rate", "1e9"]  # fmt: skip
    with (
        child(market_args, market_env, "serving on"),
        child(["-m", "wasmdeck", "serve", "--deck", str(deck)], ui_env, "wasmdeck: serving"),
    ):
        floor = statistics.median(page_times(home, "/", args.pages)) * 1000
        took = statistics.median(page_times(home, "/plugins", args.pages)) * 1000
    print(f"  {label:44s} {took:7.1f} ms  (floor, the deck page: {floor:5.1f} ms; "
          f"{took / floor:4.1f}x)")  # fmt: skip
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--plugins", type=int, default=10)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--base", type=Path, help="an older tree to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data, home = tmp / "market", tmp / "home" / "wasmdeck"
        seed(tmp, data, home, args.plugins)
        print(f"plugins page of wasmdeck serve, {args.plugins} plugins installed "
              f"(median of {args.pages}):")  # fmt: skip
        this = ROOT / "src"
        after = run("this tree (one update check)", this, this, data, home, args)
        if args.base is not None:
            old = args.base.resolve() / "src"
            before = run("base tree (one request per plugin)", old, old, data, home, args)
            run("this UI, base marketplace (the fallback)", this, old, data, home, args)
            print(f"  before/after: {before / after:.1f}x")


if __name__ == "__main__":
    main()
