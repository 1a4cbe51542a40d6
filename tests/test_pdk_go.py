"""What only the Go kit (sdk/go) has, built with the real Go toolchain and run against the real host.

Every host API is tested through the hostcalls contract, for every language,
in tests/test_pdk_hostcalls.py; here: the linker dropping unused host
functions, the declaration order, Go's runtime within the default limits,
panics, build errors and the kit's own Go unit tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import wasmtime
from pdkbuild import ACTIONS, hostcalls_wasm, plugin

import wasmdeck
from wasmdeck import Limits, TriggerContext
from wasmdeck.toolchains import BuildError, _go, build_project, new_project

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


@pytest.fixture(scope="session")
def go_hostcalls() -> Path:
    return hostcalls_wasm("go")


def test_imports_only_what_it_calls(tmp_path: Path) -> None:
    """Go's linker drops unused host functions: the template calls config and log only."""
    project = tmp_path / "greeter"
    new_project(project, "greeter", "go", "template")
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(build_project(project)))
    imported = {i.name for i in module.imports if i.module == "wasmdeck"}
    assert imported == {"set_output", "set_error", "log", "response_read", "config_get"}


def test_metadata_from_the_declaration(go_hostcalls: Path) -> None:
    meta = plugin(go_hostcalls).metadata
    assert (meta.name, meta.version) == ("go-hostcalls", "0.1.0")
    assert [a.name for a in meta.actions] == ACTIONS  # in the order declared


def test_runtime_start_fits_the_default_limits(go_hostcalls: Path) -> None:
    """Go's runtime start-up (_initialize) and heap fit well inside the defaults.

    Measured: about 0.6 M of the 100 M default fuel for _initialize + init,
    and a few MiB of linear memory of the 128 MiB default.
    """
    tight = Limits(fuel=5_000_000, max_memory=16 * MiB)
    p = plugin(go_hostcalls, limits=tight)
    for i in range(200):
        assert p.call("log", {"message": f"m{i}"}) == b"logged"


def test_panics_become_errors(tmp_path: Path) -> None:
    """A panic in an action fails that call with its message; the plugin carries on."""
    project = tmp_path / "go-panics"
    new_project(project, "go-panics", "go", "minimal")
    main = project / "main.go"
    main.write_text(
        main.read_text().replace(
            'return "hello from go-panics", nil',
            'if req.Context.Velocity != nil { panic("boom") }\n\treturn "hello", nil',
        )
    )
    plugin = wasmdeck.Plugin(build_project(project))
    with pytest.raises(wasmdeck.PluginReportedError, match="action hello panicked: boom"):
        plugin.call("hello", {}, TriggerContext(velocity=1))
    assert plugin.call("hello") == b"hello"


def test_build_errors_come_through(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    new_project(project, "broken", "go", "minimal")
    (project / "main.go").write_text("package main\n\nfunc main() { undefinedThing() }\n")
    with pytest.raises(BuildError, match=r"main\.go:3.*undefined: undefinedThing"):
        build_project(project)
    assert not (project / "build" / "broken.wasm").exists()


def test_toolchain_reports_its_version() -> None:
    assert _go.go_version().startswith("go 1.")


# -- the kit's own Go unit tests (JSON codec, request parsing), natively ----------


def test_kit_unit_tests() -> None:
    binary, goroot = _go.go_command()
    env = _go.go_env(Path("unused"), goroot)
    env["GOWORK"] = "off"  # the kit alone, for this machine (no GOOS=wasip1)
    for name in ("GOOS", "GOARCH"):
        env.pop(name)
    result = subprocess.run(
        [str(binary), "test", "./..."],
        cwd=ROOT / "sdk" / "go",
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
