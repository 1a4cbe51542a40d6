"""The deck file (docs/deck.md): parsing, positions, checks against real plugins, the CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_example_obs import obs_wasm  # noqa: F401  (the OBS example, built once)

from wasmdeck.deck import (
    DeckError,
    SecretRef,
    TemplateError,
    VelocityCurve,
    check_deck,
    parse_deck,
    plugin_facts,
    read_deck,
    render,
    resolve_secrets,
)
from wasmdeck.deck._positions import PositionIndex
from wasmdeck.deck._secrets import SecretMissing

ROOT = Path(__file__).resolve().parent.parent


def doc_example() -> str:
    text = (ROOT / "docs" / "deck.md").read_text()
    section = text.split("## A complete example", 1)[1]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


@pytest.fixture
def deck_dir(tmp_path: Path, velocity_wasm: Path, obs_wasm: Path) -> Path:  # noqa: F811
    """A folder with the docs' example deck and the real plugins it names."""
    (tmp_path / "plugins").mkdir()
    shutil.copy(velocity_wasm, tmp_path / "plugins" / "velocity.wasm")
    shutil.copy(obs_wasm, tmp_path / "plugins" / "obs_control.wasm")
    (tmp_path / "deck.toml").write_text(doc_example())
    return tmp_path


def problems_of(text: str, tmp_path: Path | None = None, **facts: object) -> list[str]:
    """The problem lines for a deck text ("LINE:COLUMN: message"), parse and check."""
    source = (tmp_path or Path("/nonexistent")) / "deck.toml"
    try:
        deck = parse_deck(text, source=source)
        check_deck(deck, facts or None)  # type: ignore[arg-type]
    except DeckError as exc:
        return [f"{p.line}:{p.column}: {p.message}" for p in exc.problems if p.severity == "error"]
    return []


# -- the documented example ------------------------------------------------------


def test_docs_example_loads_and_checks_against_the_real_plugins(deck_dir: Path) -> None:
    deck = read_deck(deck_dir / "deck.toml")
    warnings = check_deck(deck)
    assert warnings == []
    assert list(deck.modes) == ["live", "edit"]
    assert deck.start_mode == "live"
    assert deck.timing.hold_ms == 2000 and deck.timing.chord_ms == 50
    assert {b.trigger.kind for b in deck.bindings} == {
        "note_on", "cc", "encoder", "program", "pitch_bend", "aftertouch", "long_press",
        "double_tap", "chord", "webhook", "osc", "timer", "startup", "event",
    }  # fmt: skip
    obs = deck.plugins["obs"]
    assert obs.config["password"] == SecretRef("env", "OBS_PASSWORD")
    assert obs.grants == ("network:127.0.0.1:4455",)
    live = deck.binding("scene-live")
    assert live is not None and live.mode == "live"
    assert live.trigger.note == (36, 36) and live.trigger.channel == 1
    assert live.feedback is not None and live.feedback.note == 36
    assert live.feedback.on == "mode" and live.feedback.group == "scenes"
    record = deck.binding("record")
    assert record is not None
    assert [a.kind for a in record.actions] == ["plugin", "delay", "midi"]
    assert record.trigger.notes == (48, 52, 55)


def test_check_command_accepts_the_example(deck_dir: Path) -> None:
    result = wasmdeck_cli("check", str(deck_dir / "deck.toml"))
    assert result.returncode == 0, result.stderr
    assert "ok (2 plugins, 18 bindings, 2 modes)" in result.stdout


def test_check_command_reports_problems_with_positions(deck_dir: Path) -> None:
    text = doc_example().replace(
        'action = "set-scene", params = { scene = "Live" }', 'action = "set-scen"'
    )
    (deck_dir / "deck.toml").write_text(text)
    result = wasmdeck_cli("check", str(deck_dir / "deck.toml"))
    assert result.returncode == 4
    line = next(n for n, t in enumerate(text.splitlines(), 1) if '"set-scen"' in t)
    column = text.splitlines()[line - 1].index('"set-scen"') + 1
    assert (
        f"{deck_dir / 'deck.toml'}:{line}:{column}: plugin 'obs' does not declare" in result.stderr
    )
    assert "Traceback" not in result.stderr


