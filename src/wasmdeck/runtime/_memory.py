"""Linear memory allocated by the host: the memory limit, and the grows it refused.

Wasmtime's store limiter takes fixed numbers and does not report a grow it
refused: ``memory.grow`` just returns -1 and the plugin's allocator usually
traps a moment later, which would look like any other trap. So the runtime
gives the engine a memory creator (``_capi.set_host_memory_creator``) and
allocates every linear memory here, the way wasmtime itself does: one
``PROT_NONE`` reservation of the size wasmtime asks for plus its guard
region, made readable and writable as the memory grows. The memory never
moves (``memory_may_move = False``, which the adapters rely on). Growth past
the plugin's ``max_memory`` is refused *here*, and recorded on the store's
``MemoryLimit``, so a trap after it is reported as ``MemoryLimitExceeded``
however small or large the request was (``limit_hit``).

The per-memory callbacks run in Python only when a memory is created (once
per instance), grows, or is freed; wasmtime does not call them on a plain
call or when the host reads memory (see ``_capi``). The limit of a memory is
the one in effect on the thread that creates it (``MemoryLimit.creating``);
a memory created outside that is refused, so no memory exists without a limit.

A *scratch* memory (``MemoryLimit.scratch``) is one of the host's own that no
plugin code can read: the payload box's ``out`` (``_payload``), which the
plugin cannot import and whose bytes the host reads only up to the lengths
the copier writes in its header. A freed one is kept as it is, not zeroed,
and handed only to the next scratch memory: a fresh instance then costs one
``madvise`` and one page fault less (see benchmarks/call_overhead.py).
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import platform
import threading
import time
from collections.abc import Callable
from ctypes import c_int, c_long, c_size_t, c_void_p

from . import _capi as capi

__all__ = ["MemoryLimit", "install"]

_PAGE = mmap.PAGESIZE
_PROT_NONE = 0
_PROT_READ_WRITE = mmap.PROT_READ | mmap.PROT_WRITE
_MAP_FAILED = ctypes.c_void_p(-1).value
# Reserved address space is not committed memory: the kernel must not count it.
_MAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype, _mmap.argtypes = c_void_p, (c_void_p, c_size_t, c_int, c_int, c_int, c_long)
_mprotect = _libc.mprotect
_mprotect.restype, _mprotect.argtypes = c_int, (c_void_p, c_size_t, c_int)
_munmap = _libc.munmap
_munmap.restype, _munmap.argtypes = c_int, (c_void_p, c_size_t)
_madvise = _libc.madvise
_madvise.restype, _madvise.argtypes = c_int, (c_void_p, c_size_t, c_int)
_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", 0)


# A freed memory's reservation is kept, zeroed, for the next instance: a
# fresh instance (after a trap, or per call) then costs no mmap/munmap of a
# multi-GiB reservation. Wasmtime copies a module's data into every new
# memory (its copy-on-write images need its own memories); for data-heavy
# memories (a Python component's starts at ~13 MiB, from _MEMSET_MIN)
# faulting fresh pages in costs more than the copy, so they are zeroed in
# place with memset. Smaller ones are handed back to the kernel with
# MADV_DONTNEED (zero-filled when touched again), which costs less than
# zeroing pages the plugin never touched.
_MEMSET_MIN = 4 * 1024 * 1024
_REUSE_MAX = 32 * 1024 * 1024
_SPARE_BYTES = 64 * 1024 * 1024
_SPARE_COUNT = 64
# Scratch memories kept unzeroed: only ones that never grew (the box's one
# page), so what is kept stays small and resident.
_SCRATCH_MAX = 64 * 1024
_SCRATCH_COUNT = 16


def _round_up(size: int) -> int:
    return -(-size // _PAGE) * _PAGE


class MemoryLimit:
    """The memory limit of one store, and the last grow it refused.

    ``refused`` is the byte size the plugin last asked to grow a memory to
    and was refused (0: none yet), ``refused_from`` that memory's size then,
    ``refused_at`` when (``time.monotonic``). ``size`` is the largest
    memory's byte size, as the host allocated it. While ``scratch`` is true,
    the memories created are scratch memories (see the module's docstring):
    the caller sets it around the instantiation of the payload box only.
    """

    __slots__ = ("_outer", "limit", "memories", "refused", "refused_at", "refused_from", "scratch")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.scratch = False
        self.refused = self.refused_from = 0
        self.refused_at = -math.inf
        self.memories: list[_Memory] = []
        self._outer: MemoryLimit | None = None

    def refused_since(self, start: float) -> bool:
        """Whether a grow was refused at or after ``start`` (a call's start, monotonic)."""
        return self.refused_at >= start

    @property
    def size(self) -> int:
        return max((memory.size for memory in self.memories), default=0)

    def creating(self) -> MemoryLimit:
        """Memories created on this thread inside the ``with`` block get this limit.

        A class-based context manager, not ``contextlib.contextmanager``: it
        runs on every fresh instance, where the generator's cost shows.
        """
        return self

    def __enter__(self) -> MemoryLimit:
        self._outer = getattr(_current, "limit", None)
        _current.limit = self
        return self

    def __exit__(self, *_exc: object) -> None:
        _current.limit, self._outer = self._outer, None


class _Memory:
    """One linear memory (and, once freed, a spare reservation).

    ``cell`` is what ``get_memory`` reads: base, size, capacity; its address
    is the memory's ``env``. ``linear`` is the ``wasmtime_linear_memory_t``
    new_memory hands wasmtime, packed once: a spare is handed out again as it
    is, with its cell, so a fresh instance makes no new objects for it.
    ``zeroed`` is, for a spare, how many bytes from ``base`` are accessible
    (and zero, unless it is a ``scratch`` memory's).
    """

    __slots__ = (
        "base",
        "capacity",
        "cell",
        "limit",
        "linear",
        "mapped",
        "scratch",
        "size",
        "zeroed",
    )

    def __init__(
        self,
        base: int,
        capacity: int,
        mapped: int,
        pack: Callable[[int], bytes],
        limit: MemoryLimit,
    ) -> None:
        self.base = base
        self.size = self.zeroed = 0
        self.capacity = capacity
        self.mapped = mapped
        self.limit = limit
        self.scratch = False
        self.cell = (ctypes.c_uint64 * 3)(base, 0, capacity)
        self.linear = pack(ctypes.addressof(self.cell))

    def resize(self, size: int) -> None:
        self.size = self.cell[1] = size


# get_memory(env, &byte_size, &capacity) -> base, with env pointing at a
# memory's cell: wasmtime calls it about seven times per memory.grow and
# twice per new memory, so it is three loads and two stores of machine code
# (x86-64 System V) rather than a Python callback (~1 µs each). Elsewhere,
# or where the system refuses executable memory, it is the Python callback.
_GET_MEMORY_X86_64 = bytes.fromhex(
    "488b4708"  # mov rax, [rdi + 8]   ; size
    "488906"  # mov [rsi], rax
    "488b4710"  # mov rax, [rdi + 16]  ; capacity
    "488902"  # mov [rdx], rax
    "488b07"  # mov rax, [rdi]        ; base
    "c3"  # ret
)


def _native_get_memory() -> int:
    """The address of the machine-code get_memory, or 0 where there is none."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not hasattr(mmap, "PROT_EXEC"):
        return 0
    page = _mmap(None, _PAGE, _PROT_READ_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if page is None or page == _MAP_FAILED:
        return 0
    ctypes.memmove(page, _GET_MEMORY_X86_64, len(_GET_MEMORY_X86_64))
    if _mprotect(page, _PAGE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:  # never writable again
        _munmap(page, _PAGE)
        return 0
    return int(page)


_current = threading.local()


def _callbacks() -> tuple[object, ...]:
    """The four C callbacks, as closures over locals.

    They must keep working while the interpreter tears itself down (a store
    can be freed then), so they reach nothing through module globals, and
    they are never freed (``capi.keep_forever``).
    """
    memories: dict[int, _Memory] = {}
    # Freed memories kept for reuse, their reservations zeroed (``_Memory.zeroed``).
    # Stores are made and freed on many threads, and a callback can lose the GIL
    # between two bytecodes: the list is only touched under the lock.
    # Reentrant: a garbage collection inside new_memory's critical section can
    # free a store, whose memories' finalizers then take the lock on this thread.
    spares: list[_Memory] = []
    scratch_spares: list[_Memory] = []  # freed scratch memories, not zeroed
    spare_bytes = [0]  # the sum of the spares' zeroed bytes
    spares_lock = threading.RLock()
    memset = ctypes.memset
    mmap_, mprotect, munmap, madvise = _mmap, _mprotect, _munmap, _madvise
    error_new, address = capi.error_new, capi.function_address
    memmove, linear_size = ctypes.memmove, capi.LINEAR_MEMORY_SIZE
    local = _current
    monotonic = time.monotonic
    round_up, page = _round_up, _PAGE

    def get_memory(
        env: int, byte_size: ctypes._Pointer[c_size_t], capacity: ctypes._Pointer[c_size_t]
    ) -> int:
        memory = memories[env]
        byte_size[0] = memory.size
        capacity[0] = memory.capacity
        return memory.base  # (what the machine code does, for other machines)

    def grow_memory(env: int, new_size: int) -> int:
        try:
            memory = memories[env]
            limit = memory.limit
            if new_size > limit.limit:
                limit.refused, limit.refused_from = new_size, memory.size
                limit.refused_at = monotonic()
                return error_new(
                    f"growing memory to {new_size} bytes exceeds the memory limit of "
                    f"{limit.limit} bytes"
                )
            if new_size > memory.capacity:
                return error_new("memory cannot grow past its reservation")
            if mprotect(memory.base, round_up(new_size), _PROT_READ_WRITE) != 0:
                return error_new(f"mprotect failed: {os.strerror(ctypes.get_errno())}")
            memory.resize(new_size)
            return 0
        except BaseException as exc:  # never unwind into wasmtime
            return error_new(f"memory growth failed: {exc!r}")

    def finalizer(env: int) -> None:
        memory = memories.pop(env, None)
        if memory is None:
            return
        owned = memory.limit.memories
        if memory in owned:
            owned.remove(memory)
        used = -(-memory.size // page) * page
        if memory.scratch and used <= _SCRATCH_MAX:
            with spares_lock:
                if len(scratch_spares) < _SCRATCH_COUNT:
                    memory.zeroed = used
                    scratch_spares.append(memory)
                    return
        memory.scratch = False  # (kept, it is zeroed first like any other)
        with spares_lock:
            keep = used <= _REUSE_MAX and len(spares) < _SPARE_COUNT
            keep = keep and spare_bytes[0] + used <= _SPARE_BYTES
        if not keep:
            munmap(memory.base, memory.mapped)
            return
        # A reused memory starts zeroed, like a new one.
        if used >= _MEMSET_MIN or not _MADV_DONTNEED:
            memset(memory.base, 0, used)
        elif used and madvise(memory.base, used, _MADV_DONTNEED) != 0:
            munmap(memory.base, memory.mapped)
            return
        memory.zeroed = used
        with spares_lock:
            spares.append(memory)
            spare_bytes[0] += used

    get_cb = capi.MEMORY_GET(get_memory)
    grow_cb = capi.MEMORY_GROW(grow_memory)
    finalizer_cb = capi.MEMORY_FINALIZER(finalizer)
    get_at = _native_get_memory() or address(get_cb)
    grow_at, finalizer_at = address(grow_cb), address(finalizer_cb)

    pack_linear = capi.pack_linear_memory

    def pack(env: int) -> bytes:
        return pack_linear(env, get_at, grow_at, finalizer_at)

    def new_memory(
        _env: int,
        _ty: int,
        minimum: int,
        _maximum: int,
        reserved: int,
        guard: int,
        memory_ret: int,
    ) -> int:
        try:
            limit = getattr(local, "limit", None)
            if limit is None:
                return error_new(
                    "wasmdeck refuses a linear memory created outside a plugin's "
                    "instantiation (no memory limit would apply to it)"
                )
            if minimum > limit.limit:
                return error_new(
                    f"memory minimum size of {minimum} bytes exceeds the memory limit of "
                    f"{limit.limit} bytes"
                )
            # Wasmtime compiles bounds checks away against this reservation
            # and guard: all of it must be mapped, inaccessible past the size.
            capacity = round_up(max(reserved, minimum, page))
            mapped = capacity + round_up(guard)
            # The best fit: the reservation whose zeroed, accessible part is
            # the smallest that holds ``minimum``, so that a small memory
            # (the payload box) does not take the large one the next
            # instance's plugin memory needs.
            memory = None
            scratch = limit.scratch
            with spares_lock:
                if scratch and scratch_spares:
                    spare = scratch_spares[-1]
                    fits = spare.capacity == capacity and spare.mapped == mapped
                    if fits and minimum <= spare.zeroed:
                        memory = scratch_spares.pop()
                if memory is None:
                    best = -1
                    for index, spare in enumerate(spares):
                        if (
                            spare.capacity == capacity
                            and spare.mapped == mapped
                            and minimum <= spare.zeroed
                            and (best < 0 or spare.zeroed < spares[best].zeroed)
                        ):
                            best = index
                    if best >= 0:
                        memory = spares.pop(best)
                        spare_bytes[0] -= memory.zeroed
            accessible = -(-minimum // page) * page
            if memory is not None:
                if memory.zeroed > accessible:  # zeroed, but not to be accessible
                    mprotect(memory.base + accessible, memory.zeroed - accessible, _PROT_NONE)
                memory.limit = limit
                if minimum:
                    memory.resize(minimum)
            else:
                base = mmap_(None, mapped, _PROT_NONE, _MAP_FLAGS, -1, 0)
                if base is None or base == _MAP_FAILED:
                    return error_new(f"cannot reserve memory: {os.strerror(ctypes.get_errno())}")
                if minimum and mprotect(base, accessible, _PROT_READ_WRITE) != 0:
                    munmap(base, mapped)
                    return error_new(f"cannot commit memory: {os.strerror(ctypes.get_errno())}")
                memory = _Memory(base, capacity, mapped, pack, limit)
                memory.resize(minimum)
            memory.scratch = scratch
            memories[ctypes.addressof(memory.cell)] = memory
            limit.memories.append(memory)
            memmove(memory_ret, memory.linear, linear_size)
            return 0
        except BaseException as exc:
            return error_new(f"cannot create memory: {exc!r}")

    callbacks = (capi.MEMORY_NEW(new_memory), get_cb, grow_cb, finalizer_cb)
    for callback in callbacks:
        capi.keep_forever(callback)
    return callbacks


_new_memory: object | None = None
_install_lock = threading.Lock()


def install(config: object) -> None:
    """Make ``config``'s engine allocate its linear memories here (call before Engine())."""
    global _new_memory
    with _install_lock:
        if _new_memory is None:
            _new_memory = _callbacks()[0]
    capi.set_host_memory_creator(config, capi.function_address(_new_memory))
