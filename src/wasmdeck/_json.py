"""JSON in and out, bounded: the one place wasmdeck parses and encodes JSON.

Everything a plugin, a package or a user hands wasmdeck as JSON (metadata,
host-call requests, manifests, configuration, command-line options) is
untrusted. ``loads`` parses it in linear time with limits on size, nesting
depth and element count, refuses NaN and Infinity (not JSON) and, where asked,
duplicate object keys, and raises ``JSONInputError`` naming what was wrong —
never ``RecursionError`` or a bare ``ValueError``. See docs/architecture.md
("Untrusted input").

orjson does the parsing (fast, strict, nesting bounded at 1024); the depth,
count and duplicate-key checks run on cold paths only.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["JSONInputError", "dumps", "loads"]

MAX_DEPTH = 64
MAX_ITEMS = 100_000


class JSONInputError(ValueError):
    """Untrusted JSON that is malformed or over a limit; the message says which."""


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; ``TypeError`` for values JSON cannot hold."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise TypeError(str(exc)) from None


def loads(
    data: bytes | bytearray | memoryview | str,
    *,
    what: str,
    max_bytes: int | None = None,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    unique_keys: bool = True,
) -> Any:
    """Parse ``data``; ``what`` names it in messages ("metadata", "--params").

    ``max_items`` bounds the number of values (objects, arrays and scalars
    alike) in the document; ``max_depth`` is at most 1024 (orjson's own
    bound); ``unique_keys`` refuses an object that names a key twice, which
    JSON leaves undefined.
    """
    if type(data) is bytes:  # (most calls: spared the two type tests below)
        pass
    elif isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from undecodable argv
            raise JSONInputError(
                f"{what} is not valid Unicode text (character {exc.start + 1})"
            ) from None
    elif isinstance(data, memoryview):
        data = data.tobytes()
    size = len(data)
    if max_bytes is not None and size > max_bytes:
        raise JSONInputError(f"{what} is {size:,} bytes, more than the {max_bytes:,} allowed")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JSONInputError(_decode_error(what, str(exc), max_depth)) from None
    # Each value takes a byte at least, and each level of nesting two (its
    # brackets): a document this short is within both bounds (most host-call
    # requests are; the walk was a tenth of a plugin-to-plugin call).
    if size > max_items or size > 2 * max_depth:
        _check_shape(value, what, max_depth, max_items)
    if unique_keys and size > 1 and (type(value) is dict or _may_repeat_keys(value)):
        # When ``data`` is exactly orjson's compact text of ``value``, it names
        # no key twice (that text holds each key of an object once), and the
        # slower duplicate-detecting parse is not needed. Kits send compact JSON
        # in order, so most host-call requests take this way (a third of a
        # plugin call's cost otherwise, benchmarks/bus.py). Inline: a function
        # call here was a tenth of a plugin call's own overhead.
        try:
            canonical = orjson.dumps(value) == data
        except orjson.JSONEncodeError:  # e.g. an integer orjson parses but cannot write
            canonical = False
        if not canonical:
            json.loads(data, object_pairs_hook=lambda pairs: _unique(pairs, what))
    return value


def _decode_error(what: str, reason: str, max_depth: int) -> str:
    """orjson's reason in words a user can act on."""
    where = reason.rpartition(": ")[2] if ": line " in reason else ""
    if "depth limit" in reason:
        return f"{what} is nested more than {max_depth} levels deep"
    if "infinity when parsed as double" in reason:
        # A 5,000-digit integer or 1e999: orjson would make it inf.
        return f"{what} holds a number too large to represent, at {where}"
    if reason.startswith(("unexpected character", "no digit after sign")):
        return (
            f"{what} is not valid JSON: {reason} "
            "(note: NaN, Infinity, comments and single quotes are not JSON)"
        )
    return f"{what} is not valid JSON: {reason}"


def _check_shape(value: Any, what: str, max_depth: int, max_items: int) -> None:
    """Depth and element count, without recursion (the value may be 1024 deep)."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_items:
            raise JSONInputError(f"{what} holds more than {max_items:,} values")
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise JSONInputError(f"{what} is nested more than {max_depth} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _may_repeat_keys(value: Any) -> bool:
    # orjson keeps the last of repeated keys; only documents with an object
    # need the second, duplicate-detecting parse.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            return True
        if isinstance(item, list):
            stack.extend(item)
    return False


def _unique(pairs: list[tuple[str, Any]], what: str) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONInputError(f"{what} names the key {key!r} more than once")
            seen.add(key)
    return result
