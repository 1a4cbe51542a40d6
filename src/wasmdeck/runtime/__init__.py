"""The runtime layer: engine, sandbox limits, WASI and the plugin ABIs."""

from ._deadline import DeadlinePassed
from ._engine import WASMTIME_VERSION, Runtime, default_runtime
from ._hostapi import HostLinks
from ._limits import Limits, MiB
from ._plugin import Plugin

__all__ = [
    "WASMTIME_VERSION",
    "DeadlinePassed",
    "HostLinks",
    "Limits",
    "MiB",
    "Plugin",
    "Runtime",
    "default_runtime",
]
