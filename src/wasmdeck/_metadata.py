"""Plugin metadata: the JSON a plugin's ``init`` returns, parsed and validated.

The shape is the ABIs' (docs/abi.md, docs/architecture.md "The two ABIs"). Parsing is strict about types and lenient
about additions: unknown fields are kept in ``extra`` so newer plugins still
load, and MIDIMon v2.5 plugins (no ``actions``, bare lowercase capability
kinds) load unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import InvalidMetadata
from ._json import JSONInputError, loads
from ._topics import valid_pattern

__all__ = ["ActionSpec", "CapabilityRequest", "EventSubscription", "PluginMetadata", "PollSpec"]

# Metadata is read from guest memory before anything else is trusted: its
# size, nesting, values and actions are bounded (docs/architecture.md,
# "Untrusted input").
MAX_METADATA_BYTES = 1 << 20
MAX_METADATA_DEPTH = 32
MAX_METADATA_VALUES = 100_000
MAX_ACTIONS = 4096
MAX_CAPABILITIES = 256
MAX_SUBSCRIPTIONS = 64
# A trigger plugin's poll interval (docs/teamwork.md, "Trigger plugins"): at
# least 10 ms, as a deck timer, so a poll that returns at once cannot spin a core.
MIN_POLL_MS = 10
MAX_POLL_MS = 86_400_000

_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_PLUGIN_TYPES = ("action", "trigger")
_OPTIONAL_TEXT = ("author", "license", "homepage")


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action a plugin declares.

    ``params`` is a JSON Schema or None; ``parameters`` names the parameters
    the action reads, as MIDIMon's metadata lists them (``"parameters":
    ["scene"]``); either, both or neither may be given.
    """

    name: str
    description: str = ""
    params: Mapping[str, Any] | None = None
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CapabilityRequest:
    """A capability a plugin asks for: a kind and, optionally, its scope."""

    kind: str
    scope: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventSubscription:
    """Events a plugin asks to receive (``"subscribe"``): the topic pattern, and
    the action the host calls with each (params ``{"topic", "payload", "source"}``)."""

    topic: str
    action: str


@dataclass(frozen=True, slots=True)
class PollSpec:
    """How the host runs a trigger plugin (``"poll"``): the action it calls, and
    the milliseconds between the end of one poll and the start of the next."""

    action: str
    interval_ms: int


