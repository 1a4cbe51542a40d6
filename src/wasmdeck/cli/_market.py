"""The marketplace commands: search, outdated, update, publish, yank, market.

``install NAME[@VERSION]`` is in cli/_manager.py (the same consent screen as a
local file); the download and its checks in packages/_market.py.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import sys
from typing import Any

from .._errors import UsageError
from .._text import terminal_safe as safe
from ..packages import (
    MarketSettings,
    PluginManager,
    load_public_key,
    open_package,
    read_bytes,
    rotation_message,
    update_offer,
    version_key,
)
from ._fetch import add_market_options, fetch, settings, split_reference
from ._manager import run_install
from ._packages import add_passphrase_option, unlock_key, usage_errors


def register(subparsers: Any) -> None:
    search = subparsers.add_parser(
        "search",
        help="search the marketplace",
        description="Full-text search of the marketplace (name, description, keywords, "
        "author); every word must match, as a prefix.",
    )
    search.add_argument("text", metavar="TEXT", nargs="*")
    search.add_argument("--category")
    search.add_argument(
        "--sort", choices=["relevance", "downloads", "rating", "recent", "name"], default=None
    )
    search.add_argument("--page", type=int, default=1)
    search.add_argument("--json", action="store_true", help="print JSON")
    add_market_options(search)
    search.set_defaults(handler=_search)

    outdated = subparsers.add_parser(
        "outdated", help="list installed plugins with a newer version on the marketplace"
    )
    outdated.add_argument("--json", action="store_true", help="print JSON")
    add_market_options(outdated)
    outdated.set_defaults(handler=_outdated)

    update = subparsers.add_parser(
        "update",
        help="update installed plugins (or NAME) from the marketplace",
        description="Install the newest version that is not yanked of NAME (or of every "
        "installed plugin the marketplace has), or NAME@VERSION exactly (yanked or not), "
        "checked as 'install NAME' is; never an older version than the installed one.",
    )
    update.add_argument("name", metavar="NAME[@VERSION]", nargs="?")
    update.add_argument("-y", "--yes", action="store_true", help="grant what it asks for")
    update.add_argument("--replace-signer", action="store_true")
    add_market_options(update)
    update.set_defaults(handler=_update)

    publish = subparsers.add_parser(
        "publish",
        help="publish a signed package to the marketplace",
        description="Verify PACKAGE here (it must be signed), then upload it; the "
        "marketplace verifies it again and checks that its key is registered to you.",
    )
    publish.add_argument("package", metavar="PACKAGE")
    add_market_options(publish, token=True)
    publish.set_defaults(handler=_publish)

    yank = subparsers.add_parser(
        "yank",
        help="yank a published version (installs and updates skip it)",
    )
    yank.add_argument("reference", metavar="NAME@VERSION")
    yank.add_argument("--reason", help="why (required unless --undo)")
    yank.add_argument("--undo", action="store_true", help="take the yank back")
    add_market_options(yank, token=True)
    yank.set_defaults(handler=_yank)

    market = subparsers.add_parser(
        "market",
        help="the marketplace: show it, log in, register a key, rotate a package's signer",
        description="Without arguments: the marketplace in use. 'login' stores --market "
        "and the token (read from stdin, or --token) in market.json (0600) in the home. "
        "'add-key KEY.pub' registers a signing key to your account. 'rotate NAME "
        "NEW.pub --reason TEXT' lets that key sign NAME's next versions: with "
        "--consent-key OLD.key the old key signs its consent (clients then accept the "
        "new signer); without, it is an explicit rotation users must accept themselves. "
        "'consent NAME NEW.pub --consent-key OLD.key' only prints that consent (base64), "
        "for the rotation form of the marketplace's publisher page.",
    )
    market.add_argument("action", nargs="?", choices=["login", "add-key", "rotate", "consent"])
    market.add_argument("operands", nargs="*", metavar="ARG")
    market.add_argument("--reason", help="why the signer changes (rotate)")
    market.add_argument("--consent-key", metavar="OLD.key", help="the old key, to consent")
    add_passphrase_option(market)
    add_market_options(market, token=True)
    market.set_defaults(handler=_market)


def _when(seconds: Any) -> str:
    return datetime.datetime.fromtimestamp(float(seconds), datetime.UTC).strftime("%Y-%m-%d")


def _search(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"page": args.page}
    if args.category:
        params["category"] = args.category
    if args.sort:
        params["sort"] = args.sort
    with settings(args).client() as client:
        result = client.search(" ".join(args.text), **params)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    packages = result["packages"]
    if not packages:
        print("no packages found")
        return 0
    for p in packages:
        if not isinstance(p, dict):
            continue
        flag = " (deprecated)" if p.get("deprecated") else ""
        print(safe(f"{p.get('name')} {p.get('latest')}{flag}: {p.get('description')}", limit=200))
        print(
            safe(
                f"    {p.get('downloads')} downloads, rating {float(p.get('rating') or 0):.1f} "
                f"({p.get('rating_count')}), updated {_when(p.get('updated_at') or 0)}"
            )
        )
    shown = (result["page"] - 1) * result["per_page"] + len(packages)
    print(f"{shown} of {result['total']}")
    return 0


def _outdated_rows(args: argparse.Namespace, manager: PluginManager) -> list[dict[str, Any]]:
    rows = []
    with settings(args).client() as client:
        for plugin in manager.list():
            offer = update_offer(client, plugin.name, plugin.version)
            if offer is not None and offer.newest is not None:
                rows.append(
                    {
                        "name": plugin.name,
                        "installed": plugin.version,
                        "newest": offer.newest.version,
                        "choices": [v.version for v in offer.choices],
                    }
                )
    return rows


def _outdated(args: argparse.Namespace) -> int:
    rows = _outdated_rows(args, PluginManager())
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("all installed plugins are up to date")
    for row in rows if not args.json else []:
        print(safe(f"{row['name']}  {row['installed']} -> {row['newest']}"))
    return 0


@usage_errors
def _update(args: argparse.Namespace) -> int:
    manager = PluginManager()
    pinned: str | None = None
    if args.name:
        name, pinned = split_reference(args.name)
        installed = manager.get(name)  # PluginNotFound when it is not installed
        names = [installed.name]
    else:
        names = [row["name"] for row in _outdated_rows(args, manager)]
        if not names:
            print("all installed plugins are up to date")
            return 0
    # The install options an update runs with: consent as asked, nothing else loosened.
    options = argparse.Namespace(
        yes=args.yes,
        grant=None,
        policy=None,
        allow_unsigned=False,
        allow_downgrade=False,
        market=args.market,
    )
    for name in names:
        installed = manager.get(name)
        # Pinned, it may be yanked (named by number) but never older: the manager's
        # downgrade check refuses that, as for 'install NAME@VERSION'.
        fetched = fetch(args, name, pinned, installed)
        if version_key(fetched.entry.version) == version_key(installed.version):
            print(safe(f"{name} {installed.version} is up to date"))
            continue
        run_install(
            manager,
            fetched.data,
            options,
            replace_signer=args.replace_signer or fetched.replace_signer,
        )
    return 0


def _authorized(market: MarketSettings) -> MarketSettings:
    if not market.token:
        raise UsageError(
            "this needs an API token: --token, $WASMDECK_MARKET_TOKEN or 'wasmdeck market login'"
        )
    return market


def _consent_signature(args: argparse.Namespace, name: str, new_key_id: str) -> bytes:
    """The old key's signature that lets ``new_key_id`` sign ``name`` from now on."""
    old = unlock_key(args, args.consent_key)
    return bytes(old.sign(rotation_message(name, new_key_id)))


