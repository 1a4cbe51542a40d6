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

import functools
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
        whole, parts = _compile(value)
        if whole is not None:
            return lookup(whole, variables)
        if parts is None:
            return value
        out = []
        for kind, text in parts:
            if kind == _LITERAL:
                out.append(text)
            elif kind == _NAME:
                found = lookup(text, variables)
                out.append(found if isinstance(found, str) else dumps(found).decode())
            else:
                raise TemplateError("unbalanced brace (write {{ or }} for a literal brace)")
        return "".join(out)
    if isinstance(value, Mapping):
        return {key: render(item, variables) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, variables) for item in value]
    return value


_LITERAL, _NAME, _UNBALANCED = 0, 1, 2


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> tuple[str | None, tuple[tuple[int, str], ...] | None]:
    """A deck string cut up once, not on every event: the name when it is one
    whole placeholder, else its pieces (None: no braces, the text as it is)."""
    whole = _WHOLE.match(text)
    if whole:
        return whole.group(1), None
    if "{" not in text and "}" not in text:
        return None, None
    parts: list[tuple[int, str]] = []
    end = 0
    for match in _TOKEN.finditer(text):
        if match.start() > end:
            parts.append((_LITERAL, text[end : match.start()]))
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append((_LITERAL, token[0]))
        elif match.group(1):
            parts.append((_NAME, match.group(1)))
        else:
            parts.append((_UNBALANCED, token))
        end = match.end()
    if end < len(text):
        parts.append((_LITERAL, text[end:]))
    return None, tuple(parts)


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
