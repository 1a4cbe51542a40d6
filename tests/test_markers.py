"""The ``toolchain`` marker is put on every test that builds with a real
toolchain, and on no other (tests/conftest.py), so ``-m "not toolchain"`` is a
fast tier that runs without toolchains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _collected(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode in (0, 5), result.stdout + result.stderr
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_tests_that_build_plugins_are_marked_and_the_rest_are_not() -> None:
    files = ["tests/test_cli.py", "tests/test_pdk_zig.py", "tests/test_grants.py"]
    marked = _collected("-m", "toolchain", *files)
    unmarked = _collected("-m", "not toolchain", *files)
    # Through a fixture two levels down (behaviors -> behaviors_wasm -> build_c -> compile_c).
    assert any("test_cli.py" in test for test in marked)
    # Through a helper wrapped in functools.cache (hostcalls_wasm -> build_cached -> build_project).
    assert any("test_pdk_zig.py" in test for test in marked)
    assert not any("test_pdk_zig.py" in test for test in unmarked)
    # Plain tests (grant parsing, usage errors on WAT files) stay in the fast tier.
    assert not any("test_grants.py" in test for test in marked)
    assert any("test_grants.py" in test for test in unmarked)
    assert any("test_cli.py" in test for test in unmarked)


def test_the_marker_is_registered() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers"], capture_output=True, text=True, cwd=ROOT
    )
    assert "@pytest.mark.toolchain:" in result.stdout
