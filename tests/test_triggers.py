"""The trigger engine, driven by an injected clock: no sleeping, every timing exact."""

from __future__ import annotations

import contextlib
import datetime as dt

import mido
import pytest

from wasmdeck.deck import parse_deck
from wasmdeck.triggers import (
    MidiEvent,
    OscEvent,
    TriggerEngine,
    UnknownMode,
    WebhookEvent,
    decode_encoder,
)

HEAD = """\
version = 1
[plugins.p]
path = "p.wasm"
[devices.pad]
input = "Pad*"
output = "Pad*"
[devices.keys]
input = "Keys*"
[modes.live]
[modes.edit]
"""


def binding(name: str, trigger: str, mode: str | None = None) -> str:
    mode_line = f'mode = "{mode}"\n' if mode else ""
    return (
        f'[[bindings]]\nname = "{name}"\n{mode_line}trigger = {{ {trigger} }}\n'
        'actions = [{ plugin = "p", action = "a" }]\n'
    )


class Clock:
    """Monotonic seconds, counted in whole milliseconds so that sums are exact."""

    def __init__(self) -> None:
        self.ms = 1_000_000

    @property
    def now(self) -> float:
        return self.ms / 1000

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: int) -> None:
        self.ms += ms


WALL = dt.datetime(2026, 3, 1, 7, 29, 0, tzinfo=dt.UTC)


def engine(
    *bindings: str, extra: str = "", timezone: str = "UTC", wall_at: dt.datetime = WALL
) -> tuple[TriggerEngine, Clock]:
    clock = Clock()
    deck = parse_deck(f'timezone = "{timezone}"\n' + HEAD + extra + "".join(bindings))
    wall_start = clock.now

    def wall() -> dt.datetime:
        return wall_at + dt.timedelta(seconds=clock.now - wall_start)

    return TriggerEngine(deck, clock=clock, wall=wall), clock


def on(note: int, velocity: int = 100, channel: int = 1, device: str | None = "pad") -> MidiEvent:
    return MidiEvent("note_on", channel, note=note, velocity=velocity, device=device)


def off(note: int, channel: int = 1, device: str | None = "pad") -> MidiEvent:
    return MidiEvent("note_off", channel, note=note, velocity=0, device=device)


def cc(controller: int, value: int, channel: int = 1) -> MidiEvent:
    return MidiEvent("control_change", channel, controller=controller, value=value, device="pad")


def names(firings: list) -> list[str]:  # type: ignore[type-arg]
    return [f.binding.name for f in firings]


# -- notes, modes ----------------------------------------------------------------


def test_note_on_matches_note_channel_device_and_velocity_range() -> None:
    e, _ = engine(
        binding("soft", 'kind = "note_on", note = 36, velocity = [1, 63], device = "pad"'),
        binding("hard", 'kind = "note_on", note = 36, velocity = [64, 127], channel = 2'),
        binding("range", 'kind = "note_on", note = [40, 43], device = "keys"'),
    )
    assert names(e.feed(on(36, 10))) == ["soft"]
    assert names(e.feed(on(36, 100))) == []  # channel 1, "hard" wants 2
    assert names(e.feed(on(36, 100, channel=2))) == ["hard"]
    assert names(e.feed(on(36, 10, device="keys"))) == []  # "soft" is the pad's
    assert names(e.feed(on(42, device="keys"))) == ["range"]
    assert names(e.feed(on(44, device="keys"))) == []
    [fired] = e.feed(on(36, 10))
    assert fired.variables | {"timestamp": 0} == {
        "note": 36, "velocity": 10, "channel": 1, "value": 10,
        "binding": "soft", "mode": "live", "timestamp": 0, "kind": "note_on",
    }  # fmt: skip
    assert fired.context == {
        "kind": "note_on",
        "channel": 1,
        "note": 36,
        "velocity": 10,
        "value": 10,
    }


