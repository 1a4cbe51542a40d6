"""WASI sleeps that end at the call's deadline (see ``_deadline``).

Epoch interruption cannot stop a guest blocked in a WASI wait: wasmtime
sleeps in its own code, so a plugin asking to sleep 10 s ran 10 s past a
0.5 s timeout. The host therefore provides the waiting functions itself:

- Core modules (WASI preview 1): ``poll_oneoff`` is defined here and shadows
  wasmtime's in the plugin's linker. It honours clock subscriptions
  (relative and absolute; realtime and monotonic), waits at most until the
  call's deadline and then raises ``DeadlinePassed``; fd_read / fd_write
  subscriptions are ready at once (stdin is empty, stdout and stderr are
  captured, files are always ready). Every pointer and length is checked.
- Components (WASI preview 2): every wait starts from a pollable made by
  ``wasi:clocks/monotonic-clock`` (``subscribe-duration`` /
  ``subscribe-instant``); the other pollables the host hands out (stdio
  streams) are ready at once, and sockets are not granted. A Python host
  function cannot make wasmtime's ``pollable`` resource, so a tiny helper
  component (``_HELPER_WAT``) re-exports wasmtime's own clock functions;
  ``ComponentClock`` defines the plugin's ``monotonic-clock`` import in
  terms of them, with every subscription clamped to the call's deadline.
  A call whose sleep was cut short at the deadline ends with
  ``TimeLimitExceeded`` (``overslept``), however the guest carries on.
"""

from __future__ import annotations

import struct
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import wasmtime
from wasmtime import component

from ._deadline import DeadlinePassed, remaining

__all__ = ["ComponentClock", "GuestMemory", "poll_oneoff"]

# -- WASI preview 1: poll_oneoff ----------------------------------------------

# wasi_snapshot_preview1 layouts (witx: subscription 48 bytes, event 32, both
# aligned to 8). subscription: userdata u64 @0, tag u8 @8, then the union @16;
# a clock is (id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40),
# an fd_read / fd_write is (fd u32 @16). event: userdata u64 @0, error u16 @8,
# type u8 @10, fd_readwrite (nbytes u64 @16, flags u16 @24).
SUBSCRIPTION_SIZE = 48
EVENT_SIZE = 32
_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")
_EVENT = struct.Struct("<QHB5xQH6x")
assert _SUBSCRIPTION.size == SUBSCRIPTION_SIZE and _EVENT.size == EVENT_SIZE

ERRNO_SUCCESS = 0
ERRNO_FAULT = 21
ERRNO_INVAL = 28
ERRNO_NOTSUP = 58
EVENTTYPE_CLOCK = 0
EVENTTYPE_FD_READ = 1
EVENTTYPE_FD_WRITE = 2
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
SUBCLOCKFLAGS_ABSTIME = 1


class GuestMemory(Protocol):
    """What ``poll_oneoff`` needs of an instance's linear memory (``_core._Instance``)."""

    view: memoryview

    def read(self, ptr: int, length: int) -> bytes | None: ...

    def fits(self, ptr: int, length: int) -> bool: ...


