"""What the host benchmarks share: a JACK dummy server of their own, the plugin, `wasmdeck serve`."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import rtmidi

from wasmdeck.toolchains import compile_c, sdk_dir

ROOT = Path(__file__).resolve().parent.parent
SERVER = f"wasmdeck-bench-{os.getpid()}"
ENV = {
    "JACK_DEFAULT_SERVER": SERVER,
    "JACK_NO_START_SERVER": "1",
    "JACK_NO_AUDIO_RESERVATION": "1",
    "MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK",
}


@contextlib.contextmanager
def jack_server(rate: int, period: int, *, realtime: bool = False) -> Iterator[None]:
    """jackd2 with the dummy driver (a cycle every ``period / rate`` s), this process's clients on it."""
    os.environ.update(ENV)
    mode = "--realtime" if realtime else "--no-realtime"
    command = ["jackd", "-n", SERVER, mode, "-d", "dummy", "-r", str(rate), "-p", str(period)]
    jack = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["jack_lsp"], capture_output=True).returncode != 0:
            if jack.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("jackd did not start")
            time.sleep(0.05)
        yield
    finally:
        jack.terminate()
        jack.wait(30)


def build_velocity(work: Path) -> Path:
    """The C velocity example (examples/c/velocity), built into ``work``."""
    output = work / "velocity.wasm"
    source = ROOT / "examples" / "c" / "velocity" / "velocity.c"
    compile_c([source], output, include_dirs=[sdk_dir("c")])
    return output


LOG: deque[str] = deque(maxlen=200)  # the host's last lines on stderr


@contextlib.contextmanager
def serving(deck: Path, home: Path) -> Iterator[subprocess.Popen[str]]:
    """``wasmdeck serve --deck DECK`` until the block ends (SIGTERM, then waited for).

    Its stderr is read all along (into ``LOG``): a full pipe would stall its logging.
    """
    host = subprocess.Popen(
        [sys.executable, "-m", "wasmdeck", "serve", "--deck", str(deck)],
        env={**os.environ, "WASMDECK_HOME": str(home)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stderr is not None
        for line in host.stderr:
            if "serving" in line:
                break
        else:
            raise RuntimeError(f"wasmdeck serve did not start (exit {host.wait()})")
        threading.Thread(target=LOG.extend, args=(host.stderr,), daemon=True).start()
        yield host
    finally:
        host.terminate()
        host.wait(60)


class Echo:
    """The floor: each note-on from ``PREFIX-pad:out`` goes straight back to ``PREFIX-pad-fb:in``."""

    def __init__(self, prefix: str) -> None:
        api = rtmidi.API_UNIX_JACK
        self.out = rtmidi.MidiOut(api, f"{prefix}-echo-out")
        self.out.open_port(self.out.get_ports().index(f"{prefix}-pad-fb:in"), "out")
        self.inp = rtmidi.MidiIn(api, f"{prefix}-echo-in")
        self.inp.open_port(self.inp.get_ports().index(f"{prefix}-pad:out"), "in")
        self.inp.set_callback(self._echo)

    def _echo(self, event: tuple[list[int], float], _: object) -> None:
        if event[0][0] & 0xF0 == 0x90:
            self.out.send_message(event[0])

    def close(self) -> None:
        self.inp.cancel_callback()
        for port in (self.inp, self.out):
            port.close_port()
            port.delete()
