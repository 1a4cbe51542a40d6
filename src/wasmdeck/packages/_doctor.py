"""``wasmdeck doctor``: find (and with ``repair``, fix) damaged state under the home.

- a damaged trust store is restored from its backup (or started empty);
- a damaged registry database is restored from its backup (or started empty);
- a registry row whose manifest, signature or module file is wrong is dropped;
- module files no row refers to, and temporaries of interrupted writes, are deleted.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any, Protocol

from .._errors import PackageError, StateCorrupt
from ._package import Manifest, Package, Signature
from ._registry import _COLUMNS, Registry, Row
from ._signing import check_signature
from ._store import ModuleStore
from ._trust import TrustStore

__all__ = ["DoctorSubject", "run_doctor"]


class _Installed(Protocol):
    @property
    def manifest(self) -> Manifest: ...
    @property
    def signature(self) -> Signature | None: ...


class DoctorSubject(Protocol):
    """What the doctor examines: the manager's state (PluginManager is one).

    A protocol rather than an import of ``_manager``, which calls the doctor:
    the two modules would otherwise import each other.
    """

    trust: TrustStore
    registry: Registry
    modules: ModuleStore

    def _installed(self, row: Row) -> _Installed: ...

    def problem(self, plugin: Any) -> str | None: ...


def run_doctor(manager: DoctorSubject, *, repair: bool) -> list[str]:
    """The problems found, each saying what was done about it when repairing."""
    report: list[str] = []

    problem = manager.trust.check()
    if problem is not None:
        report.append(f"trust store: {problem}")
        if repair:
            report.append(f"  -> {manager.trust.repair()}")

    registry = manager.registry
    problem = registry.check() if registry.path.exists() else None
    if not registry.path.exists() and registry.backup_path.exists():
        report.append("registry: the registry file is missing but its backup exists")
        if not repair:
            return report
        report.append(f"  -> {registry.restore()}")
    elif problem is not None and _database_broken(registry):
        report.append(f"registry: {problem}")
        if not repair:
            return report
        report.append(f"  -> {registry.restore()}")

    bad: list[str] = []
    rows = _raw_rows(registry)
    for name, row_or_error in rows:
        if isinstance(row_or_error, str):
            report.append(f"plugin {name!r}: its registry row is damaged ({row_or_error})")
            bad.append(name)
            continue
        problem = _check_row(manager, row_or_error)
        if problem is None:
            continue
        report.append(f"plugin {name!r}: {problem}")
        bad.append(name)
    if bad and repair:
        with registry.transaction() as conn:
            for name in bad:
                Registry.delete(conn, name)
        report.append(f"  -> dropped {len(bad)} plugin(s) from the registry: install them again")

    for name, row_or_error in rows:
        if isinstance(row_or_error, Row) and name not in bad and row_or_error.enabled:
            try:
                problem = manager.problem(manager._installed(row_or_error))
            except StateCorrupt:
                continue  # reported above
            if problem is not None:  # a revoked key, a capability taken back: not damage
                report.append(f"note: plugin {name!r}: {problem}; it will not load")

    # A module file the backup still refers to is kept too: the backup is the last
    # committed state, and a registry lost or replaced since must not cost its modules.
    referenced = {r.digest for _, r in rows if isinstance(r, Row) and r.name not in bad}
    referenced |= registry.backup_digests()
    orphans = sorted(manager.modules.stored() - referenced)
    leftovers = manager.modules.leftovers()
    if orphans or leftovers:
        # Harmless (an interrupted install leaves them): cleaned up, not a problem.
        report.append(
            f"note: {len(orphans)} module file(s) no plugin uses, "
            f"{len(leftovers)} leftover file(s) of interrupted writes"
        )
        if repair:
            for digest in orphans:
                manager.modules.remove(digest)
            for path in leftovers:
                with contextlib.suppress(OSError):
                    path.unlink()
            report.append("note: -> deleted them")
    return report


def _database_broken(registry: Registry) -> bool:
    """True when the database itself cannot be read (not just one row)."""
    try:
        registry.connect().close()
    except StateCorrupt:
        return True
    return False


def _raw_rows(registry: Registry) -> list[tuple[str, Row | str]]:
    """Every row, parsed where it parses; a damaged row is reported by name."""
    conn = registry.connect()
    try:
        values = list(conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM plugins ORDER BY name"))
    except sqlite3.DatabaseError as exc:  # pragma: no cover - connect() checked the file
        return [("?", str(exc))]
    finally:
        conn.close()
    rows: list[tuple[str, Row | str]] = []
    for value in values:
        try:
            rows.append((str(value[0]), Row.from_values(tuple(value))))
        except StateCorrupt as exc:
            rows.append((str(value[0]), exc.message))
    return rows


def _check_row(manager: DoctorSubject, row: Row) -> str | None:
    try:
        plugin = manager._installed(row)
        check_signature(
            Package(
                plugin.manifest,
                row.manifest,
                bytes.fromhex(row.digest),
                b"",
                plugin.signature,
            )
        )
    except (StateCorrupt, PackageError, ValueError) as exc:
        return getattr(exc, "message", str(exc))
    return manager.modules.check(row.digest)