def wasmdeck_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "wasmdeck", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


# -- semantic checks against a real plugin, each at its line and column -----------

VELOCITY_DECK = """\
version = 1
[plugins.velocity]
path = "{wasm}"
[modes.live]
[modes.edit]
[[bindings]]
name = "a"
mode = "live"
trigger = {{ kind = "note_on", note = [36, 40] }}
actions = [{{ plugin = "velocity", action = "scale", params = {{ min = 0 }} }}]
"""


def velocity_deck(wasm: Path, extra: str) -> str:
    return VELOCITY_DECK.format(wasm=wasm) + extra


def test_valid_deck_has_no_problems(velocity_wasm: Path) -> None:
    assert problems_of(velocity_deck(velocity_wasm, "")) == []


def test_unknown_plugin(velocity_wasm: Path) -> None:
    extra = '[[bindings]]\nname = "b"\ntrigger = { kind = "cc", controller = 1 }\n'
    extra += 'actions = [{ plugin = "velocty", action = "scale" }]\n'
    assert problems_of(velocity_deck(velocity_wasm, extra)) == [
        "14:23: unknown plugin 'velocty'; the deck's plugins: velocity"
    ]


def test_undeclared_action(velocity_wasm: Path) -> None:
    text = velocity_deck(velocity_wasm, "").replace('"scale"', '"shrink"')
    assert problems_of(text) == [
        "10:44: plugin 'velocity' does not declare the action 'shrink'; it declares: pick, scale"
    ]


def test_params_against_the_actions_schema(velocity_wasm: Path) -> None:
    text = velocity_deck(velocity_wasm, "").replace("min = 0", 'min = "low"')
    assert problems_of(text) == [
        "10:70: params of velocity.scale.min: 'low' is not of type 'integer'"
    ]


def test_placeholders_stand_for_their_types_in_the_schema_check(velocity_wasm: Path) -> None:
    assert (
        problems_of(velocity_deck(velocity_wasm, "").replace("min = 0", 'min = "{velocity}"')) == []
    )
    extra = '[[bindings]]\nname = "p"\ntrigger = { kind = "note_on", note = 50 }\n'
    extra += (
        'actions = [{ plugin = "velocity", action = "pick", params = { choices = "{note}" } }]\n'
    )
    assert problems_of(velocity_deck(velocity_wasm, extra)) == [
        "14:73: params of velocity.pick.choices: 60 is not of type 'array'"
    ]


def test_placeholder_the_trigger_does_not_have(velocity_wasm: Path) -> None:
    text = velocity_deck(velocity_wasm, "").replace("min = 0", 'min = "{body.n}"')
    [problem] = problems_of(text)
    assert problem.startswith("10:70: {body.n}: a note_on trigger has no 'body'; it has: binding,")


def test_overlapping_bindings(velocity_wasm: Path) -> None:
    same_mode = '[[bindings]]\nname = "b"\nmode = "live"\n'
    same_mode += 'trigger = { kind = "note_on", note = 40, velocity = [100, 127] }\n'
    same_mode += 'actions = [{ plugin = "velocity", action = "scale" }]\n'
    assert problems_of(velocity_deck(velocity_wasm, same_mode)) == [
        "14:11: binding 'b' overlaps binding 'a' (line 6): both fire on the same note_on in mode 'live'"
    ]
    other_mode = same_mode.replace('"live"', '"edit"')
    assert problems_of(velocity_deck(velocity_wasm, other_mode)) == []
    other_note = same_mode.replace("note = 40", "note = 41")
    assert problems_of(velocity_deck(velocity_wasm, other_note)) == []
    global_ = same_mode.replace('mode = "live"\n', "")
    assert "in every mode" in problems_of(velocity_deck(velocity_wasm, global_))[0]
    long_press = same_mode.replace("note_on", "long_press")
    assert problems_of(velocity_deck(velocity_wasm, long_press)) == []


