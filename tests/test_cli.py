"""The command line: outputs, exit codes (a stable contract), no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_example_obs import obs_wasm
from test_sandbox import MEMORY_BOMB, SPIN
from watgen import abi_module

__all__ = ["obs_wasm"]  # a fixture used here


def wasmdeck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", *args], capture_output=True, timeout=60, env=env
    )
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


@pytest.fixture(scope="module")
def wat_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wat")
    modules = {
        "ok": abi_module(),
        "spin": abi_module(SPIN),
        "bomb": abi_module(MEMORY_BOMB),
        "trap": abi_module("unreachable"),
        "no-execute": abi_module(exports=("alloc", "init")),
        "bad-meta": abi_module(metadata=b"{nope"),
    }
    paths = {}
    for name, wasm in modules.items():
        paths[name] = root / f"{name}.wasm"
        paths[name].write_bytes(wasm)
    (root / "not-wasm.wasm").write_text("hello")
    paths["not-wasm"] = root / "not-wasm.wasm"
    return paths


def test_info_prints_the_metadata_json(velocity_wasm: Path) -> None:
    result = wasmdeck("info", str(velocity_wasm))
    assert result.returncode == 0
    meta = json.loads(result.stdout)
    assert meta["name"] == "velocity"
    assert {a["name"] for a in meta["actions"]} == {"scale", "pick"}


def test_run_prints_the_output_raw(behaviors_wasm: Path) -> None:
    result = wasmdeck(
        "run",
        str(behaviors_wasm),
        "context",
        "--context",
        '{"velocity": 100, "mode": 2, "timestamp": 1732500000123}',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b'{"velocity":100,"mode":2,"timestamp":1732500000123}'


def test_run_passes_params(behaviors_wasm: Path) -> None:
    result = wasmdeck(
        "run", str(behaviors_wasm), "params", "--params", '{"scene": "Live", "n": [1, 2]}'
    )
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"scene": "Live", "n": [1, 2]}


def test_plugin_output_on_stderr_and_quiet(behaviors_wasm: Path) -> None:
    shown = wasmdeck("run", str(behaviors_wasm), "log")
    assert shown.returncode == 0 and shown.stdout == b"ok"
    assert b"[behaviors] first line" in shown.stderr and b"[behaviors] partial" in shown.stderr
    quiet = wasmdeck("-q", "run", str(behaviors_wasm), "log")
    assert quiet.returncode == 0 and quiet.stderr == b""


def test_environment_only_when_granted(behaviors_wasm: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "WASMDECK_SECRET": "s3cret"}
    denied = wasmdeck(
        "run", str(behaviors_wasm), "env", "--params", '{"name": "WASMDECK_SECRET"}', env=env
    )
    assert denied.returncode == 1 and b"WASMDECK_SECRET is not set" in denied.stderr
    granted = wasmdeck(
        "run",
        str(behaviors_wasm),
        "env",
        "--params",
        '{"name": "WASMDECK_SECRET"}',
        "--grant",
        "env:WASMDECK_SECRET",
        env=env,
    )
    assert granted.returncode == 0 and granted.stdout == b"s3cret"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["trap", "boom"], 1, b"trapped: unreachable code reached"),
        (["spin", "loop", "--timeout", "0.2", "--fuel", "10000000000000"], 3, b"0.2 s time limit"),
        (["spin", "loop", "--fuel", "1000"], 3, b"ran out of fuel"),
        (["bomb", "grow", "--max-memory", "4"], 3, b"4 MiB memory limit"),
        (["no-execute", "x"], 4, b"does not export 'execute'"),
        (["bad-meta", "x"], 4, b"metadata is not valid JSON"),
        (["not-wasm", "x"], 4, b"not a WebAssembly module"),
        (["ok", "ok", "--params", "{not json"], 2, b"--params is not valid JSON"),
        (["ok", "ok", "--params", "[1]"], 2, b"--params must be a JSON object"),
        (["ok", "ok", "--context", '{"velocity": 300}'], 2, b"velocity must be 0-127"),
        (["ok", "ok", "--context", '{"speed": 1}'], 2, b"unknown trigger context field(s): speed"),
        (["ok", "ok", "--grant", "telepathy"], 2, b"unknown capability 'telepathy'"),
        (["ok", "ok", "--timeout", "-1"], 2, b"limit timeout must be"),
    ],
)
def test_exit_codes(wat_files: dict[str, Path], args: list[str], code: int, message: bytes) -> None:
    plugin, *rest = args
    result = wasmdeck("run", str(wat_files[plugin]), *rest)
    assert result.returncode == code, result.stderr
    assert message in result.stderr, result.stderr
    assert result.stderr.startswith(b"wasmdeck: ")


def test_plugin_reported_error_exits_1(behaviors_wasm: Path) -> None:
    result = wasmdeck("run", str(behaviors_wasm), "fail", "--params", '{"reason": "lights off"}')
    assert result.returncode == 1
    assert (
        result.stderr
        == b"wasmdeck: plugin 'behaviors', action 'fail': failed on purpose: lights off\n"
    )


def test_undeclared_action_is_a_usage_error(velocity_wasm: Path) -> None:
    result = wasmdeck("run", str(velocity_wasm), "explode")
    assert result.returncode == 2 and b"declares: pick, scale" in result.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = wasmdeck("info", str(tmp_path / "absent.wasm"))
    assert result.returncode == 2 and b"No such file or directory" in result.stderr


def test_argparse_errors_exit_2() -> None:
    assert wasmdeck("run").returncode == 2
    assert wasmdeck("frobnicate").returncode == 2


def test_help_explains_itself() -> None:
    result = wasmdeck("run", "--help")
    assert result.returncode == 0
    for option in (b"--params", b"--context", b"--timeout", b"--fuel", b"--max-memory", b"--grant"):
        assert option in result.stdout


def test_grants_file_and_config(behaviors_wasm: Path, tmp_path: Path) -> None:
    grants = tmp_path / "grants.txt"
    grants.write_text("# what the tests may read\nenv:WASMDECK_SECRET  # the only one\n\n")
    env = {"PATH": "/usr/bin:/bin", "WASMDECK_SECRET": "from-file"}
    args = ("run", str(behaviors_wasm), "env", "--params", '{"name": "WASMDECK_SECRET"}')
    granted = wasmdeck(*args, "--grants-file", str(grants), env=env)
    assert granted.returncode == 0 and granted.stdout == b"from-file"
    grants.write_text("env:OK\nteleport\n")
    bad = wasmdeck(*args, "--grants-file", str(grants), env=env)
    assert bad.returncode == 2
    assert b"grants.txt, line 2: unknown capability 'teleport'" in bad.stderr
    config = wasmdeck("run", str(behaviors_wasm), "ok", "--config", "[1]")
    assert config.returncode == 2 and b"--config must be a JSON object" in config.stderr


# -- untrusted text, pipes, and what PLUGIN may be -------------------------------------


def test_plugin_messages_and_log_lines_are_escaped(behaviors_wasm: Path) -> None:
    hostile = "lights\x1b[2J\x1b[H\u202eoff\u009b1A"
    result = wasmdeck(
        "run", str(behaviors_wasm), "fail", "--params", json.dumps({"reason": hostile})
    )
    assert result.returncode == 1
    for raw in (b"\x1b", "\u202e".encode(), "\u009b".encode()):
        assert raw not in result.stderr
    assert b"lights\\x1b[2J\\x1b[H\\u202eoff\\u009b1A" in result.stderr

    import logging

    from wasmdeck.cli._main import _PluginLogFormatter

    record = logging.LogRecord(
        "wasmdeck.plugin.evil\u202e", logging.INFO, __file__, 1, "a\x1b]0;x\x07b", None, None
    )
    assert _PluginLogFormatter().format(record) == "[evil\\u202e] a\\x1b]0;x\\x07b"


def test_info_reads_metadata_of_a_plugin_importing_gated_host_functions(tmp_path: Path) -> None:
    from hostcall import host_call_module

    wasm = tmp_path / "caller.wasm"
    wasm.write_bytes(host_call_module("http_request", {"url": "http://127.0.0.1:9/"}))
    result = wasmdeck("info", str(wasm))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "host-caller"
    assert b"needs network" in result.stderr and b"--grant" in result.stderr
    # Loaded for its metadata only, it cannot be called.
    import wasmdeck as wd

    with wd.Plugin(wasm, metadata_only=True) as plugin:
        assert plugin.missing_capabilities == ["network"]
        with pytest.raises(wd.WasmdeckError, match="metadata only"):
            plugin.call("go")


def test_info_on_the_obs_example(obs_wasm: Path) -> None:
    result = wasmdeck("info", str(obs_wasm))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "obs-control"


def test_a_closed_pipe_is_not_an_error(velocity_wasm: Path) -> None:
    import os

    for args in (["info", str(velocity_wasm)], ["--help"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before anything is written (`| head` ended)
        try:
            result = subprocess.run(
                [sys.executable, "-m", "wasmdeck", *args],
                stdout=write,
                stderr=subprocess.PIPE,
                timeout=60,
            )
        finally:
            os.close(write)
        assert result.stderr == b"", (args, result.stderr)  # no "Broken pipe", no traceback
        assert result.returncode in (0, 141)  # 141: as if killed by SIGPIPE, like a filter


def test_context_as_a_dict_in_the_python_api(behaviors_wasm: Path) -> None:
    import wasmdeck as wd

    context = {"velocity": 100, "mode": 2, "timestamp": 1732500000123}
    expected = b'{"velocity":100,"mode":2,"timestamp":1732500000123}'
    with wd.Plugin(behaviors_wasm) as plugin:
        assert plugin.call("context", None, context) == expected
        with pytest.raises(ValueError, match="velocity"):
            plugin.call("context", None, {"velocity": 300})
    with wd.PluginHost() as host:
        host.load(behaviors_wasm)
        assert host.call("context", None, context, plugin="behaviors") == expected


def test_run_on_a_project_directory(velocity_wasm: Path, tmp_path: Path) -> None:
    project = tmp_path / "velocity"
    project.mkdir()
    (project / "wasmdeck.toml").write_text('[plugin]\nname = "velocity"\n')
    unbuilt = wasmdeck("run", str(project), "scale")
    assert unbuilt.returncode == 2 and b"wasmdeck build" in unbuilt.stderr
    (project / "build").mkdir()
    (project / "build" / "velocity.wasm").write_bytes(velocity_wasm.read_bytes())
    ran = wasmdeck("run", str(project), "scale", "--context", '{"velocity": 64}')
    assert ran.returncode == 0, ran.stderr
    plain = wasmdeck("run", str(tmp_path), "scale")
    assert plain.returncode == 2 and b"not a plugin" in plain.stderr
