"""Trigger plugins (metadata ``"type": "trigger"``): polled by the daemon, their events bound.

The ticker plugins (``tests/plugins/<language>/ticker``, one per kit, each
declaring itself a trigger plugin with its kit's helper; built once per run)
publish ``ticker.tick`` ``{"n": N}`` on each poll of ``tick``; ``behave``
makes the next polls fail or spin. The host's side is tested with the C and
Python tickers; every kit's ticker is polled once more in
``test_every_kit_declares_a_trigger_plugin_that_the_poller_polls``. The OBS example's trigger plugin
(examples/rust/obs-scenes) is tested through ``wasmdeck serve`` over JACK in
tests/test_serve.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pdkbuild import PLUGINS, build_cached, runtime

from wasmdeck import Limits, Plugin, TimeLimitExceeded
from wasmdeck.daemon import Daemon
from wasmdeck.daemon._metrics import Metrics
from wasmdeck.daemon._triggers import POLL_BINDING, Poller
from wasmdeck.daemon._workers import PluginWorker
from wasmdeck.deck import DeckError, check_deck, read_deck
from wasmdeck.host import PluginHost
from wasmdeck.toolchains import BuildError, build_project

# Through a running deck in five languages; Go's ticker (a 2 MB module, compiled
# anew in each test's fresh home: ~15 s each) is polled in the kits' test below.
LANGUAGES = ["c", "python", "rust", "zig", "assemblyscript"]
# Every kit, with its way of declaring a trigger plugin (docs/guide-<language>.md).
KITS = {
    "c": "WASMDECK_TRIGGER_METADATA",
    "rust": "Plugin::POLL",
    "zig": ".poll in wd.Metadata",
    "go": "Plugin.Poll",
    "assemblyscript": "Plugin.poll",
    "python": "@plugin.action(poll_ms=)",
}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module", params=LANGUAGES)
def ticker(request: pytest.FixtureRequest) -> Path:
    return build_cached(PLUGINS / str(request.param) / "ticker")


def teamwork_c() -> Path:
    return build_cached(PLUGINS / "c" / "teamwork")


DECK = """\
version = 1

[plugins.ticker]
path = "ticker.wasm"
grants = ["events:publish:ticker.*"]
{poll}

[plugins.sink]
path = "sink.wasm"
grants = ["events:publish:link.unused", "plugins:link-unused", "state:link-unused"]

[[bindings]]
name = "count"
trigger = {{ kind = "event", topic = "ticker.tick" }}
actions = [{{ plugin = "sink", action = "echo", params = {{ n = "{{payload.n}}", from = "{{source}}" }} }}]
"""


def write_deck(tmp_path: Path, ticker: Path, poll: str = "") -> Path:
    (tmp_path / "ticker.wasm").write_bytes(ticker.read_bytes())
    (tmp_path / "sink.wasm").write_bytes(teamwork_c().read_bytes())
    deck = tmp_path / "deck.toml"
    deck.write_text(DECK.format(poll=poll))
    return deck


@contextlib.asynccontextmanager
async def serving(deck: Path) -> AsyncIterator[Daemon]:
    # Not a fixture: the daemon must run on the test's own event loop.
    daemon = Daemon(deck, midi=False, control=False)
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(ready=ready.set))
    await asyncio.wait_for(ready.wait(), 60)
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 60)


async def records(daemon: Daemon, binding: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` event-log records of ``binding``, once there are that many."""
    async with asyncio.timeout(30):
        while len(found := [r for r in daemon.events if r.get("binding") == binding]) < count:
            await asyncio.sleep(0.01)
    return found[:count]


async def test_a_trigger_plugin_is_polled_and_its_events_fire_bindings(
    tmp_path: Path, ticker: Path
) -> None:
    async with serving(write_deck(tmp_path, ticker)) as daemon:
        found = await records(daemon, "count", 5)
        assert [json.loads(r["result"]) for r in found] == [
            {"n": n, "from": "ticker"} for n in range(1, 6)
        ]
        status = daemon.status()["triggers"]["ticker"]
        assert status["action"] == "tick" and status["interval_ms"] == 20  # the metadata's
        assert status["polls"] >= 5 and status["failures"] == 0
        polls = daemon.metrics.binding_calls[POLL_BINDING]
        assert polls.calls >= 5 and polls.errors == {} and polls.fuel_used > 0
        text = daemon.metrics.prometheus().decode()
        assert 'wasmdeck_calls_total{binding="(poll)",plugin="ticker"}' in text


