"""The host layer: many plugins, one routing table, the event bus and calls between them."""

from ._bus import CURRENT, BusEvent, EventBus, Subscription
from ._calls import CallGraph
from ._host import PluginHost

__all__ = ["CURRENT", "BusEvent", "CallGraph", "EventBus", "PluginHost", "Subscription"]