def test_modes_choose_the_bindings_and_global_ones_always_apply() -> None:
    e, _ = engine(
        binding("live-pad", 'kind = "note_on", note = 36', mode="live"),
        binding("edit-pad", 'kind = "note_on", note = 36', mode="edit"),
        binding("everywhere", 'kind = "note_on", note = 37'),
    )
    assert e.mode == "live" and e.mode_number() == 0
    assert names(e.feed(on(36))) == ["live-pad"]
    e.set_mode("edit")
    assert e.mode_number() == 1
    assert names(e.feed(on(36))) == ["edit-pad"]
    assert names(e.feed(on(37))) == ["everywhere"]
    assert e.feed(on(37))[0].variables["mode"] == "edit"
    with pytest.raises(UnknownMode, match="no mode named 'nope'; modes: live, edit"):
        e.set_mode("nope")
    assert e.mode == "edit"


def test_note_off_and_a_note_on_with_velocity_zero() -> None:
    e, _ = engine(binding("release", 'kind = "note_off", note = 36'))
    assert names(e.feed(on(36))) == []
    assert names(e.feed(off(36))) == ["release"]
    zero = MidiEvent.from_mido(mido.Message("note_on", channel=0, note=36, velocity=0), "pad")
    assert zero == off(36)
    assert names(e.feed(zero)) == ["release"]


def test_mido_messages_become_events() -> None:
    def convert(message: mido.Message) -> MidiEvent | None:
        return MidiEvent.from_mido(message, "pad")

    assert convert(mido.Message("control_change", channel=3, control=7, value=99)) == MidiEvent(
        "control_change", 4, controller=7, value=99, device="pad"
    )
    assert convert(mido.Message("pitchwheel", pitch=-8192)).value == -8192  # type: ignore[union-attr]
    assert convert(mido.Message("program_change", program=5)).value == 5  # type: ignore[union-attr]
    assert convert(mido.Message("polytouch", note=60, value=30)).note == 60  # type: ignore[union-attr]
    assert convert(mido.Message("clock")) is None


def test_bytes_become_the_events_mido_parses_them_into() -> None:
    # from_bytes is the MIDI input's parser; mido (a third-party parser) is the reference.
    messages = [
        mido.Message(kind, channel=channel, **fields)
        for channel in (0, 9, 15)
        for kind, fields in (
            ("note_on", {"note": 0, "velocity": 127}),
            ("note_on", {"note": 64, "velocity": 0}),
            ("note_off", {"note": 127, "velocity": 64}),
            ("polytouch", {"note": 60, "value": 30}),
            ("control_change", {"control": 7, "value": 99}),
            ("program_change", {"program": 127}),
            ("aftertouch", {"value": 5}),
            ("pitchwheel", {"pitch": -8192}),
            ("pitchwheel", {"pitch": 0}),
            ("pitchwheel", {"pitch": 8191}),
        )
    ]
    messages += [mido.Message("clock"), mido.Message("sysex", data=[1, 2, 3])]
    for message in messages:
        data = message.bytes()
        assert MidiEvent.from_bytes(data, "pad") == MidiEvent.from_mido(message, "pad"), data


def test_malformed_bytes_are_no_event() -> None:
    for data in ([], [0x90, 60], [0x90, 60, 100, 1], [0x90, 128, 1], [0xC0, 1, 2], [0x40, 1, 2]):
        assert MidiEvent.from_bytes(data) is None, data
        with contextlib.suppress(ValueError):  # mido refuses them too, or parses no event
            assert MidiEvent.from_mido(mido.Message.from_bytes(data)) is None, data


# -- controllers -----------------------------------------------------------------


def test_control_change_value_ranges() -> None:
    e, _ = engine(
        binding("low", 'kind = "cc", controller = 7, value = [0, 63]'),
        binding("high", 'kind = "cc", controller = 7, value = [64, 127]'),
    )
    assert names(e.feed(cc(7, 10))) == ["low"]
    [fired] = e.feed(cc(7, 64))
    assert fired.binding.name == "high"
    assert fired.variables["value"] == 64 and fired.variables["controller"] == 7
    assert fired.context == {"kind": "cc", "channel": 1, "controller": 7, "value": 64}
    assert names(e.feed(cc(8, 10))) == []


