"""Device profiles: a controller's pads and controls by name (``pad = "A1"`` in a binding).

A profile maps pad names to note numbers and control names to CC numbers.
The deck may declare its own (``[profiles.NAME]``) or use a built-in one
(docs/deck.md, "Device profiles"); the parser resolves names to numbers,
so the trigger engine only ever sees numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["BUILTIN_PROFILES", "Profile"]


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    pads: Mapping[str, int] = field(default_factory=dict)  # name -> note
    controls: Mapping[str, int] = field(default_factory=dict)  # name -> controller
    builtin: bool = False


_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}


def _note_names() -> Profile:
    """Scientific pitch: C4 is note 60 (middle C), C-1 is 0, G9 is 127; sharps and flats."""
    pads: dict[str, int] = {}
    for note in range(128):
        octave = note // 12 - 1
        name = _NAMES[note % 12]
        pads[f"{name}{octave}"] = note
        if name in _FLATS:
            pads[f"{_FLATS[name]}{octave}"] = note
    return Profile("note-names", pads, {}, builtin=True)


def _launchpad_programmer() -> Profile:
    """Novation Launchpad X / Mini MK3 in Programmer mode.

    The 8x8 grid is named like a chessboard: columns A-H left to right, rows
    1-8 bottom to top; its notes are 10 * row + column (A1 = 11, H8 = 88).
    The top row of buttons sends CC 91-98 (``top1``-``top8``, left to
    right), the right column CC 19-89 (``side1``-``side8``, bottom to top).
    """
    pads = {
        f"{'ABCDEFGH'[col - 1]}{row}": 10 * row + col for row in range(1, 9) for col in range(1, 9)
    }
    controls = {f"top{n}": 90 + n for n in range(1, 9)}
    controls.update({f"side{n}": 10 * n + 9 for n in range(1, 9)})
    return Profile("launchpad-programmer", pads, controls, builtin=True)


BUILTIN_PROFILES: Mapping[str, Profile] = {
    p.name: p for p in (_note_names(), _launchpad_programmer())
}
