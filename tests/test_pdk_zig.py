"""What only the Zig kit (sdk/zig/wasmdeck.zig) has, against the real host.

Every host API is tested through the hostcalls contract, for every language,
in tests/test_pdk_hostcalls.py; here: std.log routing, panics, typed params,
the pinned zig and rebuilding.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pdkbuild import hostcalls_wasm, plugin

import wasmdeck
from wasmdeck import PluginReportedError, PluginTrap
from wasmdeck.toolchains import BuildError, ToolchainMissing, _zig, build_project
from wasmdeck.toolchains._c import ZIG_VERSION


@pytest.fixture(scope="session")
def zig_hostcalls() -> Path:
    return hostcalls_wasm("zig")


def test_std_log_goes_to_the_host(zig_hostcalls: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="wasmdeck.plugin")
    assert plugin(zig_hostcalls).call("std-log") == b"ok"
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [("INFO", "(pads) pad 7 pressed"), ("DEBUG", "plain")]


def test_panic_is_logged_and_traps(zig_hostcalls: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="wasmdeck.plugin")
    p = plugin(zig_hostcalls)
    with pytest.raises(PluginTrap):
        p.call("panic")
    assert ("ERROR", "panic: on purpose") in [(r.levelname, r.getMessage()) for r in caplog.records]
    assert p.call("log", {"message": "still here"}) == b"logged"  # a fresh instance


def test_typed_params(zig_hostcalls: Path) -> None:
    p = plugin(zig_hostcalls)
    assert json.loads(p.call("typed", {"count": 3, "extra": [1]})) == {
        "count": 3,
        "label": "none",
        "on": False,
    }
    with pytest.raises(PluginReportedError) as caught:
        p.call("typed", {"count": 300})
    assert caught.value.message == "invalid params for 'typed': Overflow"
    with pytest.raises(PluginReportedError) as caught:
        p.call("typed", {})
    assert caught.value.message == "invalid params for 'typed': MissingField"


# -- the toolchain -------------------------------------------------------------


def test_toolchain_reports_the_pinned_zig() -> None:
    assert _zig.zig_toolchain().startswith(f"zig {ZIG_VERSION} ")


def test_toolchain_of_another_version_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "zig"
    fake.write_text("#!/bin/sh\necho 0.13.0\n")
    fake.chmod(0o755)
    monkeypatch.setitem(sys.modules, "ziglang", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing) as caught:
        _zig.zig_toolchain()
    assert f"zig 0.13.0 is installed, but the Zig plugin kit needs zig {ZIG_VERSION}" in str(
        caught.value
    )
    assert f"pip install ziglang=={ZIG_VERSION}" in str(caught.value)


def test_rebuilds_only_on_change_and_names_the_broken_line(tmp_path: Path) -> None:
    project = tmp_path / "pad"
    wasmdeck.toolchains.new_project(project, "pad", "zig", "minimal")
    wasm = build_project(project)
    built = wasm.stat().st_mtime_ns
    assert build_project(project).stat().st_mtime_ns == built  # nothing changed: kept
    main = project / "plugin.zig"
    main.write_text(main.read_text().replace("hello from pad", "hi from pad"))
    assert wasmdeck.Plugin(build_project(project)).call("hello") == b"hi from pad"
    main.write_text(
        'const wd = @import("wasmdeck");\npub const metadata: wd.Metadata = .{};\n'
        "pub fn execute(_: *const wd.Request) void {}\n"
    )
    with pytest.raises(BuildError) as caught:
        build_project(project)
    assert "plugin.zig:2" in str(caught.value) and "missing struct field" in str(caught.value)
    assert not list((project / "build").glob("*partial*"))
