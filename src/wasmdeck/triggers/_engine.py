"""The trigger engine: events in, the bindings they fire out. Pure and clock-driven.

No I/O and no sleeping: the engine is told the time (``clock``, monotonic
seconds; ``wall``, an aware datetime for timers at a time of day) and what
happened (``feed``). Whatever depends on time passing — a long press
reaching its hold time, a timer coming due — is found by ``poll``;
``next_deadline`` says when to poll next. The daemon drives it from one
asyncio loop; tests drive it with a fake clock.

Semantics (docs/deck.md, "Triggers"): a press fires ``note_on`` at once; a
``long_press`` fires when the pad has been held ``hold_ms`` (not if released
before); a ``double_tap`` fires on a second press within ``window_ms`` of the
first; a ``chord`` fires once when all its notes are down and were pressed
within ``window_ms``, and again only after one of them was released.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import WasmdeckError
from .._topics import matches
from ..deck import Binding, Deck, Trigger
from ._events import Event, MidiEvent, OscEvent, TopicEvent, WebhookEvent

__all__ = ["Firing", "TriggerEngine", "UnknownMode", "decode_encoder"]

_NOTE_KEY = tuple[str | None, int, int]  # device, channel, note
# Kinds whose bindings are also found by the note or controller they match
# (_install), so an event looks at its own pad's bindings, not all of them.
_BY_NOTE = ("note_on", "long_press", "double_tap", "note_off")
_BY_CONTROLLER = ("cc", "encoder")


class UnknownMode(WasmdeckError):
    """A mode change to a mode the deck does not declare."""


@dataclass(frozen=True, slots=True)
class Firing:
    """One binding fired: what its actions get to work with."""

    binding: Binding
    variables: dict[str, Any]  # the placeholder values (docs/deck.md, "Params from the trigger")
    context: dict[str, Any] = field(
        default_factory=dict
    )  # kind, channel, note, controller, value, velocity
    mode: str | None = None
    at: float = 0.0  # clock time


@dataclass(slots=True)
class _Hold:
    binding: Binding
    pressed: float
    event: MidiEvent
    mode: str | None


def decode_encoder(value: int, encoding: str) -> int:
    """The signed step a relative encoder's byte stands for."""
    if encoding == "offset":
        return value - 64
    if encoding == "sign_magnitude":
        return value if value < 64 else -(value - 64)
    return value if value < 64 else value - 128  # twos_complement


def accelerate(step: int, acceleration: float) -> int:
    size = abs(step)
    moved = round(size * (1 + acceleration * (size - 1)))
    return moved if step > 0 else -moved


