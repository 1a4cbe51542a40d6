"""A parsed deck judged against its plugins: what ``wasmdeck check`` reports.

Each plugin's metadata is read the way ``wasmdeck serve`` would load it (an
installed plugin from its manifest; a file by loading it), then every plugin
action is checked: the plugin declares the action, the params fit the
action's JSON Schema (with placeholders standing in for the values they will
take), the plugin's requested capabilities are granted; and no two bindings
fire on the same event in the same mode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from .._capabilities import Grants, canonical_kind
from .._errors import ImportNotAllowed, WasmdeckError
from .._metadata import PluginMetadata
from .._topics import HOST_PREFIX, covers
from ..packages import PluginManager, open_package
from ..runtime import Plugin
from ._model import Binding, Deck, PluginSpec, Trigger
from ._params import TemplateError, render
from ._positions import Path as KeyPath
from ._problems import DeckError, DeckProblem

__all__ = ["PluginFacts", "check_deck", "plugin_facts"]


@dataclass(frozen=True, slots=True)
class PluginFacts:
    """What checking needs to know of one plugin: its metadata and its grants."""

    metadata: PluginMetadata
    grants: Grants


def plugin_facts(spec: PluginSpec, manager: PluginManager | None = None) -> PluginFacts:
    """Read one deck plugin's metadata and grants (raises ``WasmdeckError``)."""
    if spec.installed is not None:
        installed = (manager or PluginManager()).get(spec.installed)
        return PluginFacts(installed.metadata, installed.grants)
    assert spec.path is not None
    grants = Grants(spec.grants)
    with spec.path.open("rb") as file:
        magic = file.read(4)
    if magic == b"\0asm":
        with Plugin(spec.path, grants=grants) as plugin:
            return PluginFacts(plugin.metadata, grants)
    return PluginFacts(open_package(spec.path).manifest.metadata, grants)


def check_deck(
    deck: Deck,
    facts: Mapping[str, PluginFacts] | None = None,
    *,
    manager: PluginManager | None = None,
) -> list[DeckProblem]:
    """Every problem with ``deck``; raises ``DeckError`` when any is an error.

    ``facts`` gives the plugins' metadata and grants by deck plugin name;
    by default each plugin is read with ``plugin_facts``. Warnings are
    returned (and included in the error, if one is raised).
    """
    label = str(deck.source) if deck.source else "<deck>"
    problems: list[DeckProblem] = []

    def problem(path: KeyPath, message: str, severity: str = "error") -> None:
        line, column = deck.positions.where(path) if deck.positions else (1, 1)
        problems.append(DeckProblem(label, line, column, message, severity))

    known: dict[str, PluginFacts] = dict(facts or {})
    for name, spec in deck.plugins.items():
        if name in known:
            continue
        try:
            known[name] = plugin_facts(spec, manager)
        except ImportNotAllowed as exc:
            # The runtime refuses to load a module whose imports need an ungranted capability.
            needed = re.search(r"needs the '([a-z]+)' capability", exc.message)
            if needed is None:
                problem(("plugins", name), f"plugin {name!r} cannot be loaded: {exc}")
            else:
                problem(("plugins", name), _ungranted(name, needed.group(1)))
        except (WasmdeckError, OSError, ValueError) as exc:
            where = "installed" if spec.installed is not None else "path"
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problem(("plugins", name, where), f"plugin {name!r} cannot be loaded: {text}")
    for name, plugin in known.items():
        if name in deck.plugins:
            _check_grants(name, plugin, problem)
            _check_trigger_plugin(deck.plugins[name], plugin, problem)
    validators: dict[tuple[str, str], Any] = {}  # one per action, not per binding
    for binding in deck.bindings:
        for action in binding.actions:
            if action.kind == "plugin" and action.plugin in known:
                _check_action(
                    binding, action.where, action, known[action.plugin], problem, validators
                )
    _check_overlaps(deck, problem)
    _check_event_sources(deck, known, problem)
    if any(p.severity == "error" for p in problems):
        raise DeckError(problems)
    return problems


