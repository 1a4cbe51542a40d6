"""What makes a live reload fast without checking less (benchmarks/deck_reload.py).

The overlap check compares each binding only with those it could meet;
a reload checks the plugins it reuses from their running instances.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from wasmdeck.daemon._loading import prepare
from wasmdeck.deck import DeckError, check_deck, parse_deck
from wasmdeck.deck._check import _modes_meet, _triggers_meet


def mixed_deck() -> str:
    """Bindings of every matchable kind, many of which overlap in some mode."""
    triggers = [
        'kind = "note_on", note = 36',
        'kind = "note_on", note = 36, velocity = [1, 63]',
        'kind = "note_on", note = [30, 40]',
        'kind = "note_on", note = 37, device = "pad"',
        'kind = "note_on", note = 37, device = "keys"',
        'kind = "note_on", note = 38, channel = 2',
        'kind = "long_press", note = 36',
        'kind = "double_tap", note = [36, 37]',
        'kind = "note_off", note = 36',
        'kind = "cc", controller = 7',
        'kind = "cc", controller = 7, value = [0, 63]',
        'kind = "cc", controller = 8',
        'kind = "encoder", controller = 7',
        'kind = "encoder", controller = 9, direction = "up"',
        'kind = "encoder", controller = 9, direction = "down"',
        'kind = "program", program = [0, 3]',
        'kind = "program", program = 2',
        'kind = "pitch_bend", value = [0, 100]',
        'kind = "aftertouch", value = [1, 127]',
        'kind = "chord", notes = [48, 52]',
        'kind = "webhook", path = "/a", auth = { bearer = { env = "T" } }',
        'kind = "webhook", path = "/a", method = "PUT", auth = { bearer = { env = "T" } }',
        'kind = "osc", address = "/x"',
        'kind = "startup"',
    ]
    lines = [
        "version = 1",
        '[devices.pad]\ninput = "Pad*"\n[devices.keys]\ninput = "Keys*"',
        "[modes.live]\n[modes.edit]",
    ]
    for n, (trigger, mode) in enumerate(itertools.product(triggers, (None, "live", "edit"))):
        lines.append(f'[[bindings]]\nname = "b{n}"')
        if mode is not None:
            lines.append(f'mode = "{mode}"')
        lines.append(f'trigger = {{ {trigger} }}\nactions = [{{ mode = "edit" }}]')
    return "\n".join(lines) + "\n"


def test_the_overlap_check_finds_what_comparing_every_pair_finds() -> None:
    deck = parse_deck(mixed_deck(), source=Path("/nonexistent/deck.toml"))
    expected = [
        (later.name, earlier.name)
        for i, later in enumerate(deck.bindings)
        for earlier in deck.bindings[:i]
        if _modes_meet(later, earlier) and _triggers_meet(later.trigger, earlier.trigger)
    ]
    assert len(expected) > 50  # the deck overlaps a lot, in many ways
    with pytest.raises(DeckError) as caught:
        check_deck(deck, {})
    found = [
        (p.message.split("'")[1], p.message.split("'")[3])
        for p in caught.value.problems
        if "overlaps" in p.message
    ]
    assert found == expected


DECK = """\
version = 1
[plugins.velocity]
path = "velocity.wasm"
{spec}
[[bindings]]
name = "hit"
trigger = {{ kind = "note_on", note = 36 }}
actions = [{{ plugin = "velocity", action = "pick", params = {{ choices = ["{choice}"] }} }}]
"""


def test_a_reload_checks_a_reused_plugin_as_it_runs(tmp_path: Path, velocity_wasm: Path) -> None:
    shutil.copy(velocity_wasm, tmp_path / "velocity.wasm")
    path = tmp_path / "deck.toml"
    path.write_text(DECK.format(spec="", choice="a"))
    ready = prepare(path)
    running = {name: (ready.deck.plugins[name], p) for name, p in ready.plugins.items()}
    try:
        # The file on disk is no plugin any more; the running instance is.
        (tmp_path / "velocity.wasm").write_bytes(b"\0asm not a module")
        path.write_text(DECK.format(spec="", choice="b"))
        edited = prepare(path, running)
        assert edited.reused == {"velocity"}
        assert edited.plugins["velocity"] is ready.plugins["velocity"]
        # Checked against the running plugin's metadata: an undeclared action is refused.
        path.write_text(DECK.format(spec="", choice="b").replace('"pick"', '"pik"'))
        with pytest.raises(DeckError, match="does not declare the action 'pik'"):
            prepare(path, running)
        # A changed spec loads (and checks) the file again.
        path.write_text(DECK.format(spec="timeout_ms = 500", choice="b"))
        with pytest.raises(DeckError, match="cannot be loaded"):
            prepare(path, running)
    finally:
        ready.plugins["velocity"].close()


def test_a_reload_loads_what_changed_on_disk_and_says_whose_state_moves(
    tmp_path: Path, velocity_wasm: Path
) -> None:
    """``loaded`` (each running plugin's signature as loaded): a file replaced under
    the same spec is loaded anew; ``carried`` names the running plugins whose new
    version takes their state (docs/reload.md): not across a config or pool change,
    nor to another plugin under the same deck name."""
    from watgen import abi_module

    shutil.copy(velocity_wasm, tmp_path / "velocity.wasm")
    path = tmp_path / "deck.toml"
    path.write_text(DECK.format(spec="", choice="a"))
    ready = prepare(path)
    running = {name: (ready.deck.plugins[name], p) for name, p in ready.plugins.items()}
    loaded = dict(ready.signatures)
    made = [ready]
    try:
        same = prepare(path, running, loaded=loaded)
        assert (same.reused, same.carried) == ({"velocity"}, set())
        partial = tmp_path / ".velocity.partial"  # a build writes a new file in place
        shutil.copy(velocity_wasm, partial)
        partial.replace(tmp_path / "velocity.wasm")
        for spec, carried in [
            ("", True),  # the module changed
            ('grants = ["kv"]', True),
            ("timeout_ms = 500", True),
            ('config = { colour = "red" }', False),
            ("pool = 2", False),
        ]:
            path.write_text(DECK.format(spec=spec, choice="a"))
            made.append(edited := prepare(path, running, loaded=loaded))
            assert edited.reused == set(), spec
            assert edited.carried == ({"velocity"} if carried else set()), spec
        other = {"name": "other", "version": "1.0.0", "description": "not velocity"}
        other["actions"] = [{"name": "pick", "description": "another plugin's pick"}]
        (tmp_path / "other.wasm").write_bytes(abi_module(metadata=other))
        path.write_text(DECK.format(spec="", choice="a").replace("velocity.wasm", "other.wasm"))
        made.append(edited := prepare(path, running, loaded=loaded))
        assert (edited.reused, edited.carried) == (set(), set())
    finally:
        for each in made:
            for name, plugin in each.plugins.items():
                if name not in each.reused:
                    plugin.close()
