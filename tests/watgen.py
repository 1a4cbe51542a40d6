"""Hand-written plugin modules in WAT, for behaviour no compiler emits on purpose.

``abi_module`` builds a module that follows the JSON ABI v1 except where a
test overrides one piece. Its ``execute`` answers the action ``ok`` with the
output ``ok`` (byte 11 of a request is the action's first letter), and runs
``body`` for any other action — so one module shows both the misbehaviour
and that the same plugin works again afterwards.
"""

from __future__ import annotations

import json

import wasmtime

DEFAULT_METADATA = {"name": "wat-plugin", "version": "1.0.0", "description": "hand-written"}
OK_AT = 4096
METADATA_AT = 4160


def data_string(data: bytes) -> str:
    return '"' + "".join(f"\\{b:02x}" for b in data) + '"'


def abi_module(
    body: str = "(i32.const 0)",
    *,
    metadata: dict[str, object] | bytes | None = None,
    init: str | None = None,
    alloc: str | None = None,
    imports: str = '(import "wasmdeck" "set_output" (func $set_output (param i32 i32)))',
    memory: str = '(memory (export "memory") 2)',
    extra: str = "",
    exports: tuple[str, ...] = ("alloc", "dealloc", "init", "execute"),
) -> bytes:
    meta = (
        metadata
        if isinstance(metadata, bytes)
        else json.dumps(metadata or DEFAULT_METADATA).encode()
    )
    init = (
        init
        or f"(i64.or (i64.shl (i64.const {METADATA_AT}) (i64.const 32)) (i64.const {len(meta)}))"
    )
    alloc = (
        alloc
        or """
        (local $p i32)
        (local.set $p (global.get $heap))
        (global.set $heap (i32.add (global.get $heap) (local.get $n)))
        (local.get $p)"""
    )
    ok_branch = ""
    if "$set_output" in imports:
        ok_branch = f"""
        (if (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 11))) (i32.const 111))
          (then (call $set_output (i32.const {OK_AT}) (i32.const 2)) (return (i32.const 0))))"""

    def export(name: str) -> str:
        return f'(export "{name}")' if name in exports else ""

    return wasmtime.wat2wasm(f"""
    (module
      {imports}
      {memory}
      (global $heap (mut i32) (i32.const 16384))
      (data (i32.const {OK_AT}) "ok")
      (data (i32.const {METADATA_AT}) {data_string(meta)})
      (func $alloc {export("alloc")} (param $n i32) (result i32) {alloc})
      (func $dealloc {export("dealloc")} (param i32 i32))
      (func $init {export("init")} (result i64) {init})
      (func $execute {export("execute")} (param $ptr i32) (param $len i32) (result i32)
        {ok_branch}
        {body})
      {extra}
    )""")


def filler_functions(count: int, body: str = "(loop)") -> str:
    """``count`` unexported functions of ``body``: WAT text for ``abi_module(extra=...)``.

    For compile times that explode: 60,000 one-loop functions (420 KB) took
    6.4 s to compile here; see tests/test_compile_limits.py.
    """
    return f"(func {body})" * count