@dataclass(frozen=True, slots=True)
class PluginMetadata:
    """What a plugin says about itself (``init``/``metadata``), parsed and checked."""

    name: str
    version: str
    description: str
    author: str | None = None
    license: str | None = None
    homepage: str | None = None
    type: str = "action"
    actions: tuple[ActionSpec, ...] | None = None
    capabilities: tuple[CapabilityRequest, ...] = ()
    subscriptions: tuple[EventSubscription, ...] = ()
    poll: PollSpec | None = None  # type "trigger" only
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def declares(self, action: str) -> bool:
        """True when the plugin lists ``action``; a plugin without a list accepts any."""
        return self.actions is None or any(a.name == action for a in self.actions)

    def action(self, name: str) -> ActionSpec | None:
        if self.actions is None:
            return None
        return next((a for a in self.actions if a.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The metadata as the plugin gave it (for ``wasmdeck info``)."""
        return dict(self.raw)

    @classmethod
    def from_json(cls, data: bytes, *, plugin: str | None = None) -> PluginMetadata:
        if len(data) > MAX_METADATA_BYTES:
            raise InvalidMetadata(
                f"metadata is {len(data)} bytes, more than the {MAX_METADATA_BYTES} allowed",
                plugin=plugin,
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMetadata(
                f"metadata is not valid UTF-8 (byte {exc.start})", plugin=plugin
            ) from None
        try:
            obj = loads(
                data,
                what="metadata",
                max_depth=MAX_METADATA_DEPTH,
                max_items=MAX_METADATA_VALUES,
            )
        except JSONInputError as exc:
            snippet = text[:60] + ("..." if len(text) > 60 else "")
            raise InvalidMetadata(f"{exc}: {snippet!r}", plugin=plugin) from None
        return cls.from_dict(obj, plugin=plugin)

    @classmethod
    def from_dict(cls, obj: object, *, plugin: str | None = None) -> PluginMetadata:
        def bad(message: str) -> InvalidMetadata:
            return InvalidMetadata(message, plugin=plugin)

        if not isinstance(obj, dict):
            raise bad(f"metadata must be a JSON object, not {type(obj).__name__}")
        for key in ("name", "version", "description"):
            if key not in obj:
                raise bad(f"metadata lacks the required field {key!r}")
            if not isinstance(obj[key], str):
                raise bad(f"metadata field {key!r} must be a string")
        name = obj["name"].strip()
        if not name or len(name) > 128 or any(ord(c) < 32 for c in name):
            raise bad(f"metadata name {obj['name']!r} must be 1-128 printable characters")
        if not obj["version"].strip():
            raise bad("metadata version must not be empty")
        for key in _OPTIONAL_TEXT:
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise bad(f"metadata field {key!r} must be a string")
        plugin_type = obj.get("type", "action")
        if plugin_type not in _PLUGIN_TYPES:
            raise bad(
                f"metadata type must be one of {', '.join(_PLUGIN_TYPES)}, not {plugin_type!r}"
            )

        known = {
            "name",
            "version",
            "description",
            "type",
            "actions",
            "capabilities",
            "subscribe",
            "poll",
            *_OPTIONAL_TEXT,
        }
        actions = _parse_actions(obj.get("actions"), bad)
        poll = _parse_poll(obj.get("poll"), plugin_type, actions, bad)
        return cls(
            name=name,
            version=obj["version"],
            description=obj["description"],
            author=obj.get("author"),
            license=obj.get("license"),
            homepage=obj.get("homepage"),
            type=plugin_type,
            actions=actions,
            capabilities=_parse_capabilities(obj.get("capabilities"), bad),
            subscriptions=_parse_subscriptions(obj.get("subscribe"), actions, bad),
            poll=poll,
            extra={k: v for k, v in obj.items() if k not in known},
            raw=obj,
        )


def _parse_subscriptions(
    value: object, actions: tuple[ActionSpec, ...] | None, bad: Any
) -> tuple[EventSubscription, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_SUBSCRIPTIONS:
        raise bad(f"metadata subscribe must be a list of at most {MAX_SUBSCRIPTIONS} objects")
    found = []
    for i, entry in enumerate(value):
        where = f"metadata subscribe[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"topic", "action"}:
            raise bad(f'{where} must be an object {{"topic": PATTERN, "action": NAME}}')
        topic, action = entry.get("topic"), entry.get("action")
        if not valid_pattern(topic):
            raise bad(f"{where}: topic must be a topic pattern such as 'obs.*', not {topic!r}")
        if not isinstance(action, str) or not action:
            raise bad(f"{where}: action must name the action that receives the events")
        if actions is not None and all(a.name != action for a in actions):
            raise bad(f"{where}: action {action!r} is not one of the declared actions")
        found.append(EventSubscription(topic, action))  # type: ignore[arg-type]
    return tuple(found)


def _parse_poll(
    value: object, plugin_type: str, actions: tuple[ActionSpec, ...] | None, bad: Any
) -> PollSpec | None:
    shape = f'{{"action": NAME, "interval_ms": {MIN_POLL_MS}-{MAX_POLL_MS}}}'
    if value is None:
        if plugin_type == "trigger":
            raise bad(f"a trigger plugin must say how the host polls it: metadata poll {shape}")
        return None
    if plugin_type != "trigger":
        raise bad('metadata poll is for trigger plugins: add "type": "trigger"')
    if not isinstance(value, dict) or set(value) - {"action", "interval_ms"}:
        raise bad(f"metadata poll must be an object {shape}")
    action, interval = value.get("action"), value.get("interval_ms")
    if not isinstance(action, str) or not action:
        raise bad("metadata poll: action must name the action the host calls to poll")
    if actions is not None and all(a.name != action for a in actions):
        raise bad(f"metadata poll: action {action!r} is not one of the declared actions")
    if type(interval) is not int or not MIN_POLL_MS <= interval <= MAX_POLL_MS:
        raise bad(
            f"metadata poll: interval_ms must be an integer {MIN_POLL_MS}-{MAX_POLL_MS} "
            f"(milliseconds), not {interval!r}"
        )
    return PollSpec(action, interval)


def _parse_actions(value: object, bad: Any) -> tuple[ActionSpec, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad("metadata field 'actions' must be a list")
    if len(value) > MAX_ACTIONS:
        raise bad(
            f"metadata declares {len(value):,} actions, more than the {MAX_ACTIONS:,} allowed"
        )
    actions: list[ActionSpec] = []
    seen: set[str] = set()
    duplicates: set[str] = set()
    for i, item in enumerate(value):
        # A bare string is accepted as shorthand for {"name": ...}.
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise bad(f"actions[{i}] must be an object with a name")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad(f"actions[{i}] needs a non-empty string 'name'")
        description = item.get("description", "")
        if not isinstance(description, str):
            raise bad(f"actions[{i}] ({name!r}): 'description' must be a string")
        params = item.get("params")
        if params is not None and not isinstance(params, dict):
            raise bad(f"actions[{i}] ({name!r}): 'params' must be a JSON Schema object")
        parameters = _parse_parameters(item.get("parameters"), f"actions[{i}] ({name!r})", bad)
        actions.append(ActionSpec(name, description, params, parameters))
        # A set, not a scan of the list per action: 4,096 actions stay linear.
        (duplicates if name in seen else seen).add(name)
    if duplicates:
        raise bad(f"actions declared more than once: {', '.join(sorted(duplicates))}")
    return tuple(actions)


def _parse_parameters(value: object, where: str, bad: Any) -> tuple[str, ...]:
    """MIDIMon's ``"parameters": ["scene", ...]``: the names an action reads."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(p, str) and p.strip() and len(p) <= 128 for p in value
    ):
        raise bad(f"{where}: 'parameters' must be a list of parameter names (strings)")
    return tuple(value)


def _parse_capabilities(value: object, bad: Any) -> tuple[CapabilityRequest, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad("metadata field 'capabilities' must be a list")
    if len(value) > MAX_CAPABILITIES:
        raise bad(
            f"metadata asks for {len(value):,} capabilities, more than the "
            f"{MAX_CAPABILITIES} allowed"
        )
    requests: list[CapabilityRequest] = []
    for i, item in enumerate(value):
        kind: object
        if isinstance(item, str):
            kind, scope = item, {}
        elif isinstance(item, dict):
            kind = item.get("kind")
            scope = {k: v for k, v in item.items() if k != "kind"}
        else:
            raise bad(f"capabilities[{i}] must be a kind name or an object with a 'kind'")
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise bad(f"capabilities[{i}]: kind {kind!r} must be a lowercase name like 'network'")
        requests.append(CapabilityRequest(kind=kind, scope=scope))
    return tuple(requests)
