"""A quiet interpreter exit, whatever a script leaves open or running.

Wasmtime writes a plugin's WASI stdout/stderr (``stdout_custom``, preview 1
and 2) from its tokio worker threads, which call the host's Python callback,
and it releases those callbacks there too, when the store is dropped. Once
the interpreter has begun to finalize, CPython ends any other thread that
takes the GIL with ``pthread_exit``, and that forced unwind through
wasmtime's Rust frames aborts the process ("panic in a function that cannot
unwind") after the script's work is done. A plugin call still running on a
daemon thread would do the same from its host functions or its memory's
callbacks (``_memory``).

So at exit (``atexit``, while the interpreter is whole) every open plugin is
closed: a call in progress is waited for (up to its own timeout; then its
epoch deadline is passed so its wasm stops), later calls from other threads
wait forever (as a daemon thread would at exit anyway) and the plugins'
stores are freed. The exit then waits, briefly, until wasmtime's threads
have released every output callback the runtime gave out (``track_output``).
"""

from __future__ import annotations

import atexit
import gc
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from ._engine import expire_all_deadlines

__all__ = ["EXITED", "closes_at_exit", "track_output"]

# How long the exit waits for wasmtime's threads to let go of the callbacks.
RELEASE_WAIT = 2.0


class _ClosesAtExit(Protocol):
    def _close_at_exit(self, wait: float) -> bool: ...

    @property
    def _exit_wait(self) -> float: ...


class _Output:
    """A WASI output callback whose release by wasmtime can be observed."""

    __slots__ = ("__weakref__", "write")

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write

    def __call__(self, data: bytes) -> None:
        self.write(data)


_plugins: weakref.WeakSet[_ClosesAtExit] = weakref.WeakSet()
_outputs: weakref.WeakSet[_Output] = weakref.WeakSet()
_lock = threading.Lock()


def closes_at_exit(plugin: _ClosesAtExit) -> None:
    """Have ``plugin`` closed at interpreter exit if it is still open then."""
    with _lock:
        _plugins.add(plugin)


def track_output(write: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``write`` wrapped for ``WasiConfig.stdout_custom``, its release tracked."""
    output = _Output(write)
    with _lock:
        _outputs.add(output)
    return output


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
    gc.collect()  # stores in garbage cycles
    waited = time.monotonic() + RELEASE_WAIT
    pause = threading.Event()
    while _outputs and time.monotonic() < waited:
        pause.wait(0.002)  # releases the GIL for wasmtime's threads
