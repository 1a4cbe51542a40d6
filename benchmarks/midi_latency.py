"""MIDI note-on in -> plugin action -> MIDI feedback out, over a real JACK server.

Run: ``python benchmarks/midi_latency.py [--notes N] [--period FRAMES] [--rate HZ]
[--realtime]`` (needs jackd from ``scripts/install-system-deps`` and
``pip install -e '.[test]'``; about 20 s).

In one run, on one JACK server (jackd2's dummy driver, started here; by
default 48 kHz with 16-frame periods, 0.33 ms):

- the floor: the same JACK round trip with no host in between — a client
  that sends each incoming message straight back (python-rtmidi callback);
- wasmdeck: ``wasmdeck serve`` with a deck binding the pad to the C
  velocity example (examples/c/velocity, ``pick``) whose result lights the
  pad (state feedback): note-on in, plugin call, feedback note-on out.

Notes are sent one at a time (the next after the reply), so each figure is
one round trip. What sets the floor is JACK's period: MIDI moves between
clients once per process cycle (python-rtmidi's JACK output queues a
message in a ring buffer that its process callback empties at the next
cycle), and the dummy driver runs a cycle every ``period / rate`` seconds
(``-p``/``-r``; ``-w`` would override the period). A note sent right after
the previous reply waits nearly a period to go out, and the echo's answer
goes out in the cycle after: the floor is about two periods (5.3 ms at 128
frames, 0.6 ms at 16). The host's answer makes that same cycle if it is
ready within one period of the note's arrival, else it takes one period
more: the added latency is a whole number of periods, and the line
``next_cycle`` says how often the host made it. A real interface at 64
frames and 192 kHz (or 16 at 48 kHz) has this same 0.33 ms period.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rtmidi
from _harness import Echo

from wasmdeck.toolchains import compile_c, sdk_dir

ROOT = Path(__file__).resolve().parent.parent
SERVER = f"wasmdeck-bench-{os.getpid()}"
API = rtmidi.API_UNIX_JACK

DECK = """\
version = 1
[plugins.velocity]
path = "velocity.wasm"
[devices.pad]
input = "bench-pad:out"
output = "bench-pad-fb:in"
[[bindings]]
name = "hit"
trigger = { kind = "note_on", device = "pad", note = 36 }
actions = [{ plugin = "velocity", action = "pick", params = { choices = ["dark", "lit"] } }]
feedback = { state = "result.choice", equals = "lit", on = 127 }
"""


class Pad:
    """The benchmark's controller: an output to play, an input for the replies."""

    def __init__(self) -> None:
        self.replies: queue.Queue[float] = queue.Queue()
        self.out = rtmidi.MidiOut(API, "bench-pad")
        self.out.open_virtual_port("out")
        self.inp = rtmidi.MidiIn(API, "bench-pad-fb")
        self.inp.open_virtual_port("in")
        self.inp.set_callback(lambda event, _: self.replies.put(time.perf_counter()))

    def wait_connected(self) -> None:
        """Send until something answers: JACK connects new ports a moment later."""
        deadline = time.monotonic() + 20
        while True:
            self.out.send_message([0x90, 36, 100])
            try:
                self.replies.get(timeout=0.2)
                break
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RuntimeError("no answer over JACK") from None
        time.sleep(0.2)
        while not self.replies.empty():
            self.replies.get()

    def round_trips(self, count: int, velocity: int = 100) -> tuple[list[float], int]:
        """``count`` round trips in ms, and how many notes got no answer within 1 s.

        Without realtime scheduling JACK skips a cycle now and then (an xrun),
        and the MIDI of a skipped cycle is gone: those are counted, not timed.
        """
        times: list[float] = []
        lost = 0
        while len(times) < count:
            start = time.perf_counter()
            self.out.send_message([0x90, 36, velocity])
            try:
                times.append((self.replies.get(timeout=1) - start) * 1000)
            except queue.Empty:
                lost += 1
                if lost > count:
                    raise RuntimeError(f"{lost} notes lost: JACK is not keeping up") from None
            self.out.send_message([0x80, 36, 0])
            while not self.replies.empty():  # a late answer to a note counted lost
                self.replies.get()
        return times, lost

    def close(self) -> None:
        self.inp.cancel_callback()
        for port in (self.inp, self.out):
            port.close_port()
            port.delete()


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--period", type=int, default=16)
    parser.add_argument("--realtime", action="store_true")
    args = parser.parse_args()
    if shutil.which("jackd") is None:
        print("jackd is not installed: run scripts/install-system-deps", file=sys.stderr)
        return 1
    env = {
        **os.environ,
        "JACK_DEFAULT_SERVER": SERVER,
        "JACK_NO_START_SERVER": "1",
        "JACK_NO_AUDIO_RESERVATION": "1",
        "MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK",
    }
    os.environ.update(env)
    jack = subprocess.Popen(
        [
            "jackd",
            "-n",
            SERVER,
            "--realtime" if args.realtime else "--no-realtime",
            "-d",
            "dummy",
            "-r",
            str(args.rate),
            "-p",
            str(args.period),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host = None
    with tempfile.TemporaryDirectory(prefix="wasmdeck-bench-") as scratch:
        work = Path(scratch)
        try:
            deadline = time.monotonic() + 20
            while subprocess.run(["jack_lsp"], capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("jackd did not start")
                time.sleep(0.05)
            source = ROOT / "examples" / "c" / "velocity" / "velocity.c"
            compile_c([source], work / "velocity.wasm", include_dirs=[sdk_dir("c")])
            (work / "deck.toml").write_text(DECK)
            pad = Pad()
            echo = Echo("bench")
            pad.wait_connected()
            floor, floor_lost = pad.round_trips(args.notes)
            echo.close()
            host = subprocess.Popen(
                [sys.executable, "-m", "wasmdeck", "serve", "--deck", str(work / "deck.toml")],
                env={**env, "WASMDECK_HOME": str(work / "home")},
                stderr=subprocess.PIPE,
                text=True,
            )
            assert host.stderr is not None
            for line in host.stderr:
                if "serving" in line:
                    break
            pad.wait_connected()
            pad.round_trips(20)  # warm: instance made, paths hot
            served, served_lost = pad.round_trips(args.notes)
            pad.close()
        finally:
            if host is not None:
                host.terminate()
                host.wait(30)
            jack.terminate()
            jack.wait(30)
    f50, f99 = percentiles(floor)
    h50, h99 = percentiles(served)
    print(
        f"JACK dummy driver, {args.rate} Hz, {args.period}-frame periods "
        f"({args.period / args.rate * 1000:.2f} ms); {args.notes} notes each"
    )
    print(
        f"floor (JACK round trip, no host): p50 {f50:.3f} ms  p99 {f99:.3f} ms  (lost {floor_lost})"
    )
    print(
        f"wasmdeck serve (note -> plugin -> feedback): p50 {h50:.3f} ms  p99 {h99:.3f} ms  "
        f"(lost {served_lost})"
    )
    period_ms = args.period / args.rate * 1000
    same = sum(t < f50 + period_ms / 2 for t in served) / len(served)
    print(
        f"next_cycle={same:.0%} of notes answered in the floor's cycle (period {period_ms:.3f} ms)"
    )
    print(f"added_p50_ms={h50 - f50:.3f} added_p99_ms={h99 - f99:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
