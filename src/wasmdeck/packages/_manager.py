"""``PluginManager``: install, upgrade, enable, grant and load plugins from packages.

An install verifies the package (format, digest, signature, key standing,
policy), asks for consent to the capabilities it wants, loads the module once
to prove it works with the grants given, writes the module file durably under
its digest, and only then records the plugin in one registry transaction. A
process killed at any point leaves the previous state intact and usable.

Loading an installed plugin checks it all again: the stored manifest's
signature, the key's standing and the policy, and the module file's SHA-256
against the recorded digest, before wasmtime sees a byte of it.
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .._capabilities import Grant, Grants, parse_grant
from .._errors import (
    ConsentRequired,
    DowngradeRefused,
    MalformedPackage,
    PluginNotFound,
    PolicyRefused,
    RegistryCorrupt,
    RevokedKey,
    WasmdeckError,
)
from .._home import home
from .._metadata import CapabilityRequest, PluginMetadata
from .._text import terminal_safe as safe
from ..runtime import Limits, Plugin, Runtime
from ._config import ConfigStore
from ._consent import describe_requests, grants_for, request_keys, unscoped_kinds
from ._doctor import run_doctor
from ._files import locked
from ._package import Manifest, Package, Signature, version_tuple
from ._registry import Registry, Row
from ._signing import check_signature
from ._store import ModuleStore
from ._trust import Policy, TrustLevel, TrustStore, Verdict
from ._verify import VerifiedPackage, instantiate, open_package

__all__ = ["InstallPlan", "InstalledPlugin", "LoadedPlugins", "PluginManager"]

_log = logging.getLogger("wasmdeck.packages")

# Test hook: a process with WASMDECK_TEST_PAUSE=<point> stops there (tests kill it).
_PAUSE_ENV = "WASMDECK_TEST_PAUSE"
# A manifest field longer than this is cut on the consent screen: it must not push
# the capabilities it asks for off the screen.
_FIELD_LIMIT = 300


# With WASMDECK_TEST_RESUME=<file>, it goes on once that file exists (race tests).
_RESUME_ENV = "WASMDECK_TEST_RESUME"


def _pause(point: str) -> None:
    if os.environ.get(_PAUSE_ENV) == point:
        sys.stderr.write(f"wasmdeck-test-paused {point}\n")
        sys.stderr.flush()
        resume = os.environ.get(_RESUME_ENV)
        until = time.monotonic() + 3600
        while time.monotonic() < until and not (resume and os.path.exists(resume)):
            time.sleep(0.02)


class _Host(Protocol):
    def add(self, plugin: Plugin) -> Plugin: ...


@dataclass(frozen=True, slots=True)
class InstalledPlugin:
    """One installed plugin, as the registry records it."""

    name: str
    version: str
    digest: str
    manifest: Manifest
    manifest_bytes: bytes
    signature: Signature | None
    enabled: bool
    grants: Grants
    policy: Policy | None  # a per-plugin policy chosen at install (e.g. --allow-unsigned)
    installed_at: float
    updated_at: float

    @property
    def metadata(self) -> PluginMetadata:
        return self.manifest.metadata

    @property
    def requested(self) -> tuple[CapabilityRequest, ...]:
        return self.manifest.metadata.capabilities

    @property
    def key_id(self) -> str | None:
        return self.signature.key_id_hex if self.signature else None

    @property
    def identity(self) -> str:
        """Who this plugin is, for the data kept for it (its kv namespace): its name in
        the registry and its signer; a module that merely declares the same name, or
        a package signed by another key, is someone else (docs/host-api.md, "kv")."""
        return f"installed:{self.name}:{self.key_id or 'unsigned'}"


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """What installing a package would do, for the user to consent to."""

    package: VerifiedPackage
    previous: InstalledPlugin | None
    policy: Policy
    proposed: Grants  # what consenting grants
    ungrantable: tuple[str, ...]  # requests consent cannot grant as asked
    needs_consent: bool
    unscoped: tuple[str, ...] = ()  # scoped kinds it asks for without a scope
    replace_signer: bool = False
    allow_downgrade: bool = False

    def with_grants(self, extra: Iterable[Grant]) -> InstallPlan:
        """This plan, consenting also to ``extra`` (the scopes the user gave for
        requests that named none)."""
        from dataclasses import replace

        added = list(extra)
        kinds = {g.kind for g in added}
        return replace(
            self,
            proposed=Grants([*self.proposed, *added]),
            ungrantable=tuple(u for u in self.ungrantable if u.split(" ")[0] not in kinds),
            unscoped=tuple(k for k in self.unscoped if k not in kinds),
            needs_consent=self.needs_consent or bool(added),
        )

    @property
    def change(self) -> str:
        """``install``, ``upgrade``, ``downgrade`` or ``reinstall``."""
        return _change(self.previous, self.package.manifest.version)

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def requested(self) -> tuple[CapabilityRequest, ...]:
        return self.package.manifest.metadata.capabilities

    @property
    def added(self) -> tuple[CapabilityRequest, ...]:
        """The requests the installed version did not make (all of them on a first
        install): what an update's consent is about."""
        if self.previous is None:
            return self.requested
        before = request_keys(self.previous.requested)
        return tuple(r for r in self.requested if not request_keys([r]) <= before)

    def describe(self) -> list[str]:
        """Lines for the user: the plugin, its trust level, what it asks for and what
        consenting grants, one capability a line with its risk. Every text the package
        supplies is escaped (``terminal_safe``): it cannot move the cursor or hide a line."""
        manifest = self.package.manifest
        action = self.change
        if self.previous is not None:
            action = f"{action} {safe(self.previous.version)} ->"
        lines = [
            f"{action} {safe(manifest.name)} {safe(manifest.version)}: "
            + safe(manifest.metadata.description, limit=_FIELD_LIMIT),
            f"  trust: {safe(self.package.verdict.describe())} (policy {self.policy.value})",
        ]
        if manifest.publisher:
            lines.append(
                "  publisher (as the package states it): "
                + safe(manifest.publisher, limit=_FIELD_LIMIT)
            )
        if self.requested:
            lines.append("  it asks for:")
            lines += [f"    - {line}" for line in describe_requests(self.requested)]
        else:
            lines.append("  it asks for no capabilities")
        if self.previous is not None and not self.needs_consent:
            kept = ", ".join(self.previous.grants.to_strings()) or "(none)"
            lines.append(f"  it asks for nothing new; its grants are kept: {safe(kept)}")
        elif self.proposed:
            lines.append("  consenting grants:")
            lines += [f"    - {safe(grant)} [{grant.risk} risk]" for grant in self.proposed]
        if self.ungrantable:
            lines.append("  not granted by consenting (use --grant KIND:SCOPE):")
            lines += [f"    - {safe(line)}" for line in self.ungrantable]
        return lines


