"""What is wrong with a deck, each problem at its file:line:column."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import WasmdeckError

__all__ = ["DeckError", "DeckProblem"]


@dataclass(frozen=True, slots=True)
class DeckProblem:
    """One problem with a deck, at ``file:line:column``; an error or a warning."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class DeckError(WasmdeckError):
    """A deck that cannot run; ``problems`` says where and why, one per line."""

    def __init__(self, problems: list[DeckProblem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        super().__init__(f"the deck has {count}:\n" + "\n".join(str(p) for p in problems))