def _consent(args: argparse.Namespace) -> int:
    name, pub = args.operands
    if not args.consent_key:
        raise UsageError("consent needs the old key: --consent-key OLD.key")
    new = load_public_key(pub)
    print(base64.b64encode(_consent_signature(args, name, new.key_id)).decode())
    return 0


def _rotate(args: argparse.Namespace, market: MarketSettings) -> int:
    name, pub = args.operands
    if not args.reason:
        raise UsageError("a rotation needs --reason")
    new = load_public_key(pub)
    consent = None
    if args.consent_key:
        consent = _consent_signature(args, name, new.key_id)
    with _authorized(market).client() as client:
        client.rotate(name, new.key_id, args.reason, consent=consent)
    how = "with the old key's consent" if consent else "as an explicit rotation (no consent)"
    print(safe(f"{name} is now signed by key {new.key_id}, {how}"))
    return 0


def _publish(args: argparse.Namespace) -> int:
    verified = open_package(read_bytes(args.package))  # the format and signature, here first
    if verified.package.signature is None:
        raise UsageError("the package is unsigned: sign it first (wasmdeck sign PACKAGE --key KEY)")
    market = settings(args)
    if not market.token:
        raise UsageError(
            "publishing needs an API token: --token, $WASMDECK_MARKET_TOKEN or "
            "'wasmdeck market login'"
        )
    with market.client() as client:
        entry = client.publish(read_bytes(args.package))
    print(
        safe(
            f"published {entry.get('name')} {entry.get('version')} to {market.url} "
            f"(sha256:{entry.get('file_digest')}, key {entry.get('key_id')})"
        )
    )
    return 0


def _yank(args: argparse.Namespace) -> int:
    name, version = split_reference(args.reference)
    if version is None:
        raise UsageError("give the version to yank: NAME@VERSION")
    if not args.undo and not args.reason:
        raise UsageError("a yank needs --reason (what is wrong with this version)")
    market = settings(args)
    if not market.token:
        raise UsageError(
            "yanking needs an API token: --token, $WASMDECK_MARKET_TOKEN or 'wasmdeck market login'"
        )
    with market.client() as client:
        client.yank(name, version, args.reason or "", undo=args.undo)
    print(safe(f"{'unyanked' if args.undo else 'yanked'} {name} {version}"))
    return 0


@usage_errors
def _market(args: argparse.Namespace) -> int:
    current = settings(args)
    wanted = {None: 0, "login": 0, "add-key": 1, "rotate": 2, "consent": 2}[args.action]
    if len(args.operands) != wanted:
        raise UsageError(
            {
                0: f"'{args.action or 'market'}' takes no operands",
                1: "add-key takes the public key file: add-key KEY.pub",
                2: f"{args.action} takes the package and the new key: {args.action} NAME NEW.pub",
            }[wanted]
        )
    if args.action == "add-key":
        key = load_public_key(args.operands[0])
        with _authorized(current).client() as client:
            client.add_key(key.to_line())
        print(safe(f"registered key {key.key_id} at {current.url}"))
        return 0
    if args.action == "rotate":
        return _rotate(args, current)
    if args.action == "consent":
        return _consent(args)
    if args.action is None:
        print(safe(f"marketplace: {current.url}"))
        print("token: " + ("set" if current.token else "none"))
        return 0
    token = args.token or sys.stdin.readline().strip()
    if not token:
        raise UsageError("give the API token with --token or on stdin")
    path = MarketSettings(current.url, token).save()
    print(safe(f"marketplace {current.url}: token stored in {path}"))
    return 0
