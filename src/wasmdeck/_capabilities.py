"""Capabilities (docs/architecture.md, "Capabilities and grants"): what a plugin may reach.

A plugin *requests* capabilities in its metadata; the user *grants* them,
possibly narrower; the runtime enforces only what was granted. Nothing is
granted by default.

A grant is written ``KIND`` or ``KIND:SCOPE``; repeating a kind adds scope:

    network:api.example.com        network:*.example.com   network:127.0.0.1:4455
    fs:/data=./data:ro             fs:/out=/tmp/out:rw
    process:/usr/bin/git           env:LANG   env:HOME
    kv                             events:publish:obs.*   events:subscribe:obs.*
    plugins:obs                    plugins:obs:set-scene  state:show   state:show:ro

Kinds from MIDIMon v2.5 (``filesystem``, ``subprocess``) are aliases of
``fs`` and ``process``. MIDIMon's ``midi``, ``audio`` and ``systemcontrol``
are not capabilities here (``UNMAPPED`` says why): a plugin may ask for them
and still load, but they are never granted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ._metadata import CapabilityRequest
from ._topics import valid_pattern

__all__ = [
    "KINDS",
    "UNMAPPED",
    "CapabilityKind",
    "Grant",
    "Grants",
    "canonical_kind",
    "parse_grant",
    "read_grants_file",
]


@dataclass(frozen=True, slots=True)
class CapabilityKind:
    name: str
    risk: str  # "low" | "medium" | "high"
    description: str
    scope_help: str = ""  # how the scope is written, for error messages and --help


KINDS: dict[str, CapabilityKind] = {
    k.name: k
    for k in (
        CapabilityKind(
            "network",
            "medium",
            "make HTTP and WebSocket requests to the granted hosts",
            "HOST, *.DOMAIN, HOST:PORT or SCHEME://HOST[:PORT]",
        ),
        CapabilityKind(
            "fs",
            "high",
            "read (ro) or read and write (rw) files in the granted directories",
            "GUEST_DIR=HOST_DIR[:ro|:rw]",
        ),
        CapabilityKind(
            "process",
            "high",
            "run the granted programs (argv only, never a shell)",
            "PROGRAM (a name on PATH or an absolute path)",
        ),
        CapabilityKind("env", "low", "read the granted environment variables", "VARIABLE_NAME"),
        CapabilityKind("kv", "low", "keep private key-value state on this machine"),
        # kv's scope is optional: kv:NAMESPACE names the data it reaches (see
        # docs/host-api.md); bare kv keeps it private to the plugin's identity.
        CapabilityKind(
            "events",
            "low",
            "publish or receive events on the granted topics",
            "publish:PATTERN or subscribe:PATTERN (a topic; * is any run of characters)",
        ),
        CapabilityKind(
            "plugins", "medium", "call the granted plugins' actions", "PLUGIN_NAME[:ACTION]"
        ),
        CapabilityKind(
            "state",
            "low",
            "read (ro) or read and write the granted shared state namespaces",
            "NAMESPACE[:ro]",
        ),
    )
}
# MIDIMon v2.5's kinds that name no host API here. Granting them would give
# nothing (or, for systemcontrol, an unbounded promise), so they are refused
# with this statement wherever they appear: --grant, install, info, show.
UNMAPPED: dict[str, str] = {
    "midi": (
        "not a host API in wasmdeck: MIDI reaches a plugin only as the trigger that "
        "calls it (velocity and mode in the request); it cannot open MIDI devices. "
        "Not granted"
    ),
    "audio": ("not a host API in wasmdeck: a plugin cannot play or capture audio. Not granted"),
    "systemcontrol": (
        "maps to nothing in wasmdeck and is refused: grant the specific programs a "
        "plugin needs instead (process:PROGRAM)"
    ),
}
_ALIASES = {"filesystem": "fs", "subprocess": "process", "environment": "env"}
_SCOPED = {"network", "fs", "process", "env", "plugins", "events", "state"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KV_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PLUGIN_NAME = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$")


def canonical_kind(kind: str) -> str:
    """The capability's canonical name (aliases resolved), or ValueError."""
    name = _ALIASES.get(kind, kind)
    if name in UNMAPPED:
        raise ValueError(f"capability {kind!r} (from MIDIMon) {UNMAPPED[name]}")
    if name not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"unknown capability {kind!r}; known capabilities: {known}")
    return name


@dataclass(frozen=True, slots=True)
class Grant:
    """One granted capability: a kind and, for scoped kinds, one scope string."""

    kind: str
    scope: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.scope}" if self.scope else self.kind

    @property
    def risk(self) -> str:
        if self.kind == "fs" and not self.scope.endswith(":rw"):
            return "medium"  # read-only file access
        return KINDS[self.kind].risk


