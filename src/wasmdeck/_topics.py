"""Event topics and topic patterns (docs/host-api.md, "Events"): one syntax for all.

A topic is dotted words, ``obs.scene-changed``; a pattern is a topic in which
``*`` stands for any run of characters (``obs.*``, ``*``). The host's own
events live under ``wasmdeck.`` and no plugin may publish there, so a
subscriber can trust that a ``wasmdeck.plugin.failed`` came from the host.
"""

from __future__ import annotations

import fnmatch
import re

__all__ = [
    "HOST_PREFIX",
    "MAX_TOPIC",
    "covers",
    "is_host_topic",
    "matches",
    "valid_pattern",
    "valid_topic",
]

MAX_TOPIC = 128
HOST_PREFIX = "wasmdeck."
_TOPIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PATTERN = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9._*-]{0,127}$")


def valid_topic(topic: object) -> bool:
    return isinstance(topic, str) and _TOPIC.match(topic) is not None


def valid_pattern(pattern: object) -> bool:
    return isinstance(pattern, str) and _PATTERN.match(pattern) is not None


def matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` is one of ``pattern``'s (``*`` is any run of characters)."""
    if "*" not in pattern:
        return pattern == topic
    # fnmatch's [ and ? cannot occur: valid_pattern admits neither.
    return fnmatch.fnmatchcase(topic, pattern)


def covers(grant: str, pattern: str) -> bool:
    """Whether every topic of ``pattern`` is one of ``grant``'s (conservatively:
    a ``*`` in ``pattern`` is covered only by a ``*`` of ``grant``)."""
    return fnmatch.fnmatchcase(pattern, grant)


def is_host_topic(topic: str) -> bool:
    return topic.startswith(HOST_PREFIX)
