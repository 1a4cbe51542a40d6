"""What only the Rust kit (sdk/rust/wasmdeck-pdk) has, against the real host.

Every host API is tested through the hostcalls contract, for every language,
in tests/test_pdk_hostcalls.py; here: panics, the kit's own unit tests, and
how Debian's cargo is driven.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
import wasmtime
from pdkbuild import hostcalls_wasm, plugin

import wasmdeck
from wasmdeck import PluginTrap
from wasmdeck.toolchains import BuildError, ToolchainMissing, _rust, build_project, new_project

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rust_hostcalls() -> Path:
    return hostcalls_wasm("rust")


def test_panic_traps_with_its_message_logged(
    rust_hostcalls: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wasmdeck.plugin")
    p = plugin(rust_hostcalls)
    with pytest.raises(PluginTrap):
        p.call("panic")
    assert any("pad 1 fell off" in r.getMessage() for r in caplog.records)
    assert json.loads(p.call("count")) == {"calls": 1}  # a fresh instance after the trap


def test_unused_host_functions_are_not_imported(tmp_path: Path) -> None:
    """The minimal template imports set_output only: it needs no grant at all."""
    project = tmp_path / "bare"
    new_project(project, "bare", "rust", "minimal")
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(build_project(project)))
    assert {i.name for i in module.imports if i.module == "wasmdeck"} <= {
        "set_output",
        "set_error",
    }
    assert wasmdeck.Plugin(project / "build" / "bare.wasm").call("hello") == b"hello from bare"


# -- the toolchain -------------------------------------------------------------


def test_toolchain_is_debians_rust() -> None:
    assert _rust.LANGUAGE.toolchain().startswith("rustc 1.")


def fake_rust(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cargo and rustc 9.9 in ``bin_dir`` (their sysroot), used through WASMDECK_RUST_BIN."""
    for tool in ("cargo", "rustc"):
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/sh\n[ "$1" = --print ] && echo {bin_dir} || echo {tool} 9.9\n')
        fake.chmod(0o755)
    monkeypatch.setenv("WASMDECK_RUST_BIN", str(bin_dir))


def test_toolchain_without_the_wasm_std_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_rust(tmp_path, monkeypatch)  # a toolchain whose sysroot has no wasm32-wasi
    with pytest.raises(ToolchainMissing) as caught:
        _rust.LANGUAGE.toolchain()
    assert "rustc 9.9 is installed but not its wasm32-wasi standard library" in str(caught.value)
    assert "libstd-rust-dev-wasm32" in str(caught.value)


def test_toolchain_without_the_linker_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lib" / "rustlib" / "wasm32-wasi").mkdir(parents=True)
    (tmp_path / "rust-lld").symlink_to(tmp_path / "lld-14")  # dangling, as without lld
    fake_rust(tmp_path, monkeypatch)
    with pytest.raises(ToolchainMissing, match="not its wasm linker rust-lld") as caught:
        _rust.LANGUAGE.toolchain()
    assert "libstd-rust-dev-wasm32 lld`" in str(caught.value)


def test_build_error_names_the_line(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    new_project(project, "broken", "rust", "minimal")
    source = project / "src" / "lib.rs"
    source.write_text(source.read_text().replace(".into())", ".frobnicate())"))
    with pytest.raises(BuildError) as caught:
        build_project(project)
    assert "src/lib.rs:18" in str(caught.value) and "frobnicate" in str(caught.value)
    assert not (project / "build" / "broken.wasm").exists()


def test_newer_lock_file_is_replaced(tmp_path: Path) -> None:
    """A Cargo.lock of version 4 (from a newer cargo) would stop cargo 1.65 cold."""
    project = tmp_path / "locked"
    new_project(project, "locked", "rust", "minimal")
    (project / "Cargo.lock").write_text("# newer cargo\nversion = 4\n")
    build_project(project)
    assert "version = 3" in (project / "Cargo.lock").read_text()


def test_kit_unit_tests() -> None:
    """The kit's own Rust unit tests (JSON, base64), run natively with the same cargo."""
    env = _rust._env()
    env["CARGO_TARGET_DIR"] = str(ROOT / ".cache" / "test-builds" / "rust-kit-tests")
    result = subprocess.run(
        [_rust.toolchain_bin() / "cargo", "test", "--offline", "--quiet"],
        cwd=_rust.kit_dir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test result: ok" in result.stdout


def test_same_crate_name_in_two_projects(tmp_path: Path) -> None:
    """The shared target directory never hands one project the other's module."""
    first, second = tmp_path / "one" / "twin", tmp_path / "two" / "twin"
    for project in (first, second):
        new_project(project, "twin", "rust", "minimal")
    source = second / "src" / "lib.rs"
    source.write_text(source.read_text().replace('"hello from twin"', '"the other twin"'))
    for project, expected in [(first, b"hello from twin"), (second, b"the other twin")] * 2:
        assert wasmdeck.Plugin(build_project(project)).call("hello") == expected
