"""The languages ``wasmdeck new`` and ``wasmdeck build`` know, one module each.

Each language module defines ``LANGUAGE``: how to find (or install) its
toolchain and how to build a project. Its kit, with the templates, lives in
``sdk/<name>/`` (see ``sdk_dir``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._project import Project
from ._tool import BuildProgress

__all__ = ["Language"]


@dataclass(frozen=True)
class Language:
    name: str  # as written after --lang, and in wasmdeck.toml
    title: str  # for people: "AssemblyScript"
    # Build the project to project.output and return that path; BuildError on failure.
    build: Callable[[Project, BuildProgress], Path]
    # The toolchain's version; ToolchainMissing (saying how to install it) if absent.
    toolchain: Callable[[], str]
    # Install the toolchain from the package registries (None: only by hand).
    install: Callable[[BuildProgress], None] | None = None
    # Things worth knowing about the toolchain found (``wasmdeck toolchain`` shows them).
    notes: Callable[[], list[str]] = lambda: []
