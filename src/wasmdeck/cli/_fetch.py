"""Getting a package from the marketplace for ``install`` and ``update``: which
marketplace, the download with its progress bar, what to tell the user."""

from __future__ import annotations

import argparse
import os
import sys

from .._errors import UsageError
from .._text import terminal_safe as safe
from ..packages import InstalledPlugin, MarketDownload, MarketSettings, fetch_from_market
from ._progress import ProgressBar

__all__ = ["add_market_options", "fetch", "is_market_reference", "settings", "split_reference"]


def add_market_options(parser: argparse.ArgumentParser, *, token: bool = False) -> None:
    parser.add_argument(
        "--market",
        metavar="URL",
        help="the marketplace (default: $WASMDECK_MARKET, 'wasmdeck market login', "
        "or http://127.0.0.1:8470)",
    )
    if token:
        parser.add_argument(
            "--token",
            help="API token (default: $WASMDECK_MARKET_TOKEN or 'wasmdeck market login')",
        )


def settings(args: argparse.Namespace) -> MarketSettings:
    return MarketSettings.load(getattr(args, "market", None), getattr(args, "token", None))


def is_market_reference(text: str) -> bool:
    """NAME or NAME@VERSION, not a file: no path separator, no .wdpk, nothing there."""
    return not (os.sep in text or text.endswith(".wdpk") or os.path.exists(text))


def split_reference(text: str) -> tuple[str, str | None]:
    name, at, version = text.partition("@")
    if not name or (at and not version):
        raise UsageError(f"{text!r} is not NAME or NAME@VERSION")
    return name, version or None


def fetch(
    args: argparse.Namespace,
    name: str,
    version: str | None,
    installed: InstalledPlugin | None,
) -> MarketDownload:
    """Download and check ``name`` (``version`` pinned, or the newest) from the
    marketplace, with a progress bar; the notes (yanked, deprecated) on stderr."""
    bar = ProgressBar(f"{name}{'@' + version if version else ''}")
    with settings(args).client() as client:
        fetched = fetch_from_market(client, name, version, installed=installed, progress=bar)
    bar.finish()
    for note in fetched.notes:
        print(safe(f"note: {note}"), file=sys.stderr)
    if fetched.replace_signer:
        print(
            safe(
                f"note: {name} is now signed by key {fetched.entry.key_id}; the installed "
                "version's key consented to it"
            ),
            file=sys.stderr,
        )
    return fetched