def test_a_grant_the_plugin_lacks(obs_wasm: Path) -> None:  # noqa: F811
    text = f"""version = 1
[plugins.obs]
path = "{obs_wasm}"
[[bindings]]
name = "rec"
trigger = {{ kind = "startup" }}
actions = [{{ plugin = "obs", action = "toggle-record" }}]
"""
    assert problems_of(text) == [
        "2:1: plugin 'obs' asks for the 'network' capability, which it is not granted "
        "(grant it: grants = [\"network:...\"], or 'wasmdeck grant' for an installed plugin)"
    ]
    granted = text.replace('wasm"\n', 'wasm"\ngrants = ["network:127.0.0.1:4455"]\n')
    assert problems_of(granted) == []


def test_a_grant_not_asked_for_is_a_warning(velocity_wasm: Path) -> None:
    text = velocity_deck(velocity_wasm, "").replace('wasm"\n', 'wasm"\ngrants = ["kv"]\n', 1)
    warnings = check_deck(parse_deck(text, source="deck.toml"))
    assert [str(w) for w in warnings] == [
        "deck.toml:4:10: warning: plugin 'velocity' is granted 'kv', which it does not ask for"
    ]


def test_a_plugin_that_cannot_be_loaded(tmp_path: Path) -> None:
    (tmp_path / "bad.wasm").write_bytes(b"\0asm\x01\0\0\0garbage")
    text = 'version = 1\n[plugins.bad]\npath = "bad.wasm"\n'
    [problem] = problems_of(text, tmp_path)
    assert problem.startswith("3:8: plugin 'bad' cannot be loaded: ")
    [missing] = problems_of(text.replace("bad.wasm", "gone.wasm"), tmp_path)
    assert missing == "3:8: plugin 'bad' cannot be loaded: No such file or directory"


# -- structural problems (no plugin needed) --------------------------------------


def test_syntax_errors_have_the_position_tomllib_gives() -> None:
    assert problems_of("version = 1\n[plugins\n") == [
        "2:9: TOML syntax: Expected ']' at the end of a table declaration"
    ]


def test_every_structural_problem_is_reported_at_once() -> None:
    text = """\
version = 2
start_mode = "nope"
[timing]
hold_ms = -5
[devices.pad]
input = "Launchpad*"
[modes.live]
colour = 3
[[bindings]]
name = "x"
trigger = { kind = "note_on", note = 200, device = "pda" }
actions = [{ mode = "gone" }]
[[bindings]]
name = "x"
trigger = { kind = "knob" }
actions = []
"""
    assert problems_of(text) == [
        "1:11: unsupported deck version 2; this wasmdeck reads version 1",
        "4:11: hold_ms must be an integer 1-60000, not -5",
        "8:10: unknown key 'colour' in modes.live; expected one of: color",
        "2:14: start_mode 'nope' is not a declared mode",
        "11:52: unknown device 'pda'; devices: pad",
        "11:38: note must be an integer 0-127 or a range [low, high] within it, not 200",
        "12:21: unknown mode 'gone'; modes: live",
        "14:8: binding name 'x' is already used on line 9",
    ]


def test_secrets_are_referenced_never_inlined() -> None:
    text = 'version = 1\n[plugins.obs]\ninstalled = "obs"\nconfig = { url = "ws://x", password = "hunter2" }\n'
    [problem] = problems_of(text)
    assert problem.startswith("4:39: password looks like a secret: reference it with { env = ")
    hook = """version = 1
[[bindings]]
name = "h"
trigger = { kind = "webhook", path = "/x", auth = { bearer = "hunter2" } }
actions = [{ mode = "m" }]
[modes.m]
"""
    [problem] = problems_of(hook)
    assert problem.startswith("4:62: bindings[0].trigger.auth.bearer must reference a secret")


def test_webhook_triggers_need_auth() -> None:
    hook = 'version = 1\n[modes.m]\n[[bindings]]\nname = "h"\n'
    hook += 'trigger = { kind = "webhook", path = "/x" }\nactions = [{ mode = "m" }]\n'
    [problem] = problems_of(hook)
    assert problem.startswith("5:11: a webhook needs auth = { bearer = ")


# -- the position index ------------------------------------------------------------


