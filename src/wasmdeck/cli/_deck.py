"""``wasmdeck check``: validate a deck file against its plugins (docs/deck.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._home import home
from ..deck import DeckError, check_deck, read_deck

EXIT_INVALID = 4


def register(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check",
        help="validate a deck file (plugins, actions, params, grants, overlaps)",
        description="Parse DECK and check it against its plugins; print each problem as "
        "FILE:LINE:COLUMN: message. Exit 0 when the deck is valid, 4 when it is not.",
    )
    check.add_argument(
        "deck", metavar="DECK", nargs="?", help="the deck file (default: $WASMDECK_HOME/deck.toml)"
    )
    check.set_defaults(handler=_check)


def default_deck() -> Path:
    return home() / "deck.toml"


def _check(args: argparse.Namespace) -> int:
    path = Path(args.deck) if args.deck else default_deck()
    try:
        deck = read_deck(path)
        warnings = check_deck(deck)
    except DeckError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    for warning in warnings:
        print(warning, file=sys.stderr)
    bindings = len(deck.bindings)
    print(f"{path}: ok ({len(deck.plugins)} plugins, {bindings} bindings, {len(deck.modes)} modes)")
    return 0
