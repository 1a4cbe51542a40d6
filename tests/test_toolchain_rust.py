"""``wasmdeck toolchain`` checks that the Rust toolchain has the wasm target and
linker, and says so when another rustc, without them, comes first on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wasmdeck.toolchains import ToolchainMissing, _rust

RUSTUP_BIN = Path.home() / ".cargo" / "bin"


def fake_rustc(
    bin_dir: Path, version: str, targets: tuple[str, ...] = (), lld: bool = True
) -> Path:
    """A cargo and rustc in ``bin_dir`` whose sysroot is ``bin_dir`` with ``targets``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("cargo", "rustc"):
        fake = bin_dir / tool
        fake.write_text(
            f'#!/bin/sh\n[ "$1" = --print ] && echo {bin_dir} || echo "{tool} {version}"\n'
        )
        fake.chmod(0o755)
    for target in targets:
        (bin_dir / "lib" / "rustlib" / target).mkdir(parents=True)
    if lld:
        (bin_dir / "rust-lld").symlink_to("/bin/true")
    return bin_dir


def test_a_newer_rustc_knows_the_target_as_wasm32_wasip1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_rustc(tmp_path, "1.90.0 (x 2026-01-01)", targets=("wasm32-wasip1",))
    monkeypatch.setenv("WASMDECK_RUST_BIN", str(tmp_path))
    assert (
        _rust.LANGUAGE.toolchain()
        == f"rustc 1.90.0 (x 2026-01-01) ({tmp_path}, target wasm32-wasip1)"
    )
    assert _rust.wasm_target() == "wasm32-wasip1"


def test_debians_rust_is_used_with_its_target_name() -> None:
    assert _rust.LANGUAGE.toolchain().endswith("(/usr/bin, target wasm32-wasi)")
    assert _rust.wasm_target() == "wasm32-wasi"


def test_a_rustc_without_the_target_shadowing_debians_gets_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = fake_rustc(tmp_path / ".rustup" / "bin", "1.95.0 (59807616e 2026-04-14)")
    monkeypatch.setenv("PATH", f"{shadow}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("WASMDECK_RUST_BIN", raising=False)
    (note,) = _rust.LANGUAGE.notes()
    assert note.startswith(f"rustc 1.95.0 first on PATH ({shadow / 'rustc'}) has no wasm32-wasip1")
    assert "wasmdeck builds with /usr/bin/rustc instead" in note
    assert "`PATH=/usr/bin:$PATH cargo build --target wasm32-wasi`" in note
    assert "`rustup target add wasm32-wasip1`" in note


def test_no_note_when_the_rustc_on_path_has_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = fake_rustc(tmp_path, "1.95.0", targets=("wasm32-wasip1",))
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{os.environ['PATH']}")
    assert _rust.LANGUAGE.notes() == []


def test_the_cli_shows_the_note_and_still_succeeds(tmp_path: Path) -> None:
    shadow = fake_rustc(tmp_path / ".rustup" / "bin", "1.95.0 (59807616e 2026-04-14)")
    env = {k: v for k, v in os.environ.items() if k != "WASMDECK_RUST_BIN"}
    env["PATH"] = f"{shadow}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", "toolchain", "rust"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("rust ") and "rustc 1.63" in first
    assert second.strip().startswith("note: rustc 1.95.0 first on PATH")


@pytest.mark.skipif(
    not (RUSTUP_BIN / "rustc").exists(), reason="no rustup toolchain in ~/.cargo/bin"
)
def test_rustups_rustc_without_the_target_is_missing_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real case on the development machine: rustup's stable rustc, no wasm target."""
    sysroot = subprocess.run(
        [RUSTUP_BIN / "rustc", "--print", "sysroot"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if any((Path(sysroot) / "lib" / "rustlib" / t).is_dir() for t in _rust.TARGETS):
        pytest.skip("this rustup toolchain has the wasm target")
    monkeypatch.setenv("WASMDECK_RUST_BIN", str(RUSTUP_BIN))
    with pytest.raises(ToolchainMissing) as caught:
        _rust.LANGUAGE.toolchain()
    message = str(caught.value)
    assert "is installed but not its wasm32-wasi standard library" in message
    assert "run `rustup target add wasm32-wasip1`" in message
    assert "leave WASMDECK_RUST_BIN unset" in message
