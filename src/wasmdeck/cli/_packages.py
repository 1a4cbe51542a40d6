"""``keygen``, ``pack``, ``sign``, ``verify`` and ``trust``: signed plugin packages."""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import KeyFileError, PackageError, UsageError
from ..packages import (
    DEFAULT_POLICY,
    Package,
    Policy,
    TrustStore,
    atomic_write,
    build_package,
    check_compatible,
    check_signature,
    generate_key,
    key_is_encrypted,
    load_public_key,
    load_signing_key,
    open_package,
    read_bytes,
    sign_package,
)

PASSPHRASE_ENV = "WASMDECK_KEY_PASSPHRASE"
POLICIES = [p.value for p in Policy]


def usage_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Report key-file and lookup problems as usage errors (exit 2)."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except KeyFileError as exc:
            raise UsageError(exc.message) from None
        except LookupError as exc:
            raise UsageError(exc.args[0] if exc.args else str(exc)) from None
        except EOFError:
            raise UsageError("no answer (end of input)") from None

    return wrapped


def add_passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help=f"read the key's passphrase from FILE (or set ${PASSPHRASE_ENV}; "
        "otherwise it is asked for on a terminal)",
    )


def register(subparsers: Any) -> None:
    keygen = subparsers.add_parser(
        "keygen",
        help="create an ed25519 signing key for packages",
        description="Write a new ed25519 private key to KEYFILE (PKCS#8 PEM, mode 0600, "
        "encrypted when a passphrase is given) and its public key to KEYFILE.pub. "
        "Give KEYFILE.pub to users so they can trust your packages.",
    )
    keygen.add_argument("--out", required=True, metavar="KEYFILE", help="private key file")
    add_passphrase_option(keygen)
    keygen.add_argument(
        "--no-passphrase", action="store_true", help="do not ask for a passphrase on a terminal"
    )
    keygen.set_defaults(handler=_keygen)

    pack = subparsers.add_parser(
        "pack",
        help="build a plugin package (signed with --key)",
        description="Build a package from a .wasm module or a plugin project directory "
        "(its module is DIR/build/*.wasm; the [package] table of DIR/wasmdeck.toml gives "
        "publisher, homepage, license and min_wasmdeck). The module is loaded once to read "
        "its metadata. See docs/package-format.md.",
    )
    pack.add_argument("source", metavar="WASM|DIR", help="module file or project directory")
    pack.add_argument("--out", required=True, metavar="PACKAGE", help="package file to write")
    pack.add_argument("--key", metavar="KEYFILE", help="sign with this private key")
    add_passphrase_option(pack)
    for field in ("publisher", "homepage", "license", "min-wasmdeck"):
        pack.add_argument(f"--{field}", metavar="TEXT", help=f"the package's {field}")
    pack.set_defaults(handler=_pack)

    sign = subparsers.add_parser(
        "sign",
        help="sign (or re-sign) a package",
        description="Sign PACKAGE with KEYFILE, replacing any signature it has. A package "
        "whose current signature does not verify is refused: it may have been altered.",
    )
    sign.add_argument("package", metavar="PACKAGE")
    sign.add_argument("--key", required=True, metavar="KEYFILE", help="private key file")
    sign.add_argument(
        "--out", metavar="FILE", help="write the signed package here (default: in place)"
    )
    add_passphrase_option(sign)
    sign.set_defaults(handler=_sign)

    verify = subparsers.add_parser(
        "verify",
        help="check a package's format, digest and signature; print signer and trust",
        description="Check PACKAGE strictly (format, checksum, module digest, signature) and "
        "print who signed it and how far the trust store trusts them. Exit 0 when it is "
        "valid, 4 when it is malformed, tampered, badly signed, signed by a revoked key "
        "or (with --policy) not allowed by the policy.",
    )
    verify.add_argument("package", metavar="PACKAGE")
    verify.add_argument("--policy", choices=POLICIES, help="also require this trust policy")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=_verify)

    trust = subparsers.add_parser(
        "trust",
        help="manage trusted publisher keys, revoked keys and the trust policy",
        description="The trust store: publishers whose keys you trust (their packages are "
        "'verified'), keys you revoked (refused under every policy), and the policy that "
        f"decides what may install and load (default {DEFAULT_POLICY.value}).",
    )
    actions = trust.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="trust a publisher's public key")
    add.add_argument("keyfile", metavar="KEYFILE.pub")
    add.add_argument("--name", required=True, metavar="PUBLISHER", help="who the key belongs to")
    add.set_defaults(handler=_trust_add)
    listing = actions.add_parser("list", help="list trusted and revoked keys and the policy")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_trust_list)
    remove = actions.add_parser("remove", help="stop trusting a publisher's keys (or one key)")
    remove.add_argument("which", metavar="NAME|KEYID")
    remove.set_defaults(handler=_trust_remove)
    revoke = actions.add_parser(
        "revoke",
        help="revoke a key: packages it signed are refused, even if it is added again",
        description="Revoke a publisher's keys, one key by id (a trusted one, or any full "
        "32-digit key id), or the key in a .pub file. Revoked keys are refused under every "
        "policy until 'wasmdeck trust unrevoke KEYID'.",
    )
    revoke.add_argument("which", metavar="NAME|KEYID|KEYFILE.pub")
    revoke.set_defaults(handler=_trust_revoke)
    unrevoke = actions.add_parser("unrevoke", help="lift a key's revocation")
    unrevoke.add_argument("key_id", metavar="KEYID")
    unrevoke.set_defaults(handler=_trust_unrevoke)
    policy = actions.add_parser(
        "policy",
        help="show or set the trust policy",
        description="require-verified: only packages signed by a trusted key; allow-signed: "
        "any valid signature (unknown keys too); allow-unsigned: anything. "
        f"Default: {DEFAULT_POLICY.value}.",
    )
    policy.add_argument("level", nargs="?", choices=POLICIES, help="the new policy")
    policy.set_defaults(handler=_trust_policy)