def parse_grant(text: str) -> Grant:
    """Parse ``KIND`` or ``KIND:SCOPE``; raise ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a grant must be a non-empty string like 'network:api.example.com'")
    kind, _, scope = text.strip().partition(":")
    kind = canonical_kind(kind.strip().lower())
    scope = scope.strip()
    spec = KINDS[kind]
    if kind in _SCOPED and not scope:
        raise ValueError(f"grant {text!r}: {kind} needs a scope, written {kind}:{spec.scope_help}")
    if kind == "kv" and scope and not _KV_NAMESPACE.match(scope):
        raise ValueError(f"grant {text!r}: a kv namespace is 1-64 letters, digits, '.', '_' or '-'")
    if kind not in _SCOPED and kind != "kv" and scope:
        raise ValueError(f"grant {text!r}: {kind} takes no scope; write just {kind!r}")
    if kind == "events":
        direction, _, pattern = scope.partition(":")
        if direction not in ("publish", "subscribe") or not valid_pattern(pattern):
            raise ValueError(
                f"grant {text!r}: write events:publish:PATTERN or events:subscribe:PATTERN, "
                "e.g. events:publish:obs.* (a pattern is letters, digits, '.', '_', '-', '*')"
            )
    if kind == "plugins":
        name, _, action = scope.partition(":")
        if not _PLUGIN_NAME.match(name) or (action and not _PLUGIN_NAME.match(action)):
            raise ValueError(f"grant {text!r}: write plugins:{spec.scope_help}, e.g. plugins:obs")
    if kind == "state":
        namespace, _, mode = scope.partition(":")
        if not _KV_NAMESPACE.match(namespace) or mode not in ("", "ro"):
            raise ValueError(
                f"grant {text!r}: write state:NAMESPACE or state:NAMESPACE:ro (a namespace is "
                "1-64 letters, digits, '.', '_' or '-')"
            )
    if kind == "env" and not _ENV_NAME.match(scope):
        raise ValueError(f"grant {text!r}: {scope!r} is not an environment variable name")
    if kind == "fs":
        guest, sep, rest = scope.partition("=")
        mode = rest.rsplit(":", 1)[1] if rest.endswith((":ro", ":rw")) else ""
        if not sep or not guest.startswith("/") or not rest or rest in (":ro", ":rw"):
            raise ValueError(f"grant {text!r}: write fs:{spec.scope_help}, e.g. fs:/data=./data:ro")
        if not mode:
            scope = f"{scope}:ro"  # read-only unless rw is asked for
    return Grant(kind, scope)


def read_grants_file(text: str, source: str = "grants file") -> list[Grant]:
    """Parse a grants file: one ``KIND[:SCOPE]`` a line; ``#`` starts a comment.

    ValueError names the line that is wrong.
    """
    grants = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            grants.append(parse_grant(line))
        except ValueError as exc:
            raise ValueError(f"{source}, line {number}: {exc}") from None
    return grants


class Grants:
    """The set of capabilities granted to one plugin."""

    def __init__(self, grants: Iterable[Grant | str] = ()) -> None:
        parsed = [g if isinstance(g, Grant) else parse_grant(g) for g in grants]
        self._grants = tuple(dict.fromkeys(parsed))  # de-duplicated, order kept

    def __iter__(self) -> Iterator[Grant]:
        return iter(self._grants)

    def __len__(self) -> int:
        return len(self._grants)

    def __bool__(self) -> bool:
        return bool(self._grants)

    def __repr__(self) -> str:
        return f"Grants({[str(g) for g in self._grants]!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grants) and set(self._grants) == set(other._grants)

    def __hash__(self) -> int:
        return hash(frozenset(self._grants))

    def allows(self, kind: str) -> bool:
        kind = canonical_kind(kind)
        return any(g.kind == kind for g in self._grants)

    def scopes(self, kind: str) -> list[str]:
        kind = canonical_kind(kind)
        return [g.scope for g in self._grants if g.kind == kind]

    def topics(self, direction: str) -> list[str]:
        """The topic patterns of the ``events:publish:`` (or ``subscribe``) grants."""
        prefix = f"{direction}:"
        return [s[len(prefix) :] for s in self.scopes("events") if s.startswith(prefix)]

    def to_strings(self) -> list[str]:
        return [str(g) for g in self._grants]


def describe_request(request: CapabilityRequest) -> str:
    """A one-line, human description of a requested capability with its risk."""
    if request.kind in UNMAPPED:
        return f"{request.kind} (MIDIMon's): {UNMAPPED[request.kind]}"
    try:
        kind = KINDS[canonical_kind(request.kind)]
    except ValueError:
        return f"{request.kind} (unknown to this host; it will not be granted)"
    scope = ", ".join(f"{k}={v}" for k, v in request.scope.items())
    return f"{kind.name} [{kind.risk} risk]: {kind.description}" + (f" ({scope})" if scope else "")
