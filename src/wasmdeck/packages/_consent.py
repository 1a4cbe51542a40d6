"""From what a plugin asks for (capability requests) to what ``--yes`` grants."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._capabilities import (
    KINDS,
    UNMAPPED,
    Grant,
    Grants,
    canonical_kind,
    describe_request,
    parse_grant,
)
from .._metadata import CapabilityRequest
from .._text import terminal_safe
from ._package import canonical_json

__all__ = ["describe_requests", "grants_for", "request_keys", "unscoped_kinds"]

_REQUEST_LIMIT = 300  # characters of one request shown on the consent screen

# Where a request's scope is written, per kind: {"kind": "network", "hosts": [...]}.
# "scope" (a string or a list) is accepted for every scoped kind.
_SCOPE_KEYS = {
    "network": ("hosts",),
    "fs": ("paths", "dirs"),
    "process": ("commands", "programs"),
    "env": ("vars", "variables", "names"),
    "plugins": ("plugins", "names"),
}


def _scopes(request: CapabilityRequest, kind: str) -> list[str]:
    values: list[str] = []
    for key in (*_SCOPE_KEYS.get(kind, ()), "scope"):
        value = request.scope.get(key)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, list):
            values.extend(v for v in value if isinstance(v, str))
    return values


def grants_for(requests: Iterable[CapabilityRequest]) -> tuple[Grants, list[str]]:
    """The grants that give a plugin what it asks for, and the requests that cannot be
    granted as asked (a scoped kind asked without a scope, an unknown kind, a bad scope)."""
    grants: list[Grant] = []
    left: list[str] = []
    for request in requests:
        try:
            kind = canonical_kind(request.kind)
        except ValueError:
            if request.kind in UNMAPPED:  # MIDIMon's kinds: a statement, not "unknown"
                left.append(f"{request.kind} ({UNMAPPED[request.kind]})")
            else:
                left.append(f"{request.kind} (unknown to this host)")
            continue
        if not KINDS[kind].scope_help:
            grants.append(Grant(kind))
            continue
        scopes = _scopes(request, kind)
        if not scopes:
            left.append(f"{kind} (asked without a scope: grant it with --grant {kind}:SCOPE)")
        for scope in scopes:
            try:
                grants.append(parse_grant(f"{kind}:{scope}"))
            except ValueError as exc:
                left.append(f"{kind}:{scope} ({exc})")
    return Grants(grants), left


def unscoped_kinds(requests: Iterable[CapabilityRequest]) -> list[str]:
    """Scoped kinds asked for without any scope (``"network"`` alone): the user must
    say which hosts (or programs, directories...) to grant."""
    kinds: list[str] = []
    for request in requests:
        try:
            kind = canonical_kind(request.kind)
        except ValueError:
            continue
        if KINDS[kind].scope_help and not _scopes(request, kind) and kind not in kinds:
            kinds.append(kind)
    return kinds


def request_keys(requests: Iterable[CapabilityRequest]) -> frozenset[bytes]:
    """Requests in a comparable form: an upgrade asks again when this set grows."""
    return frozenset(canonical_json({"kind": r.kind, **dict(r.scope)}) for r in requests)


def describe_requests(requests: Sequence[CapabilityRequest]) -> list[str]:
    """One line per request, with its risk; the plugin's own words escaped for a terminal."""
    return [terminal_safe(describe_request(r), limit=_REQUEST_LIMIT) for r in requests]