# -- keys ------------------------------------------------------------------------


def _read_passphrase(args: argparse.Namespace) -> bytes | None:
    if args.passphrase_file:
        text = Path(args.passphrase_file).read_bytes()
        return text.removesuffix(b"\n").removesuffix(b"\r") or None
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV].encode()
    return None


def unlock_key(args: argparse.Namespace, keyfile: str) -> Any:
    passphrase = _read_passphrase(args)
    if passphrase is None and key_is_encrypted(keyfile) and sys.stdin.isatty():
        passphrase = getpass.getpass(f"passphrase for {keyfile}: ").encode() or None
    return load_signing_key(keyfile, passphrase)


@usage_errors
def _keygen(args: argparse.Namespace) -> int:
    passphrase = _read_passphrase(args)
    if passphrase is None and not args.no_passphrase and sys.stdin.isatty():
        first = getpass.getpass("passphrase (empty for none): ")
        if first and getpass.getpass("again: ") != first:
            raise KeyFileError("the passphrases differ; nothing was written")
        passphrase = first.encode() or None
    key = generate_key(args.out, passphrase=passphrase)
    print(f"wrote private key {args.out} (mode 0600{', encrypted' if passphrase else ''})")
    print(f"wrote public key {args.out}.pub; key id {key.public.key_id}")
    return 0


# -- packages --------------------------------------------------------------------


@usage_errors
def _pack(args: argparse.Namespace) -> int:
    key = unlock_key(args, args.key) if args.key else None
    package = build_package(
        args.source,
        key=key,
        publisher=args.publisher,
        homepage=args.homepage,
        license=args.license,
        min_wasmdeck=args.min_wasmdeck,
    )
    atomic_write(Path(args.out), package.encode(), mode=0o644)
    signed = f"signed by key {package.signature.key_id_hex}" if package.signature else "unsigned"
    print(f"wrote {args.out}: {package.name} {package.version}, {signed}")
    print(f"module sha256:{package.digest_hex}")
    return 0


