"""The host layer: many plugins, one routing table."""

from ._host import PluginHost

__all__ = ["PluginHost"]
