"""Direct calls into wasmtime's C API, for the hot path.

wasmtime-py's ``Func.__call__`` looks up the function type and converts every
value on each call (~25 µs). The runtime instead calls the C API through the
shared library wasmtime-py ships, with its own ctypes prototypes: integer
arguments in, integer results out, no per-call type checks (~1 µs). The
prototypes here are fresh function objects, so they never alter the ones
wasmtime-py itself uses.

Everything here takes and returns plain integers (addresses), except
``call_prepared``, which takes the ctypes instances ``prepared_call`` made;
callers own the objects those addresses point into and keep them alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import struct
from collections.abc import Callable
from ctypes import CFUNCTYPE, c_bool, c_char_p, c_int64, c_size_t, c_ssize_t, c_uint64, c_void_p
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component._enter import maybe_raise_last_exn

__all__ = [
    "ARGS_BYTES",
    "ARGS_VIEWS",
    "HOST_CALLBACK",
    "NO_FINALIZER",
    "call_prepared",
    "call_unchecked",
    "fuel_counter",
    "increment_epoch",
    "memory_data",
    "memory_data_size",
    "pack_args",
    "pack_i32_result",
    "prepared_call",
    "set_epoch_deadline",
    "set_fuel",
    "string_at",
    "trap_new",
    "unpack_i32",
    "unpack_i64",
    "unpack_two_u32",
]


# Every C function bound here, by name (tests/test_capi.py checks them against
# the pinned wasmtime).
C_FUNCTIONS: list[str] = []


def _offset(struct: Any, field: str) -> int:
    """The offset of ``field`` in a ctypes structure of the bindings."""
    return int(getattr(struct, field).offset)


def _proto(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    if name not in C_FUNCTIONS:
        C_FUNCTIONS.append(name)
    return CFUNCTYPE(restype, *argtypes)((name, ffi.dll))  # type: ignore[arg-type]


def _quick(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    """``_proto`` for a function that runs no wasm and never blocks: called holding the GIL.

    Releasing and re-taking the GIL costs more than such a call, and with
    other threads waiting, hands the GIL away in the middle of a plugin call.
    """
    if name not in C_FUNCTIONS:
        C_FUNCTIONS.append(name)
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, ffi.dll))  # type: ignore[arg-type]


# wasmtime_error_t *wasmtime_func_call_unchecked(context, func, args_and_results, len, trap_out)
call_unchecked = _proto(
    "wasmtime_func_call_unchecked", c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p
)


def _bare(name: str, restype: type[c_void_p]) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    """A C function with no prototype, for arguments made once (``prepared_call``).

    ctypes hands ctypes instances to a function without ``argtypes`` as they
    are, where a prototype converts each Python integer anew on every call
    (about 40 ns an argument). Called like ``_proto``'s, giving up the GIL.
    """
    if name not in C_FUNCTIONS:
        C_FUNCTIONS.append(name)
    function = ffi.dll[name]  # a new function object: wasmtime-py's keeps its prototype
    function.restype = restype
    return function


# call_prepared(*prepared_call(...)): wasmtime_func_call_unchecked, its
# arguments made once per instance (a plugin's execute, or the copier's run).
call_prepared = _bare("wasmtime_func_call_unchecked", c_void_p)


def prepared_call(context: int, func: int, args: int, count: int, trap: int) -> tuple[Any, ...]:
    """``call_unchecked``'s arguments as ctypes instances, for ``call_prepared``."""
    return (c_void_p(context), c_void_p(func), c_void_p(args), c_size_t(count), c_void_p(trap))


