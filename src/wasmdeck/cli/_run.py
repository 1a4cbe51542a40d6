"""``wasmdeck info`` and ``wasmdeck run``: inspect and call one plugin file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .._capabilities import UNMAPPED, Grants, describe_request, read_grants_file
from .._context import TriggerContext
from .._errors import UsageError
from .._json import JSONInputError, loads
from .._text import terminal_safe
from ..runtime import Limits, MiB, Plugin

# A JSON option on the command line (--params, --context, --config).
MAX_OPTION_BYTES = 1 * MiB


def register(subparsers: Any) -> None:
    info = subparsers.add_parser(
        "info",
        help="print a plugin's metadata as JSON",
        description="Load a plugin (checking its exports, imports and metadata) and print "
        "the metadata JSON it declares.",
    )
    info.add_argument("plugin", metavar="PLUGIN", help="path to the plugin's .wasm file")
    # (It reads metadata only: nothing is granted and nothing of the plugin runs but init.)
    info.set_defaults(handler=_info)

    defaults = Limits()
    run = subparsers.add_parser(
        "run",
        help="call one action of a plugin and print its output",
        description="Call ACTION on PLUGIN in the sandbox and write the plugin's output "
        "payload to stdout, unchanged. Errors go to stderr. PLUGIN is a .wasm file, a "
        "package (.wdpk: verified under the trust policy first), a project directory (its "
        "built module) or the name of an installed plugin (run with its grants and its "
        "stored configuration; see 'wasmdeck config').",
        epilog="example: wasmdeck run velocity.wasm scale --params '{\"max\": 254}' "
        "--context '{\"velocity\": 100}'",
    )
    run.add_argument(
        "plugin",
        metavar="PLUGIN",
        help="a .wasm file, a .wdpk package, a project or an installed name",
    )
    run.add_argument("action", metavar="ACTION", help="the action to run")
    run.add_argument(
        "--params",
        metavar="JSON",
        default="{}",
        help="action parameters, a JSON object (default {})",
    )
    run.add_argument(
        "--context",
        metavar="JSON",
        default="{}",
        help='trigger context, e.g. \'{"velocity": 100, "mode": 2}\' (timestamp defaults to now)',
    )
    run.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=defaults.timeout,
        help=f"wall-clock limit for the call (default {defaults.timeout:g})",
    )
    run.add_argument(
        "--fuel",
        metavar="N",
        type=int,
        default=defaults.fuel,
        help=f"fuel budget, roughly wasm instructions (default {defaults.fuel:,})",
    )
    run.add_argument(
        "--max-memory",
        metavar="MIB",
        type=float,
        default=defaults.max_memory / MiB,
        help=f"linear memory limit in MiB (default {defaults.max_memory // MiB})",
    )
    run.add_argument(
        "--grant",
        metavar="CAP",
        action="append",
        default=[],
        help="grant the plugin a capability, e.g. env:HOME (repeatable; nothing is granted by default)",
    )
    run.add_argument(
        "--grants-file",
        metavar="FILE",
        type=Path,
        help="grant the capabilities listed in FILE, one KIND[:SCOPE] a line (# for comments)",
    )
    run.add_argument(
        "--config",
        metavar="JSON",
        default="{}",
        help='the plugin\'s configuration, a JSON object, e.g. \'{"url": "ws://127.0.0.1:4455"}\'',
    )
    run.set_defaults(handler=_run)


def _info(args: argparse.Namespace) -> int:
    # Metadata only: nothing is granted, host functions it imports refuse if called.
    with Plugin(args.plugin, metadata_only=True) as plugin:
        text = json.dumps(plugin.metadata.to_dict(), indent=2, ensure_ascii=False)
        print(terminal_safe(text, multiline=True))  # the plugin's own text: C1, bidi escaped
        for request in plugin.metadata.capabilities:  # e.g. MIDIMon's midi, audio, systemcontrol
            if request.kind in UNMAPPED:
                note = terminal_safe(describe_request(request))
                print(f"wasmdeck: note: {note}", file=sys.stderr)
        if plugin.missing_capabilities:
            needs = ", ".join(plugin.missing_capabilities)
            print(f"note: to run, it needs {needs} ('wasmdeck run ... --grant')", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> int:
    params = _json_object(args.params, "--params")
    context = TriggerContext.from_dict(_json_object(args.context, "--context"))
    limits = Limits(fuel=args.fuel, timeout=args.timeout, max_memory=int(args.max_memory * MiB))
    grants = list(args.grant)
    if args.grants_file is not None:
        grants += read_grants_file(args.grants_file.read_text(), str(args.grants_file))
    config = _json_object(args.config, "--config")
    plugin = _open(args.plugin, limits=limits, grants=grants, config=config)
    if not isinstance(params, dict):  # pragma: no cover - _json_object guarantees it
        raise UsageError("--params must be a JSON object")
    with plugin:
        output = plugin.call(args.action, params, context)
    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()
    return 0


def _open(target: str, *, limits: Limits, grants: list[Any], config: dict[str, Any]) -> Plugin:
    """The plugin ``wasmdeck run`` means by ``target`` (see its --help)."""
    from ..packages import PluginManager, find_module, load_package, project_fields

    path = Path(target)
    if path.is_dir():
        if not (path / "wasmdeck.toml").is_file():
            raise UsageError(f"{target} is a directory, not a plugin or a plugin project")
        try:
            module = find_module(path, project_fields(path)[0])
        except ValueError as exc:
            raise UsageError(f"{exc} (run 'wasmdeck build {target}')") from None
        return Plugin(module, limits=limits, grants=Grants(grants), config=config)
    if path.suffix == ".wdpk" and path.exists():
        return load_package(path, grants=grants, limits=limits, config=config)
    if path.exists() or path.suffix == ".wasm" or "/" in target:
        return Plugin(path, limits=limits, grants=Grants(grants), config=config)
    # An installed plugin, by name: its grants and stored configuration.
    if grants:
        raise UsageError(
            f"{target} is an installed plugin: it runs with its own grants; change them with "
            f"'wasmdeck grant {target} CAP'"
        )
    return PluginManager().load(target, limits=limits, config=config or None)


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = loads(text, what=option, max_bytes=MAX_OPTION_BYTES)
    except JSONInputError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object, not {type(value).__name__}")
    return value
