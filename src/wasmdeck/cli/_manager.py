"""The local plugin manager: install, list, show, uninstall, enable, disable, grant,
revoke and doctor."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from .._capabilities import describe_request, parse_grant
from .._errors import ConsentRequired, RevokedKey, UsageError
from ..packages import InstalledPlugin, InstallPlan, PluginManager, Policy
from ._packages import POLICIES, usage_errors


def register(subparsers: Any) -> None:
    install = subparsers.add_parser(
        "install",
        help="install or upgrade a plugin from a package",
        description="Verify PACKAGE (format, digest, signature, trust policy), show the "
        "capabilities it asks for with their risk, and install it once you consent: "
        "interactively on a terminal, with --yes (grant what it asks for) or with --grant "
        "(grant exactly these; narrower than asked is fine). Installing a new version of an "
        "installed plugin upgrades it, keeping its grants unless it asks for more.",
    )
    install.add_argument("package", metavar="PACKAGE")
    install.add_argument(
        "-y", "--yes", action="store_true", help="grant the capabilities it asks for"
    )
    install.add_argument(
        "--grant",
        metavar="CAP",
        action="append",
        help="grant exactly this capability, e.g. network:api.example.com (repeatable)",
    )
    install.add_argument(
        "--policy",
        choices=POLICIES,
        help="trust policy for this plugin (kept for its loads and upgrades)",
    )
    install.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="same as --policy allow-unsigned (for local development)",
    )
    install.add_argument(
        "--replace-signer",
        action="store_true",
        help="accept an upgrade signed by a different, untrusted key than the installed version",
    )
    install.set_defaults(handler=_install)

    listing = subparsers.add_parser("list", help="list installed plugins")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)

    show = subparsers.add_parser(
        "show",
        help="show an installed plugin: metadata, capabilities and risk, grants, trust",
    )
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)

    for command, text in (
        ("uninstall", "remove an installed plugin"),
        ("enable", "let an installed plugin load"),
        ("disable", "keep an installed plugin from loading (its grants are kept)"),
    ):
        sub = subparsers.add_parser(command, help=text)
        sub.add_argument("name", metavar="NAME")
        sub.set_defaults(handler=_simple, action=command)

    grant = subparsers.add_parser(
        "grant",
        help="grant an installed plugin a capability",
        description="Grant NAME the capability CAP (KIND or KIND:SCOPE, e.g. env:LANG).",
    )
    grant.add_argument("name", metavar="NAME")
    grant.add_argument("capability", metavar="CAP")
    grant.set_defaults(handler=_grant)

    revoke = subparsers.add_parser(
        "revoke",
        help="take back a capability from an installed plugin (keys: 'trust revoke')",
        description="Take back CAP from NAME: KIND:SCOPE takes back that grant, a bare KIND "
        "every grant of that kind. To revoke a signing key, use 'wasmdeck trust revoke'.",
    )
    revoke.add_argument("name", metavar="NAME")
    revoke.add_argument("capability", metavar="CAP")
    revoke.set_defaults(handler=_revoke)

    doctor = subparsers.add_parser(
        "doctor",
        help="check (and with --repair, fix) the registry, module files and trust store",
        description="Report damaged state under WASMDECK_HOME. With --repair: restore a "
        "damaged registry or trust store from its backup (or start it empty), drop plugins "
        "whose module file is missing or altered, delete unused module files. Exit 0 when "
        "all is well or was repaired, 4 when problems remain.",
    )
    doctor.add_argument("--repair", action="store_true", help="fix what can be fixed")
    doctor.set_defaults(handler=_doctor)


# -- install ---------------------------------------------------------------------


def _ask(plan: InstallPlan) -> bool:
    granted = ", ".join(plan.proposed.to_strings()) or "nothing"
    sys.stderr.write(f"grant {granted} and install {plan.name}? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@usage_errors
def _install(args: argparse.Namespace) -> int:
    policy = Policy.ALLOW_UNSIGNED if args.allow_unsigned else args.policy
    if args.allow_unsigned and args.policy and args.policy != Policy.ALLOW_UNSIGNED.value:
        raise UsageError("--allow-unsigned and --policy disagree; give one")
    grants = [parse_grant(g) for g in args.grant] if args.grant else None
    manager = PluginManager()
    plan = manager.plan(args.package, policy=policy, replace_signer=args.replace_signer)
    for line in plan.describe():
        print(line, file=sys.stderr)
    interactive = sys.stdin.isatty()
    try:
        installed = manager.install(
            plan,
            grants=grants,
            yes=args.yes,
            confirm=_ask if interactive and not args.yes else None,
            policy=policy,
        )
    except ConsentRequired as exc:
        if interactive:
            raise
        raise UsageError(exc.message) from None
    what = "upgraded" if plan.previous else "installed"
    state = "enabled" if installed.enabled else "disabled"
    granted = ", ".join(installed.grants.to_strings()) or "nothing"
    print(f"{what} {installed.name} {installed.version} ({state}); granted: {granted}")
    return 0


# -- inspecting ------------------------------------------------------------------


def _trust(manager: PluginManager, plugin: InstalledPlugin) -> dict[str, Any]:
    try:
        verdict = manager.verdict(plugin)
    except RevokedKey:
        return {"trust": "revoked", "key_id": plugin.key_id, "publisher": None}
    return {"trust": verdict.level.label, "key_id": verdict.key_id, "publisher": verdict.publisher}


def _summary(manager: PluginManager, plugin: InstalledPlugin) -> dict[str, Any]:
    return {
        "name": plugin.name,
        "version": plugin.version,
        "enabled": plugin.enabled,
        "digest": f"sha256:{plugin.digest}",
        **_trust(manager, plugin),
        "policy": manager.effective_policy(plugin).value,
        "grants": plugin.grants.to_strings(),
        "requested": [{"kind": r.kind, **dict(r.scope)} for r in plugin.metadata.capabilities],
    }


def _list(args: argparse.Namespace) -> int:
    manager = PluginManager()
    plugins = [_summary(manager, p) for p in manager.list()]
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    if not plugins:
        print("no plugins installed")
        return 0
    rows = [
        (
            p["name"],
            p["version"],
            "enabled" if p["enabled"] else "disabled",
            p["trust"],
            ", ".join(p["grants"]) or "-",
        )
        for p in plugins
    ]
    widths = [
        max(len(r[i]) for r in [("NAME", "VERSION", "STATE", "TRUST", ""), *rows]) for i in range(4)
    ]
    for row in [("NAME", "VERSION", "STATE", "TRUST", "GRANTS"), *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    return 0


def _show(args: argparse.Namespace) -> int:
    manager = PluginManager()
    plugin = manager.get(args.name)
    summary = _summary(manager, plugin)
    manifest = plugin.manifest
    if args.json:
        summary["metadata"] = dict(manifest.metadata.raw)
        summary.update(
            publisher=manifest.publisher,
            homepage=manifest.homepage,
            license=manifest.license,
            min_wasmdeck=manifest.min_wasmdeck,
        )
        print(json.dumps(summary, indent=2))
        return 0
    meta = manifest.metadata
    print(f"{plugin.name} {plugin.version}: {meta.description}")
    print(f"  state: {'enabled' if plugin.enabled else 'disabled'}")
    for label, value in (
        ("publisher", manifest.publisher),
        ("homepage", manifest.homepage),
        ("license", manifest.license),
        ("needs wasmdeck", manifest.min_wasmdeck),
    ):
        if value:
            print(f"  {label}: {value}")
    if meta.actions is not None:
        print(f"  actions: {', '.join(a.name for a in meta.actions) or '(none)'}")
    trust = summary["trust"]
    if trust == "revoked":
        print(f"  trust: REVOKED key {plugin.key_id}: it will not load")
    else:
        print(f"  trust: {manager.verdict(plugin).describe()}")
    print(f"  policy: {summary['policy']}")
    print(f"  module: sha256:{plugin.digest}")
    when = datetime.datetime.fromtimestamp(plugin.updated_at).isoformat(timespec="seconds")
    print(f"  installed: {when}")
    if meta.capabilities:
        print("  asks for:")
        for request in meta.capabilities:
            print(f"    - {describe_request(request)}")
    else:
        print("  asks for: nothing")
    if plugin.grants:
        print("  granted:")
        for grant in plugin.grants:
            print(f"    - {grant} [{grant.risk} risk]")
    else:
        print("  granted: nothing")
    return 0


# -- changing --------------------------------------------------------------------


def _simple(args: argparse.Namespace) -> int:
    manager = PluginManager()
    plugin = getattr(manager, args.action)(args.name)
    done = {"uninstall": "uninstalled", "enable": "enabled", "disable": "disabled"}[args.action]
    print(f"{done} {plugin.name} {plugin.version}")
    return 0


def _grant(args: argparse.Namespace) -> int:
    grant = parse_grant(args.capability)
    plugin = PluginManager().grant(args.name, grant)
    print(f"granted {grant} [{grant.risk} risk] to {plugin.name}")
    print(f"grants now: {', '.join(plugin.grants.to_strings())}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    plugin = PluginManager().revoke(args.name, args.capability)
    print(f"took back {args.capability} from {plugin.name}")
    print(f"grants now: {', '.join(plugin.grants.to_strings()) or 'nothing'}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    report = PluginManager().check(repair=args.repair)
    problems = [line for line in report if not line.startswith(("note:", "  ->"))]
    for line in report:
        print(line)
    if not problems:
        print("all is well" if not report else "no damage found")
        return 0
    if args.repair:
        print("repaired")
        return 0
    print("wasmdeck: damaged state found; run 'wasmdeck doctor --repair'", file=sys.stderr)
    return 4
