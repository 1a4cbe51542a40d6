"""The trigger host, ``wasmdeck serve``: a deck running on one asyncio loop."""

from ._control import control_file
from ._daemon import Daemon, ReplayClock
from ._metrics import Metrics
from ._midi import list_ports
from ._workers import QueueFull

__all__ = ["Daemon", "Metrics", "QueueFull", "ReplayClock", "control_file", "list_ports"]