class LoadedPlugins(list[Plugin]):
    """The plugins that loaded, and ``failures``: each one that did not, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, WasmdeckError] = {}


class PluginManager:
    """Installed plugins under ``$WASMDECK_HOME`` (or ``root``): registry, modules, trust."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else home()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.registry = Registry(self.root / "registry.sqlite3")
        self.modules = ModuleStore(self.root / "modules")
        self.trust = TrustStore(self.root / "trust.json")
        self.config = ConfigStore(self.root)
        self._lock = self.root / "registry.lock"

    # -- reading -------------------------------------------------------------

    def _installed(self, row: Row) -> InstalledPlugin:
        try:
            manifest = Manifest.decode(row.manifest)
            grants = Grants(row.grants)
            policy = None if row.policy is None else Policy.parse(row.policy)
            bytes.fromhex(row.digest)
            signature = None
            if row.key_id is not None or row.public_key is not None or row.signature is not None:
                if row.key_id is None or row.public_key is None or row.signature is None:
                    raise ValueError("its signature is incomplete")
                signature = Signature(bytes.fromhex(row.key_id), row.public_key, row.signature)
        except (MalformedPackage, ValueError) as exc:
            raise RegistryCorrupt(
                f"its registry row is damaged ({exc}); run 'wasmdeck doctor --repair'",
                plugin=row.name,
            ) from None
        if manifest.name != row.name or manifest.version != row.version:
            raise RegistryCorrupt(
                "its registry row does not match its manifest; run 'wasmdeck doctor --repair'",
                plugin=row.name,
            )
        return InstalledPlugin(
            name=row.name,
            version=row.version,
            digest=row.digest,
            manifest=manifest,
            manifest_bytes=row.manifest,
            signature=signature,
            enabled=row.enabled,
            grants=grants,
            policy=policy,
            installed_at=row.installed_at,
            updated_at=row.updated_at,
        )

    def list(self) -> list[InstalledPlugin]:
        return [self._installed(row) for row in self.registry.rows()]

    def get(self, name: str) -> InstalledPlugin:
        row = self.registry.get(name)
        if row is None:
            installed = ", ".join(r.name for r in self.registry.rows()) or "(none)"
            raise PluginNotFound(f"is not installed; installed: {installed}", plugin=name)
        return self._installed(row)

    show = get

    def verdict(self, plugin: InstalledPlugin) -> Verdict:
        """The plugin's trust level now (the trust store may have changed since install)."""
        return self.trust.assess_key(plugin.name, plugin.key_id)

    def summary(self, plugin: InstalledPlugin) -> dict[str, Any]:
        """What ``wasmdeck list/show --json`` and the web UI show of an installed plugin:
        its state, trust (``revoked`` for a revoked key), signer, policy, grants, what it
        asks for, and whether it would load now (``problem``: why not)."""
        try:
            verdict = self.verdict(plugin)
            trust = {
                "trust": verdict.level.label,
                "key_id": verdict.key_id,
                "publisher": verdict.publisher,
            }
        except RevokedKey:
            trust = {"trust": "revoked", "key_id": plugin.key_id, "publisher": None}
        problem = self.problem(plugin)
        return {
            "name": plugin.name,
            "version": plugin.version,
            "enabled": plugin.enabled,
            "digest": f"sha256:{plugin.digest}",
            **trust,
            "policy": self.effective_policy(plugin).value,
            "grants": plugin.grants.to_strings(),
            "requested": [{"kind": r.kind, **dict(r.scope)} for r in plugin.metadata.capabilities],
            "loadable": problem is None,
            "problem": problem,
        }

    def effective_policy(self, plugin: InstalledPlugin | None = None) -> Policy:
        if plugin is not None and plugin.policy is not None:
            return plugin.policy
        return self.trust.policy

    # -- installing ----------------------------------------------------------

    def plan(
        self,
        source: bytes | str | os.PathLike[str],
        *,
        policy: Policy | str | None = None,
        replace_signer: bool = False,
        allow_downgrade: bool = False,
    ) -> InstallPlan:
        """Verify a package and work out what installing it needs; changes nothing.

        The checks against the installed version (signer, downgrade) are made here
        and again under the registry lock when the install commits."""
        verified = open_package(source, trust=self.trust)
        row = self.registry.get(verified.name)
        previous = self._installed(row) if row is not None else None
        chosen = Policy.parse(policy) if policy is not None else self.effective_policy(previous)
        chosen.check(verified.verdict)
        _check_replacing(previous, verified, replace_signer, allow_downgrade)
        from ._verify import check_compatible

        check_compatible(verified.manifest)
        requested = verified.manifest.metadata.capabilities
        proposed, ungrantable = grants_for(requested)
        if previous is None:
            needs_consent = bool(requested)
        else:
            needs_consent = not request_keys(requested) <= request_keys(previous.requested)
        return InstallPlan(
            package=verified,
            previous=previous,
            policy=chosen,
            proposed=proposed,
            ungrantable=tuple(ungrantable),
            needs_consent=needs_consent,
            replace_signer=replace_signer,
            allow_downgrade=allow_downgrade,
            unscoped=tuple(unscoped_kinds(requested)),
        )

    def install(
        self,
        source: bytes | str | os.PathLike[str] | InstallPlan,
        *,
        grants: Iterable[Grant | str] | None = None,
        yes: bool = False,
        confirm: Callable[[InstallPlan], bool] | None = None,
        policy: Policy | str | None = None,
        replace_signer: bool = False,
        allow_downgrade: bool = False,
    ) -> InstalledPlugin:
        """Install (or upgrade) a plugin from a package.

        ``grants`` grants exactly those capabilities. Otherwise, when the
        plugin asks for capabilities (or, on upgrade, for more than before),
        ``yes=True`` or ``confirm(plan)`` returning True grants what it asks;
        without either, ``ConsentRequired`` is raised and nothing changes. An
        upgrade that asks for nothing new keeps its grants.
        """
        plan = (
            source
            if isinstance(source, InstallPlan)
            else self.plan(
                source,
                policy=policy,
                replace_signer=replace_signer,
                allow_downgrade=allow_downgrade,
            )
        )
        granted = self._resolve_grants(plan, grants, yes, confirm)
        package = plan.package.package
        missing = _missing(package.manifest, package.module, granted)
        if missing:
            raise ConsentRequired(_advice(plan, missing), plugin=plan.name)
        # Prove the module loads with these grants and matches its manifest.
        instantiate(package.manifest, package.module, grants=granted).close()
        _pause("before-lock")
        with locked(self._lock):
            return self._commit(plan, package, granted, policy)

    def _resolve_grants(
        self,
        plan: InstallPlan,
        grants: Iterable[Grant | str] | None,
        yes: bool,
        confirm: Callable[[InstallPlan], bool] | None,
    ) -> Grants:
        if grants is not None:
            if isinstance(grants, str):
                raise TypeError("grants must be an iterable of grants, not one string")
            return Grants(grants)
        previous = plan.previous.grants if plan.previous is not None else Grants()
        if not plan.needs_consent:
            return previous
        if yes or (confirm is not None and confirm(plan)):
            return Grants([*previous, *plan.proposed])
        if confirm is not None:
            raise ConsentRequired("installation declined; nothing was changed", plugin=plan.name)
        asks = (
            "asks for more capabilities than before" if plan.previous else "asks for capabilities"
        )
        raise ConsentRequired(
            f"it {asks} and no one could be asked to consent: pass --yes to grant what it "
            "asks for, or --grant CAP (repeatable) to grant exactly what you choose",
            plugin=plan.name,
        )

    def _commit(
        self, plan: InstallPlan, package: Package, granted: Grants, policy: Policy | str | None
    ) -> InstalledPlugin:
        self.modules.put(package.module)
        _pause("module-written")
        row = self.registry.get(plan.name)  # again, under the lock
        if not _same(row, plan.previous):
            # Another install changed this plugin since the plan was made: judge the
            # signer and the version against what is installed now.
            _check_replacing(
                self._installed(row) if row is not None else None,
                plan.package,
                plan.replace_signer,
                plan.allow_downgrade,
            )
        now = time.time()
        signature = package.signature
        recorded_policy = (
            Policy.parse(policy).value if policy is not None else (row.policy if row else None)
        )
        new = Row(
            name=plan.name,
            version=package.version,
            digest=package.digest_hex,
            manifest=package.manifest_bytes,
            key_id=signature.key_id_hex if signature else None,
            public_key=signature.public_key if signature else None,
            signature=signature.signature if signature else None,
            enabled=row.enabled if row is not None else True,
            grants=tuple(granted.to_strings()),
            policy=recorded_policy,
            installed_at=row.installed_at if row is not None else now,
            updated_at=now,
        )
        with self.registry.transaction(hook=lambda: _pause("in-transaction")) as conn:
            Registry.put(conn, new)
        _pause("committed")
        if row is not None and row.digest != new.digest:
            self._collect(row.digest)
        return self._installed(new)

    def _collect(self, digest: str) -> None:
        """Delete a module file no plugin refers to any more."""
        conn = self.registry.connect()
        try:
            if digest not in Registry.referenced(conn):
                self.modules.remove(digest)
        finally:
            conn.close()

    # -- changing ------------------------------------------------------------

    def _update(self, name: str, change: Callable[[Row], Row]) -> InstalledPlugin:
        with locked(self._lock):
            row = self.registry.get(name)
            if row is None:
                self.get(name)  # raises PluginNotFound with the list
                raise AssertionError  # pragma: no cover
            new = change(row)
            with self.registry.transaction() as conn:
                Registry.put(conn, new)
        return self._installed(new)

    def uninstall(self, name: str) -> InstalledPlugin:
        with locked(self._lock):
            plugin = self.get(name)
            with self.registry.transaction() as conn:
                Registry.delete(conn, name)
            self._collect(plugin.digest)
            self.config.remove(name)
        return plugin

    def enable(self, name: str) -> InstalledPlugin:
        return self._update(name, lambda r: _replace(r, enabled=True))

    def disable(self, name: str) -> InstalledPlugin:
        return self._update(name, lambda r: _replace(r, enabled=False))

    def grant(self, name: str, capability: Grant | str) -> InstalledPlugin:
        grant = capability if isinstance(capability, Grant) else parse_grant(capability)
        return self._update(
            name, lambda r: _replace(r, grants=tuple(Grants([*r.grants, grant]).to_strings()))
        )

    def revoke(self, name: str, capability: Grant | str) -> InstalledPlugin:
        """Take back a grant; a bare kind (``network``) takes back every scope of it."""
        text = str(capability)
        kind_only = ":" not in text
        target = parse_grant(text) if not kind_only else None

        def change(row: Row) -> Row:
            current = Grants(row.grants)
            if kind_only:
                kind = _kind(text)
                kept = [g for g in current if g.kind != kind]
            else:
                kept = [g for g in current if g != target]
            if len(kept) == len(current):
                granted = ", ".join(current.to_strings()) or "(none)"
                raise ValueError(f"{name} has no grant {text!r}; its grants: {granted}")
            return _replace(row, grants=tuple(Grants(kept).to_strings()))

        return self._update(name, change)

    # -- loading -------------------------------------------------------------

    def load(
        self,
        name: str,
        *,
        limits: Limits | None = None,
        config: Mapping[str, Any] | None = None,
        runtime: Runtime | None = None,
    ) -> Plugin:
        """Verify an installed plugin again and load it with its grants."""
        plugin = self.get(name)
        if not plugin.enabled:
            raise PluginNotFound(
                f"is installed but disabled; enable it with 'wasmdeck enable {name}'", plugin=name
            )
        return self._load(plugin, limits=limits, config=config, runtime=runtime)

    def _load(
        self, plugin: InstalledPlugin, *, config: Mapping[str, Any] | None = None, **options: Any
    ) -> Plugin:
        module = self._verified_module(plugin)
        return instantiate(
            plugin.manifest,
            module,
            grants=plugin.grants,
            kv_namespace=plugin.identity,
            config={**self.config.values(plugin.name), **(config or {})},
            **options,
        )

    def _verified_module(self, plugin: InstalledPlugin) -> bytes:
        package = Package(
            plugin.manifest,
            plugin.manifest_bytes,
            bytes.fromhex(plugin.digest),
            b"",
            plugin.signature,
        )
        check_signature(package)
        self.effective_policy(plugin).check(self.verdict(plugin))
        return self.modules.read(plugin.digest, plugin=plugin.name)

    def problem(self, plugin: InstalledPlugin) -> str | None:
        """Why an installed plugin would not load now (None: it would), without running
        it: its signature, key and module file, and the capabilities its imports need
        that it is not granted (say, after a ``revoke``)."""
        try:
            module = self._verified_module(plugin)
            missing = _missing(plugin.manifest, module, plugin.grants)
        except WasmdeckError as exc:
            return exc.message
        if missing:
            return (
                f"it needs {', '.join(missing)}, not granted ('wasmdeck grant {plugin.name} ...')"
            )
        return None

    def load_enabled(self, **options: Any) -> LoadedPlugins:
        """Load every enabled plugin that can load (verified, with its grants).

        A plugin that cannot load does not keep the others from loading: it is
        logged as a warning and listed in the result's ``failures``.
        """
        loaded = LoadedPlugins()
        try:
            for plugin in self.list():
                if not plugin.enabled:
                    continue
                try:
                    loaded.append(self._load(plugin, **options))
                except WasmdeckError as exc:
                    _log.warning("plugin %s was not loaded: %s", plugin.name, exc.message)
                    loaded.failures[plugin.name] = exc
        except BaseException:
            for done in loaded:
                done.close()
            raise
        return loaded

    def load_into(self, host: _Host, **options: Any) -> LoadedPlugins:
        """Load every enabled plugin that can load into a ``PluginHost``."""
        plugins = self.load_enabled(**options)
        for plugin in plugins:
            host.add(plugin)
        return plugins

    # -- checking and repair -------------------------------------------------

    def check(self, *, repair: bool = False) -> builtins.list[str]:
        """What is wrong with the state under the home (and, with ``repair``, what was
        fixed). An empty list means all is well."""
        with locked(self._lock):
            return run_doctor(self, repair=repair)


