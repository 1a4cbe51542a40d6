"""``wasmdeck serve`` (the trigger host, in the foreground), ``replay``, ``learn``, ``midi ports``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import re
import signal
import sys
from pathlib import Path
from typing import Any

from .._errors import UsageError
from .._home import home
from .._text import terminal_safe
from ..daemon import (
    Daemon,
    LearnTimeout,
    ReplayClock,
    SourceProject,
    learn,
    list_ports,
    to_toml,
)
from ..deck import DeckError

EXIT_INVALID = 4


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the deck: MIDI, webhooks, OSC and timers drive the plugins",
        description="Run the deck in the foreground until SIGINT or SIGTERM, then finish the "
        "calls in flight and exit 0. A deck with problems does not start (exit 4).",
    )
    serve.add_argument(
        "--deck", metavar="FILE", help="the deck file (default: $WASMDECK_HOME/deck.toml)"
    )
    serve.add_argument("--no-midi", action="store_true", help="do not open the deck's MIDI devices")
    serve.add_argument(
        "--watch",
        action="store_true",
        help="rebuild a plugin whose file is a project's build output (PROJECT/build/NAME.wasm) "
        "when its sources change, and reload it keeping its state (docs/reload.md)",
    )
    loudness = serve.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log one line per trigger, and plugins' debug lines",
    )
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="log only warnings and errors (plugins' too)"
    )
    serve.set_defaults(handler=_serve)

    replay = subparsers.add_parser(
        "replay",
        help="feed a Standard MIDI File through the deck (a dry run) and print what happened",
        description="Play FILE.mid's messages into the deck as if DEVICE sent them, on the "
        "file's timeline (long presses and chords fire as they would have, without waiting), "
        "and print one JSON line per action: binding, action, result or error.",
    )
    replay.add_argument("file", metavar="FILE.mid")
    replay.add_argument(
        "--deck", metavar="FILE", help="the deck file (default: $WASMDECK_HOME/deck.toml)"
    )
    replay.add_argument(
        "--device",
        metavar="NAME",
        help="the deck device the messages come from (default: the first)",
    )
    replay.set_defaults(handler=_replay)

    midi = subparsers.add_parser("midi", help="MIDI ports")
    actions = midi.add_subparsers(dest="midi_command", metavar="ACTION", required=True)
    ports = actions.add_parser("ports", help="list the MIDI input and output ports")
    ports.set_defaults(handler=_ports)

    learn = subparsers.add_parser(
        "learn",
        help="press a pad or turn a knob: print the binding's TOML",
        description="Listen on the MIDI inputs (those matching --port, or all) and print a "
        "deck fragment for each event heard: a [devices.NAME] table for its port and a "
        "[[bindings]] entry (note on/off, CC or relative encoder, program change, pitch bend, "
        "aftertouch). Paste it into the deck and check it with 'wasmdeck check'.",
    )
    learn.add_argument("--port", metavar="PATTERN", help="listen only on inputs matching this")
    learn.add_argument(
        "--count", type=int, default=1, metavar="N", help="learn N events (default 1)"
    )
    learn.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="give up after this"
    )
    learn.add_argument(
        "--device", metavar="NAME", help="the deck device name (default: from the port's name)"
    )
    learn.add_argument(
        "--action", metavar="PLUGIN.ACTION", help="the action the bindings run (default: a no-op)"
    )
    learn.set_defaults(handler=_learn)


def _deck_path(args: argparse.Namespace) -> Path:
    return Path(args.deck) if args.deck else home() / "deck.toml"


def _serve(args: argparse.Namespace) -> int:
    # The host's own lines ("wasmdeck: ...") and, tagged "[plugin]" by cli/_main.py,
    # what the plugins log: -v adds each trigger and plugins' debug lines, -q
    # leaves warnings and errors (a plugin's stderr is a warning).
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_HostLogFormatter())
    logger = logging.getLogger("wasmdeck.daemon")
    logger.addHandler(handler)
    logger.setLevel(level)
    logging.getLogger("wasmdeck.plugin").setLevel(level)
    try:
        daemon = Daemon(
            _deck_path(args),
            midi=not args.no_midi,
            projects=_source_project if args.watch else None,
        )
    except DeckError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    asyncio.run(_run(daemon, quiet=args.quiet))
    return 0


def _source_project(plugin_file: Path) -> SourceProject | None:
    """The project ``plugin_file`` is the build output of (``serve --watch``), if any."""
    from ..toolchains import MANIFEST, ProjectError, build_project, load_project, project_digest

    target = plugin_file.resolve()
    root = next((p for p in target.parents[:3] if (p / MANIFEST).is_file()), None)
    if root is None:
        return None
    try:
        project = load_project(root)
    except ProjectError:
        return None
    if project.output != target:
        return None
    return SourceProject(
        root=project.root,
        digest=lambda: project_digest(project, settings=(), kit=()),
        build=lambda: build_project(project.root),
    )


class _HostLogFormatter(logging.Formatter):
    """``wasmdeck: line``; escaped, as it may carry plugins' words (their errors)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"wasmdeck: {terminal_safe(record.getMessage(), multiline=True)}"


