"""The runtime layer: engine, sandbox limits, WASI and the plugin ABIs."""

from ._engine import Runtime, default_runtime
from ._limits import Limits
from ._plugin import Plugin

__all__ = ["Limits", "Plugin", "Runtime", "default_runtime"]