# wasmtime_error_t *wasmtime_context_set_fuel(context, fuel)
set_fuel = _quick("wasmtime_context_set_fuel", c_void_p, c_void_p, c_uint64)
# void wasmtime_engine_increment_epoch(engine): an atomic add, so the epoch
# thread does not give the GIL away and wait to take it back on every tick
increment_epoch = _quick("wasmtime_engine_increment_epoch", None, c_void_p)
# wasmtime_error_t *wasmtime_context_get_fuel(const context, uint64_t *fuel)
get_fuel = _quick("wasmtime_context_get_fuel", c_void_p, c_void_p, c_void_p)
# void wasmtime_context_set_epoch_deadline(context, ticks_beyond_current)
set_epoch_deadline = _quick("wasmtime_context_set_epoch_deadline", None, c_void_p, c_uint64)
# uint8_t *wasmtime_memory_data(context, memory)
memory_data = _quick("wasmtime_memory_data", c_void_p, c_void_p, c_void_p)
# size_t wasmtime_memory_data_size(context, memory)
memory_data_size = _quick("wasmtime_memory_data_size", c_size_t, c_void_p, c_void_p)
# wasm_trap_t *wasmtime_trap_new(const char *msg, size_t len)
trap_new = _proto("wasmtime_trap_new", c_void_p, ctypes.c_char_p, c_size_t)

# -- stores ---------------------------------------------------------------------
#
# A fresh instance starts with a store: made here through the C API, as
# ``wasmtime.Store(engine)`` followed by ``set_limits`` would make it, at a
# third of their cost (their ctypes wrappers check and convert every argument).

# wasmtime_store_t *wasmtime_store_new(engine, data, finalizer)
_store_new = _quick("wasmtime_store_new", c_void_p, c_void_p, c_void_p, c_void_p)
# wasmtime_context_t *wasmtime_store_context(store)
_store_context = _quick("wasmtime_store_context", c_void_p, c_void_p)
# void wasmtime_store_limiter(store, memory_size, table_elements, instances, tables, memories)
_store_limiter = _quick(
    "wasmtime_store_limiter", None, c_void_p, c_int64, c_int64, c_int64, c_int64, c_int64
)
# void wasmtime_store_delete(store): runs no wasm; the memories' finalizers
# (runtime/_memory.py) run inside it, on this thread.
_store_delete = _quick("wasmtime_store_delete", None, c_void_p)
_STORE_POINTER = ctypes.POINTER(ffi.wasmtime_store_t)
_CONTEXT_POINTER = ctypes.POINTER(ffi.wasmtime_context_t)


class OwnedStore:
    """A store made through the C API, freed when this object goes.

    What a core module's instance keeps: a ``wasmtime.Store`` costs a few
    µs more to make and to free (its ``Managed`` machinery, two ctypes
    pointer objects), on every fresh instance. ``wasmtime()`` gives a
    ``wasmtime.Store`` over the same store, for wasmtime-py's own APIs; it
    keeps this object (so the store) alive, and this object does not keep
    it: no reference cycle, so the store is freed as soon as both are gone.
    """

    __slots__ = ("address", "context", "engine")

    def __init__(self, address: int, context: int, engine: wasmtime.Engine) -> None:
        self.address = address
        self.context = context
        self.engine = engine

    def wasmtime(self) -> wasmtime.Store:
        """A new ``wasmtime.Store`` over this store, which does not free it."""
        view = _BorrowedStore.__new__(_BorrowedStore)
        # ctypes.cast of an int keeps no reference, so no cycle (see _pointer_value)
        view._Managed__ptr = ctypes.cast(self.address, _STORE_POINTER)  # type: ignore[attr-defined]
        view._Store__context = ctypes.cast(self.context, _CONTEXT_POINTER)  # type: ignore[attr-defined]
        view.engine = self.engine
        view.owner = self
        return view

    def __del__(self, _delete: Any = _store_delete) -> None:
        # (a default argument: this can run while the interpreter tears down
        # its modules' globals)
        _delete(self.address)


class _BorrowedStore(wasmtime.Store):
    """A ``wasmtime.Store`` over an ``OwnedStore``'s store, which it does not free."""

    owner: OwnedStore

    def _delete(self, ptr: Any) -> None:
        pass


