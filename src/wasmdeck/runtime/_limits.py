"""Sandbox limits applied to each plugin call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Limits"]

MiB = 1024 * 1024
INSTANCE_POLICIES = ("persistent", "per-call")


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
    - ``max_log_bytes``, ``max_log_lines``: what one call may log, counted
      together over WASI stdout, stderr and the ``log`` host function.
      Past either, the rest of the call's log is dropped after one
      "log truncated" line; the call itself goes on.
    - ``max_module_bytes``, ``max_functions``, ``max_function_bytes``:
      checked before a module or component is compiled (compiling cannot be
      interrupted; its time grows with these): the binary's size, the
      functions it defines (summed over a component's core modules, with its
      lifted/lowered functions) and its largest function body. The defaults
      admit every kit's plugins with room (componentize-py: 19 MB, 13,500
      functions, a 427 KB function).
    - ``max_compile_cpu``: CPU seconds a compile may use (all its threads;
      unlike wall-clock time it does not grow when the machine is busy).
      Past it the compile is stopped and the plugin refused. A compile cannot
      be interrupted in process, so binaries with more than 64 KiB of code
      compile in a child process that the kernel stops at the limit (about
      0.1 s more, once: the result is cached), with a wall-clock backstop of
      ten times the limit; smaller ones compile in process, within about a
      second whatever they hold.
    - ``instance``: ``"persistent"`` (the default) keeps one instance, and
      its memory, from call to call; ``"per-call"`` starts a fresh instance
      for every call, as MIDIMon did (see the README for its cost).
    - ``max_state``: bytes of state a plugin may hand to its next version
      in a live reload (its ``save_state`` export; docs/reload.md). Over it
      the reload fails with ``StateLimitExceeded`` and the old version runs on.
    - ``pool``: how many calls of the plugin may run at once, each on an
      instance of its own (made when needed; 1-64). Instances share nothing
      but kv and shared state (docs/teamwork.md).
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
    max_log_bytes: int = 1 * MiB
    max_log_lines: int = 10_000
    max_module_bytes: int = 32 * MiB
    max_functions: int = 20_000
    max_function_bytes: int = 1 * MiB
    max_state: int = 4 * MiB
    max_compile_cpu: float = 120.0
    instance: Literal["persistent", "per-call"] = "persistent"
    pool: int = 1

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
            "max_log_bytes",
            "max_log_lines",
            "max_module_bytes",
            "max_functions",
            "max_function_bytes",
            "max_state",
        ):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"limit {name} must be a positive integer, not {value!r}")
        if not isinstance(self.timeout, int | float) or not 0 < self.timeout <= 86_400:
            raise ValueError(f"limit timeout must be seconds in (0, 86400], not {self.timeout!r}")
        if (
            not isinstance(self.max_compile_cpu, int | float)
            or not 0 < self.max_compile_cpu <= 86_400
        ):
            raise ValueError(
                "limit max_compile_cpu must be CPU seconds in (0, 86400], "
                f"not {self.max_compile_cpu!r}"
            )
        if type(self.pool) is not int or not 1 <= self.pool <= 64:
            raise ValueError(f"limit pool must be an integer 1-64, not {self.pool!r}")
        if self.instance not in INSTANCE_POLICIES:
            raise ValueError(
                f"limit instance must be one of {', '.join(map(repr, INSTANCE_POLICIES))}, "
                f"not {self.instance!r}"
            )
