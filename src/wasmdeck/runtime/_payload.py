"""``set_output`` / ``set_error`` in wasm: the payload copied out without Python.

Every call that returns something calls ``wasmdeck.set_output`` (or
``set_error``) once. As a host function that is a ctypes callback into
Python on each call; here it is two tiny wasm modules linked into the
plugin's own store instead, so the call stays inside wasm
(``benchmarks/call_overhead.py`` measures the difference):

- the *box* is instantiated before the plugin. It exports ``set_output`` and
  ``set_error`` (what the plugin imports), which ``call_indirect`` through
  its table, and its memory ``out``, where payloads are copied to;
- the *copier* is instantiated after the plugin, importing the plugin's
  ``memory``, the box's ``out`` and table. Its element segment puts its two
  functions into the box's table. Each checks the payload against the
  ``max_output`` limit and the plugin's memory bounds, grows ``out`` as
  needed and copies the payload with ``memory.copy`` (the plugin may free
  its buffer before ``execute`` returns, so the copy is made at once).

The copier also imports the plugin's ``execute`` and exports ``run``, which
the host calls instead: it resets the header, calls ``execute`` and returns
what the host needs in one i64: ``execute``'s code in the low half, and in
the high one the output length + 1, or ``RUN_SEE_HEADER`` (-1, making the
i64 negative) when an error message was set. So the common call touches the
header only in wasm.

The host reads the header of ``out`` after the call. A violation (too
large, out of bounds, no memory for the copy) is recorded there, with the
pointer and length, before the copier traps, so the call fails with the
same typed error as a host function would raise. The ABI (docs/abi.md) is
unchanged: the plugin imports the same two functions.

Header of ``out`` (little-endian i32): 0 max_output, 4 output length (-1:
none), 8 error length (-1: none), 12 violation, 16 its pointer, 20 its
length, 24 which function (0 set_output, 1 set_error). Output at ``DATA``;
an error message right after the output (once an error is set, later
output is checked but not kept: the error wins, as it always did).
"""

from __future__ import annotations

import struct
import threading
import weakref

import wasmtime

__all__ = [
    "DATA",
    "NO_MEMORY",
    "OUT_OF_BOUNDS",
    "RUN_SEE_HEADER",
    "STATE",
    "TOO_LARGE",
    "helper_modules",
    "read_header",
    "read_violation",
    "reset_header",
    "write_limit",
]

DATA = 64
TOO_LARGE, OUT_OF_BOUNDS, NO_MEMORY = 1, 2, 3
RUN_SEE_HEADER = -1  # the high half of run's answer when an error message was set

_BOX = """
(module
  (type $payload (func (param i32 i32)))
  (table (export "table") 2 funcref)
  (memory (export "out") 1)
  (func (export "set_output") (param i32 i32)
    (call_indirect (type $payload) (local.get 0) (local.get 1) (i32.const 0)))
  (func (export "set_error") (param i32 i32)
    (call_indirect (type $payload) (local.get 0) (local.get 1) (i32.const 1))))
"""

