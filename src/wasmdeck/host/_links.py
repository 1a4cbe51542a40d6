"""What one plugin of a ``PluginHost`` reaches through its host functions.

The runtime checks the grant (runtime/_hostapi.py) and then asks the plugin's
``PluginLinks`` (``HostLinks`` there): events go to the host's bus under the
plugin's name, calls to the host's other plugins through the call graph,
shared-state changes out as ``wasmdeck.state.NAMESPACE`` events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ..runtime import Plugin
from ._bus import EventBus
from ._calls import CallGraph

__all__ = ["PluginLinks"]


class PluginLinks:
    __slots__ = ("_bus", "call", "name")

    def __init__(
        self, name: str, bus: EventBus, calls: CallGraph, resolve: Callable[[str], Plugin]
    ) -> None:
        self.name = name
        self._bus = bus
        # call(plugin, action, params, deadline) -> output: the call graph's
        # call for this plugin, bound once (no frame of its own per call).
        self.call: Callable[[str, str, Mapping[str, Any], float], bytes] = partial(
            calls.call, name, resolve
        )

    def publish(self, topic: str, payload: object, deadline: float) -> int:
        return self._bus.publish(topic, payload, source=self.name)

    def state_changed(self, namespace: str, key: str, version: int, deleted: bool) -> None:
        change = {"namespace": namespace, "key": key, "version": version, "by": self.name}
        if deleted:
            change["deleted"] = True
        self._bus.publish(f"wasmdeck.state.{namespace}", change, source="wasmdeck")
