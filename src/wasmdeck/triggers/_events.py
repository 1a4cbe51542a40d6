"""The events the trigger engine matches: MIDI messages, webhook requests, OSC, timers,
and the events plugins (and the host) publish on the bus.

Plain values, made by the sources in the daemon (mido messages, HTTP
requests, OSC packets) so the engine needs none of those libraries. MIDI
channels are 1-16 here, as on controllers and in the deck; a note-on with
velocity 0 is a note-off (the MIDI running-status convention), and the
sources normalize it before the engine sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "MidiEvent", "OscEvent", "TopicEvent", "WebhookEvent"]

# The MIDI message types, named as mido names them.
MIDI_TYPES = (
    "note_on",
    "note_off",
    "control_change",
    "program_change",
    "pitchwheel",
    "aftertouch",
    "polytouch",
)

# Channel messages by status (high nibble), as MIDI 1.0 numbers them.
_BY_STATUS = {
    0x80: "note_off",
    0x90: "note_on",
    0xA0: "polytouch",
    0xB0: "control_change",
    0xC0: "program_change",
    0xD0: "aftertouch",
    0xE0: "pitchwheel",
}
_TWO_BYTES = ("program_change", "aftertouch")


@dataclass(frozen=True, slots=True)
class MidiEvent:
    type: str  # one of MIDI_TYPES
    channel: int = 1  # 1-16
    note: int | None = None
    velocity: int | None = None
    controller: int | None = None
    value: int | None = None  # CC value, program, pitch (-8192..8191) or pressure
    device: str | None = None  # the deck device the port belongs to

    @classmethod
    def from_bytes(cls, data: list[int], device: str | None = None) -> MidiEvent | None:
        """One MIDI message's bytes as an event, as ``from_mido`` reads mido's parse of
        them; None for messages no trigger uses and for malformed ones.

        Parsed here rather than by mido, whose checks cost more than the rest of
        a note's way to the engine at 5,000 events/s (benchmarks/sustained_load.py).
        """
        if not data:
            return None
        status = data[0]
        kind = _BY_STATUS.get(status & 0xF0)
        if kind is None or len(data) != (2 if kind in _TWO_BYTES else 3):
            return None  # system messages (clock, sysex, ...) or a wrong length
        for byte in data[1:]:
            if type(byte) is not int or not 0 <= byte <= 127:
                return None
        channel = (status & 0x0F) + 1
        if kind == "note_on" and data[2] == 0:
            return cls("note_off", channel, note=data[1], velocity=0, device=device)
        if kind in ("note_on", "note_off"):
            return cls(kind, channel, note=data[1], velocity=data[2], device=device)
        if kind == "control_change":
            return cls(kind, channel, controller=data[1], value=data[2], device=device)
        if kind == "polytouch":
            return cls(kind, channel, note=data[1], value=data[2], device=device)
        if kind == "pitchwheel":
            return cls(kind, channel, value=(data[1] | data[2] << 7) - 8192, device=device)
        return cls(kind, channel, value=data[1], device=device)  # program, aftertouch

    @classmethod
    def from_mido(cls, message: Any, device: str | None = None) -> MidiEvent | None:
        """A mido message as an event; None for messages no trigger uses (clock, sysex)."""
        kind = message.type
        channel = getattr(message, "channel", 0) + 1
        if kind == "note_on" and message.velocity == 0:
            return cls("note_off", channel, note=message.note, velocity=0, device=device)
        if kind in ("note_on", "note_off"):
            return cls(kind, channel, note=message.note, velocity=message.velocity, device=device)
        if kind == "control_change":
            return cls(
                kind, channel, controller=message.control, value=message.value, device=device
            )
        if kind == "program_change":
            return cls(kind, channel, value=message.program, device=device)
        if kind == "pitchwheel":
            return cls(kind, channel, value=message.pitch, device=device)
        if kind == "aftertouch":
            return cls(kind, channel, value=message.value, device=device)
        if kind == "polytouch":
            return cls(kind, channel, note=message.note, value=message.value, device=device)
        return None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """An HTTP request that passed its binding's authentication."""

    method: str
    path: str
    body: Any = None  # the JSON body, or None
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OscEvent:
    address: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicEvent:
    """An event of the bus (host/_bus.py): its topic, JSON payload and publisher."""

    topic: str
    payload: Any = None
    source: str = ""


Event = MidiEvent | WebhookEvent | OscEvent | TopicEvent
