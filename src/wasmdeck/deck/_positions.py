"""Where each key and value of a TOML document stands: ``(line, column)`` by path.

``tomllib`` reports positions for syntax errors only; semantic errors in a
deck ("no plugin named 'obz'") need the place too. This scanner reads the
source once more, after ``tomllib`` accepted it, and records the position of
every value under its path (``("bindings", 3, "trigger", "note")``), so a
message can point at the exact spot. It is lenient by design: the syntax is
already known to be valid. The scan runs on the first ``where``: a valid deck
needs no positions, and skipping it is most of a live reload's parse time
(benchmarks/deck_reload.py).
"""

from __future__ import annotations

import bisect
import re
import threading

__all__ = ["Path", "PositionIndex"]

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SPACE = " \t"


class PositionIndex:
    """Positions (1-based line and column) of the values in a TOML text."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: list[int] = []
        self._values: dict[Path, int] = {}
        self._arrays: dict[Path, int] = {}  # array-of-tables path -> element count
        self._scanned = False
        self._lock = threading.Lock()

    @property
    def values(self) -> dict[Path, int]:
        """The offset of every value, by path."""
        if not self._scanned:
            with self._lock:
                if not self._scanned:
                    self._lines = [0] + [m.end() for m in re.finditer(r"\n", self._text)]
                    self._scan()
                    self._scanned = True
        return self._values

    def where(self, path: Path) -> tuple[int, int]:
        """The position of ``path``, or of its nearest recorded ancestor (1, 1 at worst)."""
        values = self.values
        while path:
            offset = values.get(path)
            if offset is not None:
                return self._line_col(offset)
            path = path[:-1]
        return (1, 1)

    def _line_col(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._lines, offset)
        return line, offset - self._lines[line - 1] + 1

    # -- scanning ------------------------------------------------------------

    def _scan(self) -> None:
        text, i = self._text, 0
        table: Path = ()
        while i < len(text):
            i = self._skip_blank(i, newlines=True)
            if i >= len(text):
                break
            if text[i] == "[":
                i, table = self._header(i)
            else:
                i = self._key_value(i, table)
            i = self._skip_to_line_end(i)

    def _header(self, i: int) -> tuple[int, Path]:
        text = self._text
        start = i
        array = text.startswith("[[", i)
        i += 2 if array else 1
        keys, i = self._keys(i)
        i = text.index("]", i) + (2 if array else 1)
        path: Path = ()
        for n, key in enumerate(keys):
            path = (*path, key)
            last = n == len(keys) - 1
            if last and array:
                count = self._arrays.get(path, 0)
                self._arrays[path] = count + 1
                self._values.setdefault(path, start)
                path = (*path, count)
            elif path in self._arrays:
                path = (*path, self._arrays[path] - 1)
        self._values[path] = start
        return i, path

    def _key_value(self, i: int, table: Path) -> int:
        keys, i = self._keys(i)
        i = self._skip_blank(i)
        i += 1  # "="
        i = self._skip_blank(i)
        return self._value(i, (*table, *keys))

    def _keys(self, i: int) -> tuple[list[str], int]:
        text, keys = self._text, []
        while True:
            i = self._skip_blank(i)
            if text[i] in "\"'":
                end = self._string_end(i)
                keys.append(_unquote(text[i:end]))
                i = end
            else:
                match = _BARE.match(text, i)
                end = match.end() if match else i + 1
                keys.append(text[i:end])
                i = end
            i = self._skip_blank(i)
            if i < len(text) and text[i] == ".":
                i += 1
                continue
            return keys, i

    def _value(self, i: int, path: Path) -> int:
        text = self._text
        self._values[path] = i
        char = text[i] if i < len(text) else ""
        if char in "\"'":
            return self._string_end(i)
        if char == "[":
            i, n = i + 1, 0
            while True:
                i = self._skip_blank(i, newlines=True)
                if text[i] == "]":
                    return i + 1
                i = self._value(i, (*path, n))
                n += 1
                i = self._skip_blank(i, newlines=True)
                if text[i] == ",":
                    i += 1
        if char == "{":
            i += 1
            while True:
                i = self._skip_blank(i, newlines=True)
                if text[i] == "}":
                    return i + 1
                i = self._key_value(i, path)
                i = self._skip_blank(i, newlines=True)
                if text[i] == ",":
                    i += 1
        while i < len(text) and text[i] not in ",]}\n#":
            i += 1
        return i

    def _string_end(self, i: int) -> int:
        text = self._text
        quote = text[i]
        if text.startswith(quote * 3, i):
            end = text.index(quote * 3, i + 3) + 3
            while end < len(text) and text[end] == quote:  # up to two quotes may close it
                end += 1
            return end
        i += 1
        while text[i] != quote:
            i += 2 if quote == '"' and text[i] == "\\" else 1
        return i + 1

    def _skip_blank(self, i: int, *, newlines: bool = False) -> int:
        text = self._text
        while i < len(text):
            char = text[i]
            if char in _SPACE or (newlines and char in "\r\n"):
                i += 1
            elif char == "#" and newlines:
                i = self._skip_to_line_end(i)
            else:
                break
        return i

    def _skip_to_line_end(self, i: int) -> int:
        end = self._text.find("\n", i)
        return len(self._text) if end < 0 else end + 1


def _unquote(key: str) -> str:
    if key.startswith("'"):
        return key[1:-1]
    import tomllib

    return str(tomllib.loads(f"k = {key}")["k"])