def new_store(
    engine: wasmtime.Engine,
    engine_address: int,
    *,
    table_elements: int,
    instances: int,
    tables: int,
    memories: int,
) -> OwnedStore:
    """A store of ``engine`` (at ``engine_address``) with these limits.

    A negative limit is no limit, as in ``Store.set_limits``.
    """
    pointer = _store_new(engine_address, None, None)
    if not pointer:
        raise MemoryError("wasmtime could not create a store")
    _store_limiter(pointer, -1, table_elements, instances, tables, memories)
    return OwnedStore(pointer, _store_context(pointer), engine)


# -- instantiation --------------------------------------------------------------
#
# A fresh instance is made without wasmtime-py's wrappers: its ``Instance``
# builds a Python object for every export and its ``WasiConfig`` a ctypes
# callback per stream per store (together ~200 µs of a ~250 µs instantiate).

# wasmtime_error_t *wasmtime_instance_pre_instantiate(pre, context, instance_out, trap_out)
instance_pre_instantiate = _proto(
    "wasmtime_instance_pre_instantiate", c_void_p, c_void_p, c_void_p, c_void_p, c_void_p
)
# bool wasmtime_instance_export_get(context, instance, name, name_len, extern_out)
instance_export_get = _quick(
    "wasmtime_instance_export_get", c_bool, c_void_p, c_void_p, c_char_p, c_size_t, c_void_p
)
# wasmtime_error_t *wasmtime_instance_new(context, module, imports, nimports, instance_out, trap_out)
# A plugin's module may have a start function, which is wasm that can run
# long: it is instantiated without the GIL.
instance_new = _proto(
    "wasmtime_instance_new", c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_void_p
)
# The same, for the runtime's own helper modules (``_payload``): they have no
# start function, so instantiating one runs no wasm, only allocation.
helper_instance_new = _quick(
    "wasmtime_instance_new", c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_void_p
)
# bool wasmtime_linker_get(linker, context, module, module_len, name, name_len, extern_out)
linker_get = _quick(
    "wasmtime_linker_get",
    c_bool,
    c_void_p,
    c_void_p,
    c_char_p,
    c_size_t,
    c_char_p,
    c_size_t,
    c_void_p,
)
# A WASI context is made for every fresh instance: its calls open nothing and
# run no wasm, so they hold the GIL (_quick); preopen_dir opens a directory.
# wasi_config_t *wasi_config_new(void); the store takes it over in wasmtime_context_set_wasi
wasi_config_new = _quick("wasi_config_new", c_void_p)
# bool wasi_config_set_env(config, count, names, values)
wasi_config_set_env = _quick("wasi_config_set_env", c_bool, c_void_p, c_size_t, c_void_p, c_void_p)
# bool wasi_config_preopen_dir(config, host_path, guest_path, fs_mutable)
wasi_config_preopen_dir = _proto(
    "wasi_config_preopen_dir", c_bool, c_void_p, c_char_p, c_char_p, c_bool
)
# ssize_t callback(data, bytes, len): a WASI stdout/stderr write
OUTPUT_CALLBACK = CFUNCTYPE(c_ssize_t, c_void_p, c_void_p, c_size_t)
# void wasi_config_set_std{out,err}_custom(config, callback, data, finalizer)
wasi_config_set_stdout_custom = _quick(
    "wasi_config_set_stdout_custom", None, c_void_p, OUTPUT_CALLBACK, c_void_p, c_void_p
)
wasi_config_set_stderr_custom = _quick(
    "wasi_config_set_stderr_custom", None, c_void_p, OUTPUT_CALLBACK, c_void_p, c_void_p
)
# wasmtime_error_t *wasmtime_context_set_wasi(context, config)
context_set_wasi = _quick("wasmtime_context_set_wasi", c_void_p, c_void_p, c_void_p)

EXTERN_SIZE = ctypes.sizeof(ffi.wasmtime_extern_t)
EXTERN_OF = _offset(ffi.wasmtime_extern_t, "of")  # the func/memory/... handle inside an extern
EXTERN_FUNC = ffi.WASMTIME_EXTERN_FUNC.value
EXTERN_MEMORY = ffi.WASMTIME_EXTERN_MEMORY.value
INSTANCE_SIZE = ctypes.sizeof(ffi.wasmtime_instance_t)


