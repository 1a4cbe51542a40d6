"""The daemon in-process: webhooks, the control API, OSC, timers, live reload, slow plugins.

Real parts throughout: C plugins built from source, uvicorn serving on
loopback, httpx and python-osc as the clients, a loopback HTTP server that
holds a plugin's request until the test lets it go (so "slow" is exact, not
a race).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http.server
import json
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pdkbuild import build_cached
from pythonosc.udp_client import SimpleUDPClient

from wasmdeck.daemon import Daemon

ROOT = Path(__file__).resolve().parent.parent

DECK = """\
version = 1

[listen]
webhooks = "127.0.0.1:0"
osc = "127.0.0.1:0"
webhook_max_body = 1024
webhook_rate_per_minute = {rate}

[plugins.velocity]
path = "velocity.wasm"

[plugins.slow]
path = "hostcalls.wasm"
grants = ["network:127.0.0.1:{held_port}", "kv", "process:true"]
timeout_ms = 20000

[modes.live]
[modes.edit]

[[bindings]]
name = "scene"
trigger = {{ kind = "webhook", path = "/scene", auth = {{ bearer = {{ env = "HOOK_TOKEN" }} }} }}
actions = [{{ plugin = "velocity", action = "pick", params = {{ choices = ["{{body.scene}}"] }} }}]

[[bindings]]
name = "signed"
trigger = {{ kind = "webhook", path = "/signed", auth = {{ hmac_sha256 = {{ secret = "hook-key" }} }} }}
actions = [{{ plugin = "velocity", action = "scale", params = {{ max = "{{body.max}}" }} }}]

[[bindings]]
name = "fader"
trigger = {{ kind = "osc", address = "/fader" }}
actions = [{{ plugin = "velocity", action = "scale", params = {{ max = "{{osc.0}}" }} }}]

[[bindings]]
name = "wait"
trigger = {{ kind = "startup" }}
actions = [{{ mode = "live" }}]

[[bindings]]
name = "held"
trigger = {{ kind = "webhook", path = "/held", auth = {{ bearer = {{ env = "HOOK_TOKEN" }} }} }}
actions = [{{ plugin = "slow", action = "http-get", params = {{ url = "http://127.0.0.1:{held_port}/" }} }}]

[[bindings]]
name = "to-edit"
mode = "live"
trigger = {{ kind = "osc", address = "/edit" }}
actions = [{{ mode = "edit" }}]
"""


class HeldServer:
    """A loopback HTTP server that answers only once ``release()`` is called."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.arrived = threading.Event()
        held = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                held.arrived.set()
                held.released.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def held() -> Iterator[HeldServer]:
    server = HeldServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def hostcalls_c() -> Path:
    return build_cached(ROOT / "tests" / "plugins" / "c" / "hostcalls")


@pytest.fixture
def deck_file(
    tmp_path: Path,
    velocity_wasm: Path,
    hostcalls_c: Path,
    held: HeldServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Path]:
    home = tmp_path / "home"
    (home / "secrets").mkdir(parents=True)
    key = home / "secrets" / "hook-key"
    key.write_text("k3y\n")
    key.chmod(0o600)
    monkeypatch.setenv("WASMDECK_HOME", str(home))
    monkeypatch.setenv("HOOK_TOKEN", "t0ken")
    shutil.copy(velocity_wasm, tmp_path / "velocity.wasm")
    shutil.copy(hostcalls_c, tmp_path / "hostcalls.wasm")

    def write(rate: int = 1000, extra: str = "") -> Path:
        path = tmp_path / "deck.toml"
        path.write_text(DECK.format(rate=rate, held_port=held.port) + extra)
        return path

    return write


@contextlib.asynccontextmanager
async def serving(path: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(path, midi=False)
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(ready=ready.set))
    await asyncio.wait_for(ready.wait(), 30)
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 60)


