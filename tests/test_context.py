"""The trigger context's knob-and-fader fields (kind, channel, note, controller, value).

Added compatibly: the core request's context gains only the fields a trigger
has, and components read them through ``trigger.context`` of
``wasmdeck:plugin@1.1.0`` (wit/plugin.wit); plugins written before see what
they always saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from componentgen import PLUGINS, build_python
from test_midimon_compat import midimon_plugin

import wasmdeck
from wasmdeck import TriggerContext

KNOB = TriggerContext(
    velocity=None, mode=1, timestamp=5, kind="cc", channel=3, controller=7, value=99
)


def test_fields_default_to_none_and_only_set_ones_are_in_the_dict() -> None:
    assert TriggerContext(velocity=1, timestamp=2).to_dict() == {
        "velocity": 1,
        "mode": None,
        "timestamp": 2,
    }
    assert KNOB.to_dict() == {
        "velocity": None, "mode": 1, "timestamp": 5, "kind": "cc", "channel": 3,
        "controller": 7, "value": 99,
    }  # fmt: skip
    assert TriggerContext.from_dict(KNOB.to_dict()) == KNOB


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("channel", 0, "channel must be an integer 1-16 or None, not 0"),
        ("channel", 17, "channel must be an integer 1-16"),
        ("note", 128, "note must be an integer 0-127"),
        ("controller", "7", "controller must be an integer 0-127 or None, not '7'"),
        ("value", 20000, "value must be an integer -8192-16383"),
        ("kind", "no spaces", "kind must be a short identifier or None"),
        ("kind", 'x","y', "kind must be a short identifier"),
    ],
)
def test_bad_fields_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TriggerContext(**{field: value})  # type: ignore[arg-type]


def test_core_request_gains_only_the_set_fields(behaviors: wasmdeck.Plugin) -> None:
    request = json.loads(behaviors.call("echo", {}, KNOB))
    assert request["context"] == {
        "velocity": None, "mode": 1, "current_mode": 1, "timestamp": 5, "kind": "cc",
        "channel": 3, "controller": 7, "value": 99,
    }  # fmt: skip
    old = json.loads(behaviors.call("echo", {}, TriggerContext(velocity=9, timestamp=1)))
    assert old["context"] == {"velocity": 9, "mode": None, "current_mode": None, "timestamp": 1}
    bend = TriggerContext(timestamp=1, kind="pitch_bend", channel=1, value=-8192)
    assert json.loads(behaviors.call("echo", {}, bend))["context"]["value"] == -8192


def test_a_midimon_plugin_still_runs_with_the_new_fields() -> None:
    plugin = wasmdeck.Plugin(midimon_plugin())
    pad = TriggerContext(velocity=100, timestamp=1, kind="note_on", channel=1, note=36)
    assert plugin.call("hello", {}, pad) == b""  # it checks velocity == 100


@pytest.fixture(scope="module")
def python_component() -> Path:
    return build_python(PLUGINS / "behaviors")


def test_a_component_reads_them_through_trigger_context(python_component: Path) -> None:
    plugin = wasmdeck.Plugin(python_component)
    assert json.loads(plugin.call("trigger", {}, KNOB)) == {
        "velocity": None, "mode": 1, "timestamp": 5, "kind": "cc", "channel": 3,
        "note": None, "controller": 7, "value": 99,
    }  # fmt: skip
    pad = TriggerContext(velocity=80, timestamp=2)
    assert json.loads(plugin.call("trigger", {}, pad)) == {
        "velocity": 80, "mode": None, "timestamp": 2, "kind": None, "channel": None,
        "note": None, "controller": None, "value": None,
    }  # fmt: skip
