"""The trigger host, ``wasmdeck serve``: a deck running on one asyncio loop."""

from ._control import control_file
from ._daemon import Daemon, ReplayClock
from ._learn import Learned, Learner, LearnTimeout, guess_encoding, learn, to_toml
from ._loading import SourceProject
from ._metrics import Metrics
from ._midi import list_ports
from ._workers import QueueFull

__all__ = [
    "Daemon",
    "LearnTimeout",
    "Learned",
    "Learner",
    "Metrics",
    "QueueFull",
    "ReplayClock",
    "SourceProject",
    "control_file",
    "guess_encoding",
    "learn",
    "list_ports",
    "to_toml",
]