def output_callback(write: Callable[[bytes], object]) -> object:
    """A WASI output callback that hands each write to ``write`` (keep it alive)."""

    def output(_data: int, address: int, size: int) -> int:
        # Never unwind through wasmtime: on a failure the bytes are dropped.
        with contextlib.suppress(BaseException):
            write(ctypes.string_at(address, size))
        return size

    return OUTPUT_CALLBACK(output)


def char_pointers(strings: list[bytes]) -> ctypes.Array[c_char_p]:
    """A ``const char *[]`` of NUL-terminated copies of ``strings`` (keep it alive)."""
    return (c_char_p * max(1, len(strings)))(*strings)


def instance_from_raw(address: int) -> object:
    """A ``wasmtime.Instance`` for the raw ``wasmtime_instance_t`` at ``address`` (cold paths)."""
    from wasmtime import Instance

    raw = ffi.wasmtime_instance_t.from_buffer_copy(ctypes.string_at(address, INSTANCE_SIZE))
    return Instance._from_raw(raw)


# The callback type of wasmtime_linker_define_func_unchecked, with integer
# arguments: (env, caller, args_and_results, nargs_and_results) -> wasm_trap_t*.
HOST_CALLBACK = CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_size_t)
NO_FINALIZER = ctypes.cast(0, CFUNCTYPE(None, c_void_p))

string_at = ctypes.string_at

# wasmtime_val_raw_t is a 16-byte union; an i32 or i64 sits at its start.
_RAW = ctypes.sizeof(ffi.wasmtime_val_raw_t)
ARGS_BYTES = 2 * _RAW
_two_u32 = struct.Struct(f"<I{_RAW - 4}xI")
_i32 = struct.Struct("<i")
_i64 = struct.Struct("<q")
pack_args = _two_u32.pack_into
unpack_i32 = _i32.unpack_from
unpack_i64 = _i64.unpack_from


# A host function's arguments and results: read and written through a view
# of the raw values (``ARGS_VIEWS``), with these struct methods (two values as
# unsigned 32-bit integers at an offset; an i32 result into the first value).
unpack_two_u32 = _two_u32.unpack_from
pack_i32_result = _i32.pack_into
ARGS_VIEW_BYTES = 4 * _RAW  # the most raw values a host function of the runtime has


class _ArgsViews(dict[int, memoryview]):
    """Views of host-call argument arrays, by address, made on first use.

    Wasmtime hands a host function its arguments in an array on the native
    stack, at the same address for every call from the same depth of one
    thread: a view made once serves them all (a ctypes object per call cost
    more than the rest of ``response_read``, benchmarks/bus.py). A view is
    only used when wasmtime passes its address again, so it is valid then.
    """

    def __missing__(self, address: int) -> memoryview:
        if len(self) >= 256:  # stacks of many threads: start over
            self.clear()
        view = self[address] = writable_view(address, ARGS_VIEW_BYTES)
        return view


ARGS_VIEWS = _ArgsViews()


def define_host_func(
    linker: object, module: str, name: str, functype: object, callback: object
) -> None:
    """Define ``module.name`` on ``linker`` as an unchecked host function.

    ``callback`` must be a ``HOST_CALLBACK`` kept alive by the caller for as
    long as the linker and any instance made from it.
    """
    module_bytes = module.encode()
    name_bytes = name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),  # type: ignore[attr-defined]
        module_bytes,
        len(module_bytes),
        name_bytes,
        len(name_bytes),
        functype.ptr(),  # type: ignore[attr-defined]
        ctypes.cast(callback, ffi.wasmtime_func_unchecked_callback_t),  # type: ignore[arg-type]
        None,
        NO_FINALIZER,
    )
    if error:
        from wasmtime import WasmtimeError

        raise WasmtimeError._from_ptr(error)


def memory_view(address: int, size: int) -> memoryview:
    """A writable byte view of ``size`` bytes of host memory at ``address``.

    Slicing a memoryview costs a fraction of a ctypes call; the caller must
    drop the view before the memory it covers goes away.
    """
    return memoryview((ctypes.c_ubyte * size).from_address(address)).cast("B")


