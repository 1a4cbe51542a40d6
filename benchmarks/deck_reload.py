"""Live deck reload of a 200-binding deck: from the file's change to the new deck running.

Run: ``python benchmarks/deck_reload.py [--reloads N] [--bindings N]`` (needs
``pip install -e '.[test]'``; about 30 s).

The deck has 200 bindings over four plugins (the C velocity example, built
here), two devices and three modes: pads, knobs, encoders, long presses,
chords, webhooks with secrets, OSC, with params checked against each
action's JSON Schema. Each edit changes one binding's params, so the
plugins are reused, as in a person's edit. In one run, in one process:

- ``reload``: a ``Daemon`` (no MIDI ports, no servers) runs the deck; the
  file is rewritten in place and the time taken until ``Daemon.reload`` has
  swapped the new deck in (the file watcher's settle time included: it
  waits for the writes to stop before reading, as an editor saves in steps);
- the references, measured alike: the watcher alone (``watchfiles.awatch``
  on the same file, with the daemon's settings: the floor of any reload
  that waits for writes to settle), and ``tomllib.loads`` of the same text
  (the floor of any TOML deck);
- the parts: ``read_deck`` (parse, positions, typed deck), ``check_deck``
  given the running plugins' metadata (what a reload checks), and
  ``prepare`` (read, check, secrets, plugins reused).

The goal is MIDIMon's: a valid change applied within 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import watchfiles

from wasmdeck._capabilities import Grants
from wasmdeck.daemon import Daemon
from wasmdeck.daemon._daemon import WATCH_DEBOUNCE_MS, WATCH_STEP_MS
from wasmdeck.daemon._loading import prepare
from wasmdeck.deck import PluginFacts, check_deck, read_deck
from wasmdeck.toolchains import compile_c, sdk_dir

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("lights", "scenes", "audio", "fx")


def deck_text(bindings: int, edit: int) -> str:
    """A deck of ``bindings`` bindings; ``edit`` changes the first binding's params."""
    lines = [
        "version = 1",
        'start_mode = "live"',
        "[timing]",
        "chord_ms = 50",
        *(f'[plugins.{name}]\npath = "velocity.wasm"' for name in PLUGINS),
        '[devices.pad]\ninput = "Launchpad*"\noutput = "Launchpad*"',
        '[devices.knobs]\ninput = "X-Touch*"',
        "[modes.live]\ncolor = 21\n[modes.edit]\ncolor = 5\n[modes.show]\ncolor = 45",
    ]
    modes = ("live", "edit", "show")
    for i in range(bindings):
        plugin = PLUGINS[i % len(PLUGINS)]
        mode = modes[i % 3]
        kind = i % 10
        if kind < 5:  # pads: a note on each, per mode
            trigger = f'{{ kind = "note_on", device = "pad", note = {i % 128} }}'
            action = (
                f'{{ plugin = "{plugin}", action = "pick", '
                f'params = {{ choices = ["a{edit if i == 0 else 0}", "b{i}", "c"] }} }}'
            )
            feedback = '\nfeedback = { state = "result.choice", equals = "c", on = "mode" }'
        elif kind < 7:  # knobs
            trigger = f'{{ kind = "cc", device = "knobs", controller = {i % 128} }}'
            action = (
                f'{{ plugin = "{plugin}", action = "scale", params = {{ min = 0, max = 254 }} }}'
            )
            feedback = ""
        elif kind == 7:
            trigger = (
                f'{{ kind = "encoder", device = "knobs", controller = {i % 128}, '
                f'encoding = "twos_complement", acceleration = 1.0 }}'
            )
            action = f'{{ plugin = "{plugin}", action = "scale", params = {{ min = 0, max = "{{delta}}" }} }}'
            feedback = ""
        elif kind == 8:
            trigger = f'{{ kind = "long_press", device = "pad", note = {i % 128}, hold_ms = 1500 }}'
            action = '{ mode = "edit" }'
            feedback = ""
        else:
            trigger = (
                f'{{ kind = "webhook", method = "POST", path = "/hook/{i}", '
                f'auth = {{ bearer = {{ env = "BENCH_HOOK_TOKEN" }} }} }}'
            )
            action = f'{{ plugin = "{plugin}", action = "pick", params = {{ choices = ["{{body.scene}}"] }} }}'
            feedback = ""
        lines.append(
            f'[[bindings]]\nname = "b{i}"\nmode = "{mode}"\ntrigger = {trigger}\n'
            f"actions = [{action}]{feedback}"
        )
    return "\n".join(lines) + "\n"


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1000:7.2f} ms  p90 {p90 * 1000:7.2f} ms"