async def until(condition: Callable[[], Any], timeout: float = 20) -> Any:
    """Wait for ``condition()`` to be true (checked every 10 ms), at most ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not (value := condition()):
            await asyncio.sleep(0.01)
    return value


def records(daemon: Daemon, binding: str) -> list[dict[str, Any]]:
    return [r for r in daemon.events if r["binding"] == binding]


def hook_url(daemon: Daemon, path: str) -> str:
    return f"http://127.0.0.1:{daemon.webhooks.port}{path}"


BEARER = {"Authorization": "Bearer t0ken"}


# -- webhooks ----------------------------------------------------------------------


async def test_webhook_body_reaches_the_plugin(deck_file: Callable[..., Path]) -> None:
    async with serving(deck_file()) as daemon, httpx.AsyncClient() as client:
        answer = await client.post(
            hook_url(daemon, "/scene"), json={"scene": "Live"}, headers=BEARER
        )
        assert (answer.status_code, answer.json()) == (202, {"fired": ["scene"]})
        [record] = await until(lambda: records(daemon, "scene"))
        assert json.loads(record["result"]) == {"choice": "Live", "index": 0}


async def test_webhook_refusals(deck_file: Callable[..., Path]) -> None:
    async with serving(deck_file(rate=2)) as daemon, httpx.AsyncClient() as client:
        url = hook_url(daemon, "/scene")
        assert (await client.post(url, json={})).status_code == 401
        wrong = {"Authorization": "Bearer t0kem"}
        assert (await client.post(url, json={}, headers=wrong)).status_code == 401
        assert (await client.post(hook_url(daemon, "/nope"), headers=BEARER)).status_code == 404
        assert (await client.get(url, headers=BEARER)).status_code == 404  # POST only
        big = {"scene": "x" * 2000}
        assert (await client.post(url, json=big, headers=BEARER)).status_code == 413
        bad = await client.post(url, content=b"{nope", headers=BEARER)
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
        assert (await client.post(url, json={"scene": "a"}, headers=BEARER)).status_code == 202
        assert (await client.post(url, json={"scene": "b"}, headers=BEARER)).status_code == 429
        assert daemon.metrics.bindings.get("scene") == 1  # the refused ones fired nothing


async def test_webhook_hmac_signature(deck_file: Callable[..., Path]) -> None:
    async with serving(deck_file()) as daemon, httpx.AsyncClient() as client:
        body = b'{"max": 254}'
        good = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
        url = hook_url(daemon, "/signed")
        assert (
            await client.post(url, content=body, headers={"X-Signature-256": "00"})
        ).status_code == 401
        tampered = {"X-Signature-256": good}
        assert (await client.post(url, content=body + b" ", headers=tampered)).status_code == 401
        signed = {"X-Signature-256": f"sha256={good}"}
        assert (await client.post(url, content=body, headers=signed)).status_code == 202
        [record] = await until(lambda: records(daemon, "signed"))
        assert "error" in record and "needs a trigger with a velocity" in record["error"]


# -- OSC, modes, startup ---------------------------------------------------------


async def test_osc_messages_and_mode_changes(deck_file: Callable[..., Path]) -> None:
    async with serving(deck_file()) as daemon:
        assert daemon.engine.mode == "live"
        osc = SimpleUDPClient("127.0.0.1", daemon.osc.port)
        osc.send_message("/fader", [99])
        [record] = await until(lambda: records(daemon, "fader"))
        assert "needs a trigger with a velocity" in record["error"]  # {osc.0} reached params
        osc.send_message("/edit", [])
        await until(lambda: daemon.engine.mode == "edit")
        assert records(daemon, "wait") and records(daemon, "wait")[0]["mode"] == "live"


# -- slow plugins, drain ----------------------------------------------------------


async def test_a_slow_plugin_never_delays_another(
    deck_file: Callable[..., Path], held: HeldServer
) -> None:
    async with serving(deck_file()) as daemon, httpx.AsyncClient() as client:
        assert (await client.post(hook_url(daemon, "/held"), headers=BEARER)).status_code == 202
        await asyncio.to_thread(held.arrived.wait, 20)  # the slow plugin is inside its call
        for scene in ("a", "b", "c"):
            await client.post(hook_url(daemon, "/scene"), json={"scene": scene}, headers=BEARER)
        done = await until(lambda: len(records(daemon, "scene")) == 3 and records(daemon, "scene"))
        assert [json.loads(r["result"])["choice"] for r in done] == ["a", "b", "c"]  # in order
        assert records(daemon, "held") == []  # still held
        assert daemon.status()["plugins"]["slow"]["pending"] == 1
        held.release()
        [record] = await until(lambda: records(daemon, "held"))
        assert json.loads(record["result"]) == {"status": 200, "body": "ok"}


async def test_stopping_waits_for_calls_in_flight(
    deck_file: Callable[..., Path], held: HeldServer
) -> None:
    daemon = Daemon(deck_file(), midi=False)
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(ready=ready.set))
    await ready.wait()
    async with httpx.AsyncClient() as client:
        await client.post(hook_url(daemon, "/held"), headers=BEARER)
    await asyncio.to_thread(held.arrived.wait, 20)
    daemon.stop()
    await asyncio.sleep(0.05)
    assert not task.done()  # draining: the held call is in flight
    held.release()
    await asyncio.wait_for(task, 30)
    [record] = records(daemon, "held")
    assert json.loads(record["result"])["status"] == 200


STEPS = """
[[bindings]]
name = "steps"
trigger = { kind = "osc", address = "/steps" }
actions = [
  { plugin = "velocity", action = "pick", params = { choices = ["first"] } },
  { delay_ms = 50 },
  { mode = "edit" },
  { plugin = "velocity", action = "pick", params = { choices = ["second"] } },
]