_view_from_memory_rw = ctypes.PYFUNCTYPE(
    ctypes.py_object, c_void_p, ctypes.c_ssize_t, ctypes.c_int
)(("PyMemoryView_FromMemory", ctypes.pythonapi))
_PYBUF_WRITE = 0x200


def writable_view(address: int, size: int) -> memoryview:
    """A writable byte view of ``size`` bytes at ``address``, without a ctypes array type.

    (``memory_view`` makes a ctypes array type per distinct size, which ctypes
    keeps forever.) The caller must drop the view before the memory goes away.
    """
    return _view_from_memory_rw(address, size, _PYBUF_WRITE)  # type: ignore[no-any-return]


def take_trap(address: int) -> object:
    """Wrap an owned ``wasm_trap_t*`` as a ``wasmtime.Trap`` (which frees it)."""
    from wasmtime import Trap

    return Trap._from_ptr(ctypes.cast(address, ctypes.POINTER(ffi.wasm_trap_t)))


def take_error(address: int) -> object:
    """Wrap an owned ``wasmtime_error_t*`` as a ``wasmtime.WasmtimeError``."""
    from wasmtime import WasmtimeError

    return WasmtimeError._from_ptr(ctypes.cast(address, ctypes.POINTER(ffi.wasmtime_error_t)))


def address_of(obj: ctypes._CData) -> int:
    return ctypes.addressof(obj)


def context_address(store: object) -> int:
    """The ``wasmtime_context_t*`` of a ``wasmtime.Store``."""
    return _pointer_value(store._context())  # type: ignore[attr-defined]


def _pointer_value(pointer: object) -> int:
    """The address a ctypes pointer holds.

    Not ``ctypes.cast(pointer, c_void_p)``: the cast result keeps the pointer
    in a dict that refers back to itself, a reference cycle that only the
    garbage collector frees, two objects for every store created.
    """
    return c_void_p.from_address(ctypes.addressof(pointer)).value or 0  # type: ignore[arg-type]


def memory_address(memory: object) -> int:
    """The address of a ``wasmtime.Memory``'s ``wasmtime_memory_t`` (alive as long as it)."""
    return ctypes.addressof(memory._memory)  # type: ignore[attr-defined]


def func_address(func: object) -> int:
    """The address of the C function handle of a ``wasmtime.Func`` or a component ``Func``.

    (``wasmtime_func_t`` / ``wasmtime_component_func_t``; alive as long as the object.)
    """
    return ctypes.addressof(func._func)  # type: ignore[attr-defined]


def args_buffer() -> tuple[ctypes.Array[ctypes.c_ubyte], int]:
    """Zeroed room for two raw values (a call's arguments and results), and its address."""
    array = (ctypes.c_ubyte * ARGS_BYTES)()
    return array, ctypes.addressof(array)


def args_at(address: int) -> ctypes.Array[ctypes.c_ubyte]:
    """The two raw values at ``address`` (inside a buffer the caller keeps), as bytes."""
    return (ctypes.c_ubyte * ARGS_BYTES).from_address(address)


def copy_extern(destination: int, source: int) -> None:
    """Copy one ``wasmtime_extern_t`` (a plain value: kind and handle)."""
    ctypes.memmove(destination, source, EXTERN_SIZE)


def pointer_slot() -> tuple[ctypes.c_void_p, int]:
    """A pointer-sized out-parameter (``slot.value``, None when NULL) and its address."""
    slot = c_void_p()
    return slot, ctypes.addressof(slot)


def raise_pending_host_exception() -> None:
    """Re-raise a Python exception a component host function raised, as wasmtime-py does.

    wasmtime-py parks it in a module global while the call unwinds
    (``wasmtime.component._enter``); a direct call must collect it the same way.
    """
    maybe_raise_last_exn()


