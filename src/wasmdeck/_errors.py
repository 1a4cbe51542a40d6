"""The exceptions wasmdeck raises: one tree, rooted at ``WasmdeckError``.

Catch ``WasmdeckError`` for "anything wasmdeck refused or that went wrong
inside a plugin"; catch a branch to tell the ways apart (the CLI's exit codes
follow the branches, see cli/_main.py). Every message names the plugin and,
where there is one, the action. The tree (docs/architecture.md explains when
each branch is raised)::

    WasmdeckError
    ├── PluginError                 the plugin ran and failed           exit 1
    │   ├── PluginReportedError     non-zero return code (``code``)
    │   └── PluginTrap              a wasm trap (``trap_code``)
    ├── LimitExceeded               a sandbox limit stopped it          exit 3
    │   ├── TimeLimitExceeded, FuelLimitExceeded, MemoryLimitExceeded,
    │   └── TableLimitExceeded, StackLimitExceeded, OutputLimitExceeded
    ├── InvalidPlugin               cannot be used at all               exit 4
    │   ├── InvalidModule, MissingExport, InvalidMetadata,
    │   ├── ABIViolation, ImportNotAllowed
    │   ├── PackageError            a package: format, digest, signature, policy
    │   │   ├── MalformedPackage, TamperedPackage, SignatureInvalid
    │   │   └── PolicyRefused
    │   │       └── RevokedKey, DowngradeRefused
    │   └── StateCorrupt            wasmdeck's own state under its home
    │       └── RegistryCorrupt, TrustStoreCorrupt, ModuleFileCorrupt
    ├── RoutingError                no single plugin/action for a call  exit 2
    │   └── PluginNotFound, ActionNotFound
    ├── KeyFileError                a key file cannot be read            exit 1
    ├── ConsentRequired             an install needs consent nobody gave exit 1
    ├── StateReadOnly               its state under the home is read-only exit 1
    ├── BuildError                  building a plugin project failed    exit 1
    │   ├── ToolchainMissing        the message says how to install it
    │   └── ProjectError            not a project / cannot create it    exit 2
    ├── UsageError                  bad command-line input              exit 2
    └── HostRequestError            a host function refused a request (``kind``)

``HostRequestError`` never reaches the caller of a plugin: host functions
(runtime/_hostapi.py) raise it and answer the plugin with
``{"error": {"kind": ..., "message": ...}}``; it is in the tree so that
nothing wasmdeck raises on purpose falls outside it, and is not exported.
``UsageError`` is the CLI's; the Python API raises ``ValueError``/``TypeError``
for arguments of the wrong type, as Python does.

Outside the tree, on purpose (tests/test_public_api.py keeps this list whole):
internal signals that never leave the runtime — ``NetworkDenied``
(runtime/_netpolicy.py; becomes a ``denied`` answer to the plugin) and
``DeadlinePassed`` (runtime/_deadline.py; becomes ``TimeLimitExceeded``),
``_Abandoned`` (daemon/_handover.py; a hand-over called off because another
of the same deck reload failed, which the reload reports), ``_ReloadStage``
(daemon/_daemon.py; carries a per-plugin reload's failing stage off its
worker thread, becomes ``ReloadFailed``) — and
``JSONInputError`` (_json.py), a ``ValueError`` that each caller of the JSON
parser turns into the error of what it parsed (an answer to the plugin,
``InvalidMetadata``, a usage error).
"""

from __future__ import annotations