def poll_oneoff(
    memory: GuestMemory,
    in_ptr: int,
    out_ptr: int,
    count: int,
    nevents_ptr: int,
    *,
    deadline: float,
    origin_ns: int,
) -> int:
    """``poll_oneoff(in, out, nsubscriptions, nevents_out) -> errno``, bounded by ``deadline``.

    ``origin_ns`` is the host's ``time.monotonic_ns()`` when the instance's
    WASI context was made: WASI's monotonic clock counts from there
    (wasmtime-wasi's ``MonotonicClock``), which absolute monotonic
    timeouts are measured against.
    """
    if count == 0:
        return ERRNO_INVAL
    if in_ptr % 8 or out_ptr % 8 or nevents_ptr % 4:
        return ERRNO_INVAL
    subscriptions = memory.read(in_ptr, count * SUBSCRIPTION_SIZE)
    if (
        subscriptions is None
        or not memory.fits(out_ptr, count * EVENT_SIZE)
        or not memory.fits(nevents_ptr, 4)
    ):
        return ERRNO_FAULT
    now = time.monotonic()
    wall_ns = time.time_ns()
    clocks: list[tuple[int, float]] = []  # (userdata, monotonic time it fires)
    ready: list[bytes] = []  # events of fd subscriptions
    for index in range(count):
        userdata, tag, clock_id, timeout, _precision, flags = _SUBSCRIPTION.unpack_from(
            subscriptions, index * SUBSCRIPTION_SIZE
        )
        if tag == EVENTTYPE_CLOCK:
            if clock_id not in (CLOCK_REALTIME, CLOCK_MONOTONIC):
                return ERRNO_NOTSUP  # CPU-time clocks: wasmtime does not wait on them either
            if not flags & SUBCLOCKFLAGS_ABSTIME:
                fires = now + timeout / 1e9
            elif clock_id == CLOCK_MONOTONIC:
                fires = (origin_ns + timeout) / 1e9
            else:
                fires = now + (timeout - wall_ns) / 1e9
            clocks.append((userdata, fires))
        elif tag in (EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE):
            ready.append(_EVENT.pack(userdata, ERRNO_SUCCESS, tag, 0, 0))
        else:
            return ERRNO_INVAL
    if not ready:  # only clocks: wait for the first, but not past the deadline
        first = min(fires for _, fires in clocks)
        while (left := first - time.monotonic()) > 0:
            time.sleep(min(left, remaining(deadline, "sleeping (WASI poll_oneoff)")))
        now = time.monotonic()
    events = ready + [
        _EVENT.pack(userdata, ERRNO_SUCCESS, EVENTTYPE_CLOCK, 0, 0)
        for userdata, fires in clocks
        if fires <= now
    ]
    data = b"".join(events)
    memory.view[out_ptr : out_ptr + len(data)] = data
    memory.view[nevents_ptr : nevents_ptr + 4] = struct.pack("<I", len(events))
    return ERRNO_SUCCESS


# -- WASI preview 2: wasi:clocks/monotonic-clock --------------------------------

# Re-exports wasmtime's monotonic clock through a core module (a component
# cannot re-export an imported host function directly in wasmtime). Its
# imports name 0.2.0; the linker serves any compatible 0.2.x.
_HELPER_WAT = """
(component
  (import "wasi:io/poll@0.2.0" (instance $poll (export "pollable" (type (sub resource)))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer 1 $pollable (type))
    (export "pollable" (type (eq 0)))
    (type (own 1))
    (type (func (param "when" u64) (result 2)))
    (export "subscribe-duration" (func (type 3)))
    (export "subscribe-instant" (func (type 3)))
    (type (func (result u64)))
    (export "now" (func (type 4)))
    (export "resolution" (func (type 4)))))
  (core func $duration (canon lower (func $clock "subscribe-duration")))
  (core func $instant (canon lower (func $clock "subscribe-instant")))
  (core func $now (canon lower (func $clock "now")))
  (core func $resolution (canon lower (func $clock "resolution")))
  (core module $forward
    (import "clock" "duration" (func $duration (param i64) (result i32)))
    (import "clock" "instant" (func $instant (param i64) (result i32)))
    (import "clock" "now" (func $now (result i64)))
    (import "clock" "resolution" (func $resolution (result i64)))
    (func (export "duration") (param i64) (result i32) local.get 0 call $duration)
    (func (export "instant") (param i64) (result i32) local.get 0 call $instant)
    (func (export "now") (result i64) call $now)
    (func (export "resolution") (result i64) call $resolution))
  (core instance $forwarded (instantiate $forward (with "clock" (instance
    (export "duration" (func $duration)) (export "instant" (func $instant))
    (export "now" (func $now)) (export "resolution" (func $resolution))))))
  (type $subscribe (func (param "when" u64) (result (own $pollable))))
  (func (export "subscribe-duration") (type $subscribe)
    (canon lift (core func $forwarded "duration")))
  (func (export "subscribe-instant") (type $subscribe)
    (canon lift (core func $forwarded "instant")))
  (func (export "now") (result u64) (canon lift (core func $forwarded "now")))
  (func (export "resolution") (result u64) (canon lift (core func $forwarded "resolution")))
)
"""


