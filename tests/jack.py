"""A real JACK server (Debian's jackd2, dummy driver) for the MIDI tests, and ports on it.

Each test session starts its own named server (``JACK_DEFAULT_SERVER``), so
parallel runs on one machine never share one. ``scripts/install-system-deps``
installs jackd2; without it these tests fail, naming the install.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import mido
import pytest

BACKEND = "mido.backends.rtmidi/UNIX_JACK"


@pytest.fixture(scope="session")
def jack_server() -> Iterator[dict[str, str]]:
    """A running JACK server; yields the environment that reaches it."""
    if shutil.which("jackd") is None:
        pytest.fail("jackd is not installed: run scripts/install-system-deps", pytrace=False)
    name = f"wasmdeck-test-{os.getpid()}"
    env = {
        **os.environ,
        "JACK_DEFAULT_SERVER": name,
        "JACK_NO_START_SERVER": "1",
        "JACK_NO_AUDIO_RESERVATION": "1",
        "MIDO_BACKEND": BACKEND,
    }
    server = subprocess.Popen(
        ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "1024"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            err = server.stderr.read().decode() if server.stderr else ""
            pytest.fail(f"jackd did not start: {err[-2000:]}", pytrace=False)
        time.sleep(0.05)
    saved = {k: os.environ.get(k) for k in env if env[k] != os.environ.get(k)}
    os.environ.update({k: env[k] for k in saved})
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class Controller:
    """A pretend controller: a JACK MIDI output to play into the host, an input to read its feedback."""

    def __init__(self, client: str) -> None:
        self.client = client
        midi = mido.Backend(BACKEND, load=True)
        self.received: queue.Queue[Any] = queue.Queue()
        self.out = midi.open_output("pad-out", virtual=True, client_name=client)
        # JACK client names are unique: the feedback input is a client of its own.
        self.inp = midi.open_input(
            "pad-in", virtual=True, client_name=f"{client}-fb", callback=self.received.put
        )

    def send(self, type_: str, **fields: Any) -> None:
        self.out.send(mido.Message(type_, **fields))

    def receive(self, timeout: float = 5.0) -> Any:
        """The next message the host sent (raises queue.Empty after ``timeout``)."""
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.out.close()
        self.inp.close()


class Outsider:
    """Another program's client: connects to ports the host made (virtual ones), by name.

    python-rtmidi directly (daemon/_midi.py says why not mido): ``open_port``
    on a named port is a JACK connection from this client to it.
    """

    def __init__(self, client: str, send_to: str, listen_to: str) -> None:
        import rtmidi  # type: ignore[import-untyped]

        self.received: queue.Queue[Any] = queue.Queue()
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, client)
        self.inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"{client}-fb")
        self.inp.set_callback(lambda event, _: self.received.put(mido.Message.from_bytes(event[0])))
        self.out.open_port(self._index(self.out, send_to), "to-host")
        self.inp.open_port(self._index(self.inp, listen_to), "from-host")

    @staticmethod
    def _index(client: Any, name: str) -> int:
        ports = client.get_ports()
        if name not in ports:
            raise AssertionError(f"no JACK port {name!r}; ports: {ports}")
        return int(ports.index(name))

    def send(self, type_: str, **fields: Any) -> None:
        self.out.send_message(mido.Message(type_, **fields).bytes())

    def receive(self, timeout: float = 5.0) -> Any:
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.inp.cancel_callback()
        for port in (self.out, self.inp):
            port.close_port()
            port.delete()
