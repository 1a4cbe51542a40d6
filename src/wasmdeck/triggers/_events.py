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
