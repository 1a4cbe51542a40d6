"""A call's deadline, for the work host functions do on the call's behalf.

Epoch interruption stops wasm instructions at a call's deadline, but not a
host function that waits: a WASI sleep, an HTTP exchange, a WebSocket
close, a process run. Those compute their waits from the time left
(``remaining``) and, once the deadline has passed, raise ``DeadlinePassed``;
the ABI adapters (``_core``, ``_component``) end the call with the same
``TimeLimitExceeded`` a wasm timeout gives. A plugin cannot swallow it: it
is never returned to the plugin as an error it could handle. A request's own
``timeout_ms`` shorter than the deadline still comes back to the plugin as a
``{"error": {"kind": "timeout"}}`` it may handle.
"""

from __future__ import annotations

import time

from .._errors import TimeLimitExceeded
from ._limits import Limits

__all__ = ["DeadlinePassed", "remaining", "time_limit_error"]


class DeadlinePassed(Exception):
    """The call's deadline passed while the host worked for it; ``str()`` says doing what."""


def remaining(deadline: float, doing: str) -> float:
    """Seconds left before ``deadline`` (monotonic); ``DeadlinePassed`` when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed(doing)
    return left


def time_limit_error(limits: Limits, doing: str) -> TimeLimitExceeded:
    """The error a call ends with when its deadline passed in a host function."""
    return TimeLimitExceeded(
        f"stopped after running past its {limits.timeout:g} s time limit (timeout) while {doing}",
        value=limits.timeout,
    )
