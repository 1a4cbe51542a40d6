"""Entry point: argument parsing, exit codes, and error reporting.

Exit codes (a stable contract, used by scripts and checks):
0 success; 1 the plugin reported an error or trapped; 2 usage error;
3 a sandbox limit stopped the plugin; 4 the plugin is invalid.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .._errors import (
    BuildError,
    InvalidPlugin,
    LimitExceeded,
    PluginError,
    ProjectError,
    RoutingError,
    UsageError,
    WasmdeckError,
)
from .._version import __version__
from . import _build, _compile, _control, _deck, _manager, _packages, _run, _serve

EXIT_OK, EXIT_PLUGIN_ERROR, EXIT_USAGE, EXIT_LIMIT, EXIT_INVALID = 0, 1, 2, 3, 4

# Each command module offers register(subparsers) and sets a `handler` default.
_COMMANDS = (_run, _compile, _build, _packages, _manager, _deck, _serve, _control)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasmdeck",
        description="Run sandboxed WebAssembly plugins: the trigger-to-action host's command line.",
        epilog=(
            "exit codes: 0 success, 1 plugin error or trap, 2 usage error, "
            "3 sandbox limit hit, 4 invalid plugin"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="hide what plugins print (their stdout/stderr)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.register(subparsers)
    return parser


class _PluginLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        plugin = record.name.removeprefix("wasmdeck.plugin.")
        return f"[{plugin}] {record.getMessage()}"


def _configure_logging(quiet: bool) -> None:
    logger = logging.getLogger("wasmdeck.plugin")
    logger.propagate = False
    if quiet:
        logger.disabled = True
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PluginLogFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.quiet)
    _compile.install_progress()
    try:
        return int(args.handler(args) or EXIT_OK)
    except (UsageError, ProjectError) as exc:
        return _fail(f"usage error: {exc}", EXIT_USAGE)
    except BuildError as exc:  # the toolchain's own words, or how to install it
        return _fail(str(exc), EXIT_PLUGIN_ERROR)
    except (LimitExceeded, PluginError, InvalidPlugin, RoutingError, WasmdeckError) as exc:
        return _fail(str(exc), exit_code(exc))
    except ValueError as exc:
        return _fail(f"usage error: {exc}", EXIT_USAGE)
    except OSError as exc:
        target = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{target}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def exit_code(exc: WasmdeckError) -> int:
    """The CLI exit code for an error."""
    if isinstance(exc, LimitExceeded):
        return EXIT_LIMIT
    if isinstance(exc, InvalidPlugin):
        return EXIT_INVALID
    if isinstance(exc, (RoutingError, UsageError, ProjectError)):
        return EXIT_USAGE
    return EXIT_PLUGIN_ERROR


def _fail(message: str, code: int) -> int:
    print(f"wasmdeck: {message}", file=sys.stderr)
    return code


def run() -> None:
    """The console script: ``main()``, then leave the process at once.

    wasmtime's WASI implementation keeps tokio worker threads that can panic
    ("panic in a function that cannot unwind") while the interpreter tears
    itself down; nothing is left to do by then, so the process exits
    without that teardown, after flushing what it printed.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