[[bindings]]
name = "broken"
trigger = { kind = "osc", address = "/broken" }
actions = [
  { plugin = "velocity", action = "pick", params = { choices = ["{osc.0}"] } },
  { mode = "edit" },
]
"""


async def test_a_sequence_runs_in_order_through_a_delay_and_a_failure_ends_it(
    deck_file: Callable[..., Path],
) -> None:
    async with serving(deck_file(extra=STEPS)) as daemon:
        daemon.fire("steps")
        steps = await until(lambda: len(records(daemon, "steps")) == 4 and records(daemon, "steps"))
        assert [r["action"] for r in steps] == ["plugin", "delay", "mode", "plugin"]
        assert [json.loads(r["result"])["choice"] for r in (steps[0], steps[3])] == [
            "first",
            "second",
        ]
        assert steps[1]["ms"] >= 50 and "error" not in steps[1]
        assert daemon.engine.mode == "edit"
        daemon.set_mode("live")
        daemon.fire("broken")  # by hand: no OSC argument for {osc.0}
        [failed] = await until(lambda: records(daemon, "broken"))
        assert failed["error"].startswith("TemplateError")
        # The next step would have run in the same callback: the sequence ended.
        assert len(records(daemon, "broken")) == 1 and daemon.engine.mode == "live"


# -- the control API --------------------------------------------------------------


async def test_control_api_needs_the_token_and_the_host(deck_file: Callable[..., Path]) -> None:
    async with serving(deck_file()) as daemon, httpx.AsyncClient() as client:
        control = json.loads((Path(daemon_home()) / "control.json").read_text())
        assert oct((Path(daemon_home()) / "control.json").stat().st_mode & 0o777) == "0o600"
        base = f"http://127.0.0.1:{control['port']}"
        token = {"Authorization": f"Bearer {control['token']}"}
        assert (await client.get(f"{base}/v1/status")).status_code == 401
        rebinding = {**token, "Host": f"evil.example:{control['port']}"}
        assert (await client.get(f"{base}/v1/status", headers=rebinding)).status_code == 421
        status = (await client.get(f"{base}/v1/status", headers=token)).json()
        assert status["mode"] == "live" and status["bindings"] == 6
        assert set(status["plugins"]) == {"velocity", "slow"}
        assert (await client.post(f"{base}/v1/mode/edit", headers=token)).json() == {"mode": "edit"}
        assert (await client.post(f"{base}/v1/mode/nope", headers=token)).status_code == 404
        assert (await client.post(f"{base}/v1/fire/scene", headers=token)).status_code == 200
        [record] = await until(lambda: records(daemon, "scene"))
        assert "body" in record["error"]  # fired by hand: no webhook body to take {body.scene} from
        assert (await client.post(f"{base}/v1/fire/nope", headers=token)).status_code == 404
        metrics = (await client.get(f"{base}/metrics", headers=token)).text
        assert 'wasmdeck_triggers_total{binding="scene"} 1.0' in metrics
    assert not (Path(daemon_home()) / "control.json").exists()  # withdrawn on exit


def daemon_home() -> str:
    import os

    return os.environ["WASMDECK_HOME"]


# -- live reload --------------------------------------------------------------------


async def test_live_reload_applies_a_valid_edit_and_refuses_a_bad_one(
    deck_file: Callable[..., Path],
) -> None:
    path = deck_file()
    async with serving(path) as daemon, httpx.AsyncClient() as client:
        extra = (
            '\n[[bindings]]\nname = "added"\ntrigger = { kind = "osc", address = "/added" }\n'
            'actions = [{ mode = "edit" }]\n'
        )
        velocity = daemon._workers["velocity"].plugin
        path.write_text(path.read_text() + extra)
        await until(lambda: daemon.reloads == 1)
        assert daemon.deck.binding("added") is not None
        assert daemon._workers["velocity"].plugin is velocity  # unchanged plugins are kept
        path.write_text(path.read_text().replace("[[bindings]]", "[[bindings", 1))
        ok, message = await daemon.reload()
        assert not ok and "TOML syntax" in message
        assert daemon.deck.binding("added") is not None  # the running deck stays
        answer = await client.post(hook_url(daemon, "/scene"), json={"scene": "x"}, headers=BEARER)
        assert answer.status_code == 202


async def test_no_event_is_lost_or_doubled_across_reloads(deck_file: Callable[..., Path]) -> None:
    path = deck_file()
    async with serving(path) as daemon, httpx.AsyncClient() as client:
        url = hook_url(daemon, "/scene")

        async def send(n: int) -> None:
            for i in range(n):
                answer = await client.post(url, json={"scene": f"s{i}"}, headers=BEARER)
                assert answer.status_code == 202

        sender = asyncio.create_task(send(60))
        for i in range(3):
            ok, _ = await daemon.reload()
            assert ok
            path.write_text(path.read_text() + f"\n# edit {i}\n")
        await sender
        await until(lambda: len(records(daemon, "scene")) >= 60)
        await until(lambda: all(w.pending == 0 for w in daemon._workers.values()))
        done = records(daemon, "scene")
        choices = [json.loads(r["result"])["choice"] for r in records(daemon, "scene")]
        assert choices == [f"s{i}" for i in range(60)]
        assert len(done) == 60


async def test_interval_timers_fire_in_the_running_deck(deck_file: Callable[..., Path]) -> None:
    extra = (
        '\n[[bindings]]\nname = "tick"\ntrigger = { kind = "timer", interval_ms = 50 }\n'
        'actions = [{ plugin = "velocity", action = "pick", params = { choices = ["t"] } }]\n'
    )
    async with serving(deck_file(extra=extra)) as daemon:
        ticks = await until(lambda: len(records(daemon, "tick")) >= 3 and records(daemon, "tick"))
        assert all(json.loads(r["result"]) == {"choice": "t", "index": 0} for r in ticks)


async def test_the_events_stream_follows_actions(deck_file: Callable[..., Path]) -> None:
    async with serving(deck_file()) as daemon, httpx.AsyncClient() as client:
        control = json.loads((Path(daemon_home()) / "control.json").read_text())
        url = f"http://127.0.0.1:{control['port']}/v1/events"
        token = {"Authorization": f"Bearer {control['token']}"}
        async with client.stream("GET", url, headers=token, timeout=30) as stream:
            await until(lambda: daemon._listeners)
            await client.post(hook_url(daemon, "/scene"), json={"scene": "Live"}, headers=BEARER)
            async for line in stream.aiter_lines():
                if line.strip():
                    record = json.loads(line)
                    break
        assert (record["binding"], record["plugin"], record["plugin_action"]) == (
            "scene",
            "velocity",
            "pick",
        )
        assert json.loads(record["result"]) == {"choice": "Live", "index": 0}
        assert record["ms"] >= 0


# -- limits and fuel in the metrics ---------------------------------------------------


def limits_deck(behaviors_wasm: Path, held_port: int) -> str:
    hook = 'auth = { bearer = { env = "HOOK_TOKEN" } }'
    return f"""
