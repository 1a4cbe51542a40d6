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

__all__ = [
    "ReadyDeck",
    "SourceProject",
    "carries_state",
    "load_plugin",
    "prepare",
    "reload_signature",
]


@dataclass
class ReadyDeck:
    deck: Deck
    plugins: dict[str, Plugin]  # by deck plugin name; new ones, or reused ones
    reused: set[str]
    secrets: dict[str, bytes]  # webhook binding -> its secret
    # Each new plugin's reload_signature, taken before it was read.
    signatures: dict[str, object] = field(default_factory=dict)
    # Running plugins loaded anew whose new version takes the running one's
    # state (a hand-over, docs/reload.md): see carries_state.
    carried: set[str] = field(default_factory=set)


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


def carries_state(old: PluginSpec, new: PluginSpec) -> bool:
    """Whether a deck plugin loaded anew under ``new`` (its module, grants, timeout or
    poll changed) takes the state of the one running under ``old`` (docs/reload.md).

    Not when its configuration changed: the state may have been made from the
    old one (another account, address or secret), so it starts afresh. Not for
    a pool, whose instances keep no state, nor across a change of its size.
    Grants are checked at each host call, so state carried across a change of
    them can do no more than the new grants allow.
    """
    return old.config == new.config and old.pool == new.pool == 1


def prepare(
    path: Path,
    running: Mapping[str, tuple[PluginSpec, Plugin]] | None = None,
    *,
    loaded: Mapping[str, object] | None = None,
) -> ReadyDeck:
    """Read, check and load the deck at ``path``; raises ``DeckError`` (or ``WasmdeckError``).

    ``running`` maps the plugins of the deck now running to their spec and
    instance: a plugin whose spec is unchanged is reused (its state and
    compiled code stay), so a reload only loads what changed. ``loaded``
    gives the ``reload_signature`` each running plugin was loaded at: one
    whose file or installed package changed since is loaded anew too.
    Running plugins loaded anew that keep their state are ``carried``.
    """
    deck = read_deck(path)
    current = running or {}
    reuse = {
        name
        for name, (spec, _plugin) in current.items()
        if deck.plugins.get(name) == spec
        and (loaded is None or name not in loaded or reload_signature(spec) == loaded[name])
    }
    # A plugin file the running deck has loaded under the same spec is reused
    # as it is (below), so it is checked as it runs: from the instance's
    # metadata, not by loading the file again. Installed plugins are read
    # from the store, whose grants may have changed.
    facts = {
        name: PluginFacts(plugin.metadata, Grants(spec.grants))
        for name, (spec, plugin) in current.items()
        if spec.installed is None and name in reuse
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
    carried: set[str] = set()
    try:
        for name, spec in deck.plugins.items():
            if name in reuse:
                plugins[name] = current[name][1]
                reused.add(name)
                continue
            signatures[name] = reload_signature(spec)
            plugins[name] = _load(spec, configs[name])
            was = current.get(name)
            # The same plugin in a new version, not another plugin under this deck name.
            if (
                was is not None
                and carries_state(was[0], spec)
                and was[1].metadata.name == plugins[name].metadata.name
            ):
                carried.add(name)
    except BaseException:
        for name, plugin in plugins.items():
            if name not in reused:
                plugin.close()
        raise
    return ReadyDeck(deck, plugins, reused, secrets, signatures, carried)


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