@pytest.mark.parametrize(
    ("encoding", "byte", "step"),
    [
        ("twos_complement", 1, 1),
        ("twos_complement", 5, 5),
        ("twos_complement", 127, -1),
        ("twos_complement", 123, -5),
        ("sign_magnitude", 3, 3),
        ("sign_magnitude", 67, -3),
        ("offset", 65, 1),
        ("offset", 60, -4),
        ("offset", 64, 0),
    ],
)
def test_encoder_encodings(encoding: str, byte: int, step: int) -> None:
    assert decode_encoder(byte, encoding) == step


def test_relative_encoders_direction_and_acceleration() -> None:
    e, _ = engine(
        binding("up", 'kind = "encoder", controller = 16, direction = "up", acceleration = 1.0'),
        binding("down", 'kind = "encoder", controller = 16, direction = "down"'),
    )
    [fired] = e.feed(cc(16, 1))
    assert (fired.binding.name, fired.variables["delta"]) == ("up", 1)
    [fired] = e.feed(cc(16, 3))  # a quick turn: 3 steps count as 3 * (1 + 1.0 * 2) = 9
    assert fired.variables["delta"] == 9
    [fired] = e.feed(cc(16, 125))  # three steps down, no acceleration on "down"
    assert (fired.binding.name, fired.variables["delta"]) == ("down", -3)
    assert e.feed(cc(16, 0)) == []  # no step


def test_program_change_pitch_bend_and_aftertouch() -> None:
    e, _ = engine(
        binding("prog", 'kind = "program", program = [0, 3]'),
        binding("bend-up", 'kind = "pitch_bend", value = [1, 8191]'),
        binding("pressure", 'kind = "aftertouch", value = [10, 127]'),
        binding("poly", 'kind = "aftertouch", note = 60, value = [1, 127]'),
    )
    assert names(e.feed(MidiEvent("program_change", 1, value=2))) == ["prog"]
    assert e.feed(MidiEvent("program_change", 1, value=2))[0].variables["program"] == 2
    assert names(e.feed(MidiEvent("program_change", 1, value=9))) == []
    [bend] = e.feed(MidiEvent("pitchwheel", 1, value=4000))
    assert bend.context["value"] == 4000
    assert names(e.feed(MidiEvent("pitchwheel", 1, value=-4000))) == []
    assert names(e.feed(MidiEvent("aftertouch", 1, value=50))) == ["pressure"]
    assert names(e.feed(MidiEvent("aftertouch", 1, value=5))) == []
    assert names(e.feed(MidiEvent("polytouch", 1, note=60, value=5))) == ["poly"]
    assert names(e.feed(MidiEvent("polytouch", 1, note=61, value=5))) == []


# -- long press, double tap, chord (MIDIMon's timings: 2000 / 300 / 50 ms) ---------


def test_long_press_fires_after_the_hold_time_and_not_if_released_before() -> None:
    e, clock = engine(
        binding("tap", 'kind = "note_on", note = 36'),
        binding("hold", 'kind = "long_press", note = 36'),
    )
    assert names(e.feed(on(36))) == ["tap"]
    assert e.next_deadline() == pytest.approx(clock.now + 2.0)
    clock.advance(1999)
    assert e.poll() == []
    clock.advance(1)
    [fired] = e.poll()
    assert fired.binding.name == "hold" and fired.variables["held_ms"] == 2000
    assert e.poll() == [] and e.next_deadline() is None  # once per press
    e.feed(off(36))
    e.feed(on(36))
    clock.advance(1500)
    e.feed(off(36))  # released early
    clock.advance(1000)
    assert e.poll() == []


def test_long_press_hold_time_is_configurable() -> None:
    e, clock = engine(binding("hold", 'kind = "long_press", note = 36, hold_ms = 500'))
    e.feed(on(36))
    clock.advance(499)
    assert e.poll() == []
    clock.advance(1)
    assert names(e.poll()) == ["hold"]
    e2, clock2 = engine(
        binding("hold", 'kind = "long_press", note = 36'), extra="[timing]\nhold_ms = 800\n"
    )
    e2.feed(on(36))
    clock2.advance(800)
    assert names(e2.poll()) == ["hold"]