def pointer_of(managed: object) -> int:
    """The C pointer a wasmtime-py object (``InstancePre``, ``Engine``, ...) wraps."""
    return _pointer_value(managed.ptr())  # type: ignore[attr-defined]


# -- components ---------------------------------------------------------------
#
# wasmtime-py's component ``Func.__call__`` walks the function's types and
# converts every value on each call (~150 µs for an action request). The
# component runtime instead lays the request out once as C
# ``wasmtime_component_val_t`` values in memory it owns, patches the strings
# and numbers per call, and reads the result straight out of the C value.
#
# Ownership (wasmtime's c-api, ``component/func.rs`` and ``val.rs``): the
# arguments are borrowed (``const``; wasmtime copies them into its own values),
# so they may live in Python-owned memory. The result is written into the
# caller's slot and owned by the caller, who frees it, with everything it
# points to, with ``wasmtime_component_val_delete``; the slot must hold a
# droppable value (a zeroed one is ``bool false``) before each call.
# ``wasmtime_component_func_post_return`` is a no-op after a call here (the
# call runs post-return itself; wasmtime-py never calls it either).

# wasmtime_error_t *wasmtime_component_func_call(func, context, args, nargs, results, nresults)
component_func_call = _proto(
    "wasmtime_component_func_call",
    c_void_p,
    c_void_p,
    c_void_p,
    c_void_p,
    c_size_t,
    c_void_p,
    c_size_t,
)
# void wasmtime_component_val_delete(wasmtime_component_val_t *value)
component_val_delete = _proto("wasmtime_component_val_delete", None, c_void_p)

# The layout of the C component values, from the bindings' own structures.
CV_BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
CV_U8 = ffi.WASMTIME_COMPONENT_U8.value
CV_S64 = ffi.WASMTIME_COMPONENT_S64.value
CV_U64 = ffi.WASMTIME_COMPONENT_U64.value
CV_STRING = ffi.WASMTIME_COMPONENT_STRING.value
CV_LIST = ffi.WASMTIME_COMPONENT_LIST.value
CV_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
CV_OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
CV_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value
CV_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)  # one value
CV_OF = _offset(ffi.wasmtime_component_val_t, "of")  # its payload (the union)
CV_ENTRY_SIZE = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry_t)  # one record field
CV_ENTRY_NAME = _offset(ffi.wasmtime_component_valrecord_entry_t, "name")
CV_ENTRY_VAL = _offset(ffi.wasmtime_component_valrecord_entry_t, "val")
# Within the payload: a string, list or record is (size, data pointer); an
# option is a pointer (NULL for none); a result is (is_ok, pointer to the value).
CV_VEC_SIZE = _offset(ffi.wasm_byte_vec_t, "size")
CV_VEC_DATA = _offset(ffi.wasm_byte_vec_t, "data")
CV_RESULT_OK = _offset(ffi.wasmtime_component_valresult_t, "is_ok")
CV_RESULT_VAL = _offset(ffi.wasmtime_component_valresult_t, "val")
assert (
    _offset(ffi.wasmtime_component_vallist_t, "size")
    == _offset(ffi.wasmtime_component_valrecord_t, "size")
    == CV_VEC_SIZE
)
assert (
    _offset(ffi.wasmtime_component_vallist_t, "data")
    == _offset(ffi.wasmtime_component_valrecord_t, "data")
    == CV_VEC_DATA
)


def byte_buffer(size: int) -> tuple[ctypes.Array[ctypes.c_ubyte], int, memoryview]:
    """Zeroed host memory of ``size`` bytes: the array (keep it), its address, a view."""
    array = (ctypes.c_ubyte * size)()
    return array, ctypes.addressof(array), memoryview(array).cast("B")


# PyObject *PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags): a
# fresh prototype (with the GIL held), unlike ``memory_view`` it makes no ctypes
# array type, which ctypes caches forever for each distinct size.
_view_from_memory = ctypes.PYFUNCTYPE(ctypes.py_object, c_void_p, ctypes.c_ssize_t, ctypes.c_int)(
    ("PyMemoryView_FromMemory", ctypes.pythonapi)
)
_PYBUF_READ, _PYBUF_WRITE = 0x100, 0x200