__all__ = [
    "ABIViolation",
    "ActionNotFound",
    "BuildError",
    "ConsentRequired",
    "DowngradeRefused",
    "FuelLimitExceeded",
    "HostRequestError",
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
    "ProjectError",
    "RegistryCorrupt",
    "RevokedKey",
    "RoutingError",
    "SignatureInvalid",
    "StackLimitExceeded",
    "StateCorrupt",
    "StateReadOnly",
    "TableLimitExceeded",
    "TamperedPackage",
    "TimeLimitExceeded",
    "ToolchainMissing",
    "TrustStoreCorrupt",
    "UsageError",
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
    """The call ran past its wall-clock ``timeout`` (``value``: seconds)."""

    limit = "timeout"


class FuelLimitExceeded(LimitExceeded):
    """The call used up its ``fuel`` (wasm instructions, roughly)."""

    limit = "fuel"


class MemoryLimitExceeded(LimitExceeded):
    """The plugin needed more linear memory than ``max_memory`` bytes."""

    limit = "max_memory"


class TableLimitExceeded(LimitExceeded):
    """The plugin needed more table elements than ``max_table_elements``."""

    limit = "max_table_elements"


class StackLimitExceeded(LimitExceeded):
    """The plugin overflowed the wasm stack (``value``: its size in bytes; deep recursion)."""

    limit = "max_stack"


class OutputLimitExceeded(LimitExceeded):
    """The plugin handed back more than ``max_output`` bytes (output, error or a host request)."""

    limit = "max_output"


class StateLimitExceeded(LimitExceeded):
    """The state a plugin saved for a live reload was over ``max_state`` bytes (docs/reload.md)."""

    limit = "max_state"


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


# -- packages, trust and the plugin manager (docs/package-format.md) -----------


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


class DowngradeRefused(PolicyRefused):
    """The package is older than the installed version (pass ``allow_downgrade``)."""


class StateCorrupt(InvalidPlugin):
    """wasmdeck's own state under its home is damaged; ``wasmdeck doctor --repair`` fixes it."""


class RegistryCorrupt(StateCorrupt):
    """The registry of installed plugins (SQLite) cannot be read."""


class TrustStoreCorrupt(StateCorrupt):
    """The trust store (trusted and revoked keys, policy) cannot be read."""


class ModuleFileCorrupt(StateCorrupt):
    """An installed plugin's module file is missing or does not match its digest."""


class StateReadOnly(WasmdeckError):
    """wasmdeck's state under its home cannot be written (a read-only file or directory)."""


class KeyFileError(WasmdeckError):
    """A signing or public key file cannot be read (wrong passphrase, not a key, ...)."""


class ConsentRequired(WasmdeckError):
    """Installing needs the user's consent to capabilities and none could be asked for."""


# -- routing ------------------------------------------------------------------


class ReloadFailed(WasmdeckError):
    """A live reload of a plugin failed; the old version runs on (docs/reload.md).

    ``stage`` says where: ``load`` (the new version is invalid, does not
    compile or lacks a grant), ``check`` (the deck does not fit it),
    ``save`` or ``restore`` (the state's hand-over: a trap, a limit, the
    plugin's own error, ``max_state``). ``__cause__`` is the error behind it.
    """

    def __init__(self, message: str, *, stage: str, plugin: str | None = None) -> None:
        self.stage = stage
        super().__init__(message, plugin=plugin)


class RoutingError(WasmdeckError):
    """A call could not be routed to exactly one plugin and action."""


class PluginNotFound(RoutingError):
    """No plugin by that name is loaded."""


class ActionNotFound(RoutingError):
    """No plugin (or not exactly one) declares the action."""


# -- building plugin projects (wasmdeck.toolchains) ---------------------------


class BuildError(WasmdeckError):
    """A build failed; the message carries the toolchain's output."""


class ToolchainMissing(BuildError):
    """The language's toolchain is not installed; the message says how to get it."""


class ProjectError(BuildError):
    """Not a plugin project, or one that cannot be created as asked."""


# -- the command line -----------------------------------------------------------


class UsageError(WasmdeckError):
    """Bad command-line input that argparse itself cannot catch (e.g. invalid JSON)."""


# -- host functions -------------------------------------------------------------


class HostRequestError(WasmdeckError):
    """A host request failed; ``kind`` classifies it for the plugin.

    Internal: host functions answer the plugin with it and it never reaches
    the caller of a plugin (see the module docstring).
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)
