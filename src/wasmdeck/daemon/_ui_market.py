"""Installing and updating from the marketplace in the local UI: search, what is
newer, a consent page, install.

The same steps as ``wasmdeck install NAME[@VERSION]`` and ``wasmdeck update``
(cli/_manager.py, cli/_market.py): the configured marketplace
(``MarketSettings``), ``update_offer`` (which newer versions an update may go
to, as ``wasmdeck outdated`` lists them), ``fetch_from_market`` (digest,
signature, rollback and yank checks), ``PluginManager.plan`` (trust, signer
and downgrade checks) whose capabilities and risks the consent page lists,
then ``install`` of that plan once the user confirms. The downloaded package
is kept, per session, between the consent page and the confirmation, so what
is installed is what the page showed.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .._errors import PluginNotFound, WasmdeckError
from ..packages import (
    MarketClient,
    MarketSettings,
    PluginManager,
    fetch_from_market,
    update_offer,
)

__all__ = ["MarketInstalls", "Pending"]

_KEPT = 8  # consent pages open at once, over all sessions
_KEPT_SECONDS = 900
# Asking what is newer must not hold the plugins page for the client's 60 s.
_OFFER_TIMEOUT = 5.0


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

    def offers(self, manager: PluginManager, names: list[str]) -> dict[str, Any]:
        """For each installed plugin in ``names``, the newer versions an update may go
        to (``update_offer``: newest first, yanked ones apart); ``problem`` says why
        the marketplace could not tell."""
        found: dict[str, Any] = {}
        url = "(the configured marketplace)"
        try:
            settings = MarketSettings.load()  # a damaged market.json is a problem too
            url = settings.url
            with MarketClient(settings.url, token=settings.token, timeout=_OFFER_TIMEOUT) as client:
                for name in names:
                    offer = update_offer(client, name, manager.get(name).version)
                    if offer is not None and (offer.choices or offer.skipped):
                        found[name] = {
                            "newest": offer.newest.version if offer.newest else None,
                            "choices": [v.version for v in offer.choices],
                            "skipped": [
                                {"version": v.version, "yanked": v.yanked} for v in offer.skipped
                            ],
                        }
        except WasmdeckError as exc:
            return {"url": url, "offers": found, "problem": exc.message}
        return {"url": url, "offers": found, "problem": None}

    def review(
        self, manager: PluginManager, csrf: str, name: str, version: str | None = None
    ) -> dict[str, Any]:
        """Download and check ``name``'s newest version (or ``version``, pinned as in
        ``install NAME@VERSION``); what the consent page shows. An older version than
        the installed one is refused by the manager's downgrade check."""
        try:
            installed = manager.get(name)
        except PluginNotFound:
            installed = None
        with MarketSettings.load().client() as client:
            fetched = fetch_from_market(client, name, version, installed=installed)
        replace = fetched.replace_signer
        plan = manager.plan(fetched.data, replace_signer=replace)
        added = plan.added
        kept = set(installed.grants.to_strings()) if installed is not None else set()
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
            "previous": installed.version if installed is not None else None,
            "requested": [
                {
                    "kind": r.kind,
                    "scope": dict(r.scope),
                    "risk": _risk(r.kind),
                    # What the installed version did not ask for: the page marks it.
                    "new": installed is not None and r in added,
                }
                for r in plan.requested
            ],
            "needs_consent": plan.needs_consent,
            "kept": sorted(kept),
            "proposed": [
                {"text": str(g), "risk": g.risk}
                for g in plan.proposed
                if plan.needs_consent and str(g) not in kept
            ],
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
        what = {"install": "installed", "upgrade": "upgraded", "downgrade": "downgraded"}
        done = what.get(plan.change, "reinstalled")
        return f"{done} {installed.name} {installed.version} ({state}); granted: {granted}"


def _risk(kind: str) -> str:
    from .._capabilities import KINDS

    known = KINDS.get(kind)
    return known.risk if known else "unknown"