def _check_event_sources(deck: Deck, known: Mapping[str, PluginFacts], problem: Any) -> None:
    """An event trigger no plugin may publish to (and not the host's) never fires."""
    publishers = {
        name: facts.grants.topics("publish")
        for name, facts in known.items()
        if name in deck.plugins
    }
    for binding in deck.bindings:
        topic = binding.trigger.topic
        if (
            binding.trigger.kind != "event"
            or covers(f"{HOST_PREFIX}*", topic)
            or (covers(topic, f"{HOST_PREFIX}*"))
        ):
            continue
        if not any(
            covers(granted, topic) or covers(topic, granted)
            for patterns in publishers.values()
            for granted in patterns
        ):
            problem(
                (*binding.where, "trigger", "topic"),
                f"binding {binding.name!r}: no plugin of the deck is granted "
                f"events:publish for topics matching {topic!r}, so it never fires",
                "warning",
            )


def _check_trigger_plugin(spec: PluginSpec, plugin: PluginFacts, problem: Any) -> None:
    """``poll_ms`` is for trigger plugins; one that may publish nothing emits in vain."""
    poll = plugin.metadata.poll
    if poll is None:
        if spec.poll_ms is not None:
            problem(
                ("plugins", spec.name, "poll_ms"),
                f"plugin {spec.name!r} is not a trigger plugin (its metadata has no poll), "
                "so poll_ms has no effect",
            )
        return
    if not plugin.grants.topics("publish"):
        problem(
            ("plugins", spec.name),
            f"trigger plugin {spec.name!r} is granted no events:publish:PATTERN, so the events "
            f"its polls ({poll.action!r}) emit reach nobody",
            "warning",
        )


def _check_grants(name: str, plugin: PluginFacts, problem: Any) -> None:
    requested = {canonical_kind(c.kind) for c in plugin.metadata.capabilities}
    granted = {g.kind for g in plugin.grants}
    for kind in sorted(requested - granted):
        problem(("plugins", name), _ungranted(name, kind))
    for kind in sorted(granted - requested):
        problem(
            ("plugins", name, "grants"),
            f"plugin {name!r} is granted {kind!r}, which it does not ask for",
            "warning",
        )


def _ungranted(name: str, kind: str) -> str:
    return (
        f"plugin {name!r} asks for the {kind!r} capability, which it is not granted "
        f"(grant it: grants = [\"{kind}:...\"], or 'wasmdeck grant' for an installed plugin)"
    )


def _check_action(
    binding: Binding,
    where: KeyPath,
    action: Any,
    plugin: PluginFacts,
    problem: Any,
    validators: dict[tuple[str, str], Any],
) -> None:
    metadata = plugin.metadata
    if action.action is None:
        if metadata.actions is not None and len(metadata.actions) == 1:
            return
        declared = ", ".join(a.name for a in metadata.actions or ()) or "(any name)"
        problem(where, f'name the action (action = "..."); {action.plugin!r} declares: {declared}')
        return
    if not metadata.declares(action.action):
        declared = ", ".join(a.name for a in metadata.actions or ())
        problem(
            (*where, "action"),
            f"plugin {action.plugin!r} does not declare the action {action.action!r}; "
            f"it declares: {declared}",
        )
        return
    spec = metadata.action(action.action)
    if spec is None or spec.params is None:
        return
    sample, unknown = _sample_params(action.params, binding.trigger)
    try:
        validator = validators.get((action.plugin, action.action))
        if validator is None:
            validator = jsonschema.Draft202012Validator(dict(spec.params))
            validators[(action.plugin, action.action)] = validator
        errors = list(validator.iter_errors(sample))
    except jsonschema.SchemaError as exc:
        problem(
            where, f"the params schema of {action.plugin}.{action.action} is invalid: {exc.message}"
        )
        return
    for error in errors:
        path = tuple(error.absolute_path)
        if any(path[: len(u)] == u for u in unknown):
            continue  # the value comes from the trigger; its type is known only when it fires
        problem(
            (*where, "params", *path),
            f"params of {action.plugin}.{action.action}"
            f"{''.join(f'.{p}' for p in path)}: {error.message}",
        )


# What each placeholder stands for while checking against a schema. Values
# from webhook bodies and OSC messages have no type until they arrive.
_SAMPLES: dict[str, Any] = {
    "velocity": 64,
    "value": 64,
    "note": 60,
    "controller": 1,
    "channel": 1,
    "program": 0,
    "delta": 1,
    "held_ms": 2000,
    "notes": [60, 64],
    "mode": "mode",
    "binding": "binding",
    "timestamp": 0,
    "kind": "kind",
    "method": "POST",
    "path": "/",
    "address": "/",
    "topic": "topic",
    "source": "plugin",
}