[plugins.beh]
path = "{behaviors_wasm}"
timeout_ms = 20000

[plugins.impatient]
path = "hostcalls.wasm"
grants = ["network:127.0.0.1:{held_port}", "kv", "process:true"]
timeout_ms = 1500

[[bindings]]
name = "count"
trigger = {{ kind = "webhook", path = "/count", {hook} }}
actions = [{{ plugin = "beh", action = "count" }}]

[[bindings]]
name = "burn"
trigger = {{ kind = "webhook", path = "/burn", {hook} }}
actions = [{{ plugin = "beh", action = "burn", params = {{ n = 1000000000000 }} }}]

[[bindings]]
name = "impatient"
trigger = {{ kind = "webhook", path = "/impatient", {hook} }}
actions = [{{ plugin = "impatient", action = "http-get", params = {{ url = "http://127.0.0.1:{held_port}/" }} }}]
"""


async def test_a_plugin_that_times_out_while_others_keep_answering(
    deck_file: Callable[..., Path], held: HeldServer, behaviors_wasm: Path
) -> None:
    path = deck_file(extra=limits_deck(behaviors_wasm, held.port))
    async with serving(path) as daemon, httpx.AsyncClient() as client:
        await client.post(hook_url(daemon, "/impatient"), headers=BEARER)
        await asyncio.to_thread(held.arrived.wait, 20)  # inside its call, which will not end
        for scene in ("a", "b"):
            await client.post(hook_url(daemon, "/scene"), json={"scene": scene}, headers=BEARER)
        await client.post(hook_url(daemon, "/count"), headers=BEARER)
        await until(lambda: len(records(daemon, "scene")) == 2 and records(daemon, "count"))
        [stopped] = await until(lambda: records(daemon, "impatient"))
        assert stopped["error"].startswith("TimeLimitExceeded")
        assert stopped["ms"] < 10_000  # its 1.5 s timeout, not the server's 30 s hold
        assert [json.loads(r["result"])["choice"] for r in records(daemon, "scene")] == ["a", "b"]
        held.release()
        await client.post(hook_url(daemon, "/impatient"), headers=BEARER)  # it answers again
        await until(lambda: len(records(daemon, "impatient")) == 2)
        assert json.loads(records(daemon, "impatient")[1]["result"])["status"] == 200
        status = daemon.status()
        impatient = status["plugins"]["impatient"]
        assert (impatient["calls"], impatient["limit_hits"]) == (2, {"TimeLimitExceeded": 1})
        assert impatient["errors"] == {"TimeLimitExceeded": 1}
        assert status["plugins"]["velocity"]["limit_hits"] == {}
        per_binding = status["per_binding"]["impatient"]
        assert (per_binding["fired"], per_binding["calls"]) == (2, 2)
        assert per_binding["limit_hits"] == {"TimeLimitExceeded": 1}


async def test_fuel_and_limit_hits_per_plugin_and_binding(
    deck_file: Callable[..., Path], held: HeldServer, behaviors_wasm: Path
) -> None:
    path = deck_file(extra=limits_deck(behaviors_wasm, held.port))
    async with serving(path) as daemon, httpx.AsyncClient() as client:
        for _ in range(2):
            await client.post(hook_url(daemon, "/count"), headers=BEARER)
        await client.post(hook_url(daemon, "/burn"), headers=BEARER)
        await until(lambda: len(records(daemon, "count")) == 2 and records(daemon, "burn"))
        [burnt] = records(daemon, "burn")
        assert burnt["error"].startswith("FuelLimitExceeded")
        status = daemon.status()
        count, burn = status["per_binding"]["count"], status["per_binding"]["burn"]
        assert count["calls"] == 2 and count["limit_hits"] == {}
        assert 0 < count["fuel_per_call"] < 1_000_000  # a counter's worth, not the budget
        assert abs(count["fuel_used"] - 2 * count["fuel_per_call"]) <= 1
        assert burn["limit_hits"] == {"FuelLimitExceeded": 1}
        assert burn["fuel_used"] == 100_000_000  # the whole default budget
        beh = status["plugins"]["beh"]
        assert beh["fuel_used"] == count["fuel_used"] + burn["fuel_used"]
        assert beh["limit_hits"] == {"FuelLimitExceeded": 1} and beh["calls"] == 3
        control = json.loads((Path(daemon_home()) / "control.json").read_text())
        metrics = (
            await client.get(
                f"http://127.0.0.1:{control['port']}/metrics",
                headers={"Authorization": f"Bearer {control['token']}"},
            )
        ).text
        assert (
            'wasmdeck_limit_hits_total{binding="burn",limit="FuelLimitExceeded",plugin="beh"} 1.0'
            in metrics
        )
        assert 'wasmdeck_fuel_used_total{binding="burn",plugin="beh"} 1e+08' in metrics
        fuel = f'wasmdeck_fuel_used_total{{binding="count",plugin="beh"}} {count["fuel_used"]:.1f}'
        assert fuel in metrics