def test_double_tap_within_the_window() -> None:
    e, clock = engine(binding("double", 'kind = "double_tap", note = 36'))
    assert e.feed(on(36)) == []
    e.feed(off(36))
    clock.advance(300)
    assert names(e.feed(on(36))) == ["double"]
    e.feed(off(36))
    clock.advance(100)
    assert e.feed(on(36)) == []  # a third tap starts a new pair
    clock.advance(301)
    assert e.feed(on(36)) == []  # too slow: this is a new first tap
    clock.advance(200)
    assert names(e.feed(on(36))) == ["double"]


def test_chord_fires_once_when_its_notes_are_pressed_within_the_window() -> None:
    e, clock = engine(binding("chord", 'kind = "chord", notes = [48, 52, 55]'))
    assert e.feed(on(48)) == []
    clock.advance(20)
    assert e.feed(on(52)) == []
    clock.advance(30)
    [fired] = e.feed(on(55))  # 50 ms from first to last: within the window
    assert fired.variables["notes"] == [48, 52, 55]
    assert e.feed(on(55)) == []  # latched until a note is released
    e.feed(off(52))
    clock.advance(10)
    assert e.feed(on(52)) == []  # 52 again, but 48 and 55 were pressed 60 ms before it
    for n in (48, 52, 55):
        e.feed(off(n))
    assert names([f for n in (48, 52, 55) for f in e.feed(on(n))]) == ["chord"]


def test_chord_pressed_too_slowly_does_not_fire() -> None:
    e, clock = engine(binding("chord", 'kind = "chord", notes = [48, 52], window_ms = 40'))
    e.feed(on(48))
    clock.advance(41)
    assert e.feed(on(52)) == []
    e.feed(off(48))
    e.feed(on(48))
    assert names(e.feed(on(52))) == []  # 52 still down, pressed 41 ms before 48: within 40? no
    e.feed(off(52))
    clock.advance(10)
    assert names(e.feed(on(52))) == ["chord"]


# -- webhooks, OSC, timers, startup ------------------------------------------------


def test_webhook_and_osc_events() -> None:
    hook = 'kind = "webhook", path = "/scene", auth = { bearer = { env = "T" } }'
    e, _ = engine(binding("hook", hook), binding("fader", 'kind = "osc", address = "/deck/fader"'))
    [fired] = e.feed(WebhookEvent("POST", "/scene", {"scene": "Live"}, {"a": "1"}))
    assert fired.variables["body"] == {"scene": "Live"} and fired.variables["query"] == {"a": "1"}
    assert e.feed(WebhookEvent("GET", "/scene")) == []
    assert e.feed(WebhookEvent("POST", "/other")) == []
    [fired] = e.feed(OscEvent("/deck/fader", (0.5, "x")))
    assert fired.variables["osc"] == [0.5, "x"]
    assert e.feed(OscEvent("/deck/other", ())) == []
    assert [b.name for b in e.webhook_bindings()] == ["hook"]


def test_interval_timers_and_a_stalled_loop_fires_once() -> None:
    e, clock = engine(binding("tick", 'kind = "timer", interval_ms = 1000'))
    e.start()
    assert e.next_deadline() == pytest.approx(clock.now + 1)
    clock.advance(999)
    assert e.poll() == []
    clock.advance(1)
    assert names(e.poll()) == ["tick"]
    clock.advance(5500)  # the loop was busy for 5.5 intervals
    assert names(e.poll()) == ["tick"]
    assert e.poll() == []
    assert e.next_deadline() == pytest.approx(clock.now + 0.5)  # back on the 1 s grid


def test_time_of_day_timers_use_the_wall_clock() -> None:
    e, clock = engine(binding("morning", 'kind = "timer", at = "07:30"'))
    e.start()  # the wall clock says 07:29:00
    assert e.next_deadline() == pytest.approx(clock.now + 60)
    clock.advance(60_000)
    assert names(e.poll()) == ["morning"]
    assert e.next_deadline() == pytest.approx(clock.now + 86_400)


