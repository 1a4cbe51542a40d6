"""wasmdeck: sandboxed WebAssembly plugins for Python, and a trigger-to-action host.

>>> import wasmdeck
>>> plugin = wasmdeck.Plugin("velocity.wasm")
>>> plugin.call("scale", {"max": 254}, wasmdeck.TriggerContext(velocity=100))
b'{"value":200,"velocity":100}'
"""

from ._capabilities import Grant, Grants, parse_grant
from ._context import TriggerContext
from ._errors import (
    ABIViolation,
    ActionNotFound,
    FuelLimitExceeded,
    ImportNotAllowed,
    InvalidMetadata,
    InvalidModule,
    InvalidPlugin,
    LimitExceeded,
    MemoryLimitExceeded,
    MissingExport,
    OutputLimitExceeded,
    PluginError,
    PluginNotFound,
    PluginReportedError,
    PluginTrap,
    RoutingError,
    StackLimitExceeded,
    TableLimitExceeded,
    TimeLimitExceeded,
    WasmdeckError,
)
from ._metadata import ActionSpec, CapabilityRequest, PluginMetadata
from .host import PluginHost
from .runtime import Limits, Plugin, Runtime

__version__ = "0.1.0"

__all__ = [
    "ABIViolation",
    "ActionNotFound",
    "ActionSpec",
    "CapabilityRequest",
    "FuelLimitExceeded",
    "Grant",
    "Grants",
    "ImportNotAllowed",
    "InvalidMetadata",
    "InvalidModule",
    "InvalidPlugin",
    "LimitExceeded",
    "Limits",
    "MemoryLimitExceeded",
    "MissingExport",
    "OutputLimitExceeded",
    "Plugin",
    "PluginError",
    "PluginHost",
    "PluginMetadata",
    "PluginNotFound",
    "PluginReportedError",
    "PluginTrap",
    "RoutingError",
    "Runtime",
    "StackLimitExceeded",
    "TableLimitExceeded",
    "TimeLimitExceeded",
    "TriggerContext",
    "WasmdeckError",
    "__version__",
    "parse_grant",
]