def test_positions_of_tables_arrays_and_inline_values() -> None:
    text = """\
# comment
version = 1
[plugins."my obs"]
config.url = 'ws://x'   # dotted key
[[bindings]]
name = \"\"\"multi
line\"\"\"
[bindings.trigger]
kind = "cc"
[[bindings.actions]]
mode = "a"
[[bindings.actions]]
delay_ms = 5
[[bindings]]
actions = [
  { x = [1, { y = 2 }] },
]
"""
    index = PositionIndex(text)
    assert index.where(("version",)) == (2, 11)
    assert index.where(("plugins", "my obs", "config", "url")) == (4, 14)
    assert index.where(("bindings", 0, "name")) == (6, 8)
    assert index.where(("bindings", 0, "trigger", "kind")) == (9, 8)
    assert index.where(("bindings", 0, "actions", 1, "delay_ms")) == (13, 12)
    assert index.where(("bindings", 1, "actions", 0, "x", 1, "y")) == (16, 19)
    assert index.where(("bindings", 1, "nothing", "here")) == (14, 1)  # the nearest ancestor


# -- substitution, curves, secrets --------------------------------------------------


def test_render_keeps_types_and_interpolates() -> None:
    variables = {"velocity": 100, "body": {"scene": "Live", "items": [{"id": 7}]}, "osc": [0.5]}
    params = {
        "v": "{velocity}",
        "scene": "{body.scene}",
        "text": "Scene {body.scene} at {velocity} {{literal}}",
        "deep": ["{body.items.0.id}", "{osc.0}"],
        "plain": 3,
    }
    assert render(params, variables) == {
        "v": 100,
        "scene": "Live",
        "text": "Scene Live at 100 {literal}",
        "deep": [7, 0.5],
        "plain": 3,
    }
    with pytest.raises(TemplateError, match=r"\{body.nope\}: body has no 'nope'"):
        render("{body.nope}", variables)
    with pytest.raises(TemplateError, match=r"the trigger has no value \{note\}"):
        render("{note}", variables)


def test_velocity_curves() -> None:
    assert VelocityCurve().apply(90) == 90
    assert VelocityCurve("fixed", value=64).apply(3) == 64
    assert [VelocityCurve("linear", min=40, max=100).apply(v) for v in (0, 127)] == [40, 100]
    exp, log, s = (VelocityCurve(c) for c in ("exponential", "logarithmic", "s_curve"))
    for curve in (exp, log, s):
        assert curve.apply(0) == 0 and curve.apply(127) == 127
        values = [curve.apply(v) for v in range(128)]
        assert values == sorted(values)  # monotonic
    assert exp.apply(64) < 64 < log.apply(64)
    assert s.apply(16) < 16 and s.apply(111) > 111 and abs(s.apply(64) - 64) <= 1


def test_secrets_resolve_from_env_and_private_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path))
    (tmp_path / "secrets").mkdir()
    secret = tmp_path / "secrets" / "obs"
    secret.write_text("hunter2\n")
    secret.chmod(0o600)
    config = {"password": SecretRef("secret", "obs"), "nested": {"token": SecretRef("env", "TOK")}}
    assert resolve_secrets(config, {"TOK": "abc"}) == {
        "password": "hunter2",
        "nested": {"token": "abc"},
    }
    with pytest.raises(SecretMissing, match="TOK is not set"):
        resolve_secrets(config, {})
    secret.chmod(0o644)
    with pytest.raises(SecretMissing, match="mode 0600"):
        resolve_secrets(config, {"TOK": "abc"})


def test_plugin_facts_of_a_file(velocity_wasm: Path, tmp_path: Path) -> None:
    deck = parse_deck(
        f'version = 1\n[plugins.v]\npath = "{velocity_wasm}"\n', source=tmp_path / "d.toml"
    )
    facts = plugin_facts(deck.plugins["v"])
    assert facts.metadata.name == "velocity" and not facts.grants


# -- device profiles -----------------------------------------------------------------

