"""The deck, as read from its file: plugins, devices, modes, bindings, feedback.

Plain frozen values; ``_parse.py`` builds them from TOML and says where a
value is wrong, ``_check.py`` judges them against the plugins. The format is
documented in docs/deck.md (``version = 1``; docs/architecture.md, the contracts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._curves import VelocityCurve
from ._positions import Path as KeyPath
from ._positions import PositionIndex
from ._profiles import Profile

__all__ = [
    "Action",
    "Binding",
    "Deck",
    "DeviceSpec",
    "Feedback",
    "MidiMessage",
    "ModeSpec",
    "PluginSpec",
    "SecretRef",
    "Timing",
    "Trigger",
    "WebhookAuth",
]

Range = tuple[int, int]

# The trigger kinds, and which of them come from MIDI notes.
TRIGGER_KINDS = (
    "note_on",
    "note_off",
    "cc",
    "encoder",
    "program",
    "pitch_bend",
    "aftertouch",
    "long_press",
    "double_tap",
    "chord",
    "webhook",
    "osc",
    "timer",
    "startup",
    "event",
)
MIDI_KINDS = frozenset(TRIGGER_KINDS[:10])
NOTE_KINDS = frozenset({"note_on", "note_off", "long_press", "double_tap"})


@dataclass(frozen=True, slots=True)
class Timing:
    """MIDIMon's defaults: a hold is 2 s, a double tap 300 ms, a chord 50 ms."""

    hold_ms: int = 2000
    double_tap_ms: int = 300
    chord_ms: int = 50


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret by reference: ``{ env = "NAME" }`` or ``{ secret = "NAME" }``."""

    source: str  # "env" | "secret"
    name: str


@dataclass(frozen=True, slots=True)
class PluginSpec:
    name: str
    installed: str | None = None  # an installed plugin's name
    path: Path | None = None  # a .wasm file or a package
    grants: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)  # SecretRef leaves
    timeout_ms: int | None = None
    pool: int = 1  # instances, so that this many calls run at once (Limits.pool)
    poll_ms: int | None = None  # a trigger plugin's poll interval, over its metadata's


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A MIDI controller, matched by port name (a shell-style pattern)."""

    name: str
    input: str | None = None
    output: str | None = None
    virtual: bool = False
    profile: str | None = None  # its pads and controls by name (deck/_profiles.py)


@dataclass(frozen=True, slots=True)
class ModeSpec:
    name: str
    number: int  # its place in the deck, sent as TriggerContext.mode
    color: int | None = None  # the velocity that lights a pad in this mode's colour


@dataclass(frozen=True, slots=True)
class WebhookAuth:
    scheme: str  # "bearer" | "hmac-sha256"
    secret: SecretRef
    header: str = ""  # where the HMAC signature comes (hex, optionally "sha256=" first)


@dataclass(frozen=True, slots=True)
class Trigger:
    """What fires a binding. Fields unused by ``kind`` stay at their defaults."""

    kind: str
    device: str | None = None
    channel: int | None = None  # 1-16; None matches any
    note: Range | None = None
    velocity: Range = (1, 127)
    controller: int | None = None
    value: Range | None = None
    program: Range | None = None
    notes: tuple[int, ...] = ()
    hold_ms: int | None = None
    window_ms: int | None = None
    encoding: str = "twos_complement"  # relative encoders
    direction: str = "any"  # "up" | "down" | "any"
    acceleration: float = 0.0
    method: str = "POST"
    path: str = ""
    auth: WebhookAuth | None = None
    address: str = ""
    interval_ms: int | None = None
    at: str | None = None  # "HH:MM" or "HH:MM:SS" in the deck's time zone
    topic: str = ""  # event triggers: a topic pattern of the event bus ("obs.*")


@dataclass(frozen=True, slots=True)
class MidiMessage:
    """A MIDI message an action or feedback sends; ints or placeholders."""

    type: str  # note_on | note_off | control_change | program_change
    device: str | None = None
    channel: int = 1
    note: int | str | None = None
    velocity: int | str | None = None
    controller: int | str | None = None
    value: int | str | None = None
    program: int | str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # "plugin" | "mode" | "delay" | "midi"
    plugin: str | None = None
    action: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    velocity: VelocityCurve = field(default_factory=VelocityCurve)
    mode: str | None = None
    delay_ms: int = 0
    midi: MidiMessage | None = None
    where: KeyPath = ()


@dataclass(frozen=True, slots=True)
class Feedback:
    """MIDI sent back to the controller: a pad lit on press, or from a plugin's result."""

    device: str | None = None
    channel: int | None = None
    note: int | None = None
    controller: int | None = None
    on: int | str = 127  # a velocity/value, or "mode": the current mode's colour
    off: int = 0
    state: str | None = None  # "result.PATH": lit when the plugin's result says so
    equals: Any = None
    group: str | None = None  # one pad of a group lit at a time


@dataclass(frozen=True, slots=True)
class Binding:
    name: str
    trigger: Trigger
    actions: tuple[Action, ...]
    mode: str | None = None  # None: global, in every mode
    feedback: Feedback | None = None
    where: KeyPath = ()


@dataclass(frozen=True, slots=True)
class Listen:
    webhooks: tuple[str, int] | None = None
    osc: tuple[str, int] | None = None
    webhook_max_body: int = 64 * 1024
    webhook_rate_per_minute: int = 120


@dataclass(frozen=True, slots=True)
class Deck:
    """A parsed deck file (docs/deck.md): its plugins, devices, modes and bindings."""

    source: Path | None
    plugins: Mapping[str, PluginSpec]
    devices: Mapping[str, DeviceSpec]
    modes: Mapping[str, ModeSpec]
    start_mode: str | None
    bindings: tuple[Binding, ...]
    timing: Timing = field(default_factory=Timing)
    timezone: str | None = None
    listen: Listen = field(default_factory=Listen)
    profiles: Mapping[str, Profile] = field(
        default_factory=dict
    )  # the deck's own and built-ins used
    positions: PositionIndex | None = field(default=None, compare=False, repr=False)

    def binding(self, name: str) -> Binding | None:
        return next((b for b in self.bindings if b.name == name), None)