@usage_errors
def _sign(args: argparse.Namespace) -> int:
    package = Package.parse(read_bytes(args.package))
    check_signature(package)  # never bless a package whose signature shows it was altered
    signed = sign_package(package, unlock_key(args, args.key))
    out = Path(args.out or args.package)
    atomic_write(out, signed.encode(), mode=0o644)
    assert signed.signature is not None
    print(f"signed {out} ({signed.name} {signed.version}) with key {signed.signature.key_id_hex}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    trust = TrustStore()
    verified = open_package(args.package, trust=trust, policy=args.policy)
    verdict, manifest = verified.verdict, verified.manifest
    policy = Policy.parse(args.policy) if args.policy else trust.policy
    allowed = verdict.level >= policy.minimum
    notes = []
    try:
        check_compatible(manifest)
    except PackageError as exc:  # shown as a note; install refuses it
        notes.append(exc.message)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": True,
                    "name": manifest.name,
                    "version": manifest.version,
                    "digest": f"sha256:{verified.package.digest_hex}",
                    "trust": verdict.level.label,
                    "key_id": verdict.key_id,
                    "publisher": verdict.publisher,
                    "policy": policy.value,
                    "allowed": allowed,
                    "notes": notes,
                },
                indent=2,
            )
        )
        return 0
    print(f"valid package: {manifest.name} {manifest.version}")
    print(f"module: sha256:{verified.package.digest_hex} ({len(verified.package.module)} bytes)")
    if verdict.key_id:
        print(f"signer: key {verdict.key_id}")
    else:
        print("signer: none")
    if manifest.publisher:
        print(f"publisher (as the package states it): {manifest.publisher}")
    print(f"trust: {verdict.describe()}")
    print(f"policy {policy.value}: {'allowed' if allowed else 'would refuse it'}")
    for note in notes:
        print(f"note: {note}")
    return 0


# -- trust -----------------------------------------------------------------------


@usage_errors
def _trust_add(args: argparse.Namespace) -> int:
    key = load_public_key(args.keyfile)
    added = TrustStore().add(key, args.name)
    print(f"trusted key {added.key_id} as {added.name!r}")
    return 0


def _trust_list(args: argparse.Namespace) -> int:
    store = TrustStore()
    keys, revoked, policy = store.trusted_keys(), store.revoked(), store.policy
    if args.json:
        print(
            json.dumps(
                {
                    "policy": policy.value,
                    "trusted": [{"key_id": k.key_id, "name": k.name} for k in keys],
                    "revoked": [{"key_id": r["key_id"], "name": r["name"]} for r in revoked],
                },
                indent=2,
            )
        )
        return 0
    print(f"policy: {policy.value}")
    print("trusted keys:" if keys else "trusted keys: (none)")
    for k in keys:
        print(f"  {k.key_id}  {k.name}")
    if revoked:
        print("revoked keys:")
        for r in revoked:
            print(f"  {r['key_id']}  {r['name'] or '(never trusted)'}")
    return 0


@usage_errors
def _trust_remove(args: argparse.Namespace) -> int:
    for key_id in TrustStore().remove(args.which):
        print(f"no longer trusted: key {key_id}")
    return 0


@usage_errors
def _trust_revoke(args: argparse.Namespace) -> int:
    which: Any = args.which
    if which.endswith(".pub") or Path(which).is_file():
        which = load_public_key(which)
    for key_id in TrustStore().revoke(which):
        print(f"revoked key {key_id}: packages it signed are refused")
    return 0


@usage_errors
def _trust_unrevoke(args: argparse.Namespace) -> int:
    key_id = TrustStore().unrevoke(args.key_id)
    print(f"key {key_id} is no longer revoked (it is not trusted until added again)")
    return 0


def _trust_policy(args: argparse.Namespace) -> int:
    store = TrustStore()
    if args.level:
        print(f"policy set to {store.set_policy(args.level).value}")
    else:
        print(store.policy.value)
    return 0
