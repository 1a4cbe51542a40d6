"""Sandbox limits applied to each plugin call."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-plugin sandbox limits. The defaults are MIDIMon's.

    - ``fuel``: wasm instructions (roughly) one call may execute.
    - ``timeout``: wall-clock seconds one call may run, enforced by epoch
      interruption (within a few milliseconds of the deadline).
    - ``max_memory``: bytes of linear memory; ``memory.grow`` past it fails.
    - ``max_table_elements``, ``max_tables``, ``max_memories``,
      ``max_instances``: the other per-store resources.
    - ``max_output``: bytes a plugin may hand back through ``set_output`` or
      ``set_error``.
    - ``max_response``: bytes the host hands a plugin in one host call: an
      HTTP response body, a WebSocket message, a program's captured output.
    - ``max_kv_bytes``: the plugin's key-value quota (keys and values).
    """

    fuel: int = 100_000_000
    timeout: float = 5.0
    max_memory: int = 128 * MiB
    max_table_elements: int = 10_000
    max_tables: int = 4
    max_memories: int = 1
    max_instances: int = 4
    max_output: int = 1 * MiB
    max_response: int = 4 * MiB
    max_kv_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        for name in (
            "fuel",
            "max_memory",
            "max_table_elements",
            "max_tables",
            "max_memories",
            "max_instances",
            "max_output",
            "max_response",
            "max_kv_bytes",
        ):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"limit {name} must be a positive integer, not {value!r}")
        if not isinstance(self.timeout, int | float) or not 0 < self.timeout <= 86_400:
            raise ValueError(f"limit timeout must be seconds in (0, 86400], not {self.timeout!r}")
