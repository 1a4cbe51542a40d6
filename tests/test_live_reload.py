"""Live reload that keeps state (docs/reload.md), through the daemon and ``wasmdeck serve``.

The counter plugins (``tests/plugins/<lang>/counter``, built from source
once per run) share one contract:

==========  ===========  ====================================================
action      params       does, and outputs
==========  ===========  ====================================================
count       seq          marks event ``seq`` seen in a bitmap; a second
                         sighting counts as a duplicate; ``{"count"}``
report      (none)       ``{"count", "duplicates", "missing" (unseen below the
                         highest seen), "generation" (restores), "version"}``
poison      how          the next reload fails: ``trap``, ``refuse``, ``spin``
                         in its restore, or ``big``: its save is over max_state
cure        (none)       clears the poison
==========  ===========  ====================================================

Their state is all of that, so a count that survives reloads while events
flow shows none was lost, none handled twice, and the state moved each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime
from pdkbuild import PLUGINS, build_cached, hostcalls_wasm, runtime
from watgen import abi_module

from wasmdeck import (
    ABIViolation,
    Limits,
    MissingExport,
    Plugin,
    ReloadFailed,
    StateLimitExceeded,
    WasmdeckError,
)
from wasmdeck.daemon import Daemon

LANGUAGES = ["c", "python", "zig"]  # the flow test, through the daemon
KITS = ["c", "rust", "zig", "go", "assemblyscript", "python"]

DECK = """\
version = 1

[listen]
webhooks = "127.0.0.1:0"
webhook_rate_per_minute = 1000000

[plugins.counter]
path = "counter.wasm"
{extra}
[[bindings]]
name = "count"
trigger = {{ kind = "webhook", path = "/count", auth = {{ bearer = {{ env = "HOOK_TOKEN" }} }} }}
actions = [{{ plugin = "counter", action = "count", params = {{ seq = "{{body.seq}}" }} }}]

[[bindings]]
name = "report"
trigger = {{ kind = "webhook", path = "/report", auth = {{ bearer = {{ env = "HOOK_TOKEN" }} }} }}
actions = [{{ plugin = "counter", action = "report" }}]
"""


def counter(lang: str) -> Path:
    return build_cached(PLUGINS / lang / "counter")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOOK_TOKEN", "t0ken")
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def install(source: Path, target: Path) -> None:
    """Put a new version of the plugin file in place at once (as a build does)."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.copy(source, partial)
    os.replace(partial, target)


@contextlib.asynccontextmanager
async def serving(deck: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(deck, midi=False)
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(ready=ready.set))
    await asyncio.wait_for(ready.wait(), 60)
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 60)


async def until(condition: Callable[[], Any], timeout: float = 60) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := condition()):
            await asyncio.sleep(0.01)
    return value


def report(daemon: Daemon) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(daemon.host.get("counter").call("report"))
    return result


def reloads(daemon: Daemon) -> dict[str, Any]:
    record: dict[str, Any] = daemon.status()["plugins"]["counter"]["reloads"]
    return record


class Sender:
    """Webhooks to ``url``/count (``seq`` 0, 1, ...) at about 1,000/s from a thread,
    until ``stop()``; ``accepted`` lists the seqs answered 202."""

    def __init__(self, url: str) -> None:
        self.accepted: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, args=(url,))
        self._thread.start()

    def _send(self, url: str) -> None:
        # Paced to about 1,000/s; every answer is counted, none is timed.
        hook = {"Authorization": "Bearer t0ken"}
        with httpx.Client(base_url=url, timeout=30, headers=hook) as client:
            seq = 0
            while not self._stop.wait(0.001 if seq % 2 else 0):
                answer = client.post("/count", json={"seq": seq})
                assert answer.status_code == 202, answer.text
                self.accepted.append(seq)
                seq += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.asynccontextmanager
async def flowing(daemon: Daemon) -> AsyncIterator[list[int]]:
    """A ``Sender`` to the daemon's webhooks while inside; yields its ``accepted``."""
    sender = Sender(f"http://127.0.0.1:{daemon.webhooks.port}")
    try:
        yield sender.accepted
    finally:
        await asyncio.to_thread(sender.stop)  # its last request needs the loop


