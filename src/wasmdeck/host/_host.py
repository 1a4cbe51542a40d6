"""``PluginHost``: holds plugins and routes each call to one of them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from .._context import TriggerContext
from .._errors import ActionNotFound, PluginNotFound
from ..packages import LoadedPlugins, PluginManager
from ..runtime import Plugin

__all__ = ["PluginHost"]


class PluginHost:
    """Many plugins, and the routing from an action to the plugin that runs it.

    A call names its plugin, or names only the action: then exactly one
    loaded plugin must declare that action. Plugins without an action list
    accept any action, so they are reached by plugin name only.
    """

    def __init__(self) -> None:
        self._plugins: dict[str, Plugin] = {}
        self._routes: dict[str, list[Plugin]] = {}
        self._lock = threading.Lock()

    # -- plugins -------------------------------------------------------------

    def add(self, plugin: Plugin) -> Plugin:
        """Add a loaded plugin; its name must be unique in this host."""
        with self._lock:
            if plugin.name in self._plugins:
                raise ValueError(f"a plugin named {plugin.name!r} is already loaded")
            self._plugins[plugin.name] = plugin
            self._rebuild_routes()
        return plugin

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
        for plugin in plugins:
            plugin.close()

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