def _missing(manifest: Manifest, module: bytes, grants: Grants) -> list[str]:
    """The capabilities the module's imports need beyond ``grants`` (a metadata-only
    load: nothing is granted, nothing runs but its metadata)."""
    with instantiate(manifest, module, grants=grants, metadata_only=True) as plugin:
        return plugin.missing_capabilities


def _advice(plan: InstallPlan, missing: list[str]) -> str:
    from .._capabilities import KINDS

    needs = []
    for kind in missing:
        help = KINDS[kind].scope_help if kind in KINDS else ""
        needs.append(f"--grant {kind}:{help.split(',')[0].strip()}" if help else f"--grant {kind}")
    asked = [k for k in missing if k in plan.unscoped]
    why = (
        f"it asks for {', '.join(asked)} without saying which"
        if asked
        else f"its module needs {', '.join(missing)}, which would not be granted"
    )
    return f"{why}: grant it explicitly, e.g. {' '.join(needs)}; nothing was changed"


def _same(row: Row | None, plugin: InstalledPlugin | None) -> bool:
    if row is None or plugin is None:
        return row is None and plugin is None
    return (row.digest, row.key_id, row.updated_at) == (
        plugin.digest,
        plugin.key_id,
        plugin.updated_at,
    )


def _change(previous: InstalledPlugin | None, version: str) -> str:
    if previous is None:
        return "install"
    new, old = version_tuple(version), version_tuple(previous.version)
    if new == old:
        return "reinstall"
    return "upgrade" if new > old else "downgrade"


