"""Plugins working together through a ``PluginHost``: events, calls, shared state.

Each language with a teamwork test plugin (``tests/plugins/<lang>/teamwork``,
built once per run by tests/pdkbuild.py) runs every test marked with
``lang``. The teamwork contract:

============  =====================  =============================================
action        params                 does, and outputs
============  =====================  =============================================
publish       the request            ``event_publish``; outputs the host's response
call          the request            ``plugin_call``; outputs the host's response
state-get,    the request            ``state_get`` / ``state_set`` / ``state_delete``
state-set,                           / ``state_list``; outputs the host's response
state-delete,                        (a refused request: ``{"error": {"kind",
state-list                           "message"}}``, in every language)
add           namespace, key, times  adds 1 to the shared counter at key, ``times``
                                     times, each by compare-and-swap (retrying on a
                                     conflict); outputs ``{"value", "retries"}``
react         an event               (the plugin's one subscription, topic ``*``):
                                     keeps the event; when config ``bounce_to`` is
                                     set, publishes the event's payload there
seen          (none)                 outputs the events kept so far, in order
echo          any                    outputs the params
spin          (none)                 loops until a limit stops it
============  =====================  =============================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pdkbuild import PLUGINS, build_cached, runtime

import wasmdeck
from wasmdeck import ImportNotAllowed, Limits, TimeLimitExceeded
from wasmdeck.host import EventBus, PluginHost

LANGUAGES = ["c", "rust", "zig", "go", "assemblyscript", "python"]
SPIN = Limits(timeout=30, fuel=10**13)  # a callee that only its caller's deadline stops
# The teamwork plugins import every function of the three capabilities, so they
# link only with all three granted: these grants, reaching nothing a test uses,
# stand in for the kinds a test leaves out.
LINK = {
    "events": "events:publish:link.unused",
    "plugins": "plugins:link-unused",
    "state": "state:link-unused",
}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture(scope="module", params=LANGUAGES)
def lang(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def teamwork(lang: str) -> Path:
    return build_cached(PLUGINS / lang / "teamwork")


@pytest.fixture
def wasm(lang: str) -> Path:
    return teamwork(lang)


@pytest.fixture
def host() -> Any:
    with PluginHost() as host:
        yield host


def add(host: PluginHost, wasm: Path, name: str, *grants: str, **options: Any) -> wasmdeck.Plugin:
    kinds = {g.split(":")[0] for g in grants}
    linked = [*grants, *(g for kind, g in LINK.items() if kind not in kinds)]
    plugin = wasmdeck.Plugin(wasm, grants=linked, runtime=runtime(), **options)
    return host.add(plugin, name=name)


def answer(plugin: wasmdeck.Plugin, action: str, params: dict[str, Any]) -> Any:
    return json.loads(plugin.call(action, params))


def seen(plugin: wasmdeck.Plugin) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(plugin.call("seen"))
    return events


# -- the bus ---------------------------------------------------------------------


def test_events_fan_out_to_every_subscriber_in_order(host: PluginHost, wasm: Path) -> None:
    publisher = add(host, wasm, "pub", "events:publish:obs.*")
    subscribers = [add(host, wasm, f"sub{i}", "events:subscribe:obs.*") for i in range(3)]
    for i in range(40):
        assert answer(publisher, "publish", {"topic": f"obs.n{i % 3}", "payload": {"i": i}}) == {
            "delivered": 3
        }
    assert host.bus.settle()
    for subscriber in subscribers:
        events = seen(subscriber)
        assert [e["payload"]["i"] for e in events] == list(range(40))
        assert {e["source"] for e in events} == {"pub"}
        assert events[5]["topic"] == "obs.n2"
    assert host.bus.stats()["subscribers"]["sub0:react"]["delivered"] == 40


def test_publishing_needs_a_grant_for_the_topic(host: PluginHost, wasm: Path) -> None:
    publisher = add(host, wasm, "pub", "events:publish:obs.*", "events:publish:deck.*")
    wide = add(host, wasm, "wide", "events:publish:*")
    outside = answer(publisher, "publish", {"topic": "midi.note", "payload": 1})
    assert outside["error"]["kind"] == "denied"
    assert "events:publish:PATTERN" in outside["error"]["message"]
    assert "obs.*, deck.*" in outside["error"]["message"]
    # The host's own topics cannot be spoofed, whatever the grant.
    spoof = answer(wide, "publish", {"topic": "wasmdeck.plugin.failed", "payload": {}})
    assert spoof["error"]["kind"] == "denied"
    bad = answer(wide, "publish", {"topic": "no spaces", "payload": {}})
    assert bad["error"]["kind"] == "invalid_request"
    large = answer(wide, "publish", {"topic": "big", "payload": "x" * 70_000})
    assert large["error"]["kind"] == "too_large"
    assert answer(publisher, "publish", {"topic": "deck.ok", "payload": None}) == {"delivered": 0}


def test_a_subscription_gets_only_the_topics_its_grant_names(
    host: PluginHost, wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = add(host, wasm, "pub", "events:publish:*")
    narrow = add(host, wasm, "narrow", "events:subscribe:obs.scene.*")
    with caplog.at_level(logging.WARNING, "wasmdeck.host"):
        deaf = add(host, wasm, "deaf", "events:publish:x")
    assert "not subscribed to *: it needs a grant events:subscribe:*" in caplog.text
    for topic in ("obs.scene.live", "obs.stream", "obs.scene.intro", "midi"):
        publisher.call("publish", {"topic": topic, "payload": topic})
    assert host.bus.settle()
    assert [e["topic"] for e in seen(narrow)] == ["obs.scene.live", "obs.scene.intro"]
    assert seen(deaf) == []


def test_a_plugin_that_imports_the_bus_without_a_grant_does_not_load(wasm: Path) -> None:
    with pytest.raises(ImportNotAllowed, match="needs the 'events' capability"):
        wasmdeck.Plugin(wasm, grants=["plugins:x", "state:x"], runtime=runtime())


def test_a_loop_of_events_ends_at_the_hop_limit_with_an_error(host: PluginHost, wasm: Path) -> None:
    a = add(
        host,
        wasm,
        "a",
        "events:subscribe:ping",
        "events:publish:pong",
        config={"bounce_to": "pong"},
    )
    b = add(
        host,
        wasm,
        "b",
        "events:subscribe:pong",
        "events:publish:ping",
        config={"bounce_to": "ping"},
    )
    problems: list[dict[str, Any]] = []
    host.bus.on_problem.append(problems.append)
    host.bus.publish("ping", {"n": 1}, source="test")
    assert host.bus.settle()
    # Hops 0..8 are delivered (a gets ping at 0, 2, ..., 8; b pong at 1, ..., 7); hop 9 is refused.
    assert len(seen(a)) == 5 and len(seen(b)) == 4
    assert len(problems) == 1 and host.bus.refused == 1
    message = problems[0]["error"]
    assert "event 'pong' from 'a' refused: it would be hop 9, past the limit of 8" in message
    assert "ping (test) -> pong (a) -> ping (b)" in message


def test_a_slow_subscriber_drops_what_its_queue_cannot_hold(
    wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with PluginHost(bus=EventBus(queue_size=4)) as host:
        publisher = add(host, wasm, "pub", "events:publish:obs.*")
        slow = add(
            host, wasm, "slow", "events:subscribe:obs.*", limits=Limits(timeout=1, fuel=10**12)
        )
        spun: list[BaseException] = []

        def spin() -> None:
            try:
                slow.call("spin")
            except TimeLimitExceeded as exc:
                spun.append(exc)

        busy = threading.Thread(target=spin)
        busy.start()  # holds the subscriber while events arrive
        while not slow._lock.locked():
            time.sleep(0.001)
        with caplog.at_level(logging.WARNING, "wasmdeck.bus"):
            for i in range(10):
                publisher.call("publish", {"topic": "obs.x", "payload": i})
        busy.join()
        assert len(spun) == 1
        assert host.bus.settle()
        stats = host.bus.stats()["subscribers"]["slow:react"]
        # One event in the blocked handler at most, four queued, the rest dropped.
        assert 5 <= stats["dropped"] <= 6
        assert stats["delivered"] + stats["dropped"] == 10
        got = [e["payload"] for e in seen(slow)]
        assert got == sorted(got) and got[0] == 0 and len(got) == stats["delivered"]
        assert "subscriber slow:react: queue full (4 events); dropped obs.x" in caplog.text


def test_the_host_publishes_plugins_coming_and_going(host: PluginHost, wasm: Path) -> None:
    watcher = add(host, wasm, "watcher", "events:subscribe:wasmdeck.plugin.*")
    add(host, wasm, "other")
    host.remove("other").close()
    assert host.bus.settle()
    assert [(e["topic"], e["payload"]["plugin"], e["source"]) for e in seen(watcher)] == [
        ("wasmdeck.plugin.loaded", "watcher", "wasmdeck"),  # subscribed as it was added
        ("wasmdeck.plugin.loaded", "other", "wasmdeck"),
        ("wasmdeck.plugin.removed", "other", "wasmdeck"),
    ]


# -- plugin-to-plugin calls ---------------------------------------------------------


def call(plugin: str, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"plugin": plugin, "action": action, "params": params or {}}


def test_a_chain_of_calls_returns_the_last_callees_output(host: PluginHost, wasm: Path) -> None:
    a = add(host, wasm, "a", "plugins:b")
    add(host, wasm, "b", "plugins:c:echo")
    add(host, wasm, "c")
    got = answer(a, "call", call("b", "call", call("c", "echo", {"x": 1})))
    assert json.loads(json.loads(got["output"])["output"]) == {"x": 1}
    # b may call only c's echo: its grant names the action.
    refused = json.loads(answer(a, "call", call("b", "call", call("c", "seen")))["output"])
    assert refused["error"]["kind"] == "denied"
    assert answer(a, "call", call("nobody", "echo"))["error"]["kind"] == "denied"


def test_calling_an_unknown_plugin_or_action_says_so(host: PluginHost, wasm: Path) -> None:
    a = add(host, wasm, "a", "plugins:*")
    missing = answer(a, "call", call("ghost", "echo"))
    assert missing["error"]["kind"] == "not_found" and "'ghost'" in missing["error"]["message"]
    add(host, wasm, "b")
    unknown = answer(a, "call", call("b", "dance"))
    assert unknown["error"]["kind"] == "not_found" and "dance" in unknown["error"]["message"]


def test_a_plugin_calling_itself_gets_a_cycle_error(host: PluginHost, wasm: Path) -> None:
    a = add(host, wasm, "a", "plugins:*")
    add(host, wasm, "b", "plugins:*")
    direct = answer(a, "call", call("a", "echo"))
    assert direct["error"] == {
        "kind": "cycle",
        "message": "a -> a: a plugin cannot call itself, directly or around a cycle",
    }
    around = json.loads(answer(a, "call", call("b", "call", call("a", "echo")))["output"])
    assert around["error"]["kind"] == "cycle"
    assert around["error"]["message"].startswith("a -> b -> a:")
    assert answer(a, "echo", {"after": True}) == {"after": True}  # nothing stays locked


def test_a_chain_deeper_than_the_limit_gets_a_depth_error(host: PluginHost, wasm: Path) -> None:
    names = [f"p{i}" for i in range(10)]
    plugins = [add(host, wasm, name, "plugins:*") for name in names]
    request: dict[str, Any] = call(names[-1], "echo", {"deep": True})
    for name in reversed(names[1:-1]):
        request = call(name, "call", request)
    text = plugins[0].call("call", request)
    while b'"output"' in text:  # unwrap the answers, outermost first
        text = json.loads(text)["output"].encode()
    error = json.loads(text)["error"]
    assert error["kind"] == "depth"
    assert error["message"] == (
        "p0 -> p1 -> p2 -> p3 -> p4 -> p5 -> p6 -> p7 -> p8: a chain of calls may be 8 plugins deep"
    )


def test_the_callers_deadline_bounds_the_whole_chain(host: PluginHost, wasm: Path) -> None:
    a = add(host, wasm, "a", "plugins:b", limits=Limits(timeout=0.5))
    b = add(host, wasm, "b", "plugins:c", limits=SPIN)
    add(host, wasm, "c", limits=SPIN)
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match="while calling plugin 'b' action 'call'"):
        a.call("call", call("b", "call", call("c", "spin")))
    assert time.monotonic() - started < 3  # not c's (or b's) 30 s
    assert answer(b, "echo", {"again": 1}) == {"again": 1}
    assert answer(a, "echo", {"again": 2}) == {"again": 2}


def test_a_callee_runs_on_its_own_fuel_which_the_host_can_count(
    host: PluginHost, wasm: Path
) -> None:
    a = add(host, wasm, "a", "plugins:b", limits=SPIN)
    b = add(host, wasm, "b", limits=Limits(fuel=10**8, timeout=30))
    b.measure_fuel = True
    seen_calls: list[tuple[Any, ...]] = []
    host.calls.observe = lambda *call: seen_calls.append(call)
    # b spins on its own 10^8 fuel, not a's 10^13, and not for a's 30 s.
    started = time.monotonic()
    spun = answer(a, "call", call("b", "spin"))
    assert time.monotonic() - started < 10
    assert spun["error"]["kind"] == "limit" and "ran out of fuel" in spun["error"]["message"]
    [(caller, callee, action, seconds, error, fuel)] = seen_calls
    assert (caller, callee, action, fuel) == ("a", "b", "spin", 10**8)
    assert isinstance(error, wasmdeck.FuelLimitExceeded) and seconds > 0
    # The next call has a full tank again, and what it used is counted.
    assert json.loads(answer(a, "call", call("b", "echo", {"x": 1}))["output"]) == {"x": 1}
    assert seen_calls[-1][4] is None and 0 < seen_calls[-1][5] < 10**8


def test_a_callee_runs_with_its_own_grants_not_the_callers(host: PluginHost, wasm: Path) -> None:
    a = add(host, wasm, "a", "plugins:b", "state:secret")
    add(host, wasm, "b", "events:publish:x")
    assert answer(a, "state-set", {"namespace": "secret", "key": "k", "value": "v"})["ok"]
    lent = json.loads(
        answer(a, "call", call("b", "state-get", {"namespace": "secret", "key": "k"}))["output"]
    )
    assert lent["error"]["kind"] == "denied"


def test_plugins_calling_each_other_from_two_threads_never_deadlock(
    host: PluginHost, wasm: Path
) -> None:
    a = add(host, wasm, "a", "plugins:b")
    b = add(host, wasm, "b", "plugins:a")
    outcomes: list[str] = []

    def run(plugin: wasmdeck.Plugin, other: str, start: threading.Barrier) -> None:
        start.wait()
        try:
            got = answer(plugin, "call", call(other, "echo", {"from": plugin.name}))
        except wasmdeck.WasmdeckError as exc:  # e.g. TimeLimitExceeded: a deadlock waited out
            outcomes.append(type(exc).__name__)
            return
        outcomes.append(got["error"]["kind"] if "error" in got else "ok")

    started = time.monotonic()
    for _ in range(30):
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=run, args=(a, "b", start)),
            threading.Thread(target=run, args=(b, "a", start)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert set(outcomes) <= {"ok", "cycle"}, outcomes
    assert time.monotonic() - started < 20  # no call waited for its time limit


# -- shared state ---------------------------------------------------------------------


def test_shared_state_is_versioned_and_compare_and_swap_refuses_stale_writes(
    host: PluginHost, wasm: Path
) -> None:
    a = add(host, wasm, "a", "state:show")
    reader = add(host, wasm, "reader", "state:show:ro")
    assert answer(a, "state-get", {"namespace": "show", "key": "scene"}) == {
        "value": None,
        "version": 0,
    }
    first = answer(a, "state-set", {"namespace": "show", "key": "scene", "value": "intro"})
    assert first["ok"] is True
    got = answer(reader, "state-get", {"namespace": "show", "key": "scene"})
    assert got == {"value": "intro", "version": first["version"]}
    stale = answer(
        a, "state-set", {"namespace": "show", "key": "scene", "value": "x", "version": 0}
    )
    assert stale["ok"] is False and stale["version"] == first["version"]
    swapped = answer(
        a,
        "state-set",
        {"namespace": "show", "key": "scene", "value": "live", "version": first["version"]},
    )
    assert swapped["ok"] is True and swapped["version"] > first["version"]
    assert answer(reader, "state-list", {"namespace": "show", "prefix": ""})["keys"] == ["scene"]
    for refused in (
        answer(reader, "state-set", {"namespace": "show", "key": "k", "value": "v"}),
        answer(reader, "state-delete", {"namespace": "show", "key": "scene"}),
        answer(a, "state-get", {"namespace": "other", "key": "k"}),
    ):
        assert refused["error"]["kind"] == "denied"
    assert answer(a, "state-delete", {"namespace": "show", "key": "scene"})["deleted"] is True
    again = answer(a, "state-get", {"namespace": "show", "key": "scene"})
    assert again == {"value": None, "version": 0}


def test_compare_and_swap_from_two_instances_on_two_threads_loses_no_update(
    host: PluginHost, wasm: Path
) -> None:
    one = add(host, wasm, "one", "state:count")
    two = add(host, wasm, "two", "state:count")
    results: list[dict[str, Any]] = []

    def run(plugin: wasmdeck.Plugin, start: threading.Barrier) -> None:
        start.wait()
        results.append(answer(plugin, "add", {"namespace": "count", "key": "n", "times": 150}))

    start = threading.Barrier(2)
    threads = [threading.Thread(target=run, args=(p, start)) for p in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answer(one, "state-get", {"namespace": "count", "key": "n"})["value"] == "300"
    assert max(r["value"] for r in results) == 300


def test_shared_state_survives_the_host_and_reaches_other_languages(tmp_path: Path) -> None:
    c, python = teamwork("c"), teamwork("python")
    with PluginHost() as first:
        add(first, c, "writer", "state:show").call(
            "state-set", {"namespace": "show", "key": "scene", "value": "live"}
        )
    with PluginHost() as second:
        reader = add(second, python, "reader", "state:show:ro")
        assert answer(reader, "state-get", {"namespace": "show", "key": "scene"})["value"] == "live"


def test_changes_to_shared_state_arrive_as_events(host: PluginHost, wasm: Path) -> None:
    writer = add(host, wasm, "writer", "state:show")
    watcher = add(host, wasm, "watcher", "events:subscribe:wasmdeck.state.show")
    set_ = answer(writer, "state-set", {"namespace": "show", "key": "scene", "value": "live"})
    writer.call("state-delete", {"namespace": "show", "key": "scene"})
    assert host.bus.settle()
    assert [e["payload"] for e in seen(watcher)] == [
        {"namespace": "show", "key": "scene", "version": set_["version"], "by": "writer"},
        {"namespace": "show", "key": "scene", "version": 0, "by": "writer", "deleted": True},
    ]


# -- through the daemon (``wasmdeck serve``) -------------------------------------------

DECK = """\
version = 1