def test_mode_bound_timers_fire_only_in_their_mode() -> None:
    e, clock = engine(binding("tick", 'kind = "timer", interval_ms = 100', mode="edit"))
    e.start()
    clock.advance(100)
    assert e.poll() == []
    e.set_mode("edit")
    clock.advance(100)
    assert names(e.poll()) == ["tick"]


def test_startup_and_firing_by_hand() -> None:
    e, _ = engine(
        binding("hello", 'kind = "startup"'),
        binding("edit-only", 'kind = "note_on", note = 1', mode="edit"),
    )
    assert names(e.start()) == ["hello"]
    assert e.fire("edit-only").binding.name == "edit-only"  # by hand: whatever the mode
    with pytest.raises(KeyError):
        e.fire("nope")


def test_swapping_the_deck_keeps_the_mode_and_pending_holds() -> None:
    hold = binding("hold", 'kind = "long_press", note = 36')
    e, clock = engine(hold, binding("x", 'kind = "note_on", note = 40'))
    e.set_mode("edit")
    e.feed(on(36))
    clock.advance(1000)
    e.swap(parse_deck(HEAD + hold + binding("y", 'kind = "note_on", note = 41')))
    assert e.mode == "edit"
    assert names(e.feed(on(40))) == [] and names(e.feed(on(41))) == ["y"]
    clock.advance(1000)
    assert names(e.poll()) == ["hold"]
    e.swap(parse_deck(HEAD.replace("[modes.edit]\n", "") + hold))
    assert e.mode == "live"  # "edit" is gone: the new deck's starting mode


# -- times of day across daylight saving (Europe/Berlin: 2026-03-29 02:00 -> 03:00,
#    2026-10-25 03:00 -> 02:00) -----------------------------------------------------

BERLIN = "Europe/Berlin"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def due_in(e: TriggerEngine, clock: Clock) -> float:
    deadline = e.next_deadline()
    assert deadline is not None
    return round(deadline - clock.now, 3)


def test_a_time_skipped_in_spring_comes_at_the_end_of_the_gap() -> None:
    # 01:00 CET (00:00 UTC) on the night the clocks jump from 02:00 to 03:00.
    e, clock = engine(
        binding("night", 'kind = "timer", at = "02:30"'),
        timezone=BERLIN,
        wall_at=utc(2026, 3, 29, 0, 0),
    )
    e.start()
    assert due_in(e, clock) == 3600  # 03:00 CEST, the first moment after 02:30 exists
    clock.advance(3_600_000)
    assert names(e.poll()) == ["night"]
    assert due_in(e, clock) == 23.5 * 3600  # the next night's 02:30 CEST


def test_a_time_repeated_in_autumn_fires_once_the_first_time() -> None:
    # 00:00 CEST (22:00 UTC the day before); 02:30 comes at 00:30 UTC and again at 01:30.
    e, clock = engine(
        binding("night", 'kind = "timer", at = "02:30"'),
        timezone=BERLIN,
        wall_at=utc(2026, 10, 24, 22, 0),
    )
    e.start()
    assert due_in(e, clock) == 2.5 * 3600
    clock.advance(9_000_000)
    assert names(e.poll()) == ["night"]
    assert due_in(e, clock) == 25 * 3600  # not again at 02:30 CET: tomorrow's 02:30 CET
    clock.advance(3_600_000)  # the second 02:30
    assert e.poll() == []


def test_a_day_with_a_dst_change_is_23_or_25_hours_long() -> None:
    # 08:00 CET the day before spring: tomorrow's 07:30 is 22.5 h away, not 23.5.
    e, clock = engine(
        binding("morning", 'kind = "timer", at = "07:30"'),
        timezone=BERLIN,
        wall_at=utc(2026, 3, 28, 7, 0),
    )
    e.start()
    assert due_in(e, clock) == 22.5 * 3600
    autumn, clock = engine(
        binding("morning", 'kind = "timer", at = "07:30"'),
        timezone=BERLIN,
        wall_at=utc(2026, 10, 24, 6, 0),  # 08:00 CEST
    )
    autumn.start()
    assert due_in(autumn, clock) == 24.5 * 3600


