"""Opening a package: parse, check the signature, judge trust, apply the policy.

This is the one path from package bytes to a ``Plugin``: nothing in the module
is compiled until the format, the digest, the signature, the key's standing
and the policy have all been checked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._capabilities import Grant, Grants
from .._errors import MalformedPackage, PackageError, TamperedPackage
from .._version import __version__
from ..runtime import Limits, Plugin, Runtime
from ._package import MAX_PACKAGE, Manifest, Package, canonical_json, version_tuple
from ._signing import check_signature
from ._trust import Policy, TrustStore, Verdict

__all__ = [
    "VerifiedPackage",
    "check_compatible",
    "instantiate",
    "load_package",
    "open_package",
    "read_bytes",
]


@dataclass(frozen=True, slots=True)
class VerifiedPackage:
    """A package whose format and signature checked out, with its trust verdict."""

    package: Package
    verdict: Verdict

    @property
    def manifest(self) -> Manifest:
        return self.package.manifest

    @property
    def name(self) -> str:
        return self.package.name


def read_bytes(source: bytes | str | os.PathLike[str]) -> bytes:
    """A package file's bytes, refused by type and size before a byte is read: a
    device (``/dev/zero``), a FIFO or a directory is not a package, and neither is a
    file larger than a package may be."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    path = Path(source)
    # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then judges the
    # file actually opened (no window between a check and the open).
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise MalformedPackage(f"{path} is a directory, not a package file")
        if not stat.S_ISREG(info.st_mode):
            raise MalformedPackage(f"{path} is {_file_type(info.st_mode)}, not a package file")
        if info.st_size > MAX_PACKAGE:
            raise MalformedPackage(
                f"{path} is larger than a package may be ({info.st_size:,} bytes; "
                f"at most {MAX_PACKAGE:,})"
            )
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as file:
            fd = -1
            data = file.read(MAX_PACKAGE + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_PACKAGE:  # it grew while being read
        raise MalformedPackage(f"{path} is larger than a package may be")
    return data


def _file_type(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_package(
    source: bytes | str | os.PathLike[str],
    *,
    trust: TrustStore | None = None,
    policy: Policy | str | None = None,
) -> VerifiedPackage:
    """Parse and verify a package. ``policy`` (when given) must allow its trust level.

    Raises ``MalformedPackage``, ``TamperedPackage``, ``SignatureInvalid``,
    ``RevokedKey`` or ``PolicyRefused`` (all ``PackageError``).
    """
    package = Package.parse(read_bytes(source))
    check_signature(package)
    verdict = (trust or TrustStore()).assess(package)
    if policy is not None:
        Policy.parse(policy).check(verdict)
    return VerifiedPackage(package, verdict)


def check_compatible(manifest: Manifest) -> None:
    """Refuse a package that needs a newer wasmdeck than this one."""
    if manifest.min_wasmdeck is None:
        return
    if version_tuple(__version__) < version_tuple(manifest.min_wasmdeck):
        raise PackageError(
            f"it needs wasmdeck {manifest.min_wasmdeck} or newer; this is {__version__}",
            plugin=manifest.name,
        )


def load_package(
    source: bytes | str | os.PathLike[str],
    *,
    grants: Grants | Iterable[Grant | str] = (),
    limits: Limits | None = None,
    config: Mapping[str, Any] | None = None,
    runtime: Runtime | None = None,
    trust: TrustStore | None = None,
    policy: Policy | str | None = None,
) -> Plugin:
    """Verify a package under the policy (the trust store's setting by default), then load it."""
    trust = trust or TrustStore()
    verified = open_package(source, trust=trust, policy=policy or trust.policy)
    return instantiate(
        verified.manifest,
        verified.package.module,
        grants=grants,
        limits=limits,
        config=config,
        runtime=runtime,
    )


def instantiate(
    manifest: Manifest,
    module: bytes,
    *,
    grants: Grants | Iterable[Grant | str] = (),
    limits: Limits | None = None,
    config: Mapping[str, Any] | None = None,
    runtime: Runtime | None = None,
    kv_namespace: str | None = None,
    metadata_only: bool = False,
) -> Plugin:
    """Load verified module bytes; the module's own metadata must be the manifest's."""
    check_compatible(manifest)
    plugin = Plugin(
        module,
        grants=grants,
        limits=limits,
        config=config,
        runtime=runtime,
        label=manifest.name,
        kv_namespace=kv_namespace,
        metadata_only=metadata_only,
    )
    if canonical_json(dict(plugin.metadata.raw)) != canonical_json(dict(manifest.metadata.raw)):
        plugin.close()
        raise TamperedPackage(
            "the module's own metadata differs from the metadata in its manifest",
            plugin=manifest.name,
        )
    return plugin
