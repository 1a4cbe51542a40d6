"""The plugins layer: signed packages, the trust store and the local plugin manager.

Depends on the runtime and the top-level modules only; the host and the CLI
build on it.
"""

from ._config import ConfigStore
from ._files import atomic_write
from ._manager import InstalledPlugin, InstallPlan, LoadedPlugins, PluginManager
from ._pack import build_package, find_module, project_fields
from ._package import Manifest, Package, Signature, build_manifest
from ._signing import (
    PublicKey,
    SigningKey,
    check_signature,
    generate_key,
    key_is_encrypted,
    load_public_key,
    load_signing_key,
    sign_package,
)
from ._trust import DEFAULT_POLICY, Policy, TrustLevel, TrustStore, Verdict
from ._verify import VerifiedPackage, check_compatible, load_package, open_package, read_bytes

__all__ = [
    "DEFAULT_POLICY",
    "ConfigStore",
    "InstallPlan",
    "InstalledPlugin",
    "LoadedPlugins",
    "Manifest",
    "Package",
    "PluginManager",
    "Policy",
    "PublicKey",
    "Signature",
    "SigningKey",
    "TrustLevel",
    "TrustStore",
    "Verdict",
    "VerifiedPackage",
    "atomic_write",
    "build_manifest",
    "build_package",
    "check_compatible",
    "check_signature",
    "find_module",
    "generate_key",
    "key_is_encrypted",
    "load_package",
    "load_public_key",
    "load_signing_key",
    "open_package",
    "project_fields",
    "read_bytes",
    "sign_package",
]