async def test_the_deck_overrides_the_poll_interval_and_a_reload_stops_the_old_poller(
    tmp_path: Path, ticker: Path
) -> None:
    deck = write_deck(tmp_path, ticker, "poll_ms = 30")
    async with serving(deck) as daemon:
        await records(daemon, "count", 2)
        first = daemon._pollers["ticker"]
        assert first.interval == 0.03 and first.running
        deck.write_text(DECK.format(poll="poll_ms = 40"))  # a new spec: the plugin is replaced
        before = len(daemon.events)
        assert (await daemon.reload())[0]
        second = daemon._pollers["ticker"]
        assert second is not first and second.interval == 0.04
        assert not first.running and second.running
        # The new instance counts from 1 again: its polls are the ones that fire now.
        async with asyncio.timeout(30):
            while not any(
                r.get("binding") == "count" and json.loads(r["result"])["n"] == 1
                for r in list(daemon.events)[before:]
            ):
                await asyncio.sleep(0.01)
        without = DECK.format(poll="").split("[plugins.sink]")
        deck.write_text(without[0].split("[plugins.ticker]")[0] + "[plugins.sink]" + without[1])
        assert (await daemon.reload())[0]
        assert "ticker" not in daemon._pollers and not second.running
        assert "ticker" not in daemon.status()["triggers"]


async def test_a_per_plugin_reload_follows_the_new_versions_poll(tmp_path: Path) -> None:
    # The new version's metadata polls every 50 ms, the old one's every 20: the
    # reload (docs/reload.md) replaces the poller, the old one stops.
    source = tmp_path / "ticker-50"
    shutil.copytree(PLUGINS / "c" / "ticker", source)
    code = source / "plugin.c"
    code.write_text(code.read_text().replace('METADATA("tick", 20,', 'METADATA("tick", 50,'))
    slower = build_cached(source)
    async with serving(write_deck(tmp_path, build_cached(PLUGINS / "c" / "ticker"))) as daemon:
        await records(daemon, "count", 1)
        first = daemon._pollers["ticker"]
        assert first.interval == 0.02
        (tmp_path / "ticker.wasm").write_bytes(slower.read_bytes())
        ok, message = await daemon.reload_plugin("ticker")
        assert ok, message
        second = daemon._pollers["ticker"]
        assert second is not first and second.interval == 0.05
        assert not first.running and second.running
        assert daemon.status()["triggers"]["ticker"]["interval_ms"] == 50