def readonly_view(address: int, size: int) -> memoryview:
    """A read-only byte view of ``size`` bytes of host memory at ``address``.

    The caller must drop the view before the memory it covers goes away.
    """
    return _view_from_memory(address, size, _PYBUF_READ)  # type: ignore[no-any-return]


# -- host linear memory (see _memory) -------------------------------------------
#
# ``wasmtime_config_host_memory_creator_set`` lets the host allocate every
# linear memory the engine creates (wasmtime's c-api, ``config.rs``,
# ``CHostLinearMemory``). Wasmtime calls ``new_memory`` once per memory, on
# the thread that instantiates; ``get_memory`` (base, byte size, capacity)
# when it creates the memory and while it grows it, never on a plain call
# or a host read of memory; ``grow_memory`` with the new byte size, where an
# error makes ``memory.grow`` return -1 (no trap); the finalizer when the
# store drops the memory.

# uint8_t *get_memory(void *env, size_t *byte_size, size_t *maximum_byte_size)
MEMORY_GET = CFUNCTYPE(c_void_p, c_void_p, ctypes.POINTER(c_size_t), ctypes.POINTER(c_size_t))
# wasmtime_error_t *grow_memory(void *env, size_t new_size)
MEMORY_GROW = CFUNCTYPE(c_size_t, c_void_p, c_size_t)
# void finalizer(void *env)
MEMORY_FINALIZER = CFUNCTYPE(None, c_void_p)
# wasmtime_error_t *new_memory(void *env, const wasm_memorytype_t *ty, size_t minimum,
#     size_t maximum, size_t reserved_size_in_bytes, size_t guard_size_in_bytes,
#     wasmtime_linear_memory_t *memory_ret)
MEMORY_NEW = CFUNCTYPE(
    c_size_t, c_void_p, c_void_p, c_size_t, c_size_t, c_size_t, c_size_t, c_void_p
)
# wasmtime_error_t *wasmtime_error_new(const char *message)
_error_new = _proto("wasmtime_error_new", c_size_t, ctypes.c_char_p)


class _LinearMemory(ctypes.Structure):
    # wasmtime_linear_memory_t with plain addresses for its function pointers.
    _fields_ = (
        ("env", c_void_p),
        ("get_memory", c_void_p),
        ("grow_memory", c_void_p),
        ("finalizer", c_void_p),
    )


class _MemoryCreator(ctypes.Structure):
    # wasmtime_memory_creator_t, likewise.
    _fields_ = (("env", c_void_p), ("new_memory", c_void_p), ("finalizer", c_void_p))


def function_address(callback: object) -> int:
    """The C function pointer of a ctypes callback (the callback must stay alive)."""
    return ctypes.cast(callback, c_void_p).value or 0  # type: ignore[arg-type]


def error_new(message: str) -> int:
    """A new owned ``wasmtime_error_t*`` carrying ``message`` (for wasmtime to free)."""
    return int(_error_new(message.encode("utf-8", "replace")))


def pack_linear_memory(env: int, get_memory: int, grow_memory: int, finalizer: int) -> bytes:
    """A ``wasmtime_linear_memory_t``, as the bytes new_memory copies to its ``memory_ret``.

    Copied with ``ctypes.memmove``, ``LINEAR_MEMORY_SIZE`` bytes.
    """
    return bytes(_LinearMemory(env, get_memory, grow_memory, finalizer))


LINEAR_MEMORY_SIZE = ctypes.sizeof(_LinearMemory)


def set_host_memory_creator(config: object, new_memory: int) -> None:
    """Make every linear memory of engines built from ``config`` come from ``new_memory``.

    Wasmtime copies the creator (a function pointer, no environment and no
    finalizer); ``new_memory`` must stay callable for as long as the engine lives.
    """
    creator = _MemoryCreator(None, new_memory, None)
    ffi.wasmtime_config_host_memory_creator_set(
        config.ptr(),  # type: ignore[attr-defined]
        ctypes.cast(ctypes.pointer(creator), ctypes.POINTER(ffi.wasmtime_memory_creator_t)),
    )