class TriggerEngine:
    """A deck's bindings and the current mode: ``feed`` events in, get ``Firing``s out.

    ``clock`` is monotonic seconds, ``wall`` an aware datetime (timers at a
    time of day); both injected, so tests need no sleeping.
    """

    def __init__(
        self,
        deck: Deck,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._clock = clock
        self._zone = zoneinfo.ZoneInfo(deck.timezone) if deck.timezone else machine_zone()
        self._wall = wall or (lambda: dt.datetime.now(self._zone))
        # Each firing's timestamp: from the injected wall clock, else time.time()
        # (the same instant, without making a datetime for every MIDI event).
        self._now_ms: Callable[[], int] = (
            (lambda: int(wall().timestamp() * 1000))
            if wall is not None
            else (lambda: int(time.time() * 1000))
        )
        self._holds: dict[tuple[str, _NOTE_KEY], _Hold] = {}
        self._taps: dict[tuple[str, _NOTE_KEY], float] = {}
        self._down: dict[tuple[str | None, int], dict[int, float]] = {}
        self._latched: set[tuple[str, str | None, int]] = set()
        self._timers: dict[str, float] = {}
        self._started = False
        self._mode: str | None = None
        self._install(deck)
        self._mode = deck.start_mode

    # -- the deck and the mode -------------------------------------------------

    def _install(self, deck: Deck) -> None:
        self.deck = deck
        self._by_kind: dict[tuple[str | None, str], list[Binding]] = {}
        self._by_point: dict[tuple[str | None, str, int], list[Binding]] = {}
        modes: list[str | None] = [None, *deck.modes]
        for mode in modes:
            for binding in deck.bindings:
                if binding.mode is None or binding.mode == mode:
                    trigger = binding.trigger
                    self._by_kind.setdefault((mode, trigger.kind), []).append(binding)
                    points: Iterable[int] = ()
                    if trigger.kind in _BY_NOTE and trigger.note is not None:
                        points = range(trigger.note[0], trigger.note[1] + 1)
                    elif trigger.kind in _BY_CONTROLLER and trigger.controller is not None:
                        points = (trigger.controller,)
                    for point in points:
                        key = (mode, trigger.kind, point)
                        self._by_point.setdefault(key, []).append(binding)

    @property
    def mode(self) -> str | None:
        return self._mode

    def mode_number(self) -> int | None:
        spec = self.deck.modes.get(self._mode) if self._mode is not None else None
        return spec.number if spec else None

    def set_mode(self, name: str) -> None:
        if name not in self.deck.modes:
            known = ", ".join(self.deck.modes) or "(none)"
            raise UnknownMode(f"no mode named {name!r}; modes: {known}")
        self._mode = name

    def swap(self, deck: Deck) -> None:
        """Run ``deck`` from now on, keeping what is held down and the mode where it still exists.

        Pending long presses and timers carry over to the new deck's binding
        of the same name and kind; those without one are dropped.
        """
        old_timers = self._timers
        self._install(deck)
        if self._mode not in deck.modes:
            self._mode = deck.start_mode
        self._holds = {
            key: _Hold(new, hold.pressed, hold.event, hold.mode)
            for key, hold in self._holds.items()
            if (new := deck.binding(hold.binding.name)) is not None
            and new.trigger.kind == "long_press"
        }
        self._taps = {k: t for k, t in self._taps.items() if deck.binding(k[0]) is not None}
        self._timers = {}
        if self._started:
            now = self._clock()
            for binding in deck.bindings:
                if binding.trigger.kind == "timer":
                    previous = old_timers.get(binding.name)
                    self._timers[binding.name] = (
                        previous if previous is not None else self._first_due(binding.trigger, now)
                    )

    def _active(self, kind: str) -> list[Binding]:
        return self._by_kind.get((self._mode, kind), [])

    # -- firing ----------------------------------------------------------------

    def start(self) -> list[Firing]:
        """The startup bindings; timers start counting now."""
        now = self._clock()
        self._started = True
        for binding in self.deck.bindings:
            if binding.trigger.kind == "timer":
                self._timers[binding.name] = self._first_due(binding.trigger, now)
        return [self._firing(b, {}, {}, now) for b in self._active("startup")]

    def fire(self, name: str) -> Firing:
        """Fire a binding by hand (``wasmdeck fire``), whatever its trigger and mode."""
        binding = self.deck.binding(name)
        if binding is None:
            raise KeyError(name)
        return self._firing(binding, {}, {}, self._clock())

    def feed(self, event: Event) -> list[Firing]:
        """The bindings ``event`` fires now, in deck order."""
        now = self._clock()
        if isinstance(event, MidiEvent):
            return self._midi(event, now)
        if isinstance(event, WebhookEvent):
            variables = {
                "body": event.body,
                "query": dict(event.query),
                "method": event.method,
                "path": event.path,
            }
            return [
                self._firing(b, variables, {}, now)
                for b in self._active("webhook")
                if b.trigger.path == event.path and b.trigger.method == event.method
            ]
        if isinstance(event, TopicEvent):
            variables = {"topic": event.topic, "payload": event.payload, "source": event.source}
            return [
                self._firing(b, dict(variables), {}, now)
                for b in self._active("event")
                if matches(b.trigger.topic, event.topic)
            ]
        if isinstance(event, OscEvent):
            variables = {"osc": list(event.args), "address": event.address}
            return [
                self._firing(b, variables, {}, now)
                for b in self._active("osc")
                if b.trigger.address == event.address
            ]
        raise TypeError(f"not an event: {event!r}")

    def webhook_bindings(self) -> list[Binding]:
        """Every webhook binding of the deck (whatever the mode), for the HTTP source."""
        return [b for b in self.deck.bindings if b.trigger.kind == "webhook"]

    def poll(self) -> list[Firing]:
        """What time passing fires: long presses held long enough, timers due."""
        now = self._clock()
        fired: list[Firing] = []
        for key, hold in list(self._holds.items()):
            if now >= hold.pressed + self._hold_s(hold.binding.trigger):  # as next_deadline says
                del self._holds[key]
                if hold.binding.mode is None or hold.binding.mode == self._mode:
                    variables = _note_variables(hold.event)
                    variables["held_ms"] = round((now - hold.pressed) * 1000)
                    fired.append(self._firing(hold.binding, variables, _context(hold.event), now))
        for name, due in list(self._timers.items()):
            if now < due:
                continue
            binding = self.deck.binding(name)
            if binding is None:
                del self._timers[name]
                continue
            self._timers[name] = self._next_due(binding.trigger, due, now)
            if binding.mode is None or binding.mode == self._mode:
                fired.append(self._firing(binding, {}, {}, now))
        return fired

    def next_deadline(self) -> float | None:
        """The clock time at which ``poll`` may fire something next (None: nothing pending)."""
        if not self._holds and not self._timers:
            return None  # the common case, asked after every event
        deadlines = [h.pressed + self._hold_s(h.binding.trigger) for h in self._holds.values()]
        deadlines.extend(self._timers.values())
        return min(deadlines, default=None)

    # -- MIDI ------------------------------------------------------------------

    def _midi(self, event: MidiEvent, now: float) -> list[Firing]:
        kind = event.type
        if kind == "note_on":
            return self._note_on(event, now)
        if kind == "note_off":
            return self._note_off(event, now)
        if kind == "control_change":
            return self._control(event, now)
        variables = {"value": event.value, "channel": event.channel}
        if kind == "program_change":
            variables["program"] = event.value
            candidates = self._matching("program", event)
            hits = [b for b in candidates if _within(event.value, b.trigger.program)]
        elif kind == "pitchwheel":
            hits = [
                b
                for b in self._matching("pitch_bend", event)
                if _within(event.value, b.trigger.value)
            ]
        else:  # aftertouch (channel pressure) and polytouch (one note)
            if event.note is not None:
                variables["note"] = event.note
            hits = [
                b
                for b in self._matching("aftertouch", event)
                if _within(event.value, b.trigger.value)
                and (b.trigger.note is None) == (event.note is None)
                and (event.note is None or _within(event.note, b.trigger.note))
            ]
        return [self._firing(b, dict(variables), _context(event), now) for b in hits]

    def _matching(self, kind: str, event: MidiEvent, point: int | None = None) -> Iterable[Binding]:
        """The active bindings of ``kind`` for the event's device and channel (and note or
        controller ``point``, for the kinds indexed by one), in deck order."""
        bindings = (
            self._active(kind)
            if point is None
            else self._by_point.get((self._mode, kind, point), ())
        )
        for binding in bindings:
            trigger = binding.trigger
            if (trigger.device is None or trigger.device == event.device) and (
                trigger.channel is None or trigger.channel == event.channel
            ):
                yield binding

    def _note_on(self, event: MidiEvent, now: float) -> list[Firing]:
        note, velocity = event.note, event.velocity
        assert note is not None and velocity is not None
        key = (event.device, event.channel, note)
        fired = [
            self._firing(b, _note_variables(event), _context(event), now)
            for b in self._matching("note_on", event, note)
            if _within(note, b.trigger.note) and _within(velocity, b.trigger.velocity)
        ]
        for binding in self._matching("long_press", event, note):
            if _within(note, binding.trigger.note) and _within(velocity, binding.trigger.velocity):
                self._holds[(binding.name, key)] = _Hold(binding, now, event, self._mode)
        for binding in self._matching("double_tap", event, note):
            trigger = binding.trigger
            if not (_within(note, trigger.note) and _within(velocity, trigger.velocity)):
                continue
            tap = (binding.name, key)
            first = self._taps.pop(tap, None)
            if first is not None and now - first <= self._window_s(trigger, "double_tap"):
                fired.append(self._firing(binding, _note_variables(event), _context(event), now))
            else:
                self._taps[tap] = now
        down = self._down.setdefault((event.device, event.channel), {})
        down[note] = now
        for binding in self._matching("chord", event):
            trigger = binding.trigger
            latch = (binding.name, event.device, event.channel)
            if note not in trigger.notes or latch in self._latched:
                continue
            times = [down.get(n) for n in trigger.notes]
            if all(t is not None for t in times):
                pressed = [t for t in times if t is not None]
                if max(pressed) - min(pressed) <= self._window_s(trigger, "chord"):
                    self._latched.add(latch)
                    variables = {
                        "notes": list(trigger.notes),
                        "velocity": velocity,
                        "channel": event.channel,
                    }
                    fired.append(self._firing(binding, variables, _context(event), now))
        return fired

    def _note_off(self, event: MidiEvent, now: float) -> list[Firing]:
        note = event.note
        assert note is not None
        key = (event.device, event.channel, note)
        for hold_key in [k for k in self._holds if k[1] == key]:
            del self._holds[hold_key]
        down = self._down.get((event.device, event.channel))
        if down is not None:
            down.pop(note, None)
        self._latched = {
            latch
            for latch in self._latched
            if not (
                latch[1:] == (event.device, event.channel)
                and (b := self.deck.binding(latch[0])) is not None
                and note in b.trigger.notes
            )
        }
        return [
            self._firing(b, _note_variables(event), _context(event), now)
            for b in self._matching("note_off", event, note)
            if _within(note, b.trigger.note)
        ]

    def _control(self, event: MidiEvent, now: float) -> list[Firing]:
        value, controller = event.value, event.controller
        assert value is not None and controller is not None
        fired = []
        for binding in self._matching("cc", event, controller):
            if binding.trigger.controller == controller and _within(value, binding.trigger.value):
                variables = {"controller": controller, "value": value, "channel": event.channel}
                fired.append(self._firing(binding, variables, _context(event), now))
        for binding in self._matching("encoder", event, controller):
            trigger = binding.trigger
            if trigger.controller != controller:
                continue
            step = decode_encoder(value, trigger.encoding)
            if (
                step == 0
                or (trigger.direction == "up" and step < 0)
                or (trigger.direction == "down" and step > 0)
            ):
                continue
            delta = accelerate(step, trigger.acceleration)
            variables = {
                "controller": controller,
                "value": value,
                "delta": delta,
                "channel": event.channel,
            }
            fired.append(self._firing(binding, variables, _context(event), now))
        return fired

    # -- helpers ---------------------------------------------------------------

    def _firing(
        self, binding: Binding, variables: dict[str, Any], context: dict[str, Any], now: float
    ) -> Firing:
        variables.update(
            binding=binding.name,
            mode=self._mode,
            timestamp=self._now_ms(),
            kind=binding.trigger.kind,
        )
        context = {"kind": binding.trigger.kind, **context}
        return Firing(binding, variables, context, self._mode, now)

    def _hold_s(self, trigger: Trigger) -> float:
        return (trigger.hold_ms or self.deck.timing.hold_ms) / 1000

    def _window_s(self, trigger: Trigger, kind: str) -> float:
        default = (
            self.deck.timing.double_tap_ms if kind == "double_tap" else self.deck.timing.chord_ms
        )
        return (trigger.window_ms or default) / 1000

    def _first_due(self, trigger: Trigger, now: float) -> float:
        if trigger.interval_ms is not None:
            return now + trigger.interval_ms / 1000
        return now + self._until(trigger.at or "00:00")

    def _next_due(self, trigger: Trigger, due: float, now: float) -> float:
        if trigger.interval_ms is not None:
            interval = trigger.interval_ms / 1000
            missed = int((now - due) // interval)  # a stalled loop fires once, not a burst
            return due + (missed + 1) * interval
        return now + max(self._until(trigger.at or "00:00"), 1.0)

    def _until(self, at: str) -> float:
        """Seconds from the wall clock's now to the next ``HH:MM[:SS]`` in the deck's zone.

        Across a DST change (docs/deck.md, "Timers and daylight saving"): a
        time the clocks skip (02:30 on a spring-forward night) comes at the
        end of the gap (03:00); a time they pass twice (02:30 on an autumn
        night) comes once, the first time. Instants are compared in UTC:
        subtracting two datetimes of one zone would ignore the change.
        """
        now = self._wall().astimezone(dt.UTC)
        parts = [int(p) for p in at.split(":")]
        clock_time = dt.time(parts[0], parts[1], parts[2] if len(parts) > 2 else 0)
        today = now.astimezone(self._zone).date()
        for days in range(3):  # today, tomorrow, or (past a skipped time) the day after
            day = today + dt.timedelta(days=days)
            target = _instant(dt.datetime.combine(day, clock_time), self._zone)
            if target > now:
                return (target - now).total_seconds()
        raise AssertionError("unreachable: a time of day comes within two days")


def machine_zone() -> dt.tzinfo:
    """The machine's time zone with its DST rules: ``TZ``, else /etc/localtime, else UTC.

    (``datetime.astimezone()`` gives a fixed offset, which is wrong after the next change.)
    """
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return zoneinfo.ZoneInfo(name)
        with open("/etc/localtime", "rb") as file:
            return zoneinfo.ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError, zoneinfo.ZoneInfoNotFoundError):
        return dt.UTC


def _instant(local: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The UTC instant of a naive local time: its first occurrence, or the end of a gap."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first  # it exists; fold=0 is the first of a repeated time
    # Skipped. fold=0 read it with the offset from before the change (an instant
    # after the change), fold=1 with the one after (an instant before it): the
    # change lies between; find its second.
    low = int(local.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    before = dt.datetime.fromtimestamp(low, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return dt.datetime.fromtimestamp(high, dt.UTC)


def _within(value: int | None, span: tuple[int, int] | None) -> bool:
    return value is not None and span is not None and span[0] <= value <= span[1]


def _note_variables(event: MidiEvent) -> dict[str, Any]:
    return {
        "note": event.note,
        "velocity": event.velocity,
        "channel": event.channel,
        "value": event.velocity,
    }


def _context(event: MidiEvent) -> dict[str, Any]:
    """The TriggerContext fields of a MIDI event (the kind is the binding's)."""
    context: dict[str, Any] = {"channel": event.channel}
    if event.note is not None:
        context["note"] = event.note
    if event.controller is not None:
        context["controller"] = event.controller
    if event.velocity is not None:
        context["velocity"] = event.velocity
    if event.value is not None:
        context["value"] = event.value
    elif event.velocity is not None:
        context["value"] = event.velocity
    return context
