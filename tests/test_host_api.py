"""Host functions behind capabilities: process, key-value, config; loading rules.

Network (HTTP, WebSocket) is in test_network.py, against real servers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostcall import host_call_module

import wasmdeck
from wasmdeck import ImportNotAllowed, Limits


def call(function: str, request: dict[str, object], **options: object) -> dict[str, object]:
    plugin = wasmdeck.Plugin(host_call_module(function, request), **options)  # type: ignore[arg-type]
    try:
        return json.loads(plugin.call("go"))
    finally:
        plugin.close()


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# -- loading: only granted host functions link ------------------------------------


@pytest.mark.parametrize(
    ("function", "capability"),
    [
        ("http_request", "network"),
        ("ws_connect", "network"),
        ("process_run", "process"),
        ("kv_set", "kv"),
    ],
)
def test_ungranted_host_function_fails_to_load(function: str, capability: str) -> None:
    with pytest.raises(
        ImportNotAllowed,
        match=f"imports wasmdeck.{function}, which needs the '{capability}' capability",
    ):
        wasmdeck.Plugin(host_call_module(function, {}))


def test_granted_host_function_loads() -> None:
    plugin = wasmdeck.Plugin(host_call_module("kv_get", {"key": "a"}), grants=["kv"])
    assert json.loads(plugin.call("go")) == {"value": None}


def test_config_is_always_readable() -> None:
    config = {"bridge": "192.168.1.20", "user": "abc"}
    assert call("config_get", {"key": "bridge"}, config=config) == {"value": "192.168.1.20"}
    assert call("config_get", {"key": "absent"}, config=config) == {"value": None}
    assert call("config_get", {}, config=config) == {"value": config}


# -- process ------------------------------------------------------------------------


def test_process_runs_an_allowlisted_program() -> None:
    result = call("process_run", {"argv": ["printf", "%s-%s", "a", "b"]}, grants=["process:printf"])
    assert result == {"exit_code": 0, "stdout": "a-b", "stderr": ""}


def test_shell_metacharacters_are_plain_arguments(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker}); touch {marker} && echo `id` | cat > {marker}"
    result = call("process_run", {"argv": ["printf", "%s", hostile]}, grants=["process:printf"])
    assert result["stdout"] == hostile
    assert not marker.exists()


def test_program_not_granted_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    result = call("process_run", {"argv": ["cat", "/etc/passwd"]}, grants=["process:printf"])
    assert result["error"]["kind"] == "denied"  # type: ignore[index]
    assert "running 'cat' is not granted" in result["error"]["message"]  # type: ignore[index]
    assert "refused process_run" in caplog.text


def test_absolute_path_must_resolve_to_the_granted_program() -> None:
    result = call(
        "process_run", {"argv": ["/usr/bin/../bin/printf", "ok"]}, grants=["process:printf"]
    )
    assert result["stdout"] == "ok"
    result = call("process_run", {"argv": ["./printf", "x"]}, grants=["process:printf"])
    assert result["error"]["kind"] == "denied"  # type: ignore[index]


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASMDECK_SECRET_TOKEN", "hunter2")
    result = call("process_run", {"argv": ["env"]}, grants=["process:env"])
    assert "hunter2" not in result["stdout"]  # type: ignore[operator]
    assert "PATH=" in result["stdout"]  # type: ignore[operator]


def test_process_timeout_kills_the_child() -> None:
    result = call(
        "process_run", {"argv": ["sleep", "5"], "timeout_ms": 200}, grants=["process:sleep"]
    )
    assert result["error"]["kind"] == "timeout"  # type: ignore[index]


def test_process_output_is_capped() -> None:
    result = call(
        "process_run",
        {"argv": ["seq", "1", "100000"]},
        grants=["process:seq"],
        limits=Limits(max_response=1000),
    )
    assert result["truncated"] is True and len(result["stdout"]) == 1000  # type: ignore[arg-type]


def test_stdin_and_exit_code() -> None:
    result = call(
        "process_run",
        {"argv": ["sh", "-c", "cat; exit 3"], "stdin": "piped"},
        grants=["process:sh"],
    )
    assert result == {"exit_code": 3, "stdout": "piped", "stderr": ""}


def test_grant_for_a_missing_program_fails_at_load() -> None:
    with pytest.raises(ValueError, match="no executable program"):
        wasmdeck.Plugin(host_call_module("process_run", {}), grants=["process:no-such-program-xyz"])


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"argv": "ls -la"}, "argv must be a non-empty list"),
        ({"argv": []}, "argv must be a non-empty list"),
    ],
)
def test_bad_process_requests(request_: dict[str, object], message: str) -> None:
    result = call("process_run", request_, grants=["process:printf"])
    assert result["error"]["kind"] == "invalid_request" and message in result["error"]["message"]  # type: ignore[index]


# -- key-value ------------------------------------------------------------------------


def test_kv_round_trip_persists_across_plugins_granted_one_namespace(
    private_home: Path,
) -> None:
    # Each call below is a different module; the grant kv:NAMESPACE joins them.
    shared = ["kv:round-trip"]
    assert call("kv_set", {"key": "token", "value": "abc"}, grants=shared) == {}
    assert call("kv_get", {"key": "token"}, grants=shared) == {"value": "abc"}
    assert call("kv_list", {"prefix": "to"}, grants=shared) == {"keys": ["token"]}
    assert call("kv_get", {"key": "token"}, grants=["kv"]) == {"value": None}  # its own
    assert call("kv_get", {"key": "token"}, grants=["kv:other"]) == {"value": None}
    assert call("kv_delete", {"key": "token"}, grants=shared) == {"deleted": True}
    assert call("kv_get", {"key": "token"}, grants=shared) == {"value": None}
    assert (private_home / "kv.sqlite3").exists()


def test_kv_of_a_plugin_file_is_keyed_by_its_path(tmp_path: Path) -> None:
    here, there = tmp_path / "a.wasm", tmp_path / "b.wasm"
    here.write_bytes(host_call_module("kv_set", {"key": "k", "value": "v"}, name="same"))
    there.write_bytes(host_call_module("kv_get", {"key": "k"}, name="same"))
    with wasmdeck.Plugin(here, grants=["kv"]) as plugin:
        plugin.call("go")
    with wasmdeck.Plugin(there, grants=["kv"]) as plugin:  # declares the same name
        assert json.loads(plugin.call("go")) == {"value": None}
    here.write_bytes(there.read_bytes())  # the file at the same path: the user's choice
    with wasmdeck.Plugin(here, grants=["kv"]) as plugin:
        assert json.loads(plugin.call("go")) == {"value": "v"}


def test_kv_waits_for_a_locked_store_only_until_the_deadline(private_home: Path) -> None:
    import subprocess
    import sys
    import time

    private_home.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(  # a second process holds the store's write lock
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('PRAGMA journal_mode=WAL')\n"
            "db.execute('CREATE TABLE IF NOT EXISTS kv (plugin TEXT NOT NULL, key TEXT NOT NULL,"
            " value BLOB NOT NULL, PRIMARY KEY (plugin, key))')\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(private_home / "kv.sqlite3"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        module = host_call_module("kv_set", {"key": "k", "value": "v"})
        with wasmdeck.Plugin(module, grants=["kv"], limits=Limits(timeout=0.5)) as plugin:
            started = time.monotonic()
            with pytest.raises(wasmdeck.TimeLimitExceeded, match="kv store"):
                plugin.call("go")
            assert time.monotonic() - started < 3  # bounded by 0.5 s, not SQLite's 10 s
    finally:
        holder.kill()
        holder.wait()


def test_kv_waits_for_a_writer_of_this_process_only_until_the_deadline(
    private_home: Path,
) -> None:
    import time

    from wasmdeck.runtime._kv import KeyValueStore

    private_home.mkdir(parents=True, exist_ok=True)
    module = host_call_module("kv_set", {"key": "k", "value": "v"})
    with wasmdeck.Plugin(module, grants=["kv"], limits=Limits(timeout=0.5)) as plugin:
        with KeyValueStore._lock:  # another call of this process is writing
            started = time.monotonic()
            with pytest.raises(
                wasmdeck.TimeLimitExceeded, match="another call in this process is writing"
            ):
                plugin.call("go")
            assert time.monotonic() - started < 3
        assert json.loads(plugin.call("go")) == {}  # no error: the store works once free


def test_kv_is_private_to_each_plugin() -> None:
    set_a = wasmdeck.Plugin(
        host_call_module("kv_set", {"key": "k", "value": "a"}, name="a"), grants=["kv"]
    )
    get_b = wasmdeck.Plugin(host_call_module("kv_get", {"key": "k"}, name="b"), grants=["kv"])
    set_a.call("go")
    assert json.loads(get_b.call("go")) == {"value": None}


def test_kv_binary_values_and_quota() -> None:
    assert call("kv_set", {"key": "b", "value_base64": "AP8="}, grants=["kv:bin"]) == {}
    assert call("kv_get", {"key": "b"}, grants=["kv:bin"]) == {"value_base64": "AP8="}
    result = call(
        "kv_set",
        {"key": "big", "value": "x" * 2000},
        grants=["kv"],
        limits=Limits(max_kv_bytes=1000),
    )
    assert result["error"]["kind"] == "quota"  # type: ignore[index]


def test_host_call_with_a_malformed_request() -> None:
    # The embedded request is not an object: the plugin gets an error, the host is fine.
    plugin = wasmdeck.Plugin(host_call_module("kv_get", ["not", "an", "object"]), grants=["kv"])  # type: ignore[arg-type]
    assert json.loads(plugin.call("go"))["error"]["kind"] == "invalid_request"
