"""The plugins layer: signed packages, the trust store and the local plugin manager.

Depends on the runtime and the top-level modules only; the host and the CLI
build on it.
"""

from .._errors import MalformedPackage, PackageError, SignatureInvalid, TamperedPackage
from .._json import JSONInputError
from .._json import dumps as json_dumps
from .._json import loads as json_loads
from ._config import ConfigStore
from ._files import atomic_write
from ._manager import InstalledPlugin, InstallPlan, LoadedPlugins, PluginManager
from ._market import (
    DEFAULT_MARKET,
    PACKAGE_CONTENT_TYPE,
    MarketClient,
    MarketDownload,
    MarketError,
    MarketSettings,
    MarketVersion,
    UpdateOffer,
    capability_risks,
    check_download,
    fetch_from_market,
    newest_listed,
    rotation_message,
    update_offer,
    version_key,
)
from ._pack import build_package, find_module, project_fields
from ._package import MAX_PACKAGE, Manifest, Package, Signature, build_manifest, version_tuple
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
    "DEFAULT_MARKET",
    "DEFAULT_POLICY",
    "MAX_PACKAGE",
    "PACKAGE_CONTENT_TYPE",
    "ConfigStore",
    "InstallPlan",
    "InstalledPlugin",
    "JSONInputError",
    "LoadedPlugins",
    "MalformedPackage",
    "Manifest",
    "MarketClient",
    "MarketDownload",
    "MarketError",
    "MarketSettings",
    "MarketVersion",
    "Package",
    "PackageError",
    "PluginManager",
    "Policy",
    "PublicKey",
    "Signature",
    "SignatureInvalid",
    "SigningKey",
    "TamperedPackage",
    "TrustLevel",
    "TrustStore",
    "UpdateOffer",
    "Verdict",
    "VerifiedPackage",
    "atomic_write",
    "build_manifest",
    "build_package",
    "capability_risks",
    "check_compatible",
    "check_download",
    "check_signature",
    "fetch_from_market",
    "find_module",
    "generate_key",
    "json_dumps",
    "json_loads",
    "key_is_encrypted",
    "load_package",
    "load_public_key",
    "load_signing_key",
    "newest_listed",
    "open_package",
    "project_fields",
    "read_bytes",
    "rotation_message",
    "sign_package",
    "update_offer",
    "version_key",
    "version_tuple",
]
