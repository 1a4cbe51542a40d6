"""A plugin that is not a usable plugin is refused at load with a typed error."""

from __future__ import annotations

import json

import pytest
import wasmtime
from watgen import METADATA_AT, abi_module

import wasmdeck
from wasmdeck import (
    ABIViolation,
    ImportNotAllowed,
    InvalidMetadata,
    InvalidModule,
    InvalidPlugin,
    MissingExport,
)


def test_bytes_that_are_not_wasm() -> None:
    with pytest.raises(InvalidModule, match="not a WebAssembly module"):
        wasmdeck.Plugin(b"#!/bin/sh\necho hello\n")


def test_truncated_module() -> None:
    good = abi_module()
    with pytest.raises(
        InvalidModule, match=r"wasmtime rejected the module: .*unexpected end-of-file"
    ):
        wasmdeck.Plugin(good[: len(good) // 2])


def test_unknown_binary_version_is_refused() -> None:
    with pytest.raises(InvalidModule, match=r"neither a core module .* nor a component"):
        wasmdeck.Plugin(b"\0asm\x02\x00\x00\x00")


def test_component_without_the_plugin_exports_is_refused() -> None:
    # Components load (tests/test_component.py); an empty one lacks the world's exports.
    with pytest.raises(MissingExport, match="does not export the function 'metadata'"):
        wasmdeck.Plugin(b"\0asm\x0d\x00\x01\x00")


def test_missing_file_is_an_os_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        wasmdeck.Plugin(tmp_path / "absent.wasm")


@pytest.mark.parametrize("missing", ["alloc", "init", "execute"])
def test_missing_required_export(missing: str) -> None:
    exports = tuple(e for e in ("alloc", "dealloc", "init", "execute") if e != missing)
    with pytest.raises(MissingExport, match=f"does not export '{missing}'"):
        wasmdeck.Plugin(abi_module(exports=exports))


def test_missing_memory_export() -> None:
    with pytest.raises(MissingExport, match="linear memory as 'memory'"):
        wasmdeck.Plugin(abi_module(memory="(memory 1)"))


def test_execute_with_the_wrong_signature() -> None:
    wasm = abi_module(
        exports=("alloc", "dealloc", "init"),
        extra='(func (export "execute") (param i32) (result i32) (i32.const 0))',
    )
    with pytest.raises(
        MissingExport, match=r"'execute' must be a function \(i32, i32\) -> \(i32\)"
    ):
        wasmdeck.Plugin(wasm)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (b"not json at all", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2, 3]", "must be a JSON object, not list"),
        (
            json.dumps({"version": "1", "description": "x"}).encode(),
            "lacks the required field 'name'",
        ),
        (
            json.dumps({"name": "x", "version": 1, "description": "x"}).encode(),
            "'version' must be a string",
        ),
        (
            json.dumps(
                {"name": "x", "version": "1", "description": "x", "actions": "run"}
            ).encode(),
            "'actions' must be a list",
        ),
        (
            json.dumps(
                {
                    "name": "x",
                    "version": "1",
                    "description": "x",
                    "actions": [{"name": "a"}, {"name": "a"}],
                }
            ).encode(),
            "declared more than once: a",
        ),
        (
            json.dumps(
                {"name": "x", "version": "1", "description": "x", "capabilities": ["Net Work"]}
            ).encode(),
            "must be a lowercase name",
        ),
        (
            json.dumps(
                {"name": "x", "version": "1", "description": "x", "type": "daemon"}
            ).encode(),
            "type must be one of action, trigger",
        ),
    ],
)
def test_bad_metadata(metadata: bytes, message: str) -> None:
    with pytest.raises(InvalidMetadata, match=message):
        wasmdeck.Plugin(abi_module(metadata=metadata))


def test_metadata_pointer_out_of_bounds() -> None:
    # 2 pages = 131072 bytes; the metadata claims to sit at 131000 with 500 bytes.
    init = "(i64.or (i64.shl (i64.const 131000) (i64.const 32)) (i64.const 500))"
    with pytest.raises(
        ABIViolation, match=r"metadata at 0x1ffb8\+500, outside the plugin's 131072-byte memory"
    ):
        wasmdeck.Plugin(abi_module(init=init))


