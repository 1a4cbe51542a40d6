"""``wasmdeck-market``: run the marketplace server, create accounts.

wasmdeck-market serve --data DIR                     # SQLite + files in DIR
wasmdeck-market serve --database postgresql://... --oci http://registry:5000
wasmdeck-market account NAME [--admin] --data DIR    # prints its API token
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from wasmdeck.packages import MarketError

from ._blobs import BlobStore, FileBlobs, OciBlobs
from ._db import open_database
from ._limits import Limits
from ._service import Market

__all__ = ["main", "open_market", "run"]


def _storage_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("WASMDECK_MARKET_DATA"),
        help="directory for the SQLite database and package files (default $WASMDECK_MARKET_DATA)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("WASMDECK_MARKET_DATABASE"),
        metavar="URL",
        help="a PostgreSQL URL (postgresql://...) instead of SQLite",
    )
    parser.add_argument(
        "--oci",
        default=os.environ.get("WASMDECK_MARKET_OCI"),
        metavar="URL",
        help="an OCI registry (http(s)://host:port) for the package files instead of DIR/blobs",
    )
    parser.add_argument(
        "--oci-namespace", default="wasmdeck", help="repository prefix in the registry"
    )
    parser.add_argument(
        "--max-package", type=int, default=64 << 20, metavar="BYTES", help="largest upload"
    )


def open_market(args: argparse.Namespace) -> Market:
    """The ``Market`` the storage options describe."""
    if args.data is None and args.database is None:
        raise ValueError("give --data DIR (SQLite and files) or --database postgresql://...")
    if args.oci is None and args.data is None:
        raise ValueError("package files need --data DIR or --oci URL")
    db = open_database(Path(args.data) if args.data else None, args.database)
    blobs: BlobStore = (
        OciBlobs(args.oci, namespace=args.oci_namespace)
        if args.oci
        else FileBlobs(Path(args.data) / "blobs")
    )
    return Market(db, blobs, max_package=args.max_package)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasmdeck-market", description="The wasmdeck plugin marketplace server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the server (JSON API, /openapi.json)")
    _storage_args(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8470)
    serve.add_argument(
        "--open-signup", action="store_true", help="let anyone create an account over the API"
    )
    serve.add_argument("--read-rate", type=float, default=50.0, help="reads/s per client")
    serve.add_argument("--write-rate", type=float, default=2.0, help="writes/s per client")
    serve.add_argument("--write-burst", type=int, default=30, help="writes in a burst")
    account = sub.add_parser("account", help="create an account and print its API token")
    _storage_args(account)
    account.add_argument("name")
    account.add_argument("--admin", action="store_true", help="a moderator")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        market = open_market(args)
    except (ValueError, MarketError, OSError) as exc:
        print(f"wasmdeck-market: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the database cannot be reached
        print(f"wasmdeck-market: cannot open the database: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "account":
            try:
                _, token = market.create_account(args.name, admin=args.admin)
            except MarketError as exc:
                print(f"wasmdeck-market: {exc.message}", file=sys.stderr)
                return 1
            print(token)
            return 0
        import uvicorn

        from ._app import create_app

        limits = Limits(
            read_rate=args.read_rate,
            write_rate=args.write_rate,
            write_burst=args.write_burst,
            max_package=args.max_package,
        )
        app = create_app(market, limits=limits, open_signup=args.open_signup)
        print(
            f"wasmdeck-market: serving on http://{args.host}:{args.port} "
            f"({market.db.name}, {market.blobs.name} blobs)",
            file=sys.stderr,
            flush=True,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
        return 0
    finally:
        market.close()


def run() -> None:
    sys.exit(main())
