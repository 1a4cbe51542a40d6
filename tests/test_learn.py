"""``wasmdeck learn``: MIDI from a real JACK port in, a binding's TOML out, read back by the deck parser.

The gesture logic (``Learner``, ``guess_encoding``) is tested with explicit
times; the command end to end through a JACK server (tests/jack.py).
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jack import Controller, jack_server  # noqa: F401

from wasmdeck.daemon import Learner, guess_encoding, to_toml
from wasmdeck.deck import check_deck, parse_deck
from wasmdeck.triggers import MidiEvent

# -- the guesses, without MIDI -------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "encoding"),
    [
        ([64, 65, 66, 67], None),  # an absolute knob moving up
        ([5, 4, 3, 2, 1], None),  # ... down, near the bottom
        ([100], None),  # one value says nothing
        ([1, 1, 2, 1], "twos_complement"),
        ([127, 127, 126], "twos_complement"),
        ([1, 127, 1], "twos_complement"),  # both ways, no repeat: still the two ends
        ([1, 1, 65, 65], "sign_magnitude"),
        ([65, 65, 63, 63], "offset"),
    ],
)
def test_guess_encoding(values: list[int], encoding: str | None) -> None:
    assert guess_encoding(values) == encoding


def cc(controller: int, value: int) -> MidiEvent:
    return MidiEvent("control_change", 1, controller=controller, value=value)


def test_gestures_end_on_another_control_or_after_the_quiet_time() -> None:
    learner = Learner(settle=0.5)
    assert learner.feed("p", cc(7, 10), 0.0) == []
    assert learner.feed("p", cc(7, 11), 0.1) == []
    assert learner.deadline() == pytest.approx(0.6)
    assert learner.poll(0.59) == []
    [knob] = learner.poll(0.6)
    assert (knob.event.controller, knob.values) == (7, [10, 11])
    learner.feed("p", cc(16, 1), 1.0)
    encoder, press = learner.feed("p", MidiEvent("note_on", 1, note=36, velocity=90), 1.1)
    assert encoder.values == [1]  # another control ended it
    assert press.event.note == 36  # a press is a whole gesture at once
    assert (
        learner.feed("p", MidiEvent("note_off", 1, note=36, velocity=0), 1.2) == []
    )  # the press's
    [release] = learner.feed("p", MidiEvent("note_off", 1, note=40, velocity=0), 1.3)
    assert release.event.type == "note_off"  # a release without its press is its own event


def test_port_names_become_patterns_and_device_names() -> None:
    gesture = Learner().feed("Launchpad X:Launchpad X MIDI 1 20:0", on(36), 0)
    text = to_toml(gesture)
    assert '[devices.launchpad-x]\ninput = "Launchpad X:Launchpad X MIDI 1 *"\n' in text
    odd = to_toml(Learner().feed('Pad [*] "2"', on(36), 0), device="mine")
    assert '[devices.mine]\ninput = "Pad [[][*]] \\"2\\""' in odd
    deck = parse_deck("version = 1\n" + odd)
    assert deck.devices["mine"].input is not None


def on(note: int, velocity: int = 100) -> MidiEvent:
    return MidiEvent("note_on", 1, note=note, velocity=velocity)


# -- the command, through JACK ---------------------------------------------------------

_CLIENTS = itertools.count()


@pytest.fixture
def controller(jack_server: dict[str, str]) -> Iterator[Controller]:  # noqa: F811
    pad = Controller(f"learn{os.getpid()}x{next(_CLIENTS)}")
    yield pad
    pad.close()


class Learn:
    """``wasmdeck learn`` in a child process; its stderr read on a thread."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wasmdeck", "learn", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_listening(self) -> str:
        while True:
            try:
                line = self.lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError(f"learn did not start: {''.join(self.err)}") from None
            if "listening on" in line:
                return line

    def result(self) -> tuple[int, str, str]:
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        code = self.process.wait(60)
        return code, out, "".join(self.err)