def timed(fn: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


async def watcher_floor(path: Path, texts: list[str]) -> list[float]:
    """From a write to ``awatch`` yielding it, with the daemon's settings."""
    seen: asyncio.Queue[float] = asyncio.Queue()

    async def watch() -> None:
        async for _ in watchfiles.awatch(
            path.parent, debounce=WATCH_DEBOUNCE_MS, step=WATCH_STEP_MS
        ):
            seen.put_nowait(time.perf_counter())

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.3)  # let the watcher start
    times: list[float] = []
    loop = asyncio.get_running_loop()
    for text in texts:
        start = time.perf_counter()
        await loop.run_in_executor(None, path.write_text, text)
        times.append(await asyncio.wait_for(seen.get(), 10) - start)
        await asyncio.sleep(0.1)
    watcher.cancel()
    return times


async def reloads(daemon: Daemon, path: Path, texts: list[str]) -> list[float]:
    """From a write to the new deck swapped in by the daemon's own watcher."""
    applied: asyncio.Queue[tuple[float, bool]] = asyncio.Queue()
    reload = daemon.reload

    async def reload_timed(*, only_if_changed: bool = False) -> tuple[bool, str]:
        result = await reload(only_if_changed=only_if_changed)
        applied.put_nowait((time.perf_counter(), result[0]))
        return result

    daemon.reload = reload_timed  # type: ignore[method-assign]
    ready = asyncio.Event()
    running = asyncio.create_task(daemon.run(ready=ready.set))
    await ready.wait()
    await asyncio.sleep(0.3)  # let the watcher start
    times: list[float] = []
    loop = asyncio.get_running_loop()
    for text in texts:
        start = time.perf_counter()
        await loop.run_in_executor(None, path.write_text, text)
        done, ok = await asyncio.wait_for(applied.get(), 10)
        if not ok:
            raise RuntimeError("the edited deck was refused")
        times.append(done - start)
        await asyncio.sleep(0.1)
    daemon.stop()
    await running
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reloads", type=int, default=40)
    parser.add_argument("--bindings", type=int, default=200)
    args = parser.parse_args()
    os.environ["BENCH_HOOK_TOKEN"] = "bench-token"
    with tempfile.TemporaryDirectory(prefix="wasmdeck-bench-") as scratch:
        work = Path(scratch)
        source = ROOT / "examples" / "c" / "velocity" / "velocity.c"
        compile_c([source], work / "velocity.wasm", include_dirs=[sdk_dir("c")])
        path = work / "deck.toml"
        path.write_text(deck_text(args.bindings, 0))
        texts = [deck_text(args.bindings, n + 1) for n in range(args.reloads)]

        daemon = Daemon(path, midi=False, control=False)
        deck = daemon.deck
        assert len(deck.bindings) == args.bindings, len(deck.bindings)
        facts = {
            name: PluginFacts(plugin.metadata, Grants(spec.grants))
            for name, plugin in daemon._ready.plugins.items()
            if (spec := deck.plugins.get(name)) is not None
        }
        running = {name: (deck.plugins[name], p) for name, p in daemon._ready.plugins.items()}
        count = max(args.reloads, 20)
        text = path.read_text()
        toml_floor = timed(lambda: tomllib.loads(text), count)
        parse = timed(lambda: read_deck(path), count)
        check = timed(lambda: check_deck(deck, facts), count)
        prepared = timed(lambda: prepare(path, running), count)
        reload_times = asyncio.run(reloads(daemon, path, texts))
        (work / "other").mkdir()
        watch_floor = asyncio.run(watcher_floor(work / "other" / "deck.toml", texts))
    print(
        f"{args.bindings}-binding deck ({len(text)} bytes), {args.reloads} reloads; load {load()}"
    )
    print(f"reference: tomllib.loads            {ms(toml_floor)}")
    print(f"reference: watcher (write -> yield) {ms(watch_floor)}")
    print(f"read_deck (parse + positions)       {ms(parse)}")
    print(f"check_deck (plugins known)          {ms(check)}")
    print(f"prepare (read, check, secrets)      {ms(prepared)}")
    print(f"reload (write -> new deck running)  {ms(reload_times)}")
    print(
        f"reload_ms={statistics.median(reload_times) * 1000:.2f} "
        f"over_watcher_ms={(statistics.median(reload_times) - statistics.median(watch_floor)) * 1000:.2f}"
    )
    return 0


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
