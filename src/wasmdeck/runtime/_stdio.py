"""WASI stdout/stderr, captured line by line into Python logging, within a budget."""

from __future__ import annotations

import logging

__all__ = ["LineLogger", "LogBudget", "plugin_logger"]

# A plugin printing without newlines must not grow host memory without bound.
MAX_LINE = 8192


def plugin_logger(name: str) -> logging.Logger:
    """The logger a plugin's output goes to: ``wasmdeck.plugin.<name>``."""
    return logging.getLogger(f"wasmdeck.plugin.{name}")


class LogBudget:
    """What one call may still log: ``Limits.max_log_bytes`` and ``max_log_lines``.

    Shared by a plugin's stdout, stderr and ``log`` host function, and reset
    at the start of every call. Past the budget one "log truncated" line is
    logged and everything else the call writes is dropped unread, so a plugin
    flooding its output costs the host a callback per write, not a log
    record (and whatever its handlers do) per line.
    """

    __slots__ = ("bytes_left", "lines_left", "max_bytes", "max_lines", "spent", "truncated")

    def __init__(self, max_bytes: int, max_lines: int) -> None:
        self.max_bytes = max_bytes
        self.max_lines = max_lines
        self.bytes_left = max_bytes
        self.lines_left = max_lines
        self.truncated = False
        # Whether anything was taken since the last reset: most calls log
        # nothing, and the hot path resets only a budget that was used.
        self.spent = False

    def reset(self) -> None:
        self.bytes_left = self.max_bytes
        self.lines_left = self.max_lines
        self.truncated = self.spent = False

    def admit(self, logger: logging.Logger, size: int) -> bool:
        """Take one line of ``size`` bytes from the budget; False once it is spent."""
        self.spent = True
        if self.truncated:
            return False
        if self.lines_left > 0 and size <= self.bytes_left:
            self.lines_left -= 1
            self.bytes_left -= size
            return True
        self.truncated = True
        logger.warning(
            "log truncated: this call logged more than its limit of %s lines or %s bytes "
            "(Limits.max_log_lines, max_log_bytes); the rest of its log is dropped",
            f"{self.max_lines:,}",
            f"{self.max_bytes:,}",
            extra={"plugin_stream": "wasmdeck"},
        )
        return False


class LineLogger:
    """Collects bytes written to one stream and logs each complete line.

    With a ``budget``, lines past it are dropped (see ``LogBudget``).
    """

    __slots__ = ("budget", "level", "logger", "pending", "stream")

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        stream: str,
        budget: LogBudget | None = None,
    ) -> None:
        self.logger = logger
        self.level = level
        self.stream = stream
        self.budget = budget
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        budget = self.budget
        if budget is not None and budget.truncated:
            return  # spent for this call: not even buffered
        self.pending += data
        while True:
            newline = self.pending.find(b"\n")
            if newline < 0:
                if len(self.pending) > MAX_LINE:
                    self._emit_checked(bytes(self.pending[:MAX_LINE]))
                    del self.pending[:MAX_LINE]
                    continue
                return
            self._emit_checked(bytes(self.pending[:newline]))
            del self.pending[: newline + 1]

    def flush(self) -> None:
        """Log a trailing partial line (called at the end of every plugin call)."""
        if self.pending:
            self._emit_checked(bytes(self.pending))
            self.pending.clear()

    def _emit_checked(self, line: bytes) -> None:
        budget = self.budget
        if budget is None or budget.admit(self.logger, len(line) + 1):
            self._emit(line)
        else:
            self.pending.clear()

    def _emit(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        self.logger.log(self.level, "%s", text, extra={"plugin_stream": self.stream})