PROFILE_DECK = """\
version = 1
[profiles.mixer]
pads = { play = 36, stop = 37, rec = 38 }
controls = { volume = 7, jog = 16 }
[devices.desk]
input = "Desk*"
output = "Desk*"
profile = "mixer"
[devices.lp]
input = "Launchpad*"
output = "Launchpad*"
profile = "launchpad-programmer"
[devices.keys]
input = "Keys*"
profile = "note-names"
[modes.live]
[[bindings]]
name = "play"
trigger = { kind = "note_on", device = "desk", pad = "play" }
actions = [{ mode = "live" }]
feedback = { on = 5 }
[[bindings]]
name = "volume"
trigger = { kind = "cc", device = "desk", control = "volume" }
actions = [{ mode = "live" }]
[[bindings]]
name = "jog"
trigger = { kind = "encoder", device = "desk", control = "jog" }
actions = [{ mode = "live" }]
[[bindings]]
name = "corner"
trigger = { kind = "long_press", device = "lp", pad = "H8" }
actions = [{ mode = "live" }]
feedback = { pad = "A1", on = 21 }
[[bindings]]
name = "arrow"
trigger = { kind = "cc", device = "lp", control = "top1" }
actions = [{ mode = "live" }]
[[bindings]]
name = "triad"
trigger = { kind = "chord", device = "keys", pads = ["C4", "E4", "G4"] }
actions = [{ mode = "live" }]
[[bindings]]
name = "flat"
trigger = { kind = "note_on", device = "keys", pad = "Bb3" }
actions = [{ mode = "live" }]
"""


def test_device_profiles_name_pads_and_controls() -> None:
    deck = parse_deck(PROFILE_DECK)
    trigger = {b.name: b.trigger for b in deck.bindings}
    assert trigger["play"].note == (36, 36)
    assert trigger["volume"].controller == 7 and trigger["jog"].controller == 16
    assert trigger["corner"].note == (88, 88)  # Launchpad programmer mode: 10 * row + column
    assert trigger["arrow"].controller == 91
    assert trigger["triad"].notes == (60, 64, 67)  # C4 is middle C, 60
    assert trigger["flat"].note == (58, 58)
    feedback = {b.name: b.feedback for b in deck.bindings if b.feedback}
    assert feedback["play"].note == 36  # the trigger's pad  # type: ignore[union-attr]
    assert feedback["corner"].note == 11  # type: ignore[union-attr]
    assert set(deck.profiles) == {"mixer", "launchpad-programmer", "note-names"}
    assert check_deck(deck, {}) == []


def test_profile_problems_are_placed(tmp_path: Path) -> None:
    text = (
        PROFILE_DECK.replace('pad = "play"', 'pad = "paly"')
        .replace('control = "top1"', 'control = "top9"')
        .replace('profile = "note-names"', 'profile = "notenames"')
        .replace("rec = 38", "rec = 300")
        + '[[bindings]]\nname = "x"\ntrigger = { kind = "note_on", pad = "play" }\n'
        'actions = [{ mode = "live" }]\n'
        '[[bindings]]\nname = "y"\ntrigger = { kind = "note_on", device = "desk", pad = "stop", '
        'note = 37 }\nactions = [{ mode = "live" }]\n'
    )
    assert problems_of(text) == [
        "3:38: pads.rec must be a note number 0-127, not 300",
        "15:11: unknown profile 'notenames'; built-in: note-names, launchpad-programmer; "
        "the deck's: mixer",
        "19:54: no pad 'paly' in profile 'mixer' of device 'desk'; did you mean play? "
        "(pads: play, stop)",
        "37:51: no control 'top9' in profile 'launchpad-programmer' of device 'lp'; "
        "did you mean top8, top7, top6? (controls: top1, top2, top3, top4, top5, top6, top7, "
        "top8, side1, side2, side3, side4, side5, side6, side7, side8)",
        "41:54: pad = 'C4': device 'keys' has no profile (profile = \"...\")",
        "41:60: pad = 'E4': device 'keys' has no profile (profile = \"...\")",
        "41:66: pad = 'G4': device 'keys' has no profile (profile = \"...\")",
        "45:54: pad = 'Bb3': device 'keys' has no profile (profile = \"...\")",
        "49:37: pad = 'play' needs device = \"NAME\", a device with a profile",
        "53:54: give note or pad, not both",
    ]
    (tmp_path / "deck.toml").write_text(text)
    result = wasmdeck_cli("check", str(tmp_path / "deck.toml"))
    assert result.returncode == 4
    assert f"{tmp_path / 'deck.toml'}:19:54: no pad 'paly'" in result.stderr
