"""``wasmdeck replay FILE.mid``: a Standard MIDI File through the deck, on the file's timeline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mido

DECK = """\
version = 1
[plugins.velocity]
path = "velocity.wasm"
[devices.pad]
input = "Pad*"
[modes.live]
[modes.edit]

[[bindings]]
name = "tap"
trigger = { kind = "note_on", device = "pad", note = 36 }
actions = [{ plugin = "velocity", action = "scale", params = { max = 254 } }]

[[bindings]]
name = "hold"
mode = "live"
trigger = { kind = "long_press", device = "pad", note = 36 }
actions = [{ mode = "edit" }]

[[bindings]]
name = "soft"
mode = "edit"
trigger = { kind = "note_on", device = "pad", note = 38 }
actions = [{ plugin = "velocity", action = "pick", params = { choices = ["{mode}", "x"] } }]
"""


def write_midi(path: Path, events: list[tuple[int, mido.Message]]) -> None:
    """``events``: (ticks since the one before, message), at 480 ticks a beat, 120 bpm."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for delta, message in events:
        track.append(message.copy(time=delta))
    midi.save(path)


def test_replay_runs_the_file_through_the_deck_on_its_timeline(
    tmp_path: Path, velocity_wasm: Path
) -> None:
    shutil.copy(velocity_wasm, tmp_path / "velocity.wasm")
    (tmp_path / "deck.toml").write_text(DECK)
    # 960 ticks = 1 s at 120 bpm: the pad is held 2.5 s (a long press), then 38 is hit.
    write_midi(
        tmp_path / "take.mid",
        [
            (0, mido.Message("note_on", note=36, velocity=100)),
            (2400, mido.Message("note_off", note=36, velocity=0)),
            (480, mido.Message("note_on", note=38, velocity=20)),
        ],
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wasmdeck",
            "replay",
            str(tmp_path / "take.mid"),
            "--deck",
            str(tmp_path / "deck.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "WASMDECK_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stderr
    records = {r["binding"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert sorted(records) == ["hold", "soft", "tap"]  # one line per action, as each completes
    assert json.loads(records["tap"]["result"]) == {"value": 200, "velocity": 100}
    assert records["hold"]["mode"] == "edit"  # held 2.5 s on the file's clock: a long press
    assert json.loads(records["soft"]["result"]) == {"choice": "edit", "index": 0}  # in edit


def test_replay_refuses_what_is_not_a_midi_file(tmp_path: Path) -> None:
    (tmp_path / "deck.toml").write_text("version = 1\n")
    (tmp_path / "bad.mid").write_bytes(b"RIFF nonsense")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wasmdeck",
            "replay",
            str(tmp_path / "bad.mid"),
            "--deck",
            str(tmp_path / "deck.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        "is not a readable Standard MIDI File" in result.stderr and "Traceback" not in result.stderr
    )
