"""Installing from the marketplace in the local UI: search, a consent page, install.

The same steps as ``wasmdeck install NAME`` (cli/_manager.py): the configured
marketplace (``MarketSettings``), ``fetch_from_market`` (digest, signature,
rollback and yank checks), ``PluginManager.plan`` (trust and signer checks)
whose capabilities and risks the consent page lists, then ``install`` of that
plan once the user confirms. The downloaded package is kept, per session,
between the consent page and the confirmation, so what is installed is what
the page showed.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .._errors import PluginNotFound, WasmdeckError
from ..packages import MarketSettings, PluginManager, fetch_from_market

__all__ = ["MarketInstalls", "Pending"]

_KEPT = 8  # consent pages open at once, over all sessions
_KEPT_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Pending:
    """A package downloaded and checked, waiting for the user's consent."""

    csrf: str  # the session it belongs to
    data: bytes
    replace_signer: bool
    at: float


class MarketInstalls:
    """The marketplace part of the UI; ``manager()`` is the UI's plugin manager."""

    def __init__(self) -> None:
        self._pending: OrderedDict[str, Pending] = OrderedDict()

    def search(self, text: str) -> tuple[str, dict[str, Any]]:
        settings = MarketSettings.load()
        with settings.client() as client:
            return settings.url, client.search(text, per_page=50)

    def review(self, manager: PluginManager, csrf: str, name: str) -> dict[str, Any]:
        """Download and check ``name``'s newest version; what the consent page shows."""
        try:
            installed = manager.get(name)
        except PluginNotFound:
            installed = None
        with MarketSettings.load().client() as client:
            fetched = fetch_from_market(client, name, None, installed=installed)
        replace = fetched.replace_signer
        plan = manager.plan(fetched.data, replace_signer=replace)
        now = time.monotonic()
        for key in [k for k, p in self._pending.items() if p.at < now - _KEPT_SECONDS]:
            del self._pending[key]
        key = secrets.token_urlsafe(16)
        self._pending[key] = Pending(csrf, fetched.data, replace, now)
        while len(self._pending) > _KEPT:
            self._pending.popitem(last=False)
        manifest = plan.package.manifest
        return {
            "pending": key,
            "name": plan.name,
            "version": manifest.version,
            "change": plan.change,
            "description": manifest.metadata.description,
            "trust": plan.package.verdict.describe(),
            "publisher": manifest.publisher,
            "requested": [
                {"kind": r.kind, "scope": dict(r.scope), "risk": _risk(r.kind)}
                for r in plan.requested
            ],
            "proposed": [{"text": str(g), "risk": g.risk} for g in plan.proposed],
            "ungrantable": list(plan.ungrantable)
            + [f"{k} (no scope named)" for k in plan.unscoped],
            "notes": list(fetched.notes),
            "lines": plan.describe(),
        }

    def install(self, manager: PluginManager, csrf: str, key: str) -> str:
        """Install the package the consent page showed (checked again by ``plan``)."""
        pending = self._pending.pop(key, None)
        if pending is None or pending.csrf != csrf:
            raise WasmdeckError("that consent page has expired: open the plugin again")
        plan = manager.plan(pending.data, replace_signer=pending.replace_signer)
        installed = manager.install(plan, yes=True)
        state = "enabled" if installed.enabled else "disabled"
        granted = ", ".join(installed.grants.to_strings()) or "nothing"
        return f"installed {installed.name} {installed.version} ({state}); granted: {granted}"


def _risk(kind: str) -> str:
    from .._capabilities import KINDS

    known = KINDS.get(kind)
    return known.risk if known else "unknown"