[plugins.a]
path = "a.wasm"
grants = ["events:publish:obs.*", "events:publish:ping", "plugins:b:echo", "state:link-unused"]

[plugins.b]
path = "b.wasm"
grants = ["events:subscribe:wasmdeck.mode.*", "events:publish:link.unused",
          "plugins:link-unused", "state:link-unused"]

[modes.live]
[modes.edit]

[[bindings]]
name = "start"
trigger = { kind = "startup" }
actions = [
    { plugin = "a", action = "publish", params = { topic = "obs.scene", payload = { scene = "Live" } } },
    { plugin = "a", action = "publish", params = { topic = "ping", payload = 1 } },
]

[[bindings]]
name = "follow"
trigger = { kind = "event", topic = "obs.*" }
actions = [
    { plugin = "b", action = "echo", params = { scene = "{payload.scene}", from = "{source}", topic = "{topic}" } },
    { mode = "edit" },
]

[[bindings]]
name = "ping"
trigger = { kind = "event", topic = "ping" }
actions = [{ plugin = "a", action = "publish", params = { topic = "ping", payload = 1 } }]

[[bindings]]
name = "nobody"
trigger = { kind = "event", topic = "midi.*" }
actions = [{ plugin = "b", action = "echo" }]
"""


async def test_the_deck_binds_plugin_events_and_stops_their_loops(tmp_path: Path) -> None:
    from wasmdeck.daemon import Daemon
    from wasmdeck.deck import check_deck, read_deck

    (tmp_path / "a.wasm").write_bytes(teamwork("c").read_bytes())
    (tmp_path / "b.wasm").write_bytes(teamwork("python").read_bytes())
    deck = tmp_path / "deck.toml"
    deck.write_text(DECK)
    [warning] = check_deck(read_deck(deck))
    assert "binding 'nobody': no plugin of the deck is granted events:publish for topics " in str(
        warning
    )
    daemon = Daemon(deck, midi=False, control=False)
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(ready=ready.set))
    await asyncio.wait_for(ready.wait(), 30)

    def records(binding: str) -> list[dict[str, Any]]:
        return [r for r in daemon.events if r.get("binding") == binding]

    try:
        async with asyncio.timeout(20):
            # Both of follow's actions (the mode change last), and the loop's refusal.
            while not (len(records("follow")) == 2 and any("error" in r for r in daemon.events)):
                await asyncio.sleep(0.01)
            await asyncio.to_thread(daemon.host.bus.settle)
        [followed] = [r for r in records("follow") if r["action"] == "plugin"]
        assert json.loads(followed["result"]) == {
            "scene": "Live",
            "from": "a",
            "topic": "obs.scene",
        }
        assert daemon.engine.mode == "edit"
        # b heard of the mode change (its metadata subscribes, its grant narrows to wasmdeck.mode.*).
        b = daemon.host.get("b")
        assert [e["payload"] for e in seen(b)] == [{"mode": "edit"}]
        [loop] = [r for r in daemon.events if r.get("trigger") == "event" and "error" in r]
        assert "event 'ping' from 'a' refused: it would be hop 9" in loop["error"]
        # The events of hops 0..8 each ran the binding; the publish of the ninth run was refused.
        pings = records("ping")
        assert len(pings) == 9
        assert json.loads(pings[-1]["result"])["error"]["kind"] == "loop"
        assert daemon.status()["bus"]["refused"] == 1
        metrics = daemon.metrics.prometheus().decode()
        assert "wasmdeck_bus_refused_total 1.0" in metrics
        assert 'wasmdeck_bus_delivered_total{subscriber="deck"}' in metrics
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 60)


POOL_DECK = """\
version = 1

