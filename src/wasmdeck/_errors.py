"""The exceptions wasmdeck raises.

Three families, one per way a call can go wrong, so that callers (and the
CLI's exit codes) can tell them apart:

- ``PluginError``: the plugin ran and failed — it reported an error or trapped.
- ``LimitExceeded``: a sandbox limit stopped it (one subclass per limit).
- ``InvalidPlugin``: the plugin cannot be used at all — not wasm, a missing
  export, bad metadata, an ABI violation, an import that is not allowed.

Every message names the plugin and, where there is one, the action.
"""

from __future__ import annotations

__all__ = [
    "ABIViolation",
    "ActionNotFound",
    "ConsentRequired",
    "FuelLimitExceeded",
    "ImportNotAllowed",
    "InvalidMetadata",
    "InvalidModule",
    "InvalidPlugin",
    "KeyFileError",
    "LimitExceeded",
    "MalformedPackage",
    "MemoryLimitExceeded",
    "MissingExport",
    "ModuleFileCorrupt",
    "ModuleTooLarge",
    "OutputLimitExceeded",
    "PackageError",
    "PluginError",
    "PluginNotFound",
    "PluginReportedError",
    "PluginTrap",
    "PolicyRefused",
    "RegistryCorrupt",
    "RevokedKey",
    "RoutingError",
    "SignatureInvalid",
    "StackLimitExceeded",
    "StateCorrupt",
    "TableLimitExceeded",
    "TamperedPackage",
    "TimeLimitExceeded",
    "TrustStoreCorrupt",
    "WasmdeckError",
]


class WasmdeckError(Exception):
    """Base of every error wasmdeck raises on purpose."""

    def __init__(self, message: str, *, plugin: str | None = None, action: str | None = None):
        self.message = message
        self.plugin = plugin
        self.action = action
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.plugin is not None:
            where.append(f"plugin {self.plugin!r}")
        if self.action is not None:
            where.append(f"action {self.action!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


# -- the plugin ran and failed ------------------------------------------------


class PluginError(WasmdeckError):
    """The plugin reported an error or trapped."""


class PluginReportedError(PluginError):
    """The plugin returned a non-zero code, with or without an error message."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        plugin: str | None = None,
        action: str | None = None,
    ):
        self.code = code
        super().__init__(message, plugin=plugin, action=action)


class PluginTrap(PluginError):
    """The plugin trapped (``unreachable``, out-of-bounds access, ...)."""

    def __init__(
        self,
        message: str,
        *,
        trap_code: str | None = None,
        plugin: str | None = None,
        action: str | None = None,
    ):
        self.trap_code = trap_code
        super().__init__(message, plugin=plugin, action=action)


# -- a sandbox limit stopped it -----------------------------------------------


class LimitExceeded(WasmdeckError):
    """A sandbox limit stopped the plugin. ``limit`` names it, ``value`` is its setting."""

    limit: str = ""

    def __init__(
        self,
        message: str,
        *,
        value: object,
        plugin: str | None = None,
        action: str | None = None,
    ):
        self.value = value
        super().__init__(message, plugin=plugin, action=action)


class TimeLimitExceeded(LimitExceeded):
    limit = "timeout"


class FuelLimitExceeded(LimitExceeded):
    limit = "fuel"


class MemoryLimitExceeded(LimitExceeded):
    limit = "max_memory"


class TableLimitExceeded(LimitExceeded):
    limit = "max_table_elements"


class StackLimitExceeded(LimitExceeded):
    limit = "max_stack"


class OutputLimitExceeded(LimitExceeded):
    limit = "max_output"


# -- the plugin cannot be used --------------------------------------------------


class InvalidPlugin(WasmdeckError):
    """The plugin is not a usable wasmdeck plugin."""


class InvalidModule(InvalidPlugin):
    """The bytes are not WebAssembly, or not a module wasmtime accepts."""


class ModuleTooLarge(InvalidModule):
    """The binary is over a ``Limits`` bound checked before compiling; ``limit`` names it."""

    def __init__(self, message: str, *, limit: str, plugin: str | None = None):
        self.limit = limit
        super().__init__(message, plugin=plugin)


class MissingExport(InvalidPlugin):
    """A required export is absent or has the wrong type."""


class InvalidMetadata(InvalidPlugin):
    """The metadata from ``init`` is not UTF-8 JSON of the documented shape."""


class ABIViolation(InvalidPlugin):
    """The plugin broke the ABI contract (e.g. handed back an out-of-bounds pointer)."""


class ImportNotAllowed(InvalidPlugin):
    """The plugin imports something the host does not provide or the user did not grant."""


# -- packages, trust and the plugin manager (DESIGN.md contract 4) -------------


class PackageError(InvalidPlugin):
    """A plugin package cannot be used: malformed, tampered, badly signed or refused."""


class MalformedPackage(PackageError):
    """The file is not a wasmdeck package, or breaks the format's strict rules."""


class TamperedPackage(PackageError):
    """The package parses but its bytes do not match their checksum or digest."""


class SignatureInvalid(PackageError):
    """The package's ed25519 signature does not verify."""


class PolicyRefused(PackageError):
    """The trust policy does not allow this package (e.g. unsigned under allow-signed)."""


class RevokedKey(PolicyRefused):
    """The package is signed by a key the user revoked; refused under every policy."""


class StateCorrupt(InvalidPlugin):
    """wasmdeck's own state under its home is damaged; ``wasmdeck doctor --repair`` fixes it."""


class RegistryCorrupt(StateCorrupt):
    """The registry of installed plugins (SQLite) cannot be read."""


class TrustStoreCorrupt(StateCorrupt):
    """The trust store (trusted and revoked keys, policy) cannot be read."""


class ModuleFileCorrupt(StateCorrupt):
    """An installed plugin's module file is missing or does not match its digest."""


class KeyFileError(WasmdeckError):
    """A signing or public key file cannot be read (wrong passphrase, not a key, ...)."""


class ConsentRequired(WasmdeckError):
    """Installing needs the user's consent to capabilities and none could be asked for."""


# -- routing ------------------------------------------------------------------


class RoutingError(WasmdeckError):
    """A call could not be routed to exactly one plugin and action."""


class PluginNotFound(RoutingError):
    """No plugin by that name is loaded."""


class ActionNotFound(RoutingError):
    """No plugin (or not exactly one) declares the action."""