async def more(accepted: list[int], count: int = 200) -> None:
    """Until ``count`` more events were accepted."""
    before = len(accepted)
    await until(lambda: len(accepted) >= before + count)


def api(daemon: Daemon) -> httpx.AsyncClient:
    """A client of the daemon's control API, with its token."""
    headers = {"Authorization": f"Bearer {daemon.control.token}"}
    return httpx.AsyncClient(headers=headers, timeout=60)


@pytest.fixture
def deck(tmp_path: Path) -> Callable[..., Path]:
    def write(wasm: Path, extra: str = "") -> Path:
        shutil.copy(wasm, tmp_path / "counter.wasm")
        path = tmp_path / "deck.toml"
        path.write_text(DECK.format(extra=extra))
        return path

    return write


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_reload_while_events_flow_loses_none_and_keeps_the_count(
    lang: str, deck: Callable[..., Path], tmp_path: Path
) -> None:
    """About 1,000 webhooks/s while the plugin is reloaded four times, twice by the
    control API and twice by its file changing: every accepted event is counted
    once, and the count (with its bitmap) moved to each new version."""
    wasm = counter(lang)
    async with serving(deck(wasm)) as daemon:
        control = f"http://127.0.0.1:{daemon.control.port}/v1/reload/counter"
        async with flowing(daemon) as accepted, api(daemon) as client:
            for step in range(4):
                await more(accepted)
                if step % 2 == 0:
                    answer = await client.post(control)
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["ok"]
                else:
                    install(wasm, tmp_path / "counter.wasm")
                    await until(lambda step=step: reloads(daemon)["count"] == step + 1)
                assert reloads(daemon)["count"] == step + 1
        await until(lambda: daemon.status()["plugins"]["counter"]["pending"] == 0)
        counted = report(daemon)
        status = daemon.status()["plugins"]["counter"]
    assert len(accepted) > 800
    assert counted["count"] == len(accepted), (counted, len(accepted))
    assert counted["duplicates"] == 0 and counted["missing"] == 0
    assert counted["generation"] == 4  # restored four times: the state moved each time
    assert status["calls"] == len(accepted) and status["errors"] == {}
    assert status["reloads"]["error"] is None


@pytest.mark.parametrize("lang", KITS)
def test_every_kit_hands_its_state_over_and_refuses_alike(lang: str) -> None:
    """Each kit's save/restore pair, through ``Plugin.hand_over``: the state
    moves; a restore that traps, refuses or runs out of fuel, and a save over
    max_state, fail the hand-over and leave the old version counting on."""
    wasm = counter(lang)
    old = Plugin(wasm, runtime=runtime())
    assert old.keeps_state
    for seq in [0, 1, 2, 2, 7]:
        old.call("count", {"seq": seq})
    new = Plugin(wasm, runtime=runtime())
    moved = old.hand_over(new)
    assert moved > 65536 // 8
    assert json.loads(old.call("report")) == json.loads(new.call("report"))  # forwarded
    assert json.loads(new.call("report")) == {
        "count": 4,
        "duplicates": 1,
        "missing": 4,
        "generation": 1,
        "version": "1.0.0",
    }
    for seq, (how, stage, word) in enumerate(
        [
            ("trap", "restore", "restore"),
            ("refuse", "restore", "poisoned state refused"),
            ("spin", "restore", "fuel"),
            ("big", "save", "max_state"),
        ],
        start=10,
    ):
        new.call("poison", {"how": how})
        candidate = Plugin(wasm, runtime=runtime(), limits=Limits(fuel=10**8, timeout=5))
        with pytest.raises(ReloadFailed) as failed:
            new.hand_over(candidate)
        assert failed.value.stage == stage and word in str(failed.value), str(failed.value)
        assert isinstance(failed.value.__cause__, WasmdeckError)
        if how == "big":
            assert isinstance(failed.value.__cause__, StateLimitExceeded)
        candidate.close()
        new.call("cure")
        new.call("count", {"seq": seq})
    # Nothing lost on the way; but a component whose save-state is over the
    # limit loses its instance (wasmtime cannot enter it again: docs/reload.md).
    assert json.loads(new.call("report"))["count"] == (8 if lang != "python" else 1)