def test_without_a_deck_zone_the_machines_zone_keeps_its_dst_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", BERLIN)
    deck = parse_deck(HEAD + binding("night", 'kind = "timer", at = "02:30"'))
    clock = Clock()
    start = clock.now
    e = TriggerEngine(
        deck,
        clock=clock,
        wall=lambda: utc(2026, 3, 29, 0, 0) + dt.timedelta(seconds=clock.now - start),
    )
    e.start()
    assert due_in(e, clock) == 3600


def test_bindings_found_by_note_and_controller_fire_in_deck_order_per_mode() -> None:
    # The engine indexes note and controller bindings (triggers/_engine.py, _install):
    # ranges, single notes and global bindings still fire together, in deck order.
    e, _ = engine(
        binding("wide", 'kind = "note_on", note = [30, 50]'),
        binding("live-36", 'kind = "note_on", note = 36', mode="live"),
        binding("edit-36", 'kind = "note_on", note = 36', mode="edit"),
        binding("any-36", 'kind = "note_on", note = 36, velocity = [1, 127]'),
        binding("knob", 'kind = "cc", controller = 7'),
        binding("edit-knob", 'kind = "cc", controller = 7, value = [64, 127]', mode="edit"),
        binding("off-36", 'kind = "note_off", note = [36, 37]'),
    )
    assert e.mode == "live"  # the first mode
    assert names(e.feed(on(36))) == ["wide", "live-36", "any-36"]
    assert names(e.feed(on(51))) == []
    assert names(e.feed(off(37))) == ["off-36"]
    assert names(e.feed(cc(7, 100))) == ["knob"]
    e.set_mode("edit")
    assert names(e.feed(on(36))) == ["wide", "edit-36", "any-36"]
    assert names(e.feed(on(30))) == ["wide"]
    assert names(e.feed(cc(7, 100))) == ["knob", "edit-knob"]
    assert names(e.feed(cc(8, 100))) == []
    e.swap(parse_deck(HEAD + binding("new", 'kind = "note_on", note = 36')))
    assert names(e.feed(on(36))) == ["new"]  # the index follows a swapped deck


def test_one_pad_with_a_press_a_hold_and_a_double_tap() -> None:
    e, clock = engine(
        binding("tap", 'kind = "note_on", note = 36'),
        binding("hold", 'kind = "long_press", note = 36'),
        binding("double", 'kind = "double_tap", note = 36'),
    )
    assert names(e.feed(on(36))) == ["tap"]  # the press fires at once
    clock.advance(100)
    e.feed(off(36))  # released before the hold time: no long press
    clock.advance(150)
    assert names(e.feed(on(36))) == ["tap", "double"]  # a second press within 300 ms
    clock.advance(2000)
    assert names(e.poll()) == ["hold"]  # and held this time
    e.feed(off(36))


def test_a_long_press_fires_only_if_its_mode_is_still_current() -> None:
    e, clock = engine(binding("hold", 'kind = "long_press", note = 36', mode="live"))
    e.feed(on(36))
    clock.advance(1000)
    e.set_mode("edit")  # switched while held
    clock.advance(1000)
    assert e.poll() == []
    e.feed(off(36))
    e.set_mode("live")
    e.feed(on(36))
    clock.advance(2000)
    assert names(e.poll()) == ["hold"]


def test_encoder_steps_in_each_encoding_reach_the_binding() -> None:
    e, _ = engine(
        binding("sm", 'kind = "encoder", controller = 20, encoding = "sign_magnitude"'),
        binding("off", 'kind = "encoder", controller = 21, encoding = "offset", direction = "up"'),
    )
    assert [f.variables["delta"] for f in e.feed(cc(20, 66))] == [-2]
    assert [f.variables["delta"] for f in e.feed(cc(21, 67))] == [3]
    assert e.feed(cc(21, 61)) == []  # down, but the binding wants up
