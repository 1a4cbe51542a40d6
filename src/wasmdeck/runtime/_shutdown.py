"""A quiet interpreter exit, whatever a script leaves open or running.

Once the interpreter has begun to finalize, CPython ends any other thread
that takes the GIL with ``pthread_exit``, and that forced unwind through
wasmtime's Rust frames aborts the process ("panic in a function that cannot
unwind"), after the script's work is done. Two ways led there: wasmtime-py's
``WasiConfig.stdout_custom`` gives wasmtime a Python finalizer for the
output callback, which wasmtime's tokio worker threads ran when a store left
open was freed during finalization (2-7 runs in 10 of a script whose plugin
wrote to stdout; ``_sandbox.WasiSetup`` now passes no finalizer), and a
plugin call still running on a daemon thread, whose host functions and
memory callbacks (``_memory``) are Python.

So at exit (``atexit``, while the interpreter is whole) every open plugin is
closed: a call in progress is waited for (up to its own timeout; after a
second its epoch deadline is passed, so its wasm stops), later calls from
other threads wait forever (as a daemon thread would at exit anyway), and
the plugins' stores are freed while Python can still run their callbacks.
"""

from __future__ import annotations

import atexit
import gc
import threading
import weakref
from types import TracebackType
from typing import Protocol

from ._engine import expire_all_deadlines

__all__ = ["EXITED", "closes_at_exit"]


class _ClosesAtExit(Protocol):
    def _close_at_exit(self, wait: float) -> bool: ...

    @property
    def _exit_wait(self) -> float: ...


_plugins: weakref.WeakSet[_ClosesAtExit] = weakref.WeakSet()
_lock = threading.Lock()


def closes_at_exit(plugin: _ClosesAtExit) -> None:
    """Have ``plugin`` closed at interpreter exit if it is still open then."""
    with _lock:
        _plugins.add(plugin)


class _Exited:
    """What a plugin's call lock becomes once it is closed at exit.

    Entered from the main thread it lets the call go on to find the plugin
    closed (e.g. a ``__del__`` during finalization gets an error, not a
    hang); from any other thread it never returns, as a daemon thread stops
    at exit anyway, rather than raise into a thread the script left running.
    """

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if threading.current_thread() is not threading.main_thread():
            threading.Event().wait()
        return True

    def release(self) -> None:
        pass

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        pass


EXITED = _Exited()


@atexit.register
def _quiet_exit() -> None:
    with _lock:
        plugins = list(_plugins)
    expired = False
    for plugin in plugins:
        wait = plugin._exit_wait
        if not plugin._close_at_exit(min(wait, 1.0)):
            if not expired:  # a call is still running: stop its wasm
                expire_all_deadlines()
                expired = True
            plugin._close_at_exit(wait)
    del plugins
    gc.collect()  # stores in garbage cycles, freed while their callbacks can still run