def test_metadata_length_wraps_around_address_space() -> None:
    # ptr + len overflows 32 bits: must be judged out of bounds, not wrapped.
    init = "(i64.const -1)"
    with pytest.raises(InvalidMetadata, match="more than the 1048576 allowed"):
        wasmdeck.Plugin(abi_module(init=init))


def test_empty_metadata() -> None:
    init = f"(i64.shl (i64.const {METADATA_AT}) (i64.const 32))"
    with pytest.raises(InvalidMetadata, match="empty metadata"):
        wasmdeck.Plugin(abi_module(init=init))


def test_import_the_host_does_not_provide() -> None:
    wasm = abi_module(imports='(import "env" "launch_missiles" (func (param i32)))')
    with pytest.raises(
        ImportNotAllowed,
        match=r"imports env\.launch_missiles \(func\), which wasmdeck does not provide",
    ):
        wasmdeck.Plugin(wasm)


def test_unknown_host_function_in_the_wasmdeck_module() -> None:
    wasm = abi_module(imports='(import "wasmdeck" "spawn_shell" (func (param i32 i32)))')
    with pytest.raises(ImportNotAllowed, match=r"wasmdeck\.spawn_shell"):
        wasmdeck.Plugin(wasm)


def test_host_function_imported_with_the_wrong_type() -> None:
    wasm = abi_module(imports='(import "wasmdeck" "set_output" (func (param i64)))')
    with pytest.raises(
        ImportNotAllowed,
        match=r"set_output as \(i64\) -> \(\), but the host provides \(i32, i32\) -> \(\)",
    ):
        wasmdeck.Plugin(wasm)


def test_imported_memory_is_refused() -> None:
    wasm = abi_module(
        imports='(import "env" "memory" (memory 1))',
        memory="",
        extra='(export "memory" (memory 0))',
    )
    with pytest.raises(ImportNotAllowed, match=r"env\.memory \(memory\)"):
        wasmdeck.Plugin(wasm)


def test_not_a_real_wasi_function() -> None:
    wasm = abi_module(imports='(import "wasi_snapshot_preview1" "sock_open_anything" (func))')
    with pytest.raises(ImportNotAllowed, match="sock_open_anything"):
        wasmdeck.Plugin(wasm)


def test_every_load_error_is_an_invalid_plugin() -> None:
    # The CLI maps InvalidPlugin to exit code 4; all load-time errors above are one.
    for cls in (InvalidModule, MissingExport, InvalidMetadata, ABIViolation, ImportNotAllowed):
        assert issubclass(cls, InvalidPlugin)


def test_start_function_that_traps() -> None:
    wasm = abi_module(extra="(func $boom unreachable) (start $boom)")
    with pytest.raises(wasmdeck.PluginTrap, match="unreachable"):
        wasmdeck.Plugin(wasm)


def test_initial_memory_over_the_limit() -> None:
    wasm = abi_module(memory='(memory (export "memory") 100)')  # 6.25 MiB
    with pytest.raises(wasmdeck.MemoryLimitExceeded, match="larger than the 4 MiB memory limit"):
        wasmdeck.Plugin(wasm, limits=wasmdeck.Limits(max_memory=4 * 1024 * 1024))


def test_wat2wasm_is_what_builds_these() -> None:
    # A guard that the helper really produces modules wasmtime accepts.
    assert wasmtime.Module(wasmtime.Engine(), abi_module()) is not None


def test_alloc_that_grows_memory_for_the_buffer() -> None:
    """An allocator that grows memory by exactly what it needs returns the old end."""
    alloc = "(i32.shl (memory.grow (i32.const 1)) (i32.const 16))"
    plugin = wasmdeck.Plugin(abi_module(alloc=alloc))
    assert plugin.call("ok") == b"ok"
