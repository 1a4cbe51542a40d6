"""The wasmdeck plugin development kit for Python.

A plugin is a module that creates a ``Plugin``, declares its actions with
``@plugin.action`` and exposes ``WitWorld = plugin.world()`` for
componentize-py, which ``wasmdeck build`` runs to make the component::

    from wasmdeck_pdk import Context, Plugin, PluginError

    plugin = Plugin("greeter", version="1.0.0", description="Says hello")

    @plugin.action(description="Greet someone")
    def greet(params: dict, context: Context) -> str:
        if "name" not in params:
            raise PluginError("greet needs a name")
        return f"hello {params['name']}"

    WitWorld = plugin.world()

An action receives the request's ``params`` (a dict) and the trigger
``Context``. What it returns is the action's output: ``bytes`` as they are,
``str`` as UTF-8, ``None`` as nothing, anything else as JSON. Raising
``PluginError`` fails the action with that message; any other exception
fails it too (with the exception's type and message, and the traceback on
the plugin's standard error, which the host logs).

State that must survive a live reload (docs/reload.md) is saved and
restored by two functions the plugin registers::

    @plugin.save_state
    def save() -> bytes:
        return json.dumps({"count": count}).encode()

    @plugin.restore_state
    def restore(state: bytes) -> None:  # raise PluginError to refuse it
        global count
        count = json.loads(state)["count"]

A trigger plugin (docs/teamwork.md, "Trigger plugins") names the action the
host polls, and how often; it publishes what it finds as events::

    @plugin.action(description="the poll: publish the new scene", poll_ms=100)
    def watch(params: dict, context: Context) -> None:
        host.event_publish("obs.scene-changed", {"scene": current_scene()})

The metadata then says ``"type": "trigger"`` and ``"poll": {"action":
"watch", "interval_ms": 100}``.

The host functions are in ``wasmdeck_pdk.host`` (log, config, http,
websocket, process, kv); those behind a capability need the matching world
when building (``wasmdeck build`` adds them from the metadata's
``capabilities``).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import host

__all__ = ["Context", "Plugin", "PluginError", "host"]

__version__ = "1.3.0"  # the version of the wasmdeck:plugin WIT package it targets


# The poll interval a trigger plugin may ask for, as the host checks it
# (src/wasmdeck/_metadata.py): 10 ms to a day.
MIN_POLL_MS, MAX_POLL_MS = 10, 86_400_000


class PluginError(Exception):
    """Raise it from an action to fail with ``message``, shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Context:
    """The trigger that caused the request.

    ``velocity`` is 0-127 or None, ``mode`` the host's mode or None, and
    ``timestamp`` milliseconds since the Unix epoch. For knobs and faders
    (None when the trigger has none): ``kind`` (the deck's trigger kind,
    e.g. ``"cc"``), ``channel`` (MIDI 1-16), ``note``, ``controller`` and
    ``value`` (the raw value: a CC value, a program, a pitch bend).

    Those five come from the host's ``trigger`` interface, asked only when
    one of them is first read: most actions never need them, and the host
    call would otherwise double the cost of every call.
    """

    __slots__ = ("_trigger", "mode", "timestamp", "velocity")

    def __init__(
        self, velocity: int | None, mode: int | None, timestamp: int, **trigger: Any
    ) -> None:
        self.velocity = velocity
        self.mode = mode
        self.timestamp = timestamp
        self._trigger: dict[str, Any] | None = trigger or None

    def _field(self, name: str) -> Any:
        if self._trigger is None:
            self._trigger = _trigger_fields()
        return self._trigger.get(name)

    kind = property(lambda self: self._field("kind"))
    channel = property(lambda self: self._field("channel"))
    note = property(lambda self: self._field("note"))
    controller = property(lambda self: self._field("controller"))
    value = property(lambda self: self._field("value"))

    def to_dict(self) -> dict[str, Any]:
        """Every field, by name."""
        names = ("velocity", "mode", "timestamp", *_TRIGGER_FIELDS)
        return {name: getattr(self, name) for name in names}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"Context({fields})"


Handler = Callable[[dict[str, Any], Context], Any]


@dataclass(frozen=True)
class _Action:
    name: str
    description: str
    params: Mapping[str, Any] | None
    handler: Handler