_COPIER = f"""
(module
  (import "plugin" "memory" (memory $src 0))
  (import "box" "out" (memory $dst 1))
  (import "box" "table" (table 2 funcref))
  (import "plugin" "execute" (func $execute (param i32 i32) (result i32)))
  (elem (table 0) (i32.const 0) func $set_output $set_error)
  ;; The host's entry: a fresh header, the plugin's execute, the outcome in one i64.
  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $code i32)
    (i32.store $dst (i32.const 4) (i32.const -1))
    (i32.store $dst (i32.const 8) (i32.const -1))
    (i32.store $dst (i32.const 12) (i32.const 0))
    (local.set $code (call $execute (local.get $ptr) (local.get $len)))
    (if (i32.ne (i32.load $dst (i32.const 8)) (i32.const -1))
      (then (return (i64.or (i64.const {RUN_SEE_HEADER << 32})
                            (i64.extend_i32_u (local.get $code))))))
    (i64.or
      (i64.shl (i64.extend_i32_u (i32.add (i32.load $dst (i32.const 4)) (i32.const 1)))
               (i64.const 32))
      (i64.extend_i32_u (local.get $code))))
  (func $fail (param $code i32) (param $ptr i32) (param $len i32) (param $which i32)
    (i32.store $dst (i32.const 12) (local.get $code))
    (i32.store $dst (i32.const 16) (local.get $ptr))
    (i32.store $dst (i32.const 20) (local.get $len))
    (i32.store $dst (i32.const 24) (local.get $which))
    unreachable)
  ;; Trap with a violation unless ptr..ptr+len is a payload the host accepts.
  (func $check (param $ptr i32) (param $len i32) (param $which i32)
    (if (i32.gt_u (local.get $len) (i32.load $dst (i32.const 0)))
      (then (call $fail (i32.const {TOO_LARGE}) (local.get $ptr) (local.get $len)
                        (local.get $which))))
    (if (i64.gt_u
          (i64.add (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $len)))
          (i64.shl (i64.extend_i32_u (memory.size $src)) (i64.const 16)))
      (then (call $fail (i32.const {OUT_OF_BOUNDS}) (local.get $ptr) (local.get $len)
                        (local.get $which)))))
  ;; Copy the payload to $at in out, growing out to hold it.
  (func $copy (param $at i32) (param $ptr i32) (param $len i32) (param $which i32)
    (local $pages i32)
    (local.set $pages
      (i32.sub
        (i32.wrap_i64 (i64.shr_u
          (i64.add (i64.add (i64.extend_i32_u (local.get $at)) (i64.extend_i32_u (local.get $len)))
                   (i64.const 65535))
          (i64.const 16)))
        (memory.size $dst)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then (if (i32.eq (memory.grow $dst (local.get $pages)) (i32.const -1))
        (then (call $fail (i32.const {NO_MEMORY}) (local.get $ptr) (local.get $len)
                          (local.get $which))))))
    (memory.copy $dst $src (local.get $at) (local.get $ptr) (local.get $len)))
  (func $set_output (param $ptr i32) (param $len i32)
    (call $check (local.get $ptr) (local.get $len) (i32.const 0))
    (if (i32.ne (i32.load $dst (i32.const 8)) (i32.const -1)) (then (return)))
    (call $copy (i32.const {DATA}) (local.get $ptr) (local.get $len) (i32.const 0))
    (i32.store $dst (i32.const 4) (local.get $len)))
  (func $set_error (param $ptr i32) (param $len i32)
    (local $output i32)
    (call $check (local.get $ptr) (local.get $len) (i32.const 1))
    (local.set $output (i32.load $dst (i32.const 4)))
    (call $copy
      (i32.add (i32.const {DATA})
               (select (i32.const 0) (local.get $output)
                       (i32.eq (local.get $output) (i32.const -1))))
      (local.get $ptr) (local.get $len) (i32.const 1))
    (i32.store $dst (i32.const 8) (local.get $len))))
"""

_modules: weakref.WeakKeyDictionary[wasmtime.Engine, tuple[wasmtime.Module, wasmtime.Module]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def helper_modules(engine: wasmtime.Engine) -> tuple[wasmtime.Module, wasmtime.Module]:
    """The box and the copier, compiled once per engine."""
    with _lock:
        modules = _modules.get(engine)
        if modules is None:
            modules = _modules[engine] = (
                wasmtime.Module(engine, _BOX),
                wasmtime.Module(engine, _COPIER),
            )
        return modules


_limit = struct.Struct("<i")
_state = struct.Struct("<iii")  # output length, error length, violation
_violation = struct.Struct("<III")  # pointer, length, which


def write_limit(out: memoryview, max_output: int) -> None:
    _limit.pack_into(out, 0, max_output)


# Before a call: ``reset_header(out, STATE, -1, -1, 0)`` (no output, error or
# violation); after it: ``read_header(out, STATE)`` -> (output length, error
# length, violation). Bound methods: the hot path calls them directly.
STATE = 4
reset_header = _state.pack_into
read_header = _state.unpack_from


def read_violation(out: memoryview) -> tuple[int, int, str]:
    """The recorded violation's pointer, length and host function name."""
    ptr, length, which = _violation.unpack_from(out, 16)
    return ptr, length, ("set_output", "set_error")[which & 1]
