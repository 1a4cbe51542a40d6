"""Entry point: argument parsing, exit codes, and error reporting.

Exit codes (a stable contract, used by scripts and checks):
0 success; 1 the plugin reported an error or trapped; 2 usage error;
3 a sandbox limit stopped the plugin; 4 the plugin is invalid.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
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
from .._text import terminal_safe
from .._version import __version__
from . import _build, _compile, _control, _deck, _manager, _market, _packages, _run, _serve

EXIT_OK, EXIT_PLUGIN_ERROR, EXIT_USAGE, EXIT_LIMIT, EXIT_INVALID = 0, 1, 2, 3, 4

# Each command module offers register(subparsers) and sets a `handler` default.
_COMMANDS = (_run, _compile, _build, _packages, _manager, _market, _deck, _serve, _control)


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
    """``[plugin] line``: both come from the plugin, so both are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        plugin = record.name.removeprefix("wasmdeck.plugin.")
        return f"[{terminal_safe(plugin)}] {terminal_safe(record.getMessage())}"


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
    except BrokenPipeError:
        return _reader_gone()
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
    # Messages carry plugins' own words (their error texts, names): escaped.
    print(f"wasmdeck: {terminal_safe(message, multiline=True)}", file=sys.stderr)
    return code


def run() -> None:
    """The console script: ``main()``, then leave the process at once.

    wasmtime's WASI implementation keeps tokio worker threads that can panic
    ("panic in a function that cannot unwind") while the interpreter tears
    itself down; nothing is left to do by then, so the process exits
    without that teardown, after flushing what it printed.
    """
    try:
        code = main()
    except BrokenPipeError:  # argparse writing --help into a closed pipe, say
        code = _reader_gone()
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _reader_gone()
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)


# The exit status of a process killed by SIGPIPE, as shells report it.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def _reader_gone() -> int:
    """``wasmdeck ... | head``: the reader left. Stop quietly, as a filter does: what
    is still buffered for stdout goes nowhere instead of failing again at exit."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    run()