_incref = ctypes.pythonapi.Py_IncRef
_incref.restype, _incref.argtypes = None, (ctypes.py_object,)


def keep_forever(obj: object) -> None:
    """Leak one reference to ``obj``, so it outlives the interpreter's teardown.

    For C callbacks wasmtime may call while (or after) module globals are
    cleared at exit, e.g. the finalizer of a memory whose store is freed then.
    """
    _incref(obj)


# -- the fuel counter, written without a C call -----------------------------------
#
# ``wasmtime_context_set_fuel(ctx, n)``, for n up to i64::MAX and with no fuel
# yield interval (wasmtime-py sets none: it has no async calls), stores ``-n``
# in the store's ``VMStoreContext.fuel_consumed`` and 0 in its reserve
# (wasmtime's ``store.rs``, ``set_fuel``). That counter sits at one offset from
# the context (the store's ``StoreInner``) for a given wasmtime build, so the
# call path refills the tank by writing it: about 0.05 µs against 0.45 µs for
# the C call. The offset is found once by search, proven by reading it back
# through ``wasmtime_context_get_fuel``, and checked again for every store;
# where any of that fails the caller keeps calling ``set_fuel``.
# tests/test_capi.py checks it against the pinned wasmtime.

_FUEL_PROBES = (0x5A5A_1234_6789, 0x3C3C_9876_5431, 0x0F0F_2468_ACE1)
_fuel_offset: int | None = None
_fuel_searched = False


def fuel_left(ctx: int) -> int | None:
    """The fuel left in the store of context ``ctx`` (None: wasmtime could not say)."""
    left = c_uint64()
    error = get_fuel(ctx, ctypes.addressof(left))
    if error:
        take_error(error)
        return None
    return int(left.value)


def _readable_span(address: int) -> int:
    """How many bytes from ``address`` to the end of its mapping (0: unknown)."""
    try:
        with open("/proc/self/maps", encoding="ascii") as maps:
            for line in maps:
                low, _, high = line.split(" ", 1)[0].partition("-")
                if int(low, 16) <= address < int(high, 16) and "r" in line.split(" ", 2)[1]:
                    return int(high, 16) - address
    except (OSError, ValueError):
        pass
    return 0


def _find_fuel_offset(ctx: int) -> int | None:
    span = min(_readable_span(ctx), 16384)
    first, second, third = _FUEL_PROBES
    if span < 8 or set_fuel(ctx, first):
        return None
    image = ctypes.string_at(ctx, span)
    found = [at for at in range(0, span - 7, 8) if _i64.unpack_from(image, at)[0] == -first]
    if set_fuel(ctx, second):
        return None
    found = [at for at in found if c_int64_at(ctx + at) == -second]
    if len(found) != 1:
        return None
    ctypes.c_int64.from_address(ctx + found[0]).value = -third
    return found[0] if fuel_left(ctx) == third else None


def c_int64_at(address: int) -> int:
    """The signed 64-bit integer at ``address``."""
    return int(ctypes.c_int64.from_address(address).value)


def fuel_counter(ctx: int, fuel: int) -> memoryview | None:
    """A one-item view (``view[0] = -fuel`` refills) of the store's fuel counter, or None.

    ``fuel`` is what the store was last given with ``set_fuel``; the view is
    only handed out when the counter holds exactly that. It must be dropped
    before the store is freed.
    """
    global _fuel_offset, _fuel_searched
    if not 0 < fuel <= 0x7FFF_FFFF_FFFF_FFFF:
        return None
    if not _fuel_searched:
        _fuel_searched = True
        _fuel_offset = _find_fuel_offset(ctx)
        if set_fuel(ctx, fuel):  # the search changed it
            return None
    if _fuel_offset is None:
        return None
    counter = _view_from_memory(ctx + _fuel_offset, 8, _PYBUF_WRITE).cast("q")
    return counter if counter[0] == -fuel else None