def hostile_module() -> bytes:
    """A valid core module without the ABI's exports."""
    return wasmtime.wat2wasm('(module (memory (export "memory") 1))')


FAILURES: list[tuple[str, str, str]] = [
    # (how the new version fails, the stage, a word of the message)
    ("truncated", "load", "InvalidModule"),
    ("no-exports", "load", "MissingExport"),
    ("needs-a-grant", "load", "ImportNotAllowed"),
    ("lacks-an-action", "check", "'count'"),
    ("trap", "restore", "trapped in restore_state"),
    ("refuse", "restore", "poisoned state refused"),
    ("spin", "restore", "fuel"),
    ("big", "save", "max_state"),
]


@pytest.mark.parametrize(("how", "stage", "word"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_a_failed_reload_keeps_the_old_version_and_says_why(
    how: str, stage: str, word: str, deck: Callable[..., Path], tmp_path: Path
) -> None:
    wasm = counter("c")
    async with serving(deck(wasm, "timeout_ms = 2000\n")) as daemon:
        seen: list[dict[str, Any]] = []
        daemon.host.bus.subscribe("wasmdeck.plugin.*", lambda e: seen.append(e.params()), name="t")
        plugin = daemon.host.get("counter")
        for seq in range(5):
            plugin.call("count", {"seq": seq})
        target = tmp_path / "counter.wasm"
        if how == "truncated":
            target.write_bytes(wasm.read_bytes()[:1000])
        elif how == "no-exports":
            target.write_bytes(hostile_module())
        elif how == "lacks-an-action":  # a valid plugin the deck's bindings do not fit
            other = {"name": "c-counter", "version": "2.0.0", "description": "other actions"}
            other["actions"] = [{"name": "other", "description": "not count"}]
            target.write_bytes(abi_module(metadata=other))
        elif how == "needs-a-grant":
            install(hostcalls_wasm("c"), target)  # imports kv, network, process: none granted
        else:
            plugin.call("poison", {"how": how})
        ok, message = await daemon.reload_plugin("counter")
        assert not ok
        assert f"the reload failed ({stage})" in message and word in message, message
        assert "the running version stays" in message
        assert daemon.host.get("counter") is plugin  # the old version runs on
        plugin.call("cure")
        plugin.call("count", {"seq": 5})
        counted = report(daemon)
        assert counted["count"] == 6 and counted["generation"] == 0  # its state intact
        assert reloads(daemon) == {"count": 0, "error": message}
        await asyncio.to_thread(daemon.host.bus.settle)
        [failed] = [e for e in seen if e["topic"] == "wasmdeck.plugin.reload-failed"]
        assert failed["payload"]["plugin"] == "counter"
        assert failed["payload"]["stage"] == stage
        # Mended, the next reload goes through, with the state.
        install(wasm, target)
        ok, message = await daemon.reload_plugin("counter")
        assert ok, message
        assert report(daemon)["count"] == 6 and report(daemon)["generation"] == 1


async def test_a_plugin_the_deck_lacks_is_a_404(deck: Callable[..., Path]) -> None:
    async with serving(deck(counter("c"))) as daemon, httpx.AsyncClient() as api:
        answer = await api.post(
            f"http://127.0.0.1:{daemon.control.port}/v1/reload/nobody",
            headers={"Authorization": f"Bearer {daemon.control.token}"},
        )
    assert answer.status_code == 404
    assert "no plugin named 'nobody'" in answer.json()["error"]


# -- a deck reload carries the state (docs/reload.md) -----------------------------------

REPORT2 = """
[[bindings]]
name = "report2"
trigger = { kind = "webhook", path = "/report2", auth = { bearer = { env = "HOOK_TOKEN" } } }
actions = [{ plugin = "counter", action = "report" }]
"""


def edit(path: Path, text: str) -> None:
    """Save the deck as an editor does: a new file put in place at once."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


@pytest.mark.parametrize("lang", ["c", "python"])
async def test_deck_reloads_while_events_flow_carry_the_state(
    lang: str, deck: Callable[..., Path], tmp_path: Path
) -> None:
    """About 1,000 webhooks/s while the deck file is edited four times, by saving
    it (the watcher) and by ``Daemon.reload`` in turn: a binding added keeps the
    plugin's instance; a new timeout, new grants, and a new module file each
    hand the state to the new version. Every accepted event is counted once."""
    wasm = counter(lang)
    path = deck(wasm)
    shutil.copy(wasm, tmp_path / "counter-2.wasm")
    steps = [
        # (the [plugins.counter] table's extra lines, the module, the instance kept)
        ("", "counter.wasm", True),
        ("timeout_ms = 4000\n", "counter.wasm", False),
        ('timeout_ms = 4000\ngrants = ["events:subscribe:count.*"]\n', "counter.wasm", False),
        ('timeout_ms = 4000\ngrants = ["events:subscribe:count.*"]\n', "counter-2.wasm", False),
    ]
    async with serving(path) as daemon:
        async with flowing(daemon) as accepted:
            for step, (extra, module, kept) in enumerate(steps):
                await more(accepted)
                running = daemon.host.get("counter")
                text = DECK.format(extra=extra).replace("counter.wasm", module) + REPORT2
                if step % 2 == 0:
                    edit(path, text)
                    await until(lambda step=step: daemon.reloads == step + 1)
                else:  # what POST /v1/reload calls; before the watcher wakes, so once
                    path.write_text(text)
                    ok, message = await daemon.reload()
                    assert ok and "; plugin counter 1.0.0 -> 1.0.0, " in message, message
                assert daemon.reloads == step + 1
                assert (daemon.host.get("counter") is running) == kept, step
                assert daemon.deck.binding("report2") is not None
                assert reloads(daemon)["count"] == step
        await until(lambda: daemon.status()["plugins"]["counter"]["pending"] == 0)
        counted = report(daemon)
        status = daemon.status()["plugins"]["counter"]
    assert len(accepted) > 800
    assert counted["count"] == len(accepted), (counted, len(accepted))
    assert counted["duplicates"] == 0 and counted["missing"] == 0
    assert counted["generation"] == 3  # restored three times: the state moved each time
    assert status["calls"] == len(accepted) and status["errors"] == {}
    assert status["reloads"]["error"] is None and status["reloads"]["state_bytes"] > 8192


THREE = """\
version = 1
{tables}
[[bindings]]
name = "tick"
trigger = {{ kind = "timer", interval_ms = 3600000 }}
actions = [{{ plugin = "a", action = "report" }}]
"""


def three(a: str = "", b: str = "", c: str = "", more: str = "") -> str:
    """Three deck plugins, all the C counter, with these extra lines each."""
    tables = "".join(
        f'[plugins.{name}]\npath = "counter.wasm"\n{extra}\n'
        for name, extra in (("a", a), ("b", b), ("c", c))
    )
    return THREE.format(tables=tables) + more


async def test_a_deck_reload_moves_all_or_nothing(tmp_path: Path) -> None:
    """One edit changes a's timeout (its state moves), leaves b alone (its instance
    stays) and c's config (it starts afresh: its state may come from the old one).
    A hand-over that fails refuses the whole edit: the deck, every instance and
    its state as they were, though another plugin's state was ready to move."""
    shutil.copy(counter("c"), tmp_path / "counter.wasm")
    path = tmp_path / "deck.toml"
    path.write_text(three())
    async with serving(path) as daemon:
        seen: list[dict[str, Any]] = []
        daemon.host.bus.subscribe("wasmdeck.plugin.*", lambda e: seen.append(e.params()), name="t")

        def count(name: str, *seqs: int) -> None:
            for seq in seqs:
                daemon.host.get(name).call("count", {"seq": seq})

        def counted(name: str) -> tuple[int, int]:
            found = json.loads(daemon.host.get(name).call("report"))
            return found["count"], found["generation"]

        for name in "abc":
            count(name, 0, 1, 2)
        before = {name: daemon.host.get(name) for name in "abc"}
        # (Each reload right after the write, before the watcher wakes: it finds
        # the file as this reload judged it, and does nothing.)
        path.write_text(three(a="timeout_ms = 3000", c='config = { colour = "red" }'))
        ok, message = await daemon.reload()
        assert ok, message
        assert "plugin a 1.0.0 -> 1.0.0" in message and "started afresh: c" in message
        assert daemon.host.get("b") is before["b"]
        assert daemon.host.get("a") is not before["a"] and daemon.host.get("c") is not before["c"]
        assert (counted("a"), counted("b"), counted("c")) == ((3, 1), (3, 0), (0, 0))
        assert daemon.status()["plugins"]["a"]["reloads"]["count"] == 1

        # a's new restore will refuse; c's state (the same edit) could move.
        count("c", 5)
        daemon.host.get("a").call("poison", {"how": "refuse"})
        running = {name: daemon.host.get(name) for name in "abc"}
        path.write_text(
            three(a="timeout_ms = 2000", c='config = { colour = "red" }\ntimeout_ms = 2000')
            + '[[bindings]]\nname = "new"\ntrigger = { kind = "startup" }\n'
            + 'actions = [{ plugin = "b", action = "report" }]\n'
        )
        ok, message = await daemon.reload()
        assert not ok
        assert "plugin a: the state did not move (restore)" in message, message
        assert "poisoned state refused" in message
        assert {name: daemon.host.get(name) for name in "abc"} == running  # none replaced
        assert daemon.deck.binding("new") is None and daemon.deck.plugins["a"].timeout_ms == 3000
        assert daemon.reloads == 1
        daemon.host.get("a").call("cure")
        assert (counted("a"), counted("b"), counted("c")) == ((3, 1), (3, 0), (1, 0))
        await asyncio.to_thread(daemon.host.bus.settle)
        failed = [e["payload"] for e in seen if e["topic"] == "wasmdeck.plugin.failed"]
        assert failed == [{"deck": str(path), "error": message}]

        # Mended, the same edit goes through: both states move.
        ok, message = await daemon.reload()
        assert ok, message
        assert daemon.deck.binding("new") is not None
        assert (counted("a"), counted("b"), counted("c")) == ((3, 2), (3, 0), (1, 1))


async def test_hand_overs_that_cannot_all_pause_in_time_commit_none() -> None:
    """The deck reload's core (daemon/_handover.py): one plugin stays busy in a call
    past the time allowed for pausing them all, so ``swap`` never runs and the
    other, whose state was ready to move, runs on as it was."""
    from wasmdeck import TimeLimitExceeded
    from wasmdeck.daemon._handover import hand_over_together

    wasm = counter("c")
    ready_old, ready_new = Plugin(wasm, runtime=runtime()), Plugin(wasm, runtime=runtime())
    ready_old.call("count", {"seq": 1})
    spinning = abi_module("(loop $again (br $again)) (i32.const 0)")
    busy_old = Plugin(spinning, limits=Limits(timeout=2, fuel=10**15))  # ended by its timeout
    busy_new = Plugin(spinning)
    call = asyncio.create_task(asyncio.to_thread(busy_old.call, "spin"))
    await until(busy_old._lock.locked)  # its call is in flight
    swapped: list[bool] = []
    pairs = {"ready": (ready_old, ready_new), "busy": (busy_old, busy_new)}
    with pytest.raises(ReloadFailed) as failed:
        await hand_over_together(pairs, lambda: swapped.append(True), timeout=0.2)
    assert failed.value.stage == "swap"
    assert "not every plugin could be paused for the hand-over within 0.2 s" in str(failed.value)
    assert "busy" in str(failed.value).rpartition(":")[2]
    assert swapped == []
    with pytest.raises(TimeLimitExceeded):
        await call
    assert json.loads(ready_old.call("report"))["generation"] == 0  # not handed over
    assert json.loads(ready_old.call("report"))["count"] == 1
    for plugin in (ready_old, ready_new, busy_old, busy_new):
        plugin.close()


# -- through ``wasmdeck serve`` ---------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wasmdeck", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class Serve:
    """``wasmdeck serve`` in a child process; its stderr read on a thread."""

    def __init__(self, deck: Path, env: dict[str, str], *flags: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wasmdeck", "serve", "--no-midi", "--deck", str(deck), *flags],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r}; the host said:\n{''.join(self.log)}") from None
            if text in line:
                return line

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def free_port() -> int:
    """A port nothing listens on now (for a child's webhooks)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fired_result(env: dict[str, str], binding: str) -> dict[str, Any]:
    """Fire ``binding`` and read its result from ``wasmdeck events``."""
    events = subprocess.Popen(
        [sys.executable, "-m", "wasmdeck", "events"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert events.stderr is not None and events.stdout is not None
        assert "following" in events.stderr.readline()  # listening from here on
        assert cli(env, "fire", binding).returncode == 0
        for line in events.stdout:
            record = json.loads(line)
            if record.get("binding") == binding:
                result: dict[str, Any] = json.loads(record["result"])
                return result
        raise AssertionError("wasmdeck events ended")
    finally:
        events.terminate()
        events.wait(30)


def test_serve_watch_rebuilds_a_c_project_and_the_cli_reloads_it(tmp_path: Path) -> None:
    """The plugin author's loop: ``serve --watch`` rebuilds the C project on each
    save and reloads it keeping its count; a broken build prints the compiler's
    message and the running version stays; ``wasmdeck reload PLUGIN`` reloads
    by hand and names a plugin the deck lacks."""
    from wasmdeck.toolchains import build_project

    project = tmp_path / "counter"
    shutil.copytree(PLUGINS / "c" / "counter", project)
    built = build_project(project)
    source = project / "plugin.c"
    original = source.read_text()
    hook_port = free_port()
    deck = tmp_path / "deck.toml"
    deck.write_text(
        DECK.format(extra="")
        .replace('path = "counter.wasm"', f'path = "{built}"')
        .replace('"127.0.0.1:0"', f'"127.0.0.1:{hook_port}"')
    )
    env = {**os.environ, "WASMDECK_HOME": str(tmp_path / "home"), "HOOK_TOKEN": "t0ken"}
    hook = httpx.Client(
        base_url=f"http://127.0.0.1:{hook_port}", headers={"Authorization": "Bearer t0ken"}
    )
    host = Serve(deck, env, "--watch")
    try:
        host.wait_for("wasmdeck: serving")

        def count(*seqs: int) -> None:
            for seq in seqs:
                assert hook.post("/count", json={"seq": seq}).status_code == 202

        count(0, 1, 2)
        first = fired_result(env, "report")  # (after the counts: one queue, in order)
        assert first["count"] == 3 and first["generation"] == 0

        # By hand: the same file again, the state handed over.
        reloaded = cli(env, "reload", "counter")
        assert reloaded.returncode == 0, reloaded.stderr
        assert "plugin counter reloaded: 1.0.0 -> 1.0.0" in reloaded.stdout
        count(3)
        missing = cli(env, "reload", "nobody")
        assert missing.returncode != 0 and "no plugin named 'nobody'" in missing.stderr

        # A save: rebuilt and reloaded, the new version with the old one's state.
        source.write_text('#define COUNTER_VERSION "1.1.0"\n' + original)
        host.wait_for("plugin counter reloaded: 1.0.0 -> 1.1.0")
        count(4)
        after = fired_result(env, "report")
        assert after == {
            "count": 5,
            "duplicates": 0,
            "missing": 0,
            "generation": 2,
            "version": "1.1.0",
        }

        # A broken save: the compiler's message, and 1.1.0 runs on.
        source.write_text(original.replace("int wasmdeck_execute", "int wasmdeck_execute oops"))
        host.wait_for("the build failed; the running version stays")
        host.wait_for("error:")  # the compiler's own words
        status = json.loads(cli(env, "status", "--json").stdout)["plugins"]["counter"]
        assert status["version"] == "1.1.0"
        assert "the reload failed (build)" in status["reloads"]["error"]
        count(5)
        assert fired_result(env, "report")["count"] == 6
    finally:
        hook.close()
        host.stop()
    assert host.process.returncode == 0, "".join(host.log)
    assert "Traceback" not in "".join(host.log)


def counter_version(tmp_path: Path, version: str, *, asks: str = "") -> Path:
    """The C counter as ``version`` (its metadata also asking for ``asks``, a JSON list)."""
    project = tmp_path / f"counter-{version}"
    shutil.copytree(PLUGINS / "c" / "counter", project)
    source = project / "plugin.c"
    text = f'#define COUNTER_VERSION "{version}"\n' + source.read_text()
    if asks:
        escaped = asks.replace('"', '\\"')
        text = text.replace('"\\"subscribe\\":', f'"\\"capabilities\\":{escaped},\\"subscribe\\":')
    source.write_text(text)
    return build_cached(project)


def signed(wasm: Path, key: Path) -> Path:
    from wasmdeck.packages import build_package, load_signing_key

    package = wasm.with_name(f"{wasm.parent.parent.name}.wdpk")
    package.write_bytes(build_package(wasm, key=load_signing_key(key)).encode())
    return package


async def test_an_installed_plugin_reloads_when_a_new_version_is_installed(
    tmp_path: Path,
) -> None:
    """``wasmdeck serve`` runs an installed plugin while webhooks flow; ``wasmdeck
    install`` of a new signed version reloads it with its state. A version asking
    for a capability the user does not give: refused by ``install`` without
    consent; installed with grants that leave it out, refused by the host, which
    keeps the running version and says why; granted, it loads with the state; and
    an edit of the deck hands the state over once more."""
    from wasmdeck.packages import generate_key

    key = tmp_path / "publisher.key"
    generate_key(key)
    versions = {
        "1.0.0": signed(counter("c"), key),
        "1.1.0": signed(counter_version(tmp_path, "1.1.0"), key),
        "1.2.0": signed(counter_version(tmp_path, "1.2.0", asks='["kv"]'), key),
    }
    env = {**os.environ, "WASMDECK_HOME": str(tmp_path / "home"), "HOOK_TOKEN": "t0ken"}
    installed = await asyncio.to_thread(cli, env, "install", str(versions["1.0.0"]))
    assert installed.returncode == 0, installed.stderr
    hook_port = free_port()
    deck = tmp_path / "deck.toml"
    deck.write_text(
        DECK.format(extra="")
        .replace('path = "counter.wasm"', 'installed = "c-counter"')
        .replace('"127.0.0.1:0"', f'"127.0.0.1:{hook_port}"')
    )
    host = Serve(deck, env)
    try:
        await asyncio.to_thread(host.wait_for, "wasmdeck: serving")
        sender = Sender(f"http://127.0.0.1:{hook_port}")
        try:
            await more(sender.accepted)
            upgrade = await asyncio.to_thread(cli, env, "install", str(versions["1.1.0"]))
            assert upgrade.returncode == 0, upgrade.stderr
            assert "asks for nothing new" in upgrade.stderr
            await asyncio.to_thread(host.wait_for, "plugin counter reloaded: 1.0.0 -> 1.1.0")
            await more(sender.accepted)

            # Asking for kv: without consent, install changes nothing.
            asking = await asyncio.to_thread(cli, env, "install", str(versions["1.2.0"]))
            assert asking.returncode == 2 and "more capabilities than before" in asking.stderr
            # Installed with the grants the user chose, kv not among them: the host refuses.
            chosen = "--grant=events:subscribe:count.*"
            narrow = await asyncio.to_thread(cli, env, "install", str(versions["1.2.0"]), chosen)
            assert narrow.returncode == 0, narrow.stderr
            refused = await asyncio.to_thread(
                host.wait_for, "plugin counter: the reload failed (check)"
            )
            assert "the running version stays" in refused
            why = await asyncio.to_thread(host.wait_for, "capability")  # the problem's line
            assert "plugin 'counter' asks for the 'kv' capability, which it is not granted" in why
            assert "'wasmdeck grant' for an installed plugin" in why
            await more(sender.accepted)
            status = json.loads((await asyncio.to_thread(cli, env, "status", "--json")).stdout)
            counter_status = status["plugins"]["counter"]
            assert counter_status["version"] == "1.1.0"
            assert "the reload failed (check)" in counter_status["reloads"]["error"]

            # Granted: 1.2.0 loads, with the state.
            granted = await asyncio.to_thread(cli, env, "grant", "c-counter", "kv")
            assert granted.returncode == 0, granted.stderr
            await asyncio.to_thread(host.wait_for, "plugin counter reloaded: 1.1.0 -> 1.2.0")
            await more(sender.accepted)

            # The deck edited (a timeout for the plugin): the state moves again.
            table = 'installed = "c-counter"\n'
            edit(deck, deck.read_text().replace(table, table + "timeout_ms = 3000\n"))
            line = await asyncio.to_thread(host.wait_for, "deck reloaded: 2 bindings")
            assert "; plugin counter 1.2.0 -> 1.2.0, " in line and "bytes of state" in line
            await more(sender.accepted)
        finally:
            await asyncio.to_thread(sender.stop)
        after = await asyncio.to_thread(fired_result, env, "report")  # after every count
    finally:
        host.stop()
    assert host.process.returncode == 0, "".join(host.log)
    assert "Traceback" not in "".join(host.log)
    assert len(sender.accepted) > 800
    assert after == {
        "count": len(sender.accepted),
        "duplicates": 0,
        "missing": 0,
        "generation": 3,
        "version": "1.2.0",
    }


# -- the core ABI's pair, hand-written (docs/abi.md) --------------------------------------

RESTORE = '(func (export "restore_state") (param i32 i32) (result i32) (i32.const 0))'


def test_the_core_pair_is_both_or_neither_with_its_signatures() -> None:
    only_save = abi_module(extra='(func (export "save_state") (result i64) (i64.const 0))')
    with pytest.raises(MissingExport, match="exports 'save_state' but not 'restore_state'"):
        Plugin(only_save)
    wrong = abi_module(extra='(func (export "save_state") (result i32) (i32.const 0))' + RESTORE)
    with pytest.raises(
        MissingExport, match=r"export 'save_state' must be a function \(\) -> \(i64\)"
    ):
        Plugin(wrong)
    plain = Plugin(abi_module())
    assert not plain.keeps_state and plain.save_state() is None


def test_a_saved_state_outside_memory_fails_the_reload_as_an_abi_violation() -> None:
    outside = abi_module(
        extra='(func (export "save_state") (result i64) (i64.const 0x7FFF000000000010))' + RESTORE
    )
    old, new = Plugin(outside), Plugin(outside)
    assert old.call("ok") == b"ok"  # a live instance, whose state is asked for
    with pytest.raises(ReloadFailed) as failed:
        old.hand_over(new)
    assert failed.value.stage == "save"
    assert isinstance(failed.value.__cause__, ABIViolation)
    assert "outside the plugin's" in str(failed.value)
    assert old.call("ok") == b"ok"  # the old version runs on


def test_events_queued_on_the_bus_reach_the_new_version_once() -> None:
    """The counter subscribes to count.*: 3,000 events published while it is
    replaced three times are each handled once, by whichever version held
    the place then, and the count moved along."""
    from wasmdeck.host import EventBus, PluginHost

    wasm = counter("c")
    with PluginHost(bus=EventBus(queue_size=4096)) as host:  # every event queued: none dropped
        host.add(Plugin(wasm, grants=["events:subscribe:count.*"], runtime=runtime()), name="c")
        published = threading.Event()

        def publish() -> None:
            for seq in range(3000):
                host.bus.publish("count.one", {"seq": seq}, source="test")
            published.set()

        publisher = threading.Thread(target=publish)
        publisher.start()
        for _ in range(3):
            old = host.get("c")
            new = Plugin(wasm, grants=["events:subscribe:count.*"], runtime=runtime())
            old.hand_over(new, lambda old=old, new=new: host.replace("c", new) and None)
        publisher.join()
        assert published.is_set() and host.bus.settle(60)
        counted = json.loads(host.get("c").call("report"))
        stats = host.bus.stats()["subscribers"]["c:count"]
    assert counted["count"] == 3000 and counted["duplicates"] == 0 and counted["missing"] == 0
    assert counted["generation"] == 3
    assert stats["delivered"] == 3000 and stats["failed"] == 0 and stats["dropped"] == 0