async def _run(daemon: Daemon, *, quiet: bool = False) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, daemon.stop)

    def ready() -> None:
        # What startup made (modules, the deck, compiled plugins: ~70k objects)
        # lives as long as this process. Frozen, it is out of the collector's
        # sight: a full collection under load scans only what came since,
        # rather than holding the GIL 100+ ms while JACK's process thread
        # waits for it (daemon/_midi.py, benchmarks/sustained_load.py).
        gc.collect()
        gc.freeze()
        if quiet:
            return
        status = daemon.status()
        midi = status["midi"]
        print(
            f"wasmdeck: serving {status['deck']}: {status['bindings']} bindings, "
            f"{len(status['plugins'])} plugins, mode {status['mode']}; "
            f"MIDI in {', '.join(midi['inputs']) or '-'}, out {', '.join(midi['outputs']) or '-'}",
            file=sys.stderr,
            flush=True,
        )

    await daemon.run(ready=ready)
    if not quiet:
        print("wasmdeck: stopped", file=sys.stderr, flush=True)


def _replay(args: argparse.Namespace) -> int:
    import mido  # type: ignore[import-untyped]

    try:
        midi_file = mido.MidiFile(args.file)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise UsageError(f"{args.file} is not a readable Standard MIDI File: {exc}") from None
    try:
        daemon = Daemon(_deck_path(args), midi=False, control=False, clock=ReplayClock())
    except DeckError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    inputs = [d.name for d in daemon.deck.devices.values() if d.input is not None]
    device = args.device or (inputs[0] if inputs else None)
    if args.device is not None and args.device not in inputs:
        raise UsageError(
            f"no device {args.device!r} with an input in the deck: {', '.join(inputs) or '-'}"
        )
    timeline: list[tuple[float, Any]] = []
    at = 0.0
    for message in midi_file:  # delta times in seconds, tempo applied
        at += message.time
        if not message.is_meta:
            timeline.append((at, message))
    asyncio.run(daemon.replay(timeline, device))
    for record in daemon.events:
        print(json.dumps(record, ensure_ascii=True))
    return 0


def _ports(args: argparse.Namespace) -> int:
    inputs, outputs = list_ports()
    for name in inputs:
        print(f"in   {_printable(name)}")
    for name in outputs:
        print(f"out  {_printable(name)}")
    return 0


def _learn(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UsageError("--count must be 1 or more")
    if args.timeout <= 0:
        raise UsageError("--timeout must be above 0 seconds")
    action = None
    if args.action is not None:
        plugin, dot, name = args.action.partition(".")
        if not (plugin and dot and name):
            raise UsageError(f"--action must be PLUGIN.ACTION, not {args.action!r}")
        action = (plugin, name)
    if args.device is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", args.device):
        raise UsageError(f"--device {args.device!r} is not a valid device name")

    def ready(ports: list[str]) -> None:
        listening = ", ".join(_printable(p) for p in ports)
        print(f"wasmdeck: listening on {listening}", file=sys.stderr, flush=True)

    try:
        learned = learn(pattern=args.port, count=args.count, timeout=args.timeout, ready=ready)
    except LearnTimeout as exc:
        if exc.learned:
            print(to_toml(exc.learned, device=args.device, action=action), flush=True)
        raise
    print(to_toml(learned, device=args.device, action=action), end="", flush=True)
    return 0


def _printable(text: str) -> str:
    """A port name as the terminal may show it: control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
