"""``wasmdeck learn``: press a pad or turn a knob, get the binding's TOML.

Two parts: ``Learner`` (pure, clock-free) turns a stream of MIDI events into
learned triggers — one per gesture: a press, a knob turned, a bend — and
``learn`` opens the MIDI inputs and feeds it. A gesture on a continuous
control (CC, pitch bend, aftertouch) ends when another control moves or
after ``settle`` seconds of quiet; its values decide whether a CC is an
absolute knob or a relative encoder (``guess_encoding``). A note-on is one
gesture at once; its note-off is part of it. ``to_toml`` writes the deck
text (docs/deck.md) that ``wasmdeck check`` reads back.
"""

from __future__ import annotations

import itertools
import queue
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._errors import WasmdeckError
from ..deck import port_matches
from ..triggers import MidiEvent

__all__ = ["LearnTimeout", "Learned", "Learner", "guess_encoding", "learn", "to_toml"]


class LearnTimeout(WasmdeckError):
    """``wasmdeck learn`` heard fewer events than asked for before its timeout."""

    def __init__(self, message: str, learned: list[Learned]) -> None:
        super().__init__(message)
        self.learned = learned  # what was heard before the timeout


@dataclass(slots=True)
class Learned:
    """One gesture: the MIDI trigger it stands for, from the port it came on."""

    port: str
    event: MidiEvent  # the first message of the gesture
    values: list[int] = field(default_factory=list)  # every value a continuous control sent

    def key(self) -> tuple[str, str, int, int | None]:
        e = self.event
        number = e.controller if e.type == "control_change" else e.note
        return (self.port, e.type, e.channel, number)


# Relative encoders send small steps around their encoding's zero; an
# absolute knob sends positions, which move through the range one by one.
_SMALL = 15


def guess_encoding(values: list[int]) -> str | None:
    """The relative encoding ``values`` look like, or None for an absolute control.

    A step is a small number: twos_complement is 1.. up and ..127 down,
    sign_magnitude 1.. up and 65.. down, offset 65.. up and ..63 down. An
    absolute knob's values move (64, 65, 66, ...) while an encoder turned
    one way repeats its step (1, 1, 2, 1): so an encoder needs a value that
    repeats in a row, or values only at the range's two ends.
    """
    if len(values) < 2:
        return None
    up_low = all(1 <= v <= _SMALL for v in values)
    twos = all(1 <= v <= _SMALL or v >= 128 - _SMALL for v in values)
    sign = all(1 <= v <= _SMALL or 65 <= v <= 64 + _SMALL for v in values)
    offset = all(64 - _SMALL <= v <= 64 + _SMALL and v != 64 for v in values)
    repeats = any(a == b for a, b in itertools.pairwise(values))
    both_ends = twos and any(v <= _SMALL for v in values) and any(v > 64 for v in values)
    if not (repeats or both_ends):
        return None
    if up_low or (twos and not sign):
        return "twos_complement"  # the default; 1.. up reads the same in sign_magnitude
    if sign and any(v <= _SMALL for v in values):
        return "sign_magnitude"
    if offset:
        return "offset"
    return None


class Learner:
    """MIDI events in (``feed``), finished gestures out. Told the time, never reads it."""

    def __init__(self, settle: float = 0.5) -> None:
        self.settle = settle
        self._open: Learned | None = None
        self._last = 0.0
        self._down: set[tuple[str, int, int]] = set()  # notes pressed: their note-off is theirs

    def feed(self, port: str, event: MidiEvent, at: float) -> list[Learned]:
        done = self.poll(at)
        if event.type == "note_off":
            key = (port, event.channel, event.note or 0)
            if key in self._down:
                self._down.discard(key)
                return done
            return [*done, *self._close(), Learned(port, event)]
        if event.type == "note_on":
            self._down.add((port, event.channel, event.note or 0))
            return [*done, *self._close(), Learned(port, event)]
        value = event.value if event.value is not None else 0
        gesture = Learned(port, event)
        if self._open is not None and self._open.key() == gesture.key():
            self._open.values.append(value)
        else:
            done = [*done, *self._close()]
            gesture.values.append(value)
            self._open = gesture
        self._last = at
        return done

    def poll(self, at: float) -> list[Learned]:
        """The open gesture, once ``settle`` seconds passed without it moving."""
        if self._open is not None and at - self._last >= self.settle:
            return self._close()
        return []

    def deadline(self) -> float | None:
        return None if self._open is None else self._last + self.settle

    def finish(self) -> list[Learned]:
        return self._close()

    def _close(self) -> list[Learned]:
        gesture, self._open = self._open, None
        return [] if gesture is None else [gesture]


# -- TOML ----------------------------------------------------------------------


