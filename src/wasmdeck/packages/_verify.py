"""Opening a package: parse, check the signature, judge trust, apply the policy.

This is the one path from package bytes to a ``Plugin``: nothing in the module
is compiled until the format, the digest, the signature, the key's standing
and the policy have all been checked.
"""

from __future__ import annotations

import os
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
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > MAX_PACKAGE:
            raise MalformedPackage(f"{path} is larger than a package may be ({size} bytes)")
        return path.read_bytes()
    except IsADirectoryError:
        raise MalformedPackage(f"{path} is a directory, not a package file") from None


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
) -> Plugin:
    """Load verified module bytes; the module's own metadata must be the manifest's."""
    check_compatible(manifest)
    plugin = Plugin(
        module, grants=grants, limits=limits, config=config, runtime=runtime, label=manifest.name
    )
    if canonical_json(dict(plugin.metadata.raw)) != canonical_json(dict(manifest.metadata.raw)):
        plugin.close()
        raise TamperedPackage(
            "the module's own metadata differs from the metadata in its manifest",
            plugin=manifest.name,
        )
    return plugin
