"""Metadata parsing and the trigger context, on their own."""

from __future__ import annotations

import pytest

from wasmdeck import InvalidMetadata, PluginMetadata, TriggerContext


def parse(**fields: object) -> PluginMetadata:
    base: dict[str, object] = {"name": "p", "version": "1.0.0", "description": "d"}
    base.update(fields)
    return PluginMetadata.from_dict(base, plugin="p")


def test_full_metadata() -> None:
    meta = parse(
        author="A",
        license="MIT",
        homepage="https://example.com",
        actions=[
            {"name": "dim", "description": "dim lights", "params": {"type": "object"}},
            "toggle",
        ],
        capabilities=["network", {"kind": "network", "hosts": ["bridge.local"]}],
        future_field=[1, 2],
    )
    assert [a.name for a in meta.actions or ()] == ["dim", "toggle"]
    assert meta.action("dim").params == {"type": "object"}  # type: ignore[union-attr]
    assert meta.declares("dim") and not meta.declares("explode")
    assert meta.capabilities[1].scope == {"hosts": ["bridge.local"]}
    assert meta.extra == {"future_field": [1, 2]}


def test_no_actions_list_accepts_everything() -> None:
    meta = parse()
    assert meta.actions is None and meta.declares("anything")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "1-128 printable characters"),
        ({"name": "a\nb"}, "printable"),
        ({"version": " "}, "version must not be empty"),
        ({"author": 5}, "'author' must be a string"),
        ({"actions": [{"description": "x"}]}, r"actions\[0\] needs a non-empty string 'name'"),
        ({"actions": [{"name": "a", "params": "object"}]}, "must be a JSON Schema object"),
        ({"capabilities": [{"hosts": []}]}, "kind None must be a lowercase name"),
        ({"capabilities": "network"}, "'capabilities' must be a list"),
        ({"type": "trigger"}, "a trigger plugin must say how the host polls it: metadata poll"),
        ({"poll": {"action": "a", "interval_ms": 50}}, 'poll is for trigger plugins: add "type"'),
        ({"type": "trigger", "poll": "tick"}, "metadata poll must be an object"),
        ({"type": "trigger", "poll": {"interval_ms": 50}}, "action must name the action"),
        (
            {"type": "trigger", "actions": ["a"], "poll": {"action": "b", "interval_ms": 50}},
            "poll: action 'b' is not one of the declared actions",
        ),
        (
            {"type": "trigger", "poll": {"action": "a", "interval_ms": 5}},
            "interval_ms must be an integer 10-86400000 \\(milliseconds\\), not 5",
        ),
        ({"type": "trigger", "poll": {"action": "a", "interval_ms": True}}, "not True"),
    ],
)
def test_invalid_metadata(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidMetadata, match=message) as caught:
        parse(**fields)
    assert caught.value.plugin == "p"


def test_a_trigger_plugin_declares_its_poll() -> None:
    meta = parse(type="trigger", actions=["tick"], poll={"action": "tick", "interval_ms": 250})
    assert meta.type == "trigger"
    assert (meta.poll.action, meta.poll.interval_ms) == ("tick", 250)  # type: ignore[union-attr]
    assert "poll" not in meta.extra and parse().poll is None


def test_metadata_size_cap() -> None:
    with pytest.raises(InvalidMetadata, match="more than the 1048576 allowed"):
        PluginMetadata.from_json(b" " * (1 << 20 + 1))


def test_trigger_context_validation() -> None:
    assert TriggerContext(velocity=0).velocity == 0
    assert TriggerContext(velocity=127, mode=3, timestamp=5).to_dict() == {
        "velocity": 127,
        "mode": 3,
        "timestamp": 5,
    }
    for bad in (
        {"velocity": 128},
        {"velocity": -1},
        {"velocity": True},
        {"mode": "2"},
        {"timestamp": -3},
    ):
        with pytest.raises(ValueError):
            TriggerContext(**bad)  # type: ignore[arg-type]


def test_trigger_context_defaults_to_now() -> None:
    import time

    before = time.time_ns() // 1_000_000
    context = TriggerContext()
    assert before <= context.timestamp <= time.time_ns() // 1_000_000
