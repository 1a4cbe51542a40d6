"""``PluginHost``: holds plugins, routes each call to one of them, and links them.

Linked (docs/host-api.md, "Events", "Calling other plugins", "Shared state"):
plugins publish and receive events on the host's bus (``bus``), call each
other's actions, and see each other's changes to shared state as events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._context import TriggerContext
from .._errors import ActionNotFound, PluginNotFound
from .._topics import covers
from ..packages import LoadedPlugins, PluginManager
from ..runtime import Plugin
from ._bus import BusEvent, EventBus, Subscription
from ._calls import CallGraph
from ._links import PluginLinks

log = logging.getLogger("wasmdeck.host")

__all__ = ["PluginHost"]


class PluginHost:
    """Many plugins, and the routing from an action to the plugin that runs it.

    A call names its plugin, or names only the action: then exactly one
    loaded plugin must declare that action. Plugins without an action list
    accept any action, so they are reached by plugin name only.
    """

    def __init__(self, *, bus: EventBus | None = None, calls: CallGraph | None = None) -> None:
        self._plugins: dict[str, Plugin] = {}
        self._routes: dict[str, list[Plugin]] = {}
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._lock = threading.Lock()
        self.bus = bus or EventBus()
        self.calls = calls or CallGraph()

    # -- plugins -------------------------------------------------------------

    def add(self, plugin: Plugin, *, name: str | None = None) -> Plugin:
        """Add a loaded plugin under ``name`` (default: its own), unique in this host.

        The plugin is linked: its events go to ``bus``, its calls to this
        host's plugins, and the subscriptions of its metadata start (each
        narrowed to its ``events:subscribe`` grants; one with none is skipped
        with a warning). Publishes ``wasmdeck.plugin.loaded``.
        """
        key = plugin.name if name is None else name
        with self._lock:
            if key in self._plugins:
                raise ValueError(f"a plugin named {key!r} is already loaded")
            self._plugins[key] = plugin
            self._rebuild_routes()
        plugin.links = PluginLinks(key, self.bus, self.calls, self.get)
        self._subscriptions[key] = self._subscribe(key, plugin)
        self.bus.publish(
            "wasmdeck.plugin.loaded",
            {"plugin": key, "version": plugin.metadata.version},
            source="wasmdeck",
        )
        return plugin

    def replace(self, name: str, plugin: Plugin) -> Plugin:
        """Put ``plugin`` (a new version) in the place of the one named ``name``; return that.

        For a live reload (``Plugin.hand_over``, docs/reload.md): the routes
        and links move over at once, and each subscription that the new
        version's metadata and grants keep is kept with its queue, so an
        event published meanwhile is delivered once, to the new version.
        Publishes ``wasmdeck.plugin.reloaded``. The old plugin stays open.
        """
        with self._lock:
            old = self._plugins.get(name)
            if old is None:
                raise PluginNotFound(f"no plugin named {name!r} is loaded", plugin=name)
            self._plugins[name] = plugin
            self._rebuild_routes()
        plugin.links = PluginLinks(name, self.bus, self.calls, self.get)
        kept = {(s.name, s.pattern, s.allowed): s for s in self._subscriptions.get(name, [])}
        subscriptions = []
        for wanted in self._wanted(name, plugin):
            subscription = kept.pop(wanted, None)
            if subscription is None:
                topic_name, pattern, allowed = wanted
                subscription = self.bus.subscribe(
                    pattern,
                    self._deliver(name, topic_name.partition(":")[2]),
                    name=topic_name,
                    allowed=allowed,
                )
            subscriptions.append(subscription)
        for gone in kept.values():
            self.bus.unsubscribe(gone, wait=0)
        self._subscriptions[name] = subscriptions
        self.bus.publish(
            "wasmdeck.plugin.reloaded",
            {"plugin": name, "version": plugin.metadata.version, "was": old.metadata.version},
            source="wasmdeck",
        )
        return old

    def _wanted(self, key: str, plugin: Plugin) -> list[tuple[str, str, tuple[str, ...]]]:
        """The subscriptions of ``plugin``'s metadata, each narrowed to its grants:
        (subscription name, pattern, allowed patterns)."""
        granted = plugin.grants.topics("subscribe")
        wanted = []
        for want in plugin.metadata.subscriptions:
            allowed = [g for g in granted if covers(g, want.topic) or covers(want.topic, g)]
            if not allowed:
                log.warning(
                    "plugin %s: not subscribed to %s: it needs a grant events:subscribe:%s",
                    key,
                    want.topic,
                    want.topic,
                )
                continue
            wanted.append((f"{key}:{want.action}", want.topic, tuple(allowed)))
        return wanted

    def _deliver(self, key: str, action: str) -> Callable[[BusEvent], bytes]:
        """A subscription's handler: the event as the params of ``action`` of the
        plugin named ``key`` now (a live reload may have put a new version there)."""

        def deliver(event: BusEvent) -> bytes:
            return self.get(key).call(action, event.params(), TriggerContext(kind="event"))

        return deliver

    def _subscribe(self, key: str, plugin: Plugin) -> list[Subscription]:
        return [
            self.bus.subscribe(
                pattern, self._deliver(key, name.partition(":")[2]), name=name, allowed=allowed
            )
            for name, pattern, allowed in self._wanted(key, plugin)
        ]

    def load(self, source: Any, **options: Any) -> Plugin:
        """Load a plugin (``Plugin(source, **options)``) and add it."""
        return self.add(Plugin(source, **options))

    def load_installed(self, manager: PluginManager | None = None, **options: Any) -> LoadedPlugins:
        """Load every enabled installed plugin that can load, verified and with its
        grants; the others are logged and listed in the result's ``failures``.

        ``manager`` defaults to the plugin manager of ``$WASMDECK_HOME``;
        ``options`` go to each ``Plugin`` (``limits``, ``runtime``, ...).
        """
        return (manager or PluginManager()).load_into(self, **options)

    def remove(self, name: str) -> Plugin:
        """Remove a plugin by name and return it (still open)."""
        with self._lock:
            plugin = self._plugins.pop(name, None)
            if plugin is None:
                raise PluginNotFound(f"no plugin named {name!r} is loaded", plugin=name)
            self._rebuild_routes()
        for subscription in self._subscriptions.pop(name, []):
            self.bus.unsubscribe(subscription)
        plugin.links = None
        self.bus.publish("wasmdeck.plugin.removed", {"plugin": name}, source="wasmdeck")
        return plugin

    def get(self, name: str) -> Plugin:
        plugin = self._plugins.get(name)
        if plugin is None:
            loaded = ", ".join(sorted(self._plugins)) or "(none)"
            raise PluginNotFound(f"no plugin by this name is loaded; loaded: {loaded}", plugin=name)
        return plugin

    def __iter__(self) -> Iterator[Plugin]:
        return iter(list(self._plugins.values()))

    def __len__(self) -> int:
        return len(self._plugins)

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def _rebuild_routes(self) -> None:
        routes: dict[str, list[Plugin]] = {}
        for plugin in self._plugins.values():
            for action in plugin.metadata.actions or ():
                routes.setdefault(action.name, []).append(plugin)
        self._routes = routes

    # -- routing and calls ---------------------------------------------------

    def resolve(self, action: str, plugin: str | None = None) -> Plugin:
        """The plugin that runs ``action`` (on ``plugin``, if named)."""
        if plugin is not None:
            return self.get(plugin)
        candidates = self._routes.get(action, ())
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            hint = ""
            if any(p.metadata.actions is None for p in self._plugins.values()):
                hint = "; plugins without an action list are reached by naming the plugin"
            raise ActionNotFound(f"no loaded plugin declares this action{hint}", action=action)
        names = ", ".join(sorted(p.name for p in candidates))
        raise ActionNotFound(
            f"several plugins declare this action ({names}); name the plugin", action=action
        )

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        context: TriggerContext | Mapping[str, Any] | None = None,
        *,
        plugin: str | None = None,
    ) -> bytes:
        """Route and run one action; see ``Plugin.call``."""
        return self.resolve(action, plugin).call(action, params, context)

    async def call_async(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        context: TriggerContext | Mapping[str, Any] | None = None,
        *,
        plugin: str | None = None,
    ) -> bytes:
        return await self.resolve(action, plugin).call_async(action, params, context)

    async def gather(self, *calls: tuple[str, Mapping[str, Any] | None]) -> list[bytes]:
        """Run several ``(action, params)`` calls concurrently (different plugins in parallel)."""
        return list(await asyncio.gather(*(self.call_async(a, p) for a, p in calls)))

    def close(self) -> None:
        with self._lock:
            plugins, self._plugins, self._routes = list(self._plugins.values()), {}, {}
        self._subscriptions = {}
        self.bus.close()
        for plugin in plugins:
            plugin.close()

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
