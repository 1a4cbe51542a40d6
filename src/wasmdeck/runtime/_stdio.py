"""WASI stdout/stderr, captured line by line into Python logging."""

from __future__ import annotations

import logging

__all__ = ["LineLogger", "plugin_logger"]

# A plugin printing without newlines must not grow host memory without bound.
MAX_LINE = 8192


def plugin_logger(name: str) -> logging.Logger:
    """The logger a plugin's output goes to: ``wasmdeck.plugin.<name>``."""
    return logging.getLogger(f"wasmdeck.plugin.{name}")


class LineLogger:
    """Collects bytes written to one stream and logs each complete line."""

    __slots__ = ("level", "logger", "pending", "stream")

    def __init__(self, logger: logging.Logger, level: int, stream: str) -> None:
        self.logger = logger
        self.level = level
        self.stream = stream
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        self.pending += data
        while True:
            newline = self.pending.find(b"\n")
            if newline < 0:
                if len(self.pending) > MAX_LINE:
                    self._emit(bytes(self.pending[:MAX_LINE]))
                    del self.pending[:MAX_LINE]
                    continue
                return
            self._emit(bytes(self.pending[:newline]))
            del self.pending[: newline + 1]

    def flush(self) -> None:
        """Log a trailing partial line (called at the end of every plugin call)."""
        if self.pending:
            self._emit(bytes(self.pending))
            self.pending.clear()

    def _emit(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        self.logger.log(self.level, "%s", text, extra={"plugin_stream": self.stream})
