"""A deck made ready to run: checked, its plugins loaded, its secrets read.

Everything that can fail happens here, before the running deck is touched,
so a bad deck (or a bad edit to a running one) is refused whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._capabilities import Grants
from .._errors import WasmdeckError
from ..deck import (
    Deck,
    DeckError,
    DeckProblem,
    PluginFacts,
    PluginSpec,
    SecretMissing,
    check_deck,
    read_deck,
    resolve_secret,
    resolve_secrets,
)
from ..packages import PluginManager, load_package
from ..runtime import Limits, Plugin

__all__ = ["ReadyDeck", "SourceProject", "load_plugin", "prepare", "reload_signature"]


@dataclass
class ReadyDeck:
    deck: Deck
    plugins: dict[str, Plugin]  # by deck plugin name; new ones, or reused ones
    reused: set[str]
    secrets: dict[str, bytes]  # webhook binding -> its secret
    # Each new plugin's reload_signature, taken before it was read.
    signatures: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceProject:
    """The source project a deck plugin is built from (``serve --watch``).

    ``digest()`` tells one version of its sources from the next; ``build()``
    writes the plugin's file anew (raising ``WasmdeckError``, e.g. a
    ``BuildError`` with the compiler's message). The CLI makes these from
    ``wasmdeck.toml`` projects (cli/_serve.py): the daemon builds nothing itself.
    """

    root: Path
    digest: Callable[[], str]
    build: Callable[[], object]


def reload_signature(spec: PluginSpec) -> object:
    """What tells one version of a deck plugin from the next: its file's inode,
    size and mtime, or an installed plugin's digest and grants (None: unreadable)."""
    if spec.installed is not None:
        try:
            installed = PluginManager().get(spec.installed)
        except WasmdeckError:
            return None
        return (installed.digest, installed.enabled, tuple(sorted(map(str, installed.grants))))
    assert spec.path is not None
    try:
        stat = spec.path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def load_plugin(spec: PluginSpec) -> Plugin:
    """Load one deck plugin anew (a live reload): verified, compiled, its grants checked.

    Raises ``DeckError`` for a configuration secret that is missing, else
    what loading raises (``InvalidPlugin``, ``ImportNotAllowed``, ...).
    """
    try:
        config = resolve_secrets(spec.config)
    except SecretMissing as exc:
        raise WasmdeckError(f"plugin {spec.name!r}: {exc}") from None
    return _load(spec, config)


def prepare(
    path: Path, running: Mapping[str, tuple[PluginSpec, Plugin]] | None = None
) -> ReadyDeck:
    """Read, check and load the deck at ``path``; raises ``DeckError`` (or ``WasmdeckError``).

    ``running`` maps the plugins of the deck now running to their spec and
    instance: a plugin whose spec is unchanged is reused (its state and
    compiled code stay), so a reload only loads what changed.
    """
    deck = read_deck(path)
    # A plugin file the running deck has loaded under the same spec is reused
    # as it is (below), so it is checked as it runs: from the instance's
    # metadata, not by loading the file again. Installed plugins are read
    # from the store, whose grants may have changed.
    facts = {
        name: PluginFacts(plugin.metadata, Grants(spec.grants))
        for name, (spec, plugin) in (running or {}).items()
        if spec.installed is None and deck.plugins.get(name) == spec
    }
    check_deck(deck, facts)
    label = str(path)
    secrets: dict[str, bytes] = {}
    problems: list[DeckProblem] = []
    for binding in deck.bindings:
        auth = binding.trigger.auth
        if auth is None:
            continue
        try:
            secrets[binding.name] = resolve_secret(auth.secret).encode()
        except SecretMissing as exc:
            line, column = (
                deck.positions.where((*binding.where, "trigger")) if deck.positions else (1, 1)
            )
            problems.append(DeckProblem(label, line, column, f"binding {binding.name!r}: {exc}"))
    configs = {}
    for name, spec in deck.plugins.items():
        try:
            configs[name] = resolve_secrets(spec.config)
        except SecretMissing as exc:
            line, column = (
                deck.positions.where(("plugins", name, "config")) if deck.positions else (1, 1)
            )
            problems.append(DeckProblem(label, line, column, f"plugin {name!r}: {exc}"))
    if problems:
        raise DeckError(problems)
    plugins: dict[str, Plugin] = {}
    reused: set[str] = set()
    signatures: dict[str, object] = {}
    try:
        for name, spec in deck.plugins.items():
            current = (running or {}).get(name)
            if current is not None and current[0] == spec:
                plugins[name] = current[1]
                reused.add(name)
            else:
                signatures[name] = reload_signature(spec)
                plugins[name] = _load(spec, configs[name])
    except BaseException:
        for name, plugin in plugins.items():
            if name not in reused:
                plugin.close()
        raise
    return ReadyDeck(deck, plugins, reused, secrets, signatures)


def _load(spec: PluginSpec, config: dict[str, object]) -> Plugin:
    limits = None
    if spec.timeout_ms or spec.pool > 1:
        timeout = spec.timeout_ms / 1000 if spec.timeout_ms else Limits().timeout
        limits = Limits(timeout=timeout, pool=spec.pool)
    if spec.installed is not None:
        return PluginManager().load(spec.installed, limits=limits, config=config)
    assert spec.path is not None
    with spec.path.open("rb") as file:
        wasm = file.read(4) == b"\0asm"
    if wasm:
        return Plugin(spec.path, grants=spec.grants, config=config, limits=limits)
    return load_package(spec.path, grants=spec.grants, config=config, limits=limits)
