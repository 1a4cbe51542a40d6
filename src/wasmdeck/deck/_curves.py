"""Velocity curves: how hard a pad was hit, reshaped before it reaches a plugin.

The curves of MIDIMon's velocity mappings (docs/deck.md): ``fixed`` (always
one value), ``pass`` (unchanged, the default), ``linear`` (0-127 spread over
``min``-``max``), ``exponential`` and ``logarithmic`` (soft or hard touch,
``intensity`` > 0), and ``s_curve`` (gentle at both ends, steep in the
middle). Every curve maps 0 to ``min`` and 127 to ``max`` except ``fixed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CURVES", "VelocityCurve"]

CURVES = ("pass", "fixed", "linear", "exponential", "logarithmic", "s_curve")


@dataclass(frozen=True, slots=True)
class VelocityCurve:
    curve: str = "pass"
    value: int = 127  # for "fixed"
    min: int = 0
    max: int = 127
    intensity: float = 2.0

    def apply(self, velocity: int) -> int:
        if self.curve == "pass":
            return velocity
        if self.curve == "fixed":
            return self.value
        x = max(0, min(127, velocity)) / 127
        if self.curve == "exponential":
            y = float(x**self.intensity)
        elif self.curve == "logarithmic":
            y = math.log1p(self.intensity * x) / math.log1p(self.intensity)
        elif self.curve == "s_curve":
            # A logistic curve, rescaled so that 0 -> 0 and 1 -> 1.
            k = 4 * self.intensity

            def s(t: float) -> float:
                return 1 / (1 + math.exp(-k * (t - 0.5)))

            y = (s(x) - s(0)) / (s(1) - s(0))
        else:  # linear
            y = x
        return round(self.min + y * (self.max - self.min))
