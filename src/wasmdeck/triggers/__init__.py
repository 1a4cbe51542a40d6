"""The trigger engine: MIDI, webhook, OSC and timer events matched to a deck's bindings."""

from ._engine import Firing, TriggerEngine, UnknownMode, decode_encoder
from ._events import Event, MidiEvent, OscEvent, TopicEvent, WebhookEvent

__all__ = [
    "Event",
    "Firing",
    "MidiEvent",
    "OscEvent",
    "TopicEvent",
    "TriggerEngine",
    "UnknownMode",
    "WebhookEvent",
    "decode_encoder",
]