def _sample_params(
    params: Mapping[str, Any], trigger: Trigger
) -> tuple[Any, list[tuple[Any, ...]]]:
    unknown: list[tuple[Any, ...]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "{" in value:
            try:
                return render(value, _SAMPLES)
            except TemplateError:
                unknown.append(path)
                return value
        return value

    return walk(params, ()), unknown


# -- overlapping bindings ------------------------------------------------------

_FAMILY = {"cc": "controller", "encoder": "controller"}


def _check_overlaps(deck: Deck, problem: Any) -> None:
    # Each binding is compared with the earlier ones it could meet: those of
    # its family at the same point (note, controller, path, address), and
    # those without one (ranges, other kinds) — not all earlier bindings,
    # which made a 200-binding deck's check quadratic. The same pairs are
    # judged by _triggers_meet as before, in deck order.
    at_point: dict[tuple[str, Any], list[tuple[int, Binding]]] = {}
    wide: dict[str, list[tuple[int, Binding]]] = {}
    every: dict[str, list[tuple[int, Binding]]] = {}
    for index, binding in enumerate(deck.bindings):
        family = _FAMILY.get(binding.trigger.kind, binding.trigger.kind)
        point = _point(binding.trigger)
        if point is None:
            candidates = every.get(family, [])
        else:
            candidates = sorted(
                [*at_point.get((family, point), ()), *wide.get(family, ())],
                key=lambda pair: pair[0],
            )
        for _, other in candidates:
            if _modes_meet(binding, other) and _triggers_meet(binding.trigger, other.trigger):
                line = deck.positions.where(other.where)[0] if deck.positions else 0
                where = (
                    "in every mode"
                    if binding.mode is None or other.mode is None
                    else f"in mode {binding.mode!r}"
                )
                problem(
                    (*binding.where, "trigger"),
                    f"binding {binding.name!r} overlaps binding {other.name!r} (line {line}): "
                    f"both fire on the same {binding.trigger.kind} {where}",
                )
        every.setdefault(family, []).append((index, binding))
        if point is None:
            wide.setdefault(family, []).append((index, binding))
        else:
            at_point.setdefault((family, point), []).append((index, binding))


def _point(trigger: Trigger) -> Any:
    """What two triggers of one family must share to meet (see _triggers_meet); None: anything."""
    kind = trigger.kind
    if kind in ("note_on", "long_press", "double_tap", "note_off"):
        note = trigger.note
        if note is None:
            return ("no note",)  # meets only another without a note (_meet)
        return ("note", note[0]) if note[0] == note[1] else None
    if kind in ("cc", "encoder"):
        return ("controller", trigger.controller)
    if kind == "webhook":
        return ("webhook", trigger.path, trigger.method)
    if kind == "osc":
        return ("osc", trigger.address)
    return None


def _modes_meet(a: Binding, b: Binding) -> bool:
    return a.mode is None or b.mode is None or a.mode == b.mode


def _meet(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    if a is None or b is None:
        return a is b
    return a[0] <= b[1] and b[0] <= a[1]


def _same_or_any(a: Any, b: Any) -> bool:
    return a is None or b is None or a == b


def _triggers_meet(a: Trigger, b: Trigger) -> bool:
    if _FAMILY.get(a.kind, a.kind) != _FAMILY.get(b.kind, b.kind):
        return False
    if not (_same_or_any(a.device, b.device) and _same_or_any(a.channel, b.channel)):
        return False
    kind = a.kind
    if kind in ("note_on", "long_press", "double_tap"):
        return _meet(a.note, b.note) and _meet(a.velocity, b.velocity)
    if kind == "note_off":
        return _meet(a.note, b.note)
    if kind in ("cc", "encoder"):
        if a.controller != b.controller:
            return False
        if a.kind == b.kind == "encoder":
            return "any" in (a.direction, b.direction) or a.direction == b.direction
        if a.kind == b.kind == "cc":
            return _meet(a.value, b.value)
        return True  # one knob cannot be both absolute and relative
    if kind == "program":
        return _meet(a.program, b.program)
    if kind == "pitch_bend":
        return _meet(a.value, b.value)
    if kind == "aftertouch":
        return _meet(a.note, b.note) and _meet(a.value, b.value)
    if kind == "chord":
        return a.notes == b.notes
    if kind == "webhook":
        return a.path == b.path and a.method == b.method
    if kind == "osc":
        return a.address == b.address
    return False  # timers and startup may stack
