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
    """

    velocity: int | None = None
    mode: int | None = None
    timestamp: int = field(default_factory=_now_ms)

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

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TriggerContext:
        """Build a context from a mapping with ``velocity``, ``mode``, ``timestamp``.

        ``current_mode`` (the name MIDIMon v2.5 plugins read) is the same field
        as ``mode``; giving both with different values is an error.
        """
        unknown = set(data) - {"velocity", "mode", "current_mode", "timestamp"}
        if unknown:
            raise ValueError(
                f"unknown trigger context field(s): {', '.join(sorted(map(str, unknown)))} "
                "(expected velocity, mode (or current_mode), timestamp)"
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

    def to_dict(self) -> dict[str, int | None]:
        return {"velocity": self.velocity, "mode": self.mode, "timestamp": self.timestamp}
