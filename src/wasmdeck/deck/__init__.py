"""The deck: the TOML file that binds triggers to plugin actions (docs/deck.md)."""

from ._check import PluginFacts, check_deck, plugin_facts
from ._curves import VelocityCurve
from ._model import (
    Action,
    Binding,
    Deck,
    DeviceSpec,
    Feedback,
    MidiMessage,
    ModeSpec,
    PluginSpec,
    SecretRef,
    Timing,
    Trigger,
    WebhookAuth,
)
from ._params import TemplateError, render
from ._parse import parse_deck, port_matches, read_deck, trigger_variables
from ._problems import DeckError, DeckProblem
from ._profiles import BUILTIN_PROFILES, Profile
from ._secrets import SecretMissing, resolve_secret, resolve_secrets

__all__ = [
    "BUILTIN_PROFILES",
    "Action",
    "Binding",
    "Deck",
    "DeckError",
    "DeckProblem",
    "DeviceSpec",
    "Feedback",
    "MidiMessage",
    "ModeSpec",
    "PluginFacts",
    "PluginSpec",
    "Profile",
    "SecretMissing",
    "SecretRef",
    "TemplateError",
    "Timing",
    "Trigger",
    "VelocityCurve",
    "WebhookAuth",
    "check_deck",
    "parse_deck",
    "plugin_facts",
    "port_matches",
    "read_deck",
    "render",
    "resolve_secret",
    "resolve_secrets",
    "trigger_variables",
]