class _Helper:
    """The helper component and wasmtime's pollable type, made once per engine."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.component = component.Component(engine, _HELPER_WAT)
        self.linker = component.Linker(engine)
        self.linker.add_wasip2()
        store = wasmtime.Store(engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_fuel(1_000_000)  # the runtime's engines meter fuel and epochs
        store.set_epoch_deadline(1_000_000)
        instance = self.linker.instantiate(store, self.component)
        subscribe = instance.get_func(store, "subscribe-duration")
        assert subscribe is not None
        self.pollable_type = subscribe(store, 0).type


_helpers: weakref.WeakKeyDictionary[wasmtime.Engine, _Helper] = weakref.WeakKeyDictionary()
_helpers_lock = threading.Lock()


def _helper(engine: wasmtime.Engine) -> _Helper:
    with _helpers_lock:
        helper = _helpers.get(engine)
        if helper is None:
            helper = _helpers[engine] = _Helper(engine)
        return helper


class ComponentClock:
    """A component plugin's ``wasi:clocks/monotonic-clock``, clamped to its call's deadline.

    ``define`` adds the interface to the plugin's linker (which must allow
    shadowing, after ``add_wasip2``); ``attach`` readies it for a new store;
    ``deadline`` gives the current call's deadline; ``overslept`` is set
    when a subscription was cut short at the deadline (checked by the caller
    when the call returns). ``violation`` turns ``DeadlinePassed`` into the
    exception that traps the guest.
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        deadline: Callable[[], float],
        violation: Callable[[DeadlinePassed], BaseException],
    ) -> None:
        self._helper = _helper(engine)
        self._deadline = deadline
        self._violation = violation
        self._funcs: dict[str, Any] = {}
        self.overslept = False

    def define(self, linker: component.Linker, import_name: str) -> None:
        helper = self._helper
        with linker.root() as root, root.add_instance(import_name) as clock:
            # Shadowing replaces the whole instance: everything it has is defined.
            clock.add_resource("pollable", helper.pollable_type, lambda _store, _rep: None)
            clock.add_func("now", lambda store: self._funcs["now"](store))
            clock.add_func("resolution", lambda store: self._funcs["resolution"](store))
            clock.add_func("subscribe-duration", self._subscribe_duration)
            clock.add_func("subscribe-instant", self._subscribe_instant)

    def attach(self, store: wasmtime.Store) -> None:
        helper = self._helper
        instance = helper.linker.instantiate(store, helper.component)
        names = ("now", "resolution", "subscribe-duration", "subscribe-instant")
        self._funcs = {name: instance.get_func(store, name) for name in names}
        self.overslept = False

    def _clamp(self, store: object, instant: int) -> int:
        """``instant`` (guest monotonic ns), or the call's deadline if that comes first."""
        try:
            left = remaining(self._deadline(), "sleeping (wasi:clocks/monotonic-clock)")
        except DeadlinePassed as exc:
            raise self._violation(exc) from None
        latest = self._funcs["now"](store) + int(left * 1e9)
        if instant > latest:
            self.overslept = True
            return int(latest)
        return instant

    def _subscribe_duration(self, store: object, duration: int) -> object:
        now = self._funcs["now"](store)
        instant = self._clamp(store, now + duration)
        return self._funcs["subscribe-duration"](store, max(0, instant - now))

    def _subscribe_instant(self, store: object, instant: int) -> object:
        return self._funcs["subscribe-instant"](store, self._clamp(store, instant))