def _check_replacing(
    previous: InstalledPlugin | None,
    verified: VerifiedPackage,
    replace_signer: bool,
    allow_downgrade: bool,
) -> None:
    """Refuse a package that would replace the installed version against the user's
    standing choices: signed by another, untrusted key, or older."""
    if previous is None:
        return
    if previous.key_id is not None:
        new_key = verified.verdict.key_id
        if (
            new_key != previous.key_id
            and verified.verdict.level is not TrustLevel.VERIFIED
            and not replace_signer
        ):
            raise PolicyRefused(
                f"the installed version is signed by key {previous.key_id} and this one "
                + (f"by key {new_key}" if new_key else "is unsigned")
                + "; if the publisher really changed keys, trust the new key or pass "
                "--replace-signer",
                plugin=verified.name,
            )
    if _change(previous, verified.manifest.version) == "downgrade" and not allow_downgrade:
        raise DowngradeRefused(
            f"version {verified.manifest.version} is older than the installed "
            f"{previous.version}; pass --allow-downgrade to install it anyway",
            plugin=verified.name,
        )


def _kind(text: str) -> str:
    from .._capabilities import canonical_kind

    return canonical_kind(text.strip().lower())


def _replace(row: Row, **changes: Any) -> Row:
    from dataclasses import replace

    return replace(row, updated_at=time.time(), **changes)
