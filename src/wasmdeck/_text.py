"""Untrusted text on a terminal: control characters shown, never obeyed.

Plugin names, descriptions, manifest fields, capability scopes, plugin log
lines and messages reach the user's terminal. A terminal obeys what it is
sent: an ESC sequence can move the cursor and overwrite the capabilities a
consent screen listed, a C1 ``CSI`` (U+009B) does the same on 8-bit
terminals, and a bidi override (U+202E) reverses what follows. Every such
character is written as a visible escape instead (``\\x1b``, ``\\u202e``).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["terminal_safe"]

# Categories never shown as themselves: controls (C0, DEL, C1), format characters
# (bidi embeddings/overrides/isolates, zero-width ones, U+FEFF...), lone surrogates,
# line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ASCII_SAFE = re.compile(r"[ -~]*")


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def terminal_safe(text: object, *, limit: int | None = None, multiline: bool = False) -> str:
    """``text`` with every control and format character escaped visibly.

    ``limit`` cuts the result to about that many characters (marked with
    ``...``), so a huge field cannot push what follows it off the screen.
    ``multiline`` keeps line feeds as they are (for messages of several lines).
    """
    value = text if isinstance(text, str) else str(text)
    if limit is not None and len(value) > limit:
        value = value[:limit]
        cut = True
    else:
        cut = False
    if not _ASCII_SAFE.fullmatch(value):
        value = "".join(
            char
            if (multiline and char == "\n") or unicodedata.category(char) not in _UNSAFE_CATEGORIES
            else _escape(char)
            for char in value
        )
    return value + "..." if cut else value
