"""Webhook triggers through ``wasmdeck serve`` against a bare handler on the same stack.

Run: ``python benchmarks/webhook_throughput.py [--requests N] [--concurrency C]``
(needs ``pip install -e '.[test]'``; about a minute).

Two servers run side by side, each a process of its own on loopback, both
starlette on uvicorn with the same settings (the standard asyncio loop; HTTP
parsed by httptools, which uvicorn picks when it is installed, as
``wasmdeck[serve]`` installs it, else h11):

- the reference: a bare ASGI handler that does what any authenticated JSON
  webhook must — reads the body, compares a bearer token in constant time,
  parses the JSON — and answers 202;
- wasmdeck: ``wasmdeck serve`` with a webhook binding (bearer secret from the
  environment) whose action calls the C velocity example's ``pick`` with a
  param from the body: matching, auth, rate and size limits, JSON, the
  trigger engine, the plugin call queued (202 is sent once the binding has
  fired; the call completes on the plugin's worker).

One httpx.AsyncClient per round sends ``--requests`` POSTs with
``--concurrency`` in flight (keep-alive connections), the two servers taking
turns round by round. Reported: requests/s and per-request p50/p99, medians
over the rounds, and the ratio wasmdeck/reference; the plugin calls the
host made are read from ``wasmdeck status`` at the end (all fired, all run).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _harness import LOG, build_velocity, serving

TOKEN = "bench-token-0123456789"

DECK = """\
version = 1
[listen]
webhooks = "127.0.0.1:{port}"
webhook_rate_per_minute = 1000000
[plugins.velocity]
path = "velocity.wasm"
[[bindings]]
name = "scene"
trigger = {{ kind = "webhook", path = "/scene", auth = {{ bearer = {{ env = "BENCH_TOKEN" }} }} }}
actions = [{{ plugin = "velocity", action = "pick", params = {{ choices = ["{{body.scene}}"] }} }}]
"""

# The reference, run as ``python -c``: the same work any JSON webhook with a bearer does.
BARE = """\
import hmac, sys
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from wasmdeck import _json

SECRET = sys.argv[2].encode()

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    body = await request.body()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not (scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), SECRET)):
        response = JSONResponse({"error": "credentials"}, status_code=401)
    else:
        _json.loads(body, what="the webhook body")
        response = JSONResponse({"fired": ["scene"]}, status_code=202)
    await response(scope, receive, send)

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, lifespan="off", loop="asyncio")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def one_round(url: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Requests/s and each request's ms, ``concurrency`` at a time."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = json.dumps({"scene": "Live"}).encode()
    times: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        todo = iter(range(requests))

        async def worker() -> None:
            for _ in todo:
                start = time.perf_counter()
                answer = await client.post(url, content=body, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                if answer.status_code != 202:
                    raise RuntimeError(f"{url}: {answer.status_code} {answer.text}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return requests / elapsed, times


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def compare(
    urls: dict[str, str], rounds: int, requests: int, concurrency: int
) -> dict[str, list[tuple[float, float, float]]]:
    for url in urls.values():
        await wait_up(url)
        await one_round(url, min(200, requests), concurrency)  # warm
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            rate, times = await one_round(url, requests, concurrency)
            results[name].append((rate, *percentiles(times)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="per round and server")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    os.environ["BENCH_TOKEN"] = TOKEN
    with tempfile.TemporaryDirectory(prefix="wasmdeck-bench-") as scratch:
        work = Path(scratch)
        build_velocity(work)
        hook_port, bare_port = free_port(), free_port()
        (work / "deck.toml").write_text(DECK.format(port=hook_port))
        bare = subprocess.Popen([sys.executable, "-c", BARE, str(bare_port), TOKEN])
        try:
            with serving(work / "deck.toml", work / "home"):
                urls = {
                    "reference": f"http://127.0.0.1:{bare_port}/scene",
                    "wasmdeck": f"http://127.0.0.1:{hook_port}/scene",
                }
                results = asyncio.run(compare(urls, args.rounds, args.requests, args.concurrency))
                time.sleep(0.5)  # the last calls
                status = json.loads(
                    subprocess.run(
                        [sys.executable, "-m", "wasmdeck", "status", "--json"],
                        env={**os.environ, "WASMDECK_HOME": str(work / "home")},
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
        finally:
            bare.terminate()
            bare.wait(30)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    parser_name = "httptools" if importlib.util.find_spec("httptools") else "h11"
    print(
        f"{args.rounds} rounds x {args.requests} POSTs, {args.concurrency} in flight, "
        f"httpx -> uvicorn ({parser_name}, asyncio) on loopback; load {load}"
    )
    medians = {}
    for name, rows in results.items():
        rate = statistics.median(r[0] for r in rows)
        p50 = statistics.median(r[1] for r in rows)
        p99 = statistics.median(r[2] for r in rows)
        medians[name] = (rate, p50, p99)
        print(f"{name:>9}: {rate:7.0f} requests/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    calls = status["plugins"]["velocity"]["calls"]
    sent = args.rounds * args.requests + min(200, args.requests)
    print(
        f"wasmdeck: {calls} plugin calls for {sent} requests "
        f"(errors {status['plugins']['velocity']['errors']}, drops "
        f"{status['plugins']['velocity']['drops']}); {len(LOG)} log lines"
    )
    ref, deck = medians["reference"], medians["wasmdeck"]
    print(
        f"ratio_throughput_wasmdeck_over_reference={deck[0] / ref[0]:.2f} "
        f"ratio_p50_wasmdeck_over_reference={deck[1] / ref[1]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