def test_learn_prints_bindings_the_deck_parser_and_check_accept(
    tmp_path: Path,
    controller: Controller,
    jack_server: dict[str, str],  # noqa: F811
) -> None:
    port = f"{controller.client}:pad-out"
    learn = Learn(jack_server, "--port", port, "--count", "7", "--timeout", "60")
    assert port in learn.wait_listening()
    controller.send("note_on", note=36, velocity=100)
    controller.send("note_off", note=36, velocity=0)
    for value in (10, 12, 14, 15):  # an absolute fader moving
        controller.send("control_change", control=7, value=value)
    for value in (1, 1, 2, 1):  # a relative encoder turned up, on MIDI channel 2
        controller.send("control_change", control=16, value=value, channel=1)
    controller.send("program_change", program=3)
    for pitch in (500, 4000, 8191, 0):
        controller.send("pitchwheel", pitch=pitch)
    controller.send("aftertouch", value=50)
    controller.send("note_off", note=40, velocity=0)
    code, out, err = learn.result()
    assert code == 0, err
    assert "Traceback" not in err
    device = controller.client.lower()
    assert f'[devices.{device}]\ninput = "{port}"\n' in out
    deck = parse_deck("version = 1\n" + out, source=tmp_path / "deck.toml")
    got = {b.name: (b.trigger.kind, b.trigger.channel, b.trigger.device) for b in deck.bindings}
    assert got == {
        "note-36": ("note_on", 1, device),
        "cc-7": ("cc", 1, device),
        "encoder-16": ("encoder", 2, device),
        "program-3": ("program", 1, device),
        "bend": ("pitch_bend", 1, device),
        "pressure": ("aftertouch", 1, device),
        "note-40": ("note_off", 1, device),
    }
    assert deck.binding("note-36").trigger.note == (36, 36)  # type: ignore[union-attr]
    assert deck.binding("cc-7").trigger.controller == 7  # type: ignore[union-attr]
    assert deck.binding("encoder-16").trigger.encoding == "twos_complement"  # type: ignore[union-attr]
    assert deck.binding("program-3").trigger.program == (3, 3)  # type: ignore[union-attr]
    assert deck.binding("bend").trigger.value == (1, 8191)  # type: ignore[union-attr]
    assert check_deck(deck) == []
    (tmp_path / "deck.toml").write_text("version = 1\n" + out)
    checked = subprocess.run(
        [sys.executable, "-m", "wasmdeck", "check", str(tmp_path / "deck.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "ok (0 plugins, 7 bindings, 0 modes)" in checked.stdout


def test_learn_with_an_action_gives_a_deck_ready_to_run(
    tmp_path: Path,
    velocity_wasm: Path,
    controller: Controller,
    jack_server: dict[str, str],  # noqa: F811
) -> None:
    port = f"{controller.client}:pad-out"
    learn = Learn(jack_server, "--port", port, "--device", "pad", "--action", "velocity.scale")
    learn.wait_listening()
    controller.send("note_on", note=38, velocity=90)
    code, out, err = learn.result()
    assert code == 0, err
    shutil.copy(velocity_wasm, tmp_path / "velocity.wasm")
    text = f'version = 1\n[plugins.velocity]\npath = "velocity.wasm"\n{out}'
    (tmp_path / "deck.toml").write_text(text)
    checked = subprocess.run(
        [sys.executable, "-m", "wasmdeck", "check", str(tmp_path / "deck.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert 'actions = [{ plugin = "velocity", action = "scale" }]' in out


def test_learn_times_out_with_what_it_heard(
    controller: Controller,
    jack_server: dict[str, str],  # noqa: F811
) -> None:
    port = f"{controller.client}:pad-out"
    learn = Learn(jack_server, "--port", port, "--count", "2", "--timeout", "1.5")
    learn.wait_listening()
    controller.send("note_on", note=36, velocity=100)
    code, out, err = learn.result()
    assert code == 1
    assert "heard 1 of 2 events in 1.5 s" in err
    assert 'name = "note-36"' in out
    assert "Traceback" not in err


def test_learn_names_a_pattern_no_port_matches(jack_server: dict[str, str]) -> None:  # noqa: F811
    learn = Learn(jack_server, "--port", "no such port*", "--timeout", "1")
    code, out, err = learn.result()
    assert code == 1 and out == ""
    assert "no MIDI input matches 'no such port*'" in err
    bad = Learn(jack_server, "--action", "nodot")
    code, _, err = bad.result()
    assert code == 2 and "--action must be PLUGIN.ACTION" in err
