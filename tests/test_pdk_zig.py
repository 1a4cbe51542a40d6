"""The Zig kit (sdk/zig/wasmdeck.zig) against the real host.

The ``hostcalls`` plugin (tests/plugins/zig/hostcalls) is built once per run
with ``wasmdeck build``'s library half and the real zig; each test calls one
of its actions. The plugin imports every host API, so each instance needs
the network, process and kv grants to link; a test grants what it exercises.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from test_network_ws import echo_server  # noqa: F401

import wasmdeck
from wasmdeck import ImportNotAllowed, PluginReportedError, PluginTrap, TriggerContext
from wasmdeck.build import BuildError, ToolchainMissing, _zig, build_project
from wasmdeck.build._c import ZIG_VERSION

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "plugins" / "zig" / "hostcalls"
# Everything the plugin imports, scoped so that nothing here is reachable.
LINK = ["kv", "network:example.com", "process:printf"]


@pytest.fixture(scope="session")
def hostcalls_wasm() -> Path:
    """The hostcalls plugin, built in a copy of its project (zig's cache stays there)."""
    project = ROOT / ".cache" / "test-builds" / "zig-hostcalls"
    project.mkdir(parents=True, exist_ok=True)
    for path in SOURCE.iterdir():
        if path.is_file():
            shutil.copy2(path, project / path.name)
    try:
        return build_project(project)
    except BuildError as exc:
        pytest.fail(f"building the Zig hostcalls plugin failed: {exc}", pytrace=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def plugin(wasm: Path, *grants: str, **kwargs: Any) -> wasmdeck.Plugin:
    kinds = {g.split(":")[0] for g in grants}
    return wasmdeck.Plugin(
        wasm, grants=[*grants, *(g for g in LINK if g.split(":")[0] not in kinds)], **kwargs
    )


def test_kv_round_trip(hostcalls_wasm: Path, home: Path) -> None:
    p = plugin(hostcalls_wasm, "kv")
    assert p.call("kv", {"key": "token", "value": "s3cret ✓"}) == "s3cret ✓".encode()
    again = plugin(hostcalls_wasm, "kv")  # persisted, for the plugin of that name
    assert again.call("kv", {"key": "token", "value": "next"}) == b"next"


def test_kv_binary_list_delete(hostcalls_wasm: Path, home: Path) -> None:
    out = json.loads(plugin(hostcalls_wasm, "kv").call("kv-more"))
    assert out == {
        "same": True,  # bytes that are not UTF-8 went as base64 and came back
        "keys": ["bin", "other"],
        "deleted": True,
        "again": False,
        "gone": True,
    }


def test_config(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm, config={"bridge": "192.168.1.20", "n": 3})
    assert p.call("config", {"key": "bridge"}) == b"192.168.1.20"
    assert p.call("config", {"key": "n"}) == b"(unset)"  # not a string
    assert p.call("config", {"key": "missing"}) == b"(unset)"


def grant_for(url: str) -> str:
    return "network:" + url.split("//")[1].split("/")[0]


def test_http_get(hostcalls_wasm: Path, webhook_server: Any) -> None:
    p = plugin(hostcalls_wasm, grant_for(webhook_server.url()))
    out = json.loads(p.call("http-get", {"url": webhook_server.url("/x")}))
    assert out["status"] == 200 and json.loads(out["body"]) == {"ok": True}
    [request] = webhook_server.requests
    assert request.method == "GET" and request.path == "/x"


def test_http_send_json(hostcalls_wasm: Path, webhook_server: Any) -> None:
    p = plugin(hostcalls_wasm, grant_for(webhook_server.url()))
    out = json.loads(p.call("http-post", {"url": webhook_server.url("/lights")}))
    assert out == {"status": 200, "reply": {"ok": True}}
    [request] = webhook_server.requests
    assert request.method == "POST" and request.json() == {"on": True}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-test"] == "zig"


def test_log(hostcalls_wasm: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="wasmdeck.plugin")
    assert plugin(hostcalls_wasm).call("log", {"message": "pad 3 is loose"}) == b"logged"
    [record] = [r for r in caplog.records if r.getMessage() == "pad 3 is loose"]
    assert record.levelname == "WARNING" and record.name.startswith("wasmdeck.plugin")


def test_std_log_goes_to_the_host(hostcalls_wasm: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="wasmdeck.plugin")
    assert plugin(hostcalls_wasm).call("std-log") == b"ok"
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [("INFO", "(pads) pad 7 pressed"), ("DEBUG", "plain")]


def test_panic_is_logged_and_traps(hostcalls_wasm: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="wasmdeck.plugin")
    p = plugin(hostcalls_wasm)
    with pytest.raises(PluginTrap):
        p.call("panic")
    assert ("ERROR", "panic: on purpose") in [(r.levelname, r.getMessage()) for r in caplog.records]
    assert p.call("log", {"message": "still here"}) == b"logged"  # a fresh instance


def test_denied_is_an_error_the_plugin_handles(hostcalls_wasm: Path) -> None:
    # Linked with a network grant for another host: 127.0.0.1:1 is not granted.
    assert plugin(hostcalls_wasm).call("denied") == b"denied"


def test_unhandled_host_error_reaches_the_user(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm)
    with pytest.raises(PluginReportedError) as caught:
        p.call("fail-host")
    assert caught.value.message.startswith("denied: ") and "127.0.0.1" in caught.value.message


def test_process_run(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm, "process:printf")
    out = json.loads(p.call("process", {"argv": ["printf", "%s-%s", "a", "b"]}))
    assert out == {"exit_code": 0, "stdout": "a-b", "stderr": "", "truncated": False}


def test_websocket(hostcalls_wasm: Path, echo_server: tuple[int, list[str]]) -> None:  # noqa: F811
    port, seen = echo_server
    p = plugin(hostcalls_wasm, f"network:127.0.0.1:{port}")
    out = json.loads(p.call("ws-echo", {"url": f"ws://127.0.0.1:{port}", "text": "hi"}))
    assert out == {
        "subprotocol": "echo.v1",
        "text": "hi",
        "binary": 3,
        "closed": 4000,
        "after": "closed",
    }
    assert seen == ["hi", "bytes:0102ff", "bye"]


def test_context_as_the_kit_reads_it(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm)
    context = TriggerContext(velocity=100, mode=2, timestamp=1732500000123)
    out = json.loads(p.call("context", {"a": 1}, context))
    assert out == {"velocity": 100, "mode": 2, "timestamp": 1732500000123, "params": 1}
    out = json.loads(p.call("context", None, TriggerContext(timestamp=5)))
    assert out == {"velocity": None, "mode": None, "timestamp": 5, "params": 0}


def test_typed_params(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm)
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


def test_ungranted_imports_refuse_to_load(hostcalls_wasm: Path) -> None:
    with pytest.raises(ImportNotAllowed, match="'network' capability"):
        wasmdeck.Plugin(hostcalls_wasm, grants=["kv", "process:printf"])


def test_metadata_declares_capabilities(hostcalls_wasm: Path) -> None:
    meta = plugin(hostcalls_wasm).metadata
    assert meta.name == "zig-hostcalls" and len(meta.actions or ()) == 14
    assert [c.kind for c in meta.capabilities] == ["kv", "network", "process"]


class _Guest:
    """The module run bare in wasmtime, to feed execute what the host never would."""

    def __init__(self, wasm: Path) -> None:
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        store.set_wasi(wasmtime.WasiConfig())
        self.errors: list[bytes] = []
        module = wasmtime.Module.from_file(engine, str(wasm))
        for imp in module.imports:
            if imp.module != "wasmdeck":
                continue
            if imp.name == "set_error":
                linker.define_func("wasmdeck", "set_error", imp.type, self._set_error, True)
            else:
                results = list(imp.type.results)  # type: ignore[union-attr]
                linker.define_func(
                    "wasmdeck", imp.name, imp.type, lambda *a, r=results: 0 if r else None
                )
        self.store, self.instance = store, linker.instantiate(store, module)
        self.memory = self.instance.exports(store)["memory"]

    def _set_error(self, caller: wasmtime.Caller, ptr: int, length: int) -> None:
        self.errors.append(bytes(self.memory.read(caller, ptr, ptr + length)))

    def execute(self, request: bytes, length: int | None = None) -> int:
        exports = self.instance.exports(self.store)
        ptr = exports["alloc"](self.store, max(len(request), 1))
        self.memory.write(self.store, request, ptr)
        return exports["execute"](self.store, ptr, len(request) if length is None else length)


@pytest.mark.parametrize(
    ("request_", "length", "message"),
    [
        (b"not json", None, b"invalid request: SyntaxError"),
        (b'{"params": {}}', None, b"invalid request: NoAction"),
        (b'{"action": 7}', None, b"invalid request: NoAction"),
        (b"[1, 2]", None, b"invalid request: NotAnObject"),
        (b'{"action": "context"}', -5, b"invalid request: negative length"),
        (
            b'{"action": "context", "params": {"a": 1}',
            None,
            b"invalid request: UnexpectedEndOfInput",
        ),
    ],
)
def test_bad_requests_are_refused(
    hostcalls_wasm: Path, request_: bytes, length: int | None, message: bytes
) -> None:
    guest = _Guest(hostcalls_wasm)
    assert guest.execute(request_, length) == 1
    assert guest.errors == [message]
    assert guest.execute(b'{"action": "context", "context": null, "params": 3}') == 0


# -- the toolchain -------------------------------------------------------------


def test_toolchain_reports_the_pinned_zig() -> None:
    assert _zig.zig_toolchain().startswith(f"zig {ZIG_VERSION} ")


def test_toolchain_missing_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ziglang", None)  # `import ziglang` fails
    monkeypatch.setenv("PATH", str(tmp_path))  # and there is no zig on PATH
    with pytest.raises(ToolchainMissing, match=f"pip install ziglang=={ZIG_VERSION}"):
        _zig.zig_toolchain()


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


def test_cli_build_without_zig(tmp_path: Path) -> None:
    """`wasmdeck build` says how to get zig: exit code 1, no traceback."""
    stub = tmp_path / "stub" / "ziglang"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('no zig here')\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    project = tmp_path / "pad"
    wasmdeck.build.new_project(project, "pad", "zig", "minimal")
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", "build", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(empty), "PYTHONPATH": str(stub.parent), "HOME": str(tmp_path)},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"pip install ziglang=={ZIG_VERSION}" in result.stderr
    assert "wasmdeck build --install-toolchain" in result.stderr
    assert not (project / "build" / "pad.wasm").exists()


def test_rebuilds_only_on_change_and_names_the_broken_line(tmp_path: Path) -> None:
    project = tmp_path / "pad"
    wasmdeck.build.new_project(project, "pad", "zig", "minimal")
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
