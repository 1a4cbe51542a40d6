"""MIDI ports through python-rtmidi, messages as mido's, devices matched by port name.

Ports are opened with python-rtmidi itself: mido's rtmidi backend names the
host's own JACK port after the port it connects to ("client:port"), and
JACK then cannot connect the two. Input arrives as bytes (parsed on the loop
by ``MidiEvent.from_bytes``); ``send`` takes mido messages as well.
The API is the platform's default (ALSA on Linux) unless ``MIDO_BACKEND``
names one as mido documents it (``mido.backends.rtmidi/UNIX_JACK``; the
tests and CI use JACK). Input callbacks run on rtmidi's thread, which on
JACK is the client's process thread: every moment it waits for the GIL is a
moment JACK's cycle waits, and notes are lost when it waits too long. So it
only puts the bytes in the loop's inbox (daemon/_inbox.py) and returns:
no parsing, no self-pipe write per message.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from .._errors import WasmdeckError
from ..deck import Deck, port_matches
from ._inbox import Inbox

__all__ = ["MidiIO", "MidiUnavailable", "list_ports", "midi_api"]

log = logging.getLogger("wasmdeck.daemon.midi")


class MidiUnavailable(WasmdeckError):
    """The MIDI system cannot be reached (no ALSA sequencer, no JACK server)."""


def midi_api() -> int:
    """The rtmidi API: ``MIDO_BACKEND``'s ``/API`` part, or the platform's default."""
    import rtmidi  # type: ignore[import-untyped]

    name = os.environ.get("MIDO_BACKEND", "").partition("/")[2]
    if not name:
        return int(rtmidi.API_UNSPECIFIED)
    api = getattr(rtmidi, f"API_{name}", None)
    if api is None or api not in rtmidi.get_compiled_api():
        compiled = ", ".join(rtmidi.get_api_name(a).upper() for a in rtmidi.get_compiled_api())
        raise MidiUnavailable(f"MIDI API {name!r} is not available; this build has: {compiled}")
    return int(api)


def _client(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "input" else rtmidi.MidiOut
    try:
        return cls(midi_api(), name)
    except rtmidi.SystemError as exc:
        raise MidiUnavailable(f"cannot reach the MIDI system: {exc}") from None


def list_ports() -> tuple[list[str], list[str]]:
    """The MIDI input and output port names this machine has."""
    inputs, outputs = _client("input", "wasmdeck-list"), _client("output", "wasmdeck-list")
    try:
        return list(inputs.get_ports()), list(outputs.get_ports())
    finally:
        inputs.delete()
        outputs.delete()


class MidiIO:
    """The deck's devices opened: inputs feed ``on_message(device, bytes)`` on the
    loop, outputs take ``send``."""

    def __init__(
        self,
        deck: Deck,
        inbox: Inbox,
        on_message: Callable[[str, list[int]], None],
    ) -> None:
        self._inbox = inbox
        self._on_message = on_message
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.open(deck)

    def open(self, deck: Deck) -> None:
        """Open the ports of ``deck``'s devices (those already open stay open)."""
        for device in deck.devices.values():
            for kind, pattern, opened in (
                ("input", device.input, self.inputs),
                ("output", device.output, self.outputs),
            ):
                if pattern is None or device.name in opened:
                    continue
                port = self._open(kind, device.name, pattern, device.virtual)
                if port is not None:
                    opened[device.name] = port

    def _open(self, kind: str, device: str, pattern: str, virtual: bool) -> Any:
        short = "in" if kind == "input" else "out"
        client = _client(kind, f"wasmdeck-{device}-{short}")
        if kind == "input":
            client.ignore_types(sysex=True, timing=True, active_sense=True)
            client.set_callback(self._received, device)
        if virtual:
            # The host's own port, named by the deck; other programs connect to it.
            client.open_virtual_port(pattern)
            log.info("device %s: virtual %s port %r", device, kind, pattern)
            return client
        ports = client.get_ports()
        for index, name in enumerate(ports):
            if port_matches(pattern, name):
                client.open_port(index, short)
                log.info("device %s: %s %r", device, kind, name)
                return client
        client.delete()
        log.warning("device %s: no MIDI %s matches %r (ports: %s)", device, kind, pattern, ports)
        return None

    def _received(self, event: tuple[list[int], float], device: str) -> None:
        # rtmidi's thread (JACK's process thread): hand over and return.
        self._inbox.put(self._on_message, device, event[0])

    def send(self, device: str, message: Any) -> bool:
        """Send one mido message to a device's output; False when it has none open."""
        return self.send_bytes(device, message.bytes())

    def send_bytes(self, device: str, data: list[int]) -> bool:
        """Send one message's bytes to a device's output; False when it has none open."""
        port = self.outputs.get(device)
        if port is None:
            return False
        port.send_message(data)
        return True

    def close(self) -> None:
        # Callbacks off first: closing waits for JACK's process thread, which
        # would otherwise be waiting for the GIL this thread holds to call us.
        for port in self.inputs.values():
            with contextlib.suppress(Exception):
                port.cancel_callback()
        for port in [*self.inputs.values(), *self.outputs.values()]:
            with contextlib.suppress(Exception):  # a port that is gone already
                port.close_port()
                port.delete()
        self.inputs.clear()
        self.outputs.clear()
