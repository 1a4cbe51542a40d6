"""Sustained load: 5,000 MIDI events/s over JACK into a deck of 20 plugins.

Run: ``python benchmarks/sustained_load.py [--seconds 600] [--rate 5000]``
(needs jackd from ``scripts/install-system-deps`` and ``pip install -e
'.[test]'``; the default run is 30 s of load, about a minute in all).

On one JACK server (dummy driver, 48 kHz, 256-frame periods: 5.3 ms), in
one run:

- the floor: ``--floor-seconds`` of the same note stream into a bare echo
  client (python-rtmidi callback sending each note straight back): what
  JACK itself loses and takes at this rate on this machine;
- wasmdeck: ``wasmdeck serve`` with 100 pads over 20 plugins (the C velocity
  example, loaded 20 times), each pad's binding calling its plugin
  (``pick``, a param from the velocity) and then sending a note back with
  the pad's note and velocity (a ``midi`` action), so every event's reply
  is told apart by (note, velocity) and timed from send to reply.

Reported per window: notes sent, replies, p50/p99 of send -> reply, the
host's RSS. At the end: the host's own counts (``wasmdeck status``): events
in, dropped, plugin calls and drops. Lost = sent - replies; the host's
share of it = its events in - its calls, since JACK can drop MIDI itself
(an xrun without realtime scheduling). "stray" counts replies whose (note,
velocity) has no send waiting for it: repeats made after the host's one send
per call (JACK replaying a late client's buffer), not by the host. The pairs
repeat every 12,700 notes (2.5 s at 5,000/s), so each pair keeps its sends
in order and a reply answers the oldest one waiting: a reply later than
that is still timed from its own send, never counted as lost. The host's
CPU time per event (user + system, from /proc) is the figure least moved by
other load on the machine.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rtmidi
from _harness import ENV, Echo, build_velocity, jack_server, serving

API = rtmidi.API_UNIX_JACK
PADS = 100
PLUGINS = 20


def deck_text() -> str:
    lines = ["version = 1"]
    lines += [f'[plugins.p{n}]\npath = "velocity.wasm"' for n in range(PLUGINS)]
    lines.append('[devices.pad]\ninput = "load-pad:out"\noutput = "load-pad-fb:in"')
    for note in range(PADS):
        lines.append(
            f'[[bindings]]\nname = "pad{note}"\n'
            f'trigger = {{ kind = "note_on", device = "pad", note = {note} }}\n'
            f'actions = [{{ plugin = "p{note % PLUGINS}", action = "pick", '
            f'params = {{ choices = ["v{{velocity}}"] }} }}, '
            f'{{ midi = {{ type = "note_on", note = "{{note}}", velocity = "{{velocity}}" }} }}]'
        )
    return "\n".join(lines) + "\n"


class Load:
    """Plays notes at ``rate``/s, each (note, velocity) unique over 12,700 notes; times replies."""

    def __init__(self) -> None:
        self.out = rtmidi.MidiOut(API, "load-pad")
        self.out.open_virtual_port("out")
        self.inp = rtmidi.MidiIn(API, "load-pad-fb")
        self.inp.open_virtual_port("in")
        self.sent_at: dict[tuple[int, int], collections.deque[float]] = {}
        self.replies: list[tuple[float, float]] = []  # (sent at, ms)
        self.stray = 0
        self.inp.set_callback(self._reply)

    def _reply(self, event: tuple[list[int], float], _: object) -> None:
        now = time.perf_counter()
        data = event[0]
        if data[0] & 0xF0 != 0x90:
            return
        waiting = self.sent_at.get((data[1], data[2]))
        if not waiting:
            self.stray += 1
        else:
            sent = waiting.popleft()
            self.replies.append((sent, (now - sent) * 1000))

    def send(self, note: int, velocity: int) -> None:
        self.sent_at.setdefault((note, velocity), collections.deque()).append(time.perf_counter())
        self.out.send_message([0x90, note, velocity])

    def wait_connected(self) -> None:
        deadline = time.monotonic() + 20
        while not self.replies:
            self.send(0, 1)
            time.sleep(0.2)
            if time.monotonic() > deadline:
                raise RuntimeError("no answer over JACK")
        time.sleep(0.3)
        self.sent_at.clear()
        self.replies.clear()
        self.stray = 0

    def play(self, rate: int, seconds: float, tick: float = 0.0005) -> tuple[int, float]:
        """Send ``rate * seconds`` notes on schedule; the count and when it started."""
        total = int(rate * seconds)
        start = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                note, velocity = sent % PADS, 1 + (sent // PADS) % 127
                self.send(note, velocity)
                sent += 1
            time.sleep(tick)
        return sent, start

    def close(self) -> None:
        self.inp.cancel_callback()
        for port in (self.inp, self.out):
            port.close_port()
            port.delete()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def run_load(
    load: Load, rate: int, seconds: float, window: float, pid: int | None
) -> tuple[int, list[dict[str, float]]]:
    """Play for ``seconds``; one row per window (RSS read at each window's end)."""
    rss: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        start = time.perf_counter()
        n = 1
        while not done.wait(max(0.0, start + n * window - time.perf_counter())):
            rss.append((time.perf_counter(), rss_kib(pid) if pid else 0))
            n += 1
        rss.append((time.perf_counter(), rss_kib(pid) if pid else 0))  # the last window's end

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sent, start = load.play(rate, seconds)
    time.sleep(1.0)  # the last replies
    done.set()
    sampler.join()
    rows = []
    # Every reply falls in a window: the last may be shorter than the others,
    # and takes the replies that came after the last note was sent.
    count = max(1, math.ceil(seconds / window - 1e-9))
    for n in range(count):
        lo = start + n * window
        hi = start + (n + 1) * window if n < count - 1 else math.inf
        times = [ms for at, ms in load.replies if lo <= at < hi]
        p50, p99 = percentiles(times)
        end = min(hi, start + seconds)
        kib = next((k for at, k in rss if at >= end - 0.5), rss[-1][1] if rss else 0)
        rows.append(
            {
                "window": n,
                "seconds": min(window, seconds - n * window),
                "replies": len(times),
                "p50": p50,
                "p99": p99,
                "max": max(times, default=float("nan")),
                "rss": kib,
            }
        )
    return sent, rows


def status(home: Path) -> dict[str, object]:
    answer = subprocess.run(
        [sys.executable, "-m", "wasmdeck", "status", "--json"],
        env={**os.environ, "WASMDECK_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(answer.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument(
        "--window", type=float, default=None, help="seconds (default: 1/6 of the run)"
    )
    parser.add_argument("--floor-seconds", type=float, default=5)
    parser.add_argument("--period", type=int, default=256)
    parser.add_argument("--realtime", action="store_true", help="jackd --realtime (needs rtprio)")
    args = parser.parse_args()
    window = args.window or max(5.0, args.seconds / 6)
    os.environ.update(ENV)
    with (
        tempfile.TemporaryDirectory(prefix="wasmdeck-bench-") as scratch,
        jack_server(48000, args.period, realtime=args.realtime),
    ):
        work = Path(scratch)
        build_velocity(work)
        (work / "deck.toml").write_text(deck_text())
        load = Load()
        echo = Echo("load")
        load.wait_connected()
        floor_sent, _ = run_load(load, args.rate, args.floor_seconds, args.floor_seconds, None)
        floor_replies = [ms for _, ms in load.replies]
        floor_stray = load.stray
        echo.close()
        time.sleep(0.3)
        load.sent_at.clear()
        load.replies.clear()
        with serving(work / "deck.toml", work / "home") as host:
            load.wait_connected()
            before = status(work / "home")
            rss_start = rss_kib(host.pid)
            cpu_start = cpu_seconds(host.pid)
            sent, rows = run_load(load, args.rate, args.seconds, window, host.pid)
            cpu = cpu_seconds(host.pid) - cpu_start
            after = status(work / "home")
            rss_end = rss_kib(host.pid)
        load.close()
    print(
        f"{args.rate} notes/s into 100 pads over {PLUGINS} plugins, JACK dummy 48 kHz / "
        f"{args.period} frames; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    f50, f99 = percentiles(floor_replies)
    print(
        f"floor (bare echo, {args.floor_seconds:g} s): sent {floor_sent}, replies "
        f"{len(floor_replies)} (stray {floor_stray}), lost {floor_sent - len(floor_replies)}, "
        f"p50 {f50:.2f} ms, p99 {f99:.2f} ms"
    )
    print(f"wasmdeck serve, {args.seconds:g} s in windows of {window:g} s:")
    for row in rows:
        print(
            f"  window {row['window']:>2} ({row['seconds']:g} s): replies {row['replies']:>6}  "
            f"p50 {row['p50']:6.2f} ms  "
            f"p99 {row['p99']:7.2f} ms  max {row['max']:7.2f} ms  rss {row['rss'] / 1024:6.1f} MiB"
        )
    plugins = after["plugins"]
    assert isinstance(plugins, dict)
    calls = sum(p["calls"] for p in plugins.values()) - sum(
        p["calls"]
        for p in before["plugins"].values()  # type: ignore[union-attr]
    )
    drops = sum(p["drops"] for p in plugins.values())
    events_in = int(after["events_in"]) - int(before["events_in"])  # type: ignore[call-overload]
    replies = sum(int(r["replies"]) for r in rows)
    print(
        f"sent {sent}, host events in {events_in}, plugin calls {calls}, queue drops {drops}, "
        f"events dropped {after['events_dropped']}, replies {replies} (stray {load.stray})"
    )
    print(f"lost={sent - replies} host_lost={events_in - calls} jack_lost={sent - events_in}")
    collections = after["gc"]["full_collections"] - before["gc"]["full_collections"]  # type: ignore[index]
    print(f"host_full_gc_collections_during_load={collections}")
    print(
        f"host_cpu_s={cpu:.1f} host_cpu_share={cpu / args.seconds:.2f} of a core, "
        f"host_cpu_us_per_event={cpu / max(events_in, 1) * 1e6:.0f}"
    )
    first = rows[0]["rss"] if rows else rss_start
    print(
        f"rss_start_mib={rss_start / 1024:.1f} rss_after_first_window_mib={first / 1024:.1f} "
        f"rss_end_mib={rss_end / 1024:.1f} growth_mib={(rss_end - first) / 1024:.2f}"
    )
    p99s = [r["p99"] for r in rows]
    print(f"p99_ms_min={min(p99s):.2f} p99_ms_max={max(p99s):.2f} floor_p99_ms={f99:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
