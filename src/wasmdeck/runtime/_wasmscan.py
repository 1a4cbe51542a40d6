"""A cheap look at a wasm binary's section headers, before wasmtime compiles it.

Compiling is the one step of loading a plugin that cannot be interrupted in
process (wasmtime offers no cancellation), and its cost grows with what the
binary defines: a 1.4 MB module of 60,000 tiny functions took 8 s here, a
4.8 MB one 35 s. ``scan`` reads only section ids, sizes and the counts at
the head of the function and code sections (and the size of each function
body), in linear time and without allocating per function, so ``Limits``
can refuse such a binary by name before wasmtime sees it. It does not
validate: anything it cannot read is left for wasmtime to reject.

Binary format: https://webassembly.github.io/spec/core/binary/modules.html;
components nest core modules (section 1) and components (section 4):
https://github.com/WebAssembly/component-model/blob/main/design/mvp/Binary.md
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WasmShape", "scan"]

_CORE_VERSION = b"\x01\x00\x00\x00"
_FUNCTION_SECTION = 3
_CODE_SECTION = 10
_CORE_MODULE_SECTION = 1  # in a component
_COMPONENT_SECTION = 4  # in a component
_CANON_SECTION = 8  # in a component: lifted/lowered functions, each a trampoline
_MAX_NESTING = 16


@dataclass(frozen=True, slots=True)
class WasmShape:
    """What drives compile time, summed over every core module in the binary."""

    functions: int = 0  # defined functions (imports are not compiled)
    largest_function: int = 0  # bytes of the biggest function body
    modules: int = 0  # core modules (a component may carry several)
    code_bytes: int = 0  # bytes of all code sections


def _leb(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """An unsigned LEB128 (at most 5 bytes: u32) at ``pos``; raises ValueError past ``end``."""
    result = shift = 0
    for _ in range(5):
        if pos >= end:
            raise ValueError("truncated")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ValueError("LEB128 too long")


def scan(wasm: bytes) -> WasmShape:
    """The shape of a core module or component; stops quietly at malformed bytes."""
    functions = largest = modules = code = 0
    # (start, end, depth) of each binary still to read; a component's nested
    # core modules and components are pushed as they are found.
    pending = [(0, len(wasm), 0)]
    while pending:
        start, end, depth = pending.pop()
        core = wasm[start + 4 : start + 8] == _CORE_VERSION
        modules += core
        pos = start + 8
        try:
            while pos < end:
                section = wasm[pos]
                size, pos = _leb(wasm, pos + 1, end)
                body, pos = pos, pos + size
                if pos > end:
                    break
                if core and section == _FUNCTION_SECTION:
                    count, _ = _leb(wasm, body, pos)
                    functions += count
                elif core and section == _CODE_SECTION:
                    code += size
                    largest = max(largest, _largest_body(wasm, body, pos))
                elif not core and section in (_CORE_MODULE_SECTION, _COMPONENT_SECTION):
                    if depth < _MAX_NESTING:
                        pending.append((body, pos, depth + 1))
                elif not core and section == _CANON_SECTION:
                    count, _ = _leb(wasm, body, pos)
                    functions += count
        except ValueError:
            continue  # malformed: wasmtime will say what is wrong
    return WasmShape(functions, largest, modules, code)


def _largest_body(wasm: bytes, pos: int, end: int) -> int:
    count, pos = _leb(wasm, pos, end)
    largest = 0
    for _ in range(count):
        size, pos = _leb(wasm, pos, end)
        largest = max(largest, size)
        pos += size
        if pos > end:
            break
    return largest
