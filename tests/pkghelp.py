"""Helpers for the package, trust and plugin-manager tests: a private home, plugins
built from WAT, keys, packages, and the real ``wasmdeck`` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from watgen import abi_module

from wasmdeck.packages import Package, build_package, generate_key, load_signing_key


def metadata(name: str = "demo", version: str = "1.0.0", **extra: object) -> dict[str, object]:
    return {"name": name, "version": version, "description": f"{name} for tests", **extra}


def plugin_wasm(path: Path, name: str = "demo", version: str = "1.0.0", **extra: object) -> Path:
    """A working plugin module (its action ``ok`` outputs ``ok``) written to ``path``."""
    path.write_bytes(abi_module(metadata=metadata(name, version, **extra)))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """WASMDECK_HOME in a fresh temporary directory (for this process and the CLI)."""
    root = tmp_path / "home"
    monkeypatch.setenv("WASMDECK_HOME", str(root))
    monkeypatch.delenv("WASMDECK_KEY_PASSPHRASE", raising=False)
    return root


@pytest.fixture
def key(tmp_path: Path) -> Path:
    """An unencrypted signing key file (and its .pub)."""
    path = tmp_path / "keys" / "publisher.key"
    path.parent.mkdir()
    generate_key(path)
    return path


def pack(
    tmp_path: Path,
    keyfile: Path | None,
    *,
    name: str = "demo",
    version: str = "1.0.0",
    out: str | None = None,
    **extra: object,
) -> Path:
    """A package file of a WAT plugin, signed with ``keyfile`` when given."""
    wasm = plugin_wasm(tmp_path / f"{name}-{version}.wasm", name, version, **extra)
    package: Package = build_package(wasm, key=load_signing_key(keyfile) if keyfile else None)
    target = tmp_path / (out or f"{name}-{version}{'' if keyfile else '-unsigned'}.wdpk")
    target.write_bytes(package.encode())
    return target


def wasmdeck(
    *args: str | os.PathLike[str], input: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command line; it must never print a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", *map(str, args)],
        input=input.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode != 0:  # our message, or argparse's own usage error
        argparse_error = result.returncode == 2 and ": error: " in result.stderr
        assert "wasmdeck: " in result.stderr or argparse_error, result.stderr
    return result
