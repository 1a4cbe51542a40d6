"""The trigger context: what the control surface knew when it fired."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["TriggerContext"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class TriggerContext:
    """Velocity (0-127) and mode of the trigger, and when it fired.

    ``timestamp`` is milliseconds since the Unix epoch; it defaults to now.
    What knobs and faders need comes after (since WIT 1.1.0; each None when
    the trigger has none, and then absent from the request, so plugins
    written before keep working): ``kind`` (the deck's trigger kind, e.g.
    ``"cc"``), ``channel`` (MIDI 1-16), ``note`` and ``controller`` (0-127),
    and ``value``, the raw value (a CC value or pressure 0-127, a program,
    a pitch bend -8192..8191).
    """

    velocity: int | None = None
    mode: int | None = None
    timestamp: int = field(default_factory=_now_ms)
    kind: str | None = None
    channel: int | None = None
    note: int | None = None
    controller: int | None = None
    value: int | None = None
    # request_json's answer, made at its first use (a context may serve many calls).
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.velocity is not None:
            if type(self.velocity) is not int:
                raise ValueError(
                    f"velocity must be an integer 0-127 or None, not {self.velocity!r}"
                )
            if not 0 <= self.velocity <= 127:
                raise ValueError(f"velocity must be 0-127, not {self.velocity}")
        if self.mode is not None and type(self.mode) is not int:
            raise ValueError(f"mode must be an integer or None, not {self.mode!r}")
        if type(self.timestamp) is not int or self.timestamp < 0:
            raise ValueError(
                f"timestamp must be a non-negative integer (ms since the epoch), "
                f"not {self.timestamp!r}"
            )
        if self.kind is not None and (
            type(self.kind) is not str or not self.kind.isidentifier() or len(self.kind) > 32
        ):
            raise ValueError(f"kind must be a short identifier or None, not {self.kind!r}")
        for name, low, high in _RANGES:
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not low <= value <= high):
                raise ValueError(f"{name} must be an integer {low}-{high} or None, not {value!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TriggerContext:
        """Build a context from a mapping with ``velocity``, ``mode``, ``timestamp``, ...

        ``current_mode`` (the name MIDIMon v2.5 plugins read) is the same field
        as ``mode``; giving both with different values is an error.
        """
        unknown = set(data) - {*_FIELDS, "current_mode"}
        if unknown:
            raise ValueError(
                f"unknown trigger context field(s): {', '.join(sorted(map(str, unknown)))} "
                f"(expected {', '.join(_FIELDS)}; current_mode for mode)"
            )
        kwargs = dict(data)
        if "current_mode" in kwargs:
            current_mode = kwargs.pop("current_mode")
            mode = kwargs.get("mode", current_mode)
            if type(mode) is not type(current_mode) or mode != current_mode:
                raise ValueError(
                    f"trigger context gives mode {kwargs['mode']!r} and current_mode "
                    f"{current_mode!r}; they are one field (give one, or the same value)"
                )
            kwargs["mode"] = current_mode
        if kwargs.get("timestamp") is None:
            kwargs.pop("timestamp", None)
        return cls(**kwargs)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, int | str | None]:
        """velocity, mode and timestamp, and those of the later fields that are set."""
        out: dict[str, int | str | None] = {
            "velocity": self.velocity,
            "mode": self.mode,
            "timestamp": self.timestamp,
        }
        for name in _FIELDS[3:]:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def request_json(self) -> bytes:
        """The request's ``context`` object as JSON (docs/abi.md, "The request").

        The mode goes out twice, as ``mode`` and as ``current_mode`` (the name
        MIDIMon v2.5 plugins read). Made once per context: it is immutable.
        """
        encoded = self._json
        if encoded is None:
            velocity = b"null" if self.velocity is None else b"%d" % self.velocity
            mode = b"null" if self.mode is None else b"%d" % self.mode
            encoded = b'{"velocity":%b,"mode":%b,"current_mode":%b,"timestamp":%d%b}' % (
                velocity,
                mode,
                mode,
                self.timestamp,
                self.extra_json(),
            )
            object.__setattr__(self, "_json", encoded)  # frozen: the cache is not a field
        return encoded

    def extra_json(self) -> bytes:
        """The set fields after ``timestamp`` as JSON members (``,"kind":"cc",...``), or b""."""
        if (
            self.kind is None
            and self.channel is None
            and self.note is None
            and self.controller is None
            and self.value is None
        ):
            return b""  # a pad's or a webhook's context: the common case, kept cheap
        parts = []
        if self.kind is not None:
            parts.append(b',"kind":"%b"' % self.kind.encode())  # an identifier: no escaping
        for name in _FIELDS[4:]:
            value = getattr(self, name)
            if value is not None:
                parts.append(b',"%b":%d' % (name.encode(), value))
        return b"".join(parts)


_FIELDS = ("velocity", "mode", "timestamp", "kind", "channel", "note", "controller", "value")
_RANGES = (("channel", 1, 16), ("note", 0, 127), ("controller", 0, 127), ("value", -8192, 16383))