class Plugin:
    """A plugin's metadata and its actions.

    ``capabilities`` lists what the plugin asks the user for: bare kinds
    (``"kv"``) or objects with a scope (``{"kind": "network", "hosts": [...]}``),
    as in the metadata document.
    """

    def __init__(
        self,
        name: str,
        *,
        version: str,
        description: str,
        author: str | None = None,
        license: str | None = None,
        homepage: str | None = None,
        capabilities: Iterable[str | Mapping[str, Any]] = (),
    ) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.author = author
        self.license = license
        self.homepage = homepage
        self.capabilities = list(capabilities)
        self._actions: dict[str, _Action] = {}
        self._subscriptions: list[dict[str, str]] = []
        self._poll: dict[str, Any] | None = None
        self._save: Callable[[], bytes] | None = None
        self._restore: Callable[[bytes], None] | None = None

    def save_state(self, save: Callable[[], bytes]) -> Callable[[], bytes]:
        """Register ``save`` (a decorator): the state to hand the next version on a
        live reload, as bytes (at most the host's ``max_state``, 4 MiB by default)."""
        self._save = save
        return save

    def restore_state(self, restore: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """Register ``restore`` (a decorator): it gets what the previous version's
        ``save`` returned, before the first call; raising ``PluginError`` (or
        anything) refuses it and the previous version runs on."""
        self._restore = restore
        return restore

    def action(
        self,
        name: str | None = None,
        *,
        description: str = "",
        params: Mapping[str, Any] | None = None,
        subscribe: str | None = None,
        poll_ms: int | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare the decorated function as an action (named after it by default).

        ``params`` is a JSON Schema for the action's parameters, shown to users.
        ``subscribe`` (a topic pattern such as ``"obs.*"``) makes the action
        receive the events of those topics, as far as the user granted
        ``events:subscribe``: params ``{"topic", "payload", "source"}``.
        ``poll_ms`` makes the plugin a trigger plugin that the host polls by
        calling this action every ``poll_ms`` milliseconds (10 to 86400000;
        one action of a plugin at most), with empty params.
        """
        if poll_ms is not None and (
            type(poll_ms) is not int or not MIN_POLL_MS <= poll_ms <= MAX_POLL_MS
        ):
            raise ValueError(
                f"poll_ms must be an integer {MIN_POLL_MS}-{MAX_POLL_MS} (milliseconds), "
                f"not {poll_ms!r}"
            )

        def register(handler: Handler) -> Handler:
            action = name or handler.__name__.replace("_", "-")
            if action in self._actions:
                raise ValueError(f"action {action!r} is declared twice")
            text = description or (handler.__doc__ or "").strip().split("\n")[0]
            if poll_ms is not None:
                if self._poll is not None:
                    raise ValueError(
                        f"action {action!r} cannot be polled too: the host polls one action "
                        f"of a plugin, and {self._poll['action']!r} is it"
                    )
                self._poll = {"action": action, "interval_ms": poll_ms}
            self._actions[action] = _Action(action, text, params, handler)
            if subscribe is not None:
                self._subscriptions.append({"topic": subscribe, "action": action})
            return handler

        return register

    def metadata(self) -> dict[str, Any]:
        """The metadata document the host reads when it loads the plugin."""
        document: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
        }
        for key in ("author", "license", "homepage"):
            value = getattr(self, key)
            if value is not None:
                document[key] = value
        actions = []
        for action in self._actions.values():
            entry: dict[str, Any] = {"name": action.name, "description": action.description}
            if action.params is not None:
                entry["params"] = dict(action.params)
            actions.append(entry)
        document["actions"] = actions
        if self._poll is not None:
            document["type"] = "trigger"
            document["poll"] = dict(self._poll)
        if self._subscriptions:
            document["subscribe"] = list(self._subscriptions)
        if self.capabilities:
            document["capabilities"] = self.capabilities
        return document

    def run(self, action: str, params: dict[str, Any], context: Context) -> bytes:
        """Run one action and return its output bytes; raises what the action raises."""
        declared = self._actions.get(action)
        if declared is None:
            raise PluginError(f"unknown action {action!r}")
        return _output(declared.handler(params, context))

    def world(self) -> type:
        """The ``WitWorld`` class componentize-py needs: assign it in the plugin module."""
        plugin = self

        class WitWorld:
            def metadata(self) -> str:
                return json.dumps(plugin.metadata(), separators=(",", ":"))

            def execute(self, request: Any) -> Any:
                from componentize_py_types import Err, Ok

                try:
                    params = json.loads(request.params) if request.params else {}
                    ctx = request.context
                    context = Context(ctx.velocity, ctx.mode, ctx.timestamp)
                    return Ok(plugin.run(request.action, params, context))
                except PluginError as exc:
                    return Err(exc.message)
                except MemoryError:
                    raise  # trap: the host reports its memory limit and starts afresh
                except Exception as exc:
                    traceback.print_exc(file=sys.stderr)
                    return Err(f"{type(exc).__name__}: {exc}")

            def save_state(self) -> bytes:
                # No save function: nothing to carry over (the host restores nothing).
                return bytes(plugin._save()) if plugin._save is not None else b""

            def restore_state(self, state: bytes) -> None:
                from componentize_py_types import Err

                if plugin._restore is None:
                    return
                try:
                    plugin._restore(state)
                except PluginError as exc:
                    raise Err(exc.message) from None
                except MemoryError:
                    raise
                except Exception as exc:
                    traceback.print_exc(file=sys.stderr)
                    raise Err(f"{type(exc).__name__}: {exc}") from None

        return WitWorld


_TRIGGER_FIELDS = ("kind", "channel", "note", "controller", "value")


def _trigger_fields() -> dict[str, Any]:
    """What the host's ``trigger.context`` adds to the record (wasmdeck:plugin@1.1.0)."""
    module = host._INTERFACES.get("trigger")
    if module is None:
        return {}
    full = json.loads(module.context())
    return {name: full[name] for name in _TRIGGER_FIELDS if name in full}


def _output(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()
