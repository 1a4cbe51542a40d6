"""Params that take values from the trigger: a small substitution, nothing more.

A string in an action's params may name trigger values in braces:
``"{velocity}"``, ``"{value}"``, ``"{note}"``, ``"{body.scene}"``,
``"{osc.0}"``. A string that is exactly one placeholder becomes the value
itself, with its type (``"{velocity}"`` -> ``100``); placeholders inside other
text are written into it (``"Scene {body.n}"`` -> ``"Scene 2"``); ``{{`` and
``}}`` are literal braces. A name is a lookup, with dots into JSON objects
and arrays; there are no expressions, conditions or loops (docs/deck.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._errors import WasmdeckError
from .._json import dumps

__all__ = ["TemplateError", "names_in", "render"]

# "{{", "}}", or a placeholder: an identifier and dotted identifiers/indices.
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_-]+))*)\}|[{}]")
_WHOLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_-]+))*)\}$")


class TemplateError(WasmdeckError):
    """A placeholder that is malformed or names a value the trigger does not have."""


def names_in(value: Any) -> list[str]:
    """Every placeholder name in ``value`` (strings in nested lists and tables)."""
    found: list[str] = []
    _walk_names(value, found)
    return found


def _walk_names(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        for match in _TOKEN.finditer(value):
            token = match.group(0)
            if token in ("{", "}"):
                raise TemplateError(
                    f"unbalanced brace in {value!r} (write {{{{ or }}}} for a literal brace)"
                )
            if match.group(1):
                found.append(match.group(1))
    elif isinstance(value, Mapping):
        for item in value.values():
            _walk_names(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk_names(item, found)


def render(value: Any, variables: Mapping[str, Any]) -> Any:
    """``value`` with each placeholder replaced by its value from ``variables``."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return lookup(whole.group(1), variables)
        if "{" not in value and "}" not in value:
            return value
        return _TOKEN.sub(lambda m: _piece(m, variables), value)
    if isinstance(value, Mapping):
        return {key: render(item, variables) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, variables) for item in value]
    return value


def _piece(match: re.Match[str], variables: Mapping[str, Any]) -> str:
    token = match.group(0)
    if token == "{{":
        return "{"
    if token == "}}":
        return "}"
    if not match.group(1):
        raise TemplateError("unbalanced brace (write {{ or }} for a literal brace)")
    found = lookup(match.group(1), variables)
    if isinstance(found, str):
        return found
    return dumps(found).decode()


def lookup(name: str, variables: Mapping[str, Any]) -> Any:
    """The value a placeholder names: ``body.items.0.id`` walks objects and arrays."""
    first, *rest = name.split(".")
    if first not in variables:
        raise TemplateError(f"the trigger has no value {{{first}}}")
    value = variables[first]
    walked = first
    for part in rest:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise TemplateError(f"{{{name}}}: {walked} has no {part!r}")
        walked += "." + part
    return value
