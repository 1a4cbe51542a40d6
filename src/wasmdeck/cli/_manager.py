"""The local plugin manager: install, list, show, uninstall, enable, disable, grant,
revoke, config and doctor."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from .._capabilities import Grant, describe_request, parse_grant
from .._errors import ConsentRequired, PluginNotFound, UsageError
from .._text import terminal_safe as safe
from ..packages import InstallPlan, PluginManager, Policy
from ._fetch import add_market_options, fetch, is_market_reference, split_reference
from ._packages import POLICIES, usage_errors


def register(subparsers: Any) -> None:
    install = subparsers.add_parser(
        "install",
        help="install or upgrade a plugin from a package",
        description="Verify PACKAGE (format, digest, signature, trust policy), show the "
        "capabilities it asks for with their risk, and install it once you consent: "
        "interactively on a terminal, with --yes (grant what it asks for) or with --grant "
        "(grant exactly these; narrower than asked is fine). Installing a new version of an "
        "installed plugin upgrades it, keeping its grants unless it asks for more. PACKAGE may "
        "be NAME or NAME@VERSION from the marketplace (--market): the download is checked "
        "against the marketplace's index and verified here, and never rolls back.",
    )
    install.add_argument("package", metavar="PACKAGE", help="a .wdpk file or NAME[@VERSION]")
    add_market_options(install)
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
    install.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="install a version older than the installed one",
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

    config = subparsers.add_parser(
        "config",
        help="show or set an installed plugin's configuration (secrets kept apart)",
        description="NAME alone shows the configuration; NAME KEY shows one value; NAME KEY "
        "VALUE sets it (VALUE is read as JSON when it is JSON, else as text). With --secret "
        "the value is kept apart in a 0600 file under WASMDECK_HOME and never shown (without "
        "VALUE it is asked for on a terminal, or read from stdin, so it stays out of your "
        "shell history). The plugin reads it all through config_get when it loads.",
    )
    config.add_argument("name", metavar="NAME")
    config.add_argument("key", metavar="KEY", nargs="?")
    config.add_argument("value", metavar="VALUE", nargs="?")
    config.add_argument("--secret", action="store_true", help="store the value as a secret")
    config.add_argument("--unset", action="store_true", help="remove KEY")
    config.set_defaults(handler=_config)

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
    count = len(plan.proposed)
    granted = (
        f"the {count} capabilit{'y' if count == 1 else 'ies'} listed above" if count else "nothing"
    )
    sys.stderr.write(f"grant {granted} and install {safe(plan.name)}? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _ask_scopes(plan: InstallPlan) -> list[Grant]:
    """Ask which scope to grant for each kind the plugin asked for without one."""
    from .._capabilities import KINDS

    granted: list[Grant] = []
    for kind in plan.unscoped:
        sys.stderr.write(
            f"it asks for {kind} without saying which; grant {kind} to "
            f"({KINDS[kind].scope_help}; several separated by spaces; empty for none): "
        )
        sys.stderr.flush()
        for scope in sys.stdin.readline().split():
            granted.append(parse_grant(f"{kind}:{scope}"))
    return granted


@usage_errors
def _install(args: argparse.Namespace) -> int:
    manager = PluginManager()
    source: bytes | str = args.package
    replace_signer = args.replace_signer
    if is_market_reference(args.package):
        name, version = split_reference(args.package)
        try:
            installed = manager.get(name)
        except PluginNotFound:
            installed = None
        fetched = fetch(args, name, version, installed)
        source, replace_signer = fetched.data, replace_signer or fetched.replace_signer
    return run_install(manager, source, args, replace_signer=replace_signer)


def run_install(
    manager: PluginManager, source: bytes | str, args: argparse.Namespace, *, replace_signer: bool
) -> int:
    """The install of a local file or a downloaded package: the same checks, the same
    consent screen."""
    policy = Policy.ALLOW_UNSIGNED if args.allow_unsigned else args.policy
    if args.allow_unsigned and args.policy and args.policy != Policy.ALLOW_UNSIGNED.value:
        raise UsageError("--allow-unsigned and --policy disagree; give one")
    grants = [parse_grant(g) for g in args.grant] if args.grant else None
    plan = manager.plan(
        source,
        policy=policy,
        replace_signer=replace_signer,
        allow_downgrade=args.allow_downgrade,
    )
    for line in plan.describe():
        print(line, file=sys.stderr)
    interactive = sys.stdin.isatty()
    if interactive and not args.yes and grants is None and plan.unscoped:
        plan = plan.with_grants(_ask_scopes(plan))
        print("  consenting grants:", file=sys.stderr)
        for grant in plan.proposed:
            print(safe(f"    - {grant} [{grant.risk} risk]"), file=sys.stderr)
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
    what = {"install": "installed", "upgrade": "upgraded", "downgrade": "downgraded"}.get(
        plan.change, "reinstalled"
    )
    state = "enabled" if installed.enabled else "disabled"
    granted = ", ".join(installed.grants.to_strings()) or "nothing"
    print(safe(f"{what} {installed.name} {installed.version} ({state}); granted: {granted}"))
    return 0


# -- inspecting ------------------------------------------------------------------


def _say(line: str) -> None:
    """Print a line that carries a package's own words, escaped for the terminal."""
    print(safe(line))