def _quote(text: str) -> str:
    """A TOML basic string (escapes as TOML defines them)."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def port_pattern(port: str) -> str:
    """A device pattern that matches ``port``: glob characters escaped, ALSA's numbers wild.

    ALSA appends the client and port numbers ("Launchpad X MIDI 1 20:0"),
    which change when the controller is plugged in elsewhere.
    """
    escaped = re.sub(r"([*?\[])", r"[\1]", port)
    return re.sub(r" \d+:\d+$", " *", escaped)


def device_name(port: str) -> str:
    """A deck device name from a port name: its client part, lowercased, dashed."""
    client = port.split(":", 1)[0]
    name = re.sub(r"[^a-z0-9]+", "-", client.lower()).strip("-")[:40]
    return name or "device"


def _trigger(learned: Learned, device: str) -> tuple[str, list[str], str]:
    """The trigger fields, comments and a binding name for one gesture."""
    e = learned.event
    fields = [f"device = {_quote(device)}", f"channel = {e.channel}"]
    notes: list[str] = []
    if e.type in ("note_on", "note_off"):
        kind = e.type
        fields.append(f"note = {e.note}")
        name = f"note-{e.note}"
    elif e.type == "control_change":
        encoding = guess_encoding(learned.values)
        shown = ", ".join(str(v) for v in learned.values[:12])
        more = ", ..." if len(learned.values) > 12 else ""
        if encoding is None:
            kind, name = "cc", f"cc-{e.controller}"
            fields.append(f"controller = {e.controller}")
            notes.append(f"absolute control: values seen {shown}{more}")
        else:
            kind, name = "encoder", f"encoder-{e.controller}"
            fields += [f"controller = {e.controller}", f"encoding = {_quote(encoding)}"]
            notes.append(f"relative encoder, a guess from the values seen: {shown}{more}")
    elif e.type == "program_change":
        kind, name = "program", f"program-{e.value}"
        fields.append(f"program = {e.value}")
    elif e.type == "pitchwheel":
        kind, name = "pitch_bend", "bend"
        extreme = max(learned.values, key=abs, default=0)
        low, high = (1, 8191) if extreme >= 0 else (-8192, -1)
        fields.append(f"value = [{low}, {high}]")
        notes.append(f"bent {'up' if extreme >= 0 else 'down'} to {extreme}")
    else:  # aftertouch, polytouch
        kind, name = "aftertouch", "pressure"
        if e.note is not None:
            fields.append(f"note = {e.note}")
            name = f"pressure-{e.note}"
        fields.append("value = [1, 127]")
    return f'kind = "{kind}", ' + ", ".join(fields), notes, name


def to_toml(
    learned: list[Learned],
    *,
    device: str | None = None,
    action: tuple[str, str] | None = None,
) -> str:
    """A deck fragment: a ``[devices.NAME]`` table per port, a ``[[bindings]]`` per gesture.

    ``action`` is ``(plugin, action)`` for the bindings' action; without it
    each gets ``{ delay_ms = 0 }``, a no-op to replace.
    """
    devices: dict[str, str] = {}  # port -> device name
    lines: list[str] = []
    for gesture in learned:
        if gesture.port not in devices:
            taken = set(devices.values())
            name = device or device_name(gesture.port)
            base, n = name, 2
            while name in taken:
                name, n = f"{base}-{n}", n + 1
            devices[gesture.port] = name
    for port, name in devices.items():
        lines += [f"[devices.{name}]", f"input = {_quote(port_pattern(port))}", ""]
    names: set[str] = set()
    for gesture in learned:
        trigger, notes, name = _trigger(gesture, devices[gesture.port])
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        lines.append("[[bindings]]")
        lines += [f"# {note}" for note in notes]
        lines.append(f"name = {_quote(name)}")
        lines.append(f"trigger = {{ {trigger} }}")
        if action is None:
            lines.append("actions = [{ delay_ms = 0 }]  # replace with the action to run")
        else:
            plugin, act = action
            lines.append(f"actions = [{{ plugin = {_quote(plugin)}, action = {_quote(act)} }}]")
        lines.append("")
    return "\n".join(lines)


# -- listening -----------------------------------------------------------------


def learn(
    *,
    pattern: str | None,
    count: int,
    timeout: float,
    settle: float = 0.5,
    ready: Callable[[list[str]], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[Learned]:
    """Listen on the MIDI inputs matching ``pattern`` (all, by default) for ``count`` gestures.

    Raises ``LearnTimeout`` (with what was heard, ``.learned``) when
    ``timeout`` seconds pass first, ``MidiUnavailable`` without MIDI.
    """
    import mido  # type: ignore[import-untyped]

    from ._midi import MidiUnavailable, _client

    lister = _client("input", "wasmdeck-learn")
    try:
        ports = [p for p in lister.get_ports() if pattern is None or port_matches(pattern, p)]
    finally:
        lister.delete()
    if not ports:
        raise MidiUnavailable(
            f"no MIDI input matches {pattern!r}; see 'wasmdeck midi ports'"
            if pattern is not None
            else "no MIDI input to listen on; see 'wasmdeck midi ports'"
        )
    heard: queue.Queue[tuple[str, list[int]]] = queue.Queue()
    clients: list[Any] = []
    try:
        for n, port in enumerate(ports):
            client = _client("input", f"wasmdeck-learn-{n}")
            clients.append(client)
            client.ignore_types(sysex=True, timing=True, active_sense=True)
            # rtmidi's thread: hand the bytes over, nothing more.
            client.set_callback(lambda event, port: heard.put((port, event[0])), port)
            index = client.get_ports().index(port)
            client.open_port(index, "learn")
        if ready is not None:
            ready(ports)
        learner = Learner(settle)
        learned: list[Learned] = []
        end = clock() + timeout
        while len(learned) < count:
            now = clock()
            wake = min(end, learner.deadline() or end)
            if now >= end:
                learned += learner.finish()
                break
            try:
                port, data = heard.get(timeout=max(0.0, wake - now))
            except queue.Empty:
                learned += learner.poll(clock())
                continue
            try:
                event = MidiEvent.from_mido(mido.Message.from_bytes(data))
            except (ValueError, TypeError):
                continue
            if event is not None:
                learned += learner.feed(port, event, clock())
        learned = learned[:count]
    finally:
        for client in clients:  # callbacks off first (see MidiIO.close)
            client.cancel_callback()
        for client in clients:
            client.close_port()
            client.delete()
    if len(learned) < count:
        raise LearnTimeout(
            f"heard {len(learned)} of {count} events in {timeout:g} s "
            "(press a pad or turn a knob on the device)",
            learned,
        )
    return learned