async def test_failing_polls_are_logged_counted_and_backed_off(
    ticker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    plugin = hosted(ticker, "events:publish:ticker.*")
    worker = PluginWorker("ticker", plugin, metrics)
    poller = Poller("ticker", "tick", 20, worker.submit, max_backoff=0.1)
    try:
        assert await poller.poll() and poller.delay == 0.02
        await worker.submit("behave", {"as": "fail"}, _context(), "test")
        delays = []
        with caplog.at_level(logging.WARNING, "wasmdeck.daemon"):
            for _ in range(4):
                assert not await poller.poll()
                delays.append(poller.delay)
        assert delays == [0.04, 0.08, 0.1, 0.1]  # doubled, up to max_backoff
        assert "trigger plugin ticker: poll tick failed (1 in a row; next in 0.04 s): " in (
            caplog.text
        )
        assert "failing on purpose" in caplog.text
        assert (poller.failures, poller.failing) == (4, 4)
        errors = metrics.binding_calls[POLL_BINDING].errors
        assert sum(errors.values()) == 4
        await worker.submit("behave", {"as": "ok"}, _context(), "test")
        assert await poller.poll() and poller.delay == 0.02 and poller.failing == 0
        assert poller.status()["failures"] == 4
    finally:
        await worker.drain()
        worker.close()


async def test_the_poll_loop_waits_the_delay_each_poll_set(ticker: Path) -> None:
    waited: list[float] = []
    polled = asyncio.Event()

    async def sleep(seconds: float) -> None:  # the loop's clock: it records, never waits
        waited.append(seconds)
        if len(waited) == 4:
            polled.set()
            await asyncio.Event().wait()  # parked here until stopped
        await asyncio.sleep(0)

    worker = PluginWorker("ticker", hosted(ticker, "events:publish:x"), Metrics())
    poller = Poller("ticker", "tick", 50, worker.submit, sleep=sleep, max_backoff=1)
    try:
        poller.start()
        await asyncio.wait_for(polled.wait(), 30)
        # Its publishes are refused (the grant names another topic): each poll fails.
        assert waited == [0.05, 0.1, 0.2, 0.4]
        poller.stop()
        assert not poller.running
    finally:
        poller.stop()
        await worker.drain()
        worker.close()


async def test_a_slow_poll_ends_at_the_plugins_own_timeout(ticker: Path) -> None:
    plugin = hosted(ticker, "events:publish:ticker.*", limits=Limits(timeout=0.3, fuel=10**13))
    worker = PluginWorker("ticker", plugin, Metrics())
    poller = Poller("ticker", "tick", 20, worker.submit)
    try:
        await worker.submit("behave", {"as": "spin"}, _context(), "test")
        started = asyncio.get_running_loop().time()
        assert not await poller.poll()
        assert asyncio.get_running_loop().time() - started < 5  # its 0.3 s, not forever
        assert poller.last_error is not None
        assert poller.last_error.startswith(TimeLimitExceeded.__name__)
        assert await poller.poll()  # a new instance after the timeout: it works again
    finally:
        await worker.drain()
        worker.close()


@pytest.mark.parametrize("lang", KITS)
async def test_every_kit_declares_a_trigger_plugin_that_the_poller_polls(lang: str) -> None:
    """The kit's helper makes the metadata; the daemon's Poller (its clock
    injected) polls the plugin through its worker; the events arrive on the bus."""
    wasm = build_cached(PLUGINS / lang / "ticker")
    with PluginHost() as host:
        plugin = host.add(
            Plugin(wasm, grants=["events:publish:ticker.*"], runtime=runtime()), name="ticker"
        )
        # What the kit's helper (KITS[lang]) made, and what the host read of it.
        assert {k: plugin.metadata.raw[k] for k in ("type", "poll")} == {
            "type": "trigger",
            "poll": {"action": "tick", "interval_ms": 20},
        }
        poll = plugin.metadata.poll
        assert plugin.metadata.type == "trigger" and poll is not None
        assert (poll.action, poll.interval_ms) == ("tick", 20)
        events: queue.Queue[tuple[str, Any, str]] = queue.Queue()
        host.bus.subscribe(
            "ticker.*", lambda e: events.put((e.topic, e.payload, e.source)), name="test"
        )
        waited: list[float] = []
        polled = asyncio.Event()

        async def sleep(seconds: float) -> None:  # the loop's clock: it records, never waits
            waited.append(seconds)
            if len(waited) == 4:  # three polls done
                polled.set()
                await asyncio.Event().wait()  # parked here until stopped
            await asyncio.sleep(0)

        metrics = Metrics()
        worker = PluginWorker("ticker", plugin, metrics)
        poller = Poller("ticker", poll.action, poll.interval_ms, worker.submit, sleep=sleep)
        try:
            poller.start()
            await asyncio.wait_for(polled.wait(), 60)
            poller.stop()
            got = [await asyncio.to_thread(events.get, timeout=30) for _ in range(3)]
        finally:
            poller.stop()
            await worker.drain()
            worker.close()
        assert got == [("ticker.tick", {"n": n}, "ticker") for n in (1, 2, 3)]
        assert waited == [0.02] * 4 and (poller.polls, poller.failures) == (3, 0)
        assert metrics.binding_calls[POLL_BINDING].calls == 3


@pytest.mark.parametrize(
    ("lang", "source", "change", "message"),
    [
        (
            "c",
            "plugin.c",
            ('METADATA("tick", 20,', 'METADATA("tick", 5,'),
            "WASMDECK_TRIGGER_METADATA: interval_ms must be 10-86400000 (milliseconds)",
        ),
        (
            "zig",
            "plugin.zig",
            (".interval_ms = 20", ".interval_ms = 5"),
            ".poll.interval_ms must be 10-86400000 (milliseconds), not 5",
        ),
        (
            "zig",
            "plugin.zig",
            ('.action = "tick"', '.action = "tock"'),
            '.poll.action "tock" is not one of the declared actions',
        ),
        (
            "rust",
            "src/lib.rs",
            ("interval_ms: 20", "interval_ms: 86400001"),
            "Plugin::POLL: interval_ms must be 10-86400000 (milliseconds)",
        ),
    ],
    ids=["c-interval", "zig-interval", "zig-action", "rust-interval"],
)
def test_a_kit_that_checks_when_it_compiles_refuses_a_bad_poll(
    tmp_path: Path, lang: str, source: str, change: tuple[str, str], message: str
) -> None:
    # Go's and Rust's runtime checks are in the kits' unit tests
    # (tests/test_pdk_go.py, tests/test_pdk_rust.py); the host refuses the rest
    # when it loads the plugin (tests/test_metadata.py).
    project = tmp_path / "ticker"
    shutil.copytree(PLUGINS / lang / "ticker", project, ignore=shutil.ignore_patterns("build"))
    code = project / source
    assert change[0] in code.read_text()
    code.write_text(code.read_text().replace(*change))
    with pytest.raises(BuildError) as caught:
        build_project(project)
    assert message in str(caught.value)


def test_the_python_kit_refuses_a_bad_poll_when_it_is_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The kit is plain Python: its declarations run here as they do in
    # componentize-py's build, where the ValueError fails the build.
    monkeypatch.syspath_prepend(str(PLUGINS.parent.parent / "sdk" / "python"))
    from wasmdeck_pdk import Plugin as KitPlugin

    plugin = KitPlugin("t", version="1", description="d")
    plugin.action("tick", poll_ms=20)(lambda params, context: None)
    assert {k: plugin.metadata()[k] for k in ("type", "poll")} == {
        "type": "trigger",
        "poll": {"action": "tick", "interval_ms": 20},
    }
    with pytest.raises(ValueError, match=r"'tock' cannot be polled too: .* and 'tick' is it"):
        plugin.action("tock", poll_ms=30)(lambda params, context: None)
    for bad in (5, 86_400_001, True, 20.0):
        with pytest.raises(ValueError, match=f"poll_ms must be an integer 10-86400000 .*{bad!r}"):
            plugin.action("x", poll_ms=bad)  # type: ignore[arg-type]
    assert "type" not in KitPlugin("u", version="1", description="d").metadata()


def hosted(wasm: Path, *grants: str, **options: Any) -> Plugin:
    """The plugin in a host of its own (publishing needs one); closed with it.
    Compiled through the test compile cache (pdkbuild.runtime): the Python
    ticker's component compiles once per run, not once per test."""
    plugin = Plugin(wasm, grants=grants, runtime=runtime(), **options)
    return PluginHost().add(plugin, name="ticker")


def _context() -> Any:
    from wasmdeck import TriggerContext

    return TriggerContext()


CHECKED = """\
version = 1

[plugins.ticker]
path = "ticker.wasm"
poll_ms = {poll_ms}

[plugins.sink]
path = "sink.wasm"
grants = ["events:publish:link.unused", "plugins:link-unused", "state:link-unused"]
poll_ms = 100

[[bindings]]
name = "count"
trigger = {{ kind = "event", topic = "ticker.tick" }}
actions = [{{ plugin = "sink", action = "echo" }}]
"""


def test_check_reports_trigger_plugin_settings_at_their_place(tmp_path: Path, ticker: Path) -> None:
    (tmp_path / "ticker.wasm").write_bytes(ticker.read_bytes())
    (tmp_path / "sink.wasm").write_bytes(teamwork_c().read_bytes())
    deck = tmp_path / "deck.toml"
    deck.write_text(CHECKED.format(poll_ms=5))
    with pytest.raises(DeckError) as caught:
        read_deck(deck)
    assert f"{deck}:5:11: poll_ms must be an integer 10-86400000, not 5" in str(caught.value)
    deck.write_text(CHECKED.format(poll_ms=50))
    with pytest.raises(DeckError) as caught:
        check_deck(read_deck(deck))
    text = str(caught.value)
    # The ticker imports event_publish, so it does not load without an events grant.
    assert f"{deck}:3:1: plugin 'ticker' asks for the 'events' capability" in text
    assert (
        f"{deck}:10:11: plugin 'sink' is not a trigger plugin (its metadata has no poll), "
        "so poll_ms has no effect"
    ) in text
    granted = CHECKED.format(poll_ms=50).replace(
        "poll_ms = 50", 'poll_ms = 50\ngrants = ["events:subscribe:x"]'
    )
    deck.write_text(granted.replace("poll_ms = 100\n", ""))
    warnings = [str(w) for w in check_deck(read_deck(deck))]
    assert (
        f"{deck}:3:1: warning: trigger plugin 'ticker' is granted no events:publish:PATTERN, so the events "
        "its polls ('tick') emit reach nobody"
    ) in warnings


LIGHTS = """\
version = 1

[devices.pad]
output = "pad out"

[[bindings]]
name = "lit"
trigger = {{ kind = "{kind}" {extra} }}
feedback = {{ device = "pad", note = 36, state = "payload.scene", equals = "Live" }}
"""


def test_an_event_binding_may_only_light_its_pad_from_the_payload(tmp_path: Path) -> None:
    from wasmdeck.deck import parse_deck

    deck = parse_deck(LIGHTS.format(kind="event", extra=', topic = "obs.scene-changed"'))
    [binding] = deck.bindings
    assert binding.actions == () and binding.feedback is not None
    assert binding.feedback.state == "payload.scene"
    with pytest.raises(DeckError) as caught:
        parse_deck(LIGHTS.format(kind="timer", extra=", interval_ms = 100"), source="d.toml")
    text = str(caught.value)
    assert "d.toml:6:1: binding 'lit' needs actions = [ ... ] (at least one)" in text
    with pytest.raises(DeckError) as caught:
        parse_deck(
            LIGHTS.format(kind="timer", extra=", interval_ms = 100").replace(
                "feedback", 'actions = [{ mode = "x" }]\nfeedback'
            ),
            source="d.toml",
        )
    assert 'state must be "result" or "result.FIELD...", not \'payload.scene\'' in str(caught.value)