[plugins.counter]
path = "counter.wasm"
grants = ["state:count", "events:publish:link.unused", "plugins:link-unused"]
pool = 2

[plugins.caller]
path = "caller.wasm"
grants = ["plugins:counter:state-get", "events:publish:link.unused", "state:link-unused"]

[[bindings]]
name = "bump"
trigger = { kind = "osc", address = "/bump" }
actions = [{ plugin = "counter", action = "add", params = { namespace = "count", key = "n", times = 25 } }]

[[bindings]]
name = "read"
trigger = { kind = "osc", address = "/read" }
[[bindings.actions]]
plugin = "caller"
action = "call"
params = { plugin = "counter", action = "state-get", params = { namespace = "count", key = "n" } }
"""


@pytest.mark.parametrize("language", ["c", "python"])
async def test_a_deck_plugin_with_a_pool_loses_no_update_to_compare_and_swap_races(
    tmp_path: Path, language: str
) -> None:
    from wasmdeck.daemon import Daemon

    (tmp_path / "counter.wasm").write_bytes(teamwork(language).read_bytes())
    (tmp_path / "caller.wasm").write_bytes(teamwork("c").read_bytes())
    deck = tmp_path / "deck.toml"
    deck.write_text(POOL_DECK)
    daemon = Daemon(deck, midi=False, control=False)
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(ready=ready.set))
    await asyncio.wait_for(ready.wait(), 60)
    try:
        for _ in range(20):  # queued at once: the pool's two instances take them two by two
            daemon.fire("bump")
        async with asyncio.timeout(60):
            while len([r for r in daemon.events if r["binding"] == "bump"]) < 20:
                await asyncio.sleep(0.01)
        bumps = [r for r in daemon.events if r["binding"] == "bump"]
        assert all("error" not in r for r in bumps), bumps
        assert max(json.loads(r["result"])["value"] for r in bumps) == 500
        pooled = daemon.host.get("counter")
        assert pooled._pool is not None and len(pooled._pool.members) == 2
        # Read through another plugin: the call counts as the counter's, fuel and all.
        daemon.fire("read")
        async with asyncio.timeout(30):
            while not any(r["binding"] == "read" for r in daemon.events):
                await asyncio.sleep(0.01)
        [read] = [r for r in daemon.events if r["binding"] == "read"]
        assert json.loads(json.loads(read["result"])["output"])["value"] == "500"
        status = daemon.status()["plugins"]["counter"]
        assert status["calls"] == 21 and status["errors"] == {}
        nested = daemon.metrics.binding_calls["(plugin call)"]
        assert nested.calls == 1 and nested.errors == {}
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 60)


def test_two_first_connections_to_a_new_store_at_once_both_work(tmp_path: Path) -> None:
    # Two plugins' first calls on a fresh home: one used to fail at once with
    # "database is locked" while the other set the file up (runtime/_kv.py).
    from wasmdeck.runtime._kv import SharedState

    failures: list[BaseException] = []
    for trial in range(60):
        path = tmp_path / f"kv{trial}.sqlite3"
        start = threading.Barrier(2)

        def first_call(start: threading.Barrier = start, path: Path = path) -> None:
            store = SharedState(quota=1 << 20, path=path)
            start.wait()
            try:
                store.read("ns", "k", deadline=time.monotonic() + 5)
            except Exception as exc:
                failures.append(exc)
            finally:
                store.close()

        threads = [threading.Thread(target=first_call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


# -- instance pools -------------------------------------------------------------------


def test_a_pooled_plugin_runs_a_second_call_while_the_first_is_busy(
    host: PluginHost, wasm: Path
) -> None:
    pooled = add(host, wasm, "pooled", "state:count", limits=Limits(pool=2, timeout=5, fuel=10**13))
    spun: list[BaseException] = []

    def spin() -> None:
        try:
            pooled.call("spin")
        except TimeLimitExceeded as exc:
            spun.append(exc)

    busy = threading.Thread(target=spin)
    busy.start()
    while pooled._pool is None or pooled._pool.busy < 1:  # the spin has its instance
        time.sleep(0.001)
    assert answer(pooled, "echo", {"while": "busy"}) == {"while": "busy"}
    assert busy.is_alive()  # the echo did not wait for the spin's 5 s
    busy.join()
    assert len(spun) == 1 and len(pooled._pool.members) == 2


def test_compare_and_swap_from_two_pool_instances_loses_no_update(
    host: PluginHost, wasm: Path
) -> None:
    pooled = add(host, wasm, "pooled", "state:count", limits=Limits(pool=2))
    start = threading.Barrier(2)
    results: list[dict[str, Any]] = []

    def run() -> None:
        start.wait()
        results.append(answer(pooled, "add", {"namespace": "count", "key": "n", "times": 100}))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answer(pooled, "state-get", {"namespace": "count", "key": "n"})["value"] == "200"
    assert pooled._pool is not None and len(pooled._pool.members) == 2


def test_a_pool_size_outside_1_to_64_is_refused() -> None:
    with pytest.raises(ValueError, match="limit pool must be an integer 1-64, not 0"):
        Limits(pool=0)