def _list(args: argparse.Namespace) -> int:
    manager = PluginManager()
    plugins = [manager.summary(p) for p in manager.list()]
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    if not plugins:
        print("no plugins installed")
        return 0
    rows: list[tuple[str, ...]] = [
        tuple(
            safe(cell, limit=80)
            for cell in (
                p["name"],
                p["version"],
                _state(p),
                p["trust"],
                ", ".join(p["grants"]) or "-",
            )
        )
        for p in plugins
    ]
    header = ("NAME", "VERSION", "STATE", "TRUST", "GRANTS")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    for p in plugins:
        if p["problem"]:
            _say(f"{p['name']} will not load: {p['problem']}")
    return 0


def _state(summary: dict[str, Any]) -> str:
    if not summary["enabled"]:
        return "disabled"
    return "NOT LOADABLE" if summary["problem"] else "enabled"


def _show(args: argparse.Namespace) -> int:
    manager = PluginManager()
    plugin = manager.get(args.name)
    summary = manager.summary(plugin)
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

    _say(f"{plugin.name} {plugin.version}: {meta.description}")
    _say(f"  state: {_state(summary)}")
    if summary["problem"]:
        _say(f"  it will not load: {summary['problem']}")
    for label, value in (
        ("publisher", manifest.publisher),
        ("homepage", manifest.homepage),
        ("license", manifest.license),
        ("needs wasmdeck", manifest.min_wasmdeck),
    ):
        if value:
            _say(f"  {label}: {value}")
    if meta.actions is not None:
        _say(f"  actions: {', '.join(a.name for a in meta.actions) or '(none)'}")
    trust = summary["trust"]
    if trust == "revoked":
        _say(f"  trust: REVOKED key {plugin.key_id}: it will not load")
    else:
        _say(f"  trust: {manager.verdict(plugin).describe()}")
    _say(f"  policy: {summary['policy']}")
    _say(f"  module: sha256:{plugin.digest}")
    when = datetime.datetime.fromtimestamp(plugin.updated_at).isoformat(timespec="seconds")
    _say(f"  installed: {when}")
    if meta.capabilities:
        _say("  asks for:")
        for request in meta.capabilities:
            _say(f"    - {describe_request(request)}")
    else:
        _say("  asks for: nothing")
    if plugin.grants:
        _say("  granted:")
        for grant in plugin.grants:
            _say(f"    - {grant} [{grant.risk} risk]")
    else:
        _say("  granted: nothing")
    return 0


# -- changing --------------------------------------------------------------------


def _simple(args: argparse.Namespace) -> int:
    manager = PluginManager()
    plugin = getattr(manager, args.action)(args.name)
    done = {"uninstall": "uninstalled", "enable": "enabled", "disable": "disabled"}[args.action]
    print(safe(f"{done} {plugin.name} {plugin.version}"))
    return 0


def _grant(args: argparse.Namespace) -> int:
    grant = parse_grant(args.capability)
    plugin = PluginManager().grant(args.name, grant)
    print(safe(f"granted {grant} [{grant.risk} risk] to {plugin.name}"))
    print(safe(f"grants now: {', '.join(plugin.grants.to_strings())}"))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    manager = PluginManager()
    plugin = manager.revoke(args.name, args.capability)
    print(safe(f"took back {args.capability} from {plugin.name}"))
    print(safe(f"grants now: {', '.join(plugin.grants.to_strings()) or 'nothing'}"))
    problem = manager.problem(plugin)
    if problem:
        print(safe(f"note: {plugin.name} will not load now: {problem}"), file=sys.stderr)
    return 0


@usage_errors
def _config(args: argparse.Namespace) -> int:
    from .. import _json

    manager = PluginManager()
    name = manager.get(args.name).name  # it must be installed
    store = manager.config
    hidden = store.SECRET
    if args.key is None:
        if args.secret or args.unset or args.value is not None:
            raise UsageError("--secret and --unset need a KEY")
        shown = store.shown(name)
        if not shown:
            _say(f"{name} has no configuration")
        for key, value in shown.items():
            _say(f"{key} = {value if value == hidden else _json.dumps(value).decode()}")
        return 0
    if args.unset:
        if args.value is not None or args.secret:
            raise UsageError("--unset takes no VALUE and no --secret")
        if not store.unset(name, args.key):
            raise UsageError(f"{name} has no configuration key {args.key!r}")
        _say(f"removed {args.key} from {name}'s configuration")
        return 0
    if args.value is None and not args.secret:
        shown = store.shown(name)
        if args.key not in shown:
            raise UsageError(f"{name} has no configuration key {args.key!r}")
        value = shown[args.key]
        _say(value if value == hidden else _json.dumps(value).decode())
        return 0
    text = args.value if args.value is not None else _read_secret(args.key)
    try:
        value = _json.loads(text.encode(), what="VALUE")
    except ValueError:
        value = text  # plain text
    store.set(name, args.key, value, secret=args.secret)
    shown_value = hidden if args.secret else _json.dumps(value).decode()
    _say(f"{name}: {args.key} = {shown_value}")
    return 0


def _read_secret(key: str) -> str:
    import getpass

    if sys.stdin.isatty():
        return getpass.getpass(f"value of {key} (not shown): ")
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.removesuffix("\n").removesuffix("\r")


def _doctor(args: argparse.Namespace) -> int:
    report = PluginManager().check(repair=args.repair)
    problems = [line for line in report if not line.startswith(("note:", "  ->"))]
    for line in report:
        print(safe(line))
    if not problems:
        print("all is well" if not report else "no damage found")
        return 0
    if args.repair:
        print("repaired")
        return 0
    print("wasmdeck: damaged state found; run 'wasmdeck doctor --repair'", file=sys.stderr)
    return 4
