"""Binaries whose compile time would explode are refused before compiling (issue 9, item 8).

Compiling cannot be interrupted in process, so ``Limits`` bounds what drives
its cost, checked by a scan of the section headers (runtime/_wasmscan.py):
the binary's size, the functions it defines and its largest function body.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime
from watgen import abi_module, filler_functions

import wasmdeck
from wasmdeck import Limits, ModuleTooLarge
from wasmdeck.cli._main import EXIT_INVALID, main
from wasmdeck.runtime._cache import CompileCache
from wasmdeck.runtime._wasmscan import scan


def runtime() -> wasmdeck.Runtime:
    return wasmdeck.Runtime(cache=None)  # every load really compiles


def test_sixty_thousand_functions_are_refused_before_compiling() -> None:
    wasm = abi_module(extra=filler_functions(60_000))
    started = time.monotonic()
    with pytest.raises(
        ModuleTooLarge,
        match=r"defines 60,00\d functions, more than its "
        r"max_functions limit \(20,000\)",
    ) as error:
        wasmdeck.Plugin(wasm, runtime=runtime())
    assert error.value.limit == "max_functions"
    assert time.monotonic() - started < 3  # not the 6.4 s it took to compile
    assert isinstance(error.value, wasmdeck.InvalidModule)


def test_the_function_limit_is_configurable() -> None:
    wasm = abi_module(extra=filler_functions(50))
    wasmdeck.Plugin(wasm, runtime=runtime())
    with pytest.raises(ModuleTooLarge, match="max_functions limit"):
        wasmdeck.Plugin(wasm, runtime=runtime(), limits=Limits(max_functions=40))


def test_one_huge_function_is_refused() -> None:
    # 12,000 loops in one 36 KB body: 1.1 s to compile here; 25,600 took 12 s.
    wasm = abi_module(extra=filler_functions(1, "(loop)" * 12_000))
    with pytest.raises(ModuleTooLarge, match=r"has a 36,00\d-byte function") as error:
        wasmdeck.Plugin(wasm, runtime=runtime(), limits=Limits(max_function_bytes=16 * 1024))
    assert error.value.limit == "max_function_bytes"


def test_module_size_limit_before_reading_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.wasm"
    path.write_bytes(abi_module(extra=filler_functions(100)))
    size = path.stat().st_size
    with pytest.raises(ModuleTooLarge, match=f"the binary is {size:,} bytes") as error:
        wasmdeck.Plugin(path, runtime=runtime(), limits=Limits(max_module_bytes=size - 1))
    assert error.value.limit == "max_module_bytes"
    with pytest.raises(ModuleTooLarge, match="max_module_bytes"):
        wasmdeck.Plugin(path.read_bytes(), runtime=runtime(), limits=Limits(max_module_bytes=1024))
    wasmdeck.Plugin(path, runtime=runtime(), limits=Limits(max_module_bytes=size))


def test_components_count_the_functions_of_every_core_module() -> None:
    component = wasmtime.wat2wasm(
        "(component (core module (func) (func (loop)))"
        " (component (core module " + filler_functions(30) + ")))"
    )
    assert scan(component).functions == 32 and scan(component).modules == 2
    with pytest.raises(ModuleTooLarge, match="the component defines 32 functions"):
        runtime().compile(component, name="c", limits=Limits(max_functions=31))


def test_malformed_binaries_are_left_to_wasmtime() -> None:
    truncated = abi_module()[:-7]
    assert scan(truncated).functions >= 0  # no exception from the scan itself
    with pytest.raises(wasmdeck.InvalidModule, match="wasmtime rejected the module"):
        wasmdeck.Plugin(truncated, runtime=runtime())
    # A section that claims more bytes than the file has.
    with pytest.raises(wasmdeck.InvalidModule):
        wasmdeck.Plugin(b"\0asm\x01\0\0\0\x03\xff\xff\xff\xff\x0f\x01", runtime=runtime())


def test_the_cli_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "many.wasm"
    path.write_bytes(abi_module(extra=filler_functions(20_001)))
    assert main(["info", str(path)]) == EXIT_INVALID
    assert "max_functions limit (20,000)" in capsys.readouterr().err


def test_a_compile_past_max_compile_cpu_is_stopped() -> None:
    # 60,000 loops in one function: more than 64 KiB of code, so it compiles in a
    # child process; in process it would run to completion (tens of seconds).
    wasm = abi_module(extra=filler_functions(1, "(loop)" * 60_000))
    assert scan(wasm).code_bytes > 64 * 1024
    started = time.monotonic()
    with pytest.raises(
        ModuleTooLarge, match=r"used more than its max_compile_cpu limit \(0.5 CPU seconds\)"
    ) as error:
        wasmdeck.Plugin(wasm, runtime=runtime(), limits=Limits(max_compile_cpu=0.5))
    assert error.value.limit == "max_compile_cpu"
    # 1 CPU second (the limit, rounded up), or the 10 s wall-clock backstop on a busy machine.
    assert time.monotonic() - started < 15


def test_a_compile_in_a_child_process_gives_a_working_plugin(tmp_path: Path) -> None:
    wasm = abi_module(extra=filler_functions(200, "(nop)" * 400))
    assert scan(wasm).code_bytes > 64 * 1024
    plugin = wasmdeck.Plugin(wasm, runtime=runtime())
    assert plugin.call("ok") == b"ok"
    # And through the compile cache: stored once, loaded from it afterwards.
    cached = wasmdeck.Runtime(cache=CompileCache(tmp_path / "cache"))
    assert cached.load(wasm, name="w")[1] is False
    assert cached.load(wasm, name="w")[1] is True
    with pytest.raises(wasmdeck.InvalidModule, match="wasmtime rejected the module"):
        wasmdeck.Plugin(wasm[:-3], runtime=runtime())  # wasmtime's error, from the child
