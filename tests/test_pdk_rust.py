"""The Rust kit (sdk/rust/wasmdeck-pdk) against the real host.

The ``hostcalls`` plugin (tests/plugins/rust/hostcalls) is built once per run
with ``wasmdeck build``'s library half and Debian's cargo; each test calls
one of its actions. The plugin imports every host API, so each instance
needs the network, process and kv grants to link; a test grants what it
exercises and scopes the rest so that nothing is reachable.
"""

from __future__ import annotations

import json
import logging
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
from wasmdeck.build import BuildError, ToolchainMissing, _rust, build_project, new_project

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "plugins" / "rust" / "hostcalls"
# Everything the plugin imports, scoped so that nothing here is reachable.
LINK = ["kv", "network:example.com", "process:printf"]


@pytest.fixture(scope="session")
def hostcalls_wasm() -> Path:
    """The hostcalls plugin, built in a copy of its project (the source tree stays clean)."""
    project = ROOT / ".cache" / "test-builds" / "rust-hostcalls"
    for path in SOURCE.rglob("*"):
        if path.is_file() and "build" not in path.relative_to(SOURCE).parts:
            target = project / path.relative_to(SOURCE)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    try:
        return build_project(project)
    except BuildError as exc:
        pytest.fail(f"building the Rust hostcalls plugin failed: {exc}", pytrace=False)


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
    p = plugin(hostcalls_wasm, config={"bridge": "192.168.1.20", "n": [3, "é"]})
    assert p.call("config", {"key": "bridge"}) == b"192.168.1.20"
    assert p.call("config", {"key": "n"}) == '[3,"é"]'.encode()  # not a string: its JSON
    assert p.call("config", {"key": "missing"}) == b"(unset)"


def grant_for(url: str) -> str:
    """A network grant for the host and port of ``url`` (a grant without a port means 80/443)."""
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


def test_log(hostcalls_wasm: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wasmdeck.plugin")
    assert plugin(hostcalls_wasm).call("log", {"message": "pad 3 is loose"}) == b"logged"
    [record] = [r for r in caplog.records if r.getMessage() == "pad 3 is loose"]
    assert record.levelname == "WARNING" and record.name.startswith("wasmdeck.plugin")


def test_denied_is_an_error_the_plugin_handles(hostcalls_wasm: Path) -> None:
    # Linked with a network grant for another host: 127.0.0.1:1 is not granted.
    assert plugin(hostcalls_wasm).call("denied") == b"denied"


def test_unhandled_host_error_reaches_the_user(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm)
    with pytest.raises(PluginReportedError) as caught:
        p.call("fail-host")
    assert "127.0.0.1" in caught.value.message and "grant" in caught.value.message


def test_process_run(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm, "process:printf")
    out = json.loads(p.call("process", {"argv": ["printf", "%s-%s", "a", "b"]}))
    assert out == {"exit_code": 0, "stdout": "a-b", "stderr": "", "truncated": False}


def test_websocket(hostcalls_wasm: Path, echo_server: tuple[int, list[str]]) -> None:  # noqa: F811
    port, seen = echo_server
    p = plugin(hostcalls_wasm, f"network:127.0.0.1:{port}")
    out = json.loads(p.call("ws-echo", {"url": f"ws://127.0.0.1:{port}", "text": "hi ✓"}))
    assert out == {
        "subprotocol": "echo.v1",
        "text": "hi ✓",
        "binary": 3,
        "closed": 4000,
        "after": "closed",
    }
    assert seen == ["hi ✓", "bytes:0102ff", "bye"]


def test_request_as_the_kit_reads_it(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm)
    context = TriggerContext(velocity=100, mode=2, timestamp=1732500000123)
    params = {
        "a": [1, 2.5, None, True],
        "s": 'q"\\\n\u0001é😀',
        "big": -(2**63),
        "f": 1e300,
        "o": {},
    }
    out = json.loads(p.call("context", params, context))
    assert out == {
        "action": "context",
        "velocity": 100,
        "mode": 2,
        "timestamp": 1732500000123,
        "params": params,
    }
    out = json.loads(p.call("context", None, TriggerContext(timestamp=5)))
    assert out == {
        "action": "context",
        "velocity": None,
        "mode": None,
        "timestamp": 5,
        "params": {},
    }


def test_state_lives_with_the_instance(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm)
    assert [json.loads(p.call("count"))["calls"] for _ in range(3)] == [1, 2, 3]
    assert json.loads(plugin(hostcalls_wasm).call("count")) == {"calls": 1}


def test_panic_traps_with_its_message_logged(
    hostcalls_wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wasmdeck.plugin")
    p = plugin(hostcalls_wasm)
    with pytest.raises(PluginTrap):
        p.call("panic")
    assert any("pad 1 fell off" in r.getMessage() for r in caplog.records)
    assert json.loads(p.call("count")) == {"calls": 1}  # a fresh instance after the trap


def test_ungranted_imports_refuse_to_load(hostcalls_wasm: Path) -> None:
    with pytest.raises(ImportNotAllowed, match="'network' capability"):
        wasmdeck.Plugin(hostcalls_wasm, grants=["kv", "process:printf"])


def test_metadata_and_imports(hostcalls_wasm: Path) -> None:
    meta = plugin(hostcalls_wasm).metadata
    assert meta.name == "rust-hostcalls" and len(meta.actions or ()) == 13
    assert [c.kind for c in meta.capabilities] == ["kv", "network", "process"]
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(hostcalls_wasm))
    exports = {e.name for e in module.exports}
    assert {"memory", "alloc", "dealloc", "init", "execute", "_initialize"} <= exports
    assert "_start" not in exports  # a reactor


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


class _Guest:
    """The module run bare in wasmtime, to feed execute what the host never would."""

    def __init__(self, wasm: Path) -> None:
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        store.set_wasi(wasmtime.WasiConfig())
        self.errors: list[bytes] = []
        self.outputs: list[bytes] = []
        module = wasmtime.Module.from_file(engine, str(wasm))
        for imp in module.imports:
            if imp.module != "wasmdeck":
                continue
            if imp.name in ("set_error", "set_output"):
                sink = self.errors if imp.name == "set_error" else self.outputs
                linker.define_func(
                    "wasmdeck",
                    imp.name,
                    imp.type,
                    lambda c, p, n, s=sink: self._keep(c, p, n, s),
                    True,
                )
            else:
                results = list(imp.type.results)  # type: ignore[union-attr]
                linker.define_func(
                    "wasmdeck", imp.name, imp.type, lambda *a, r=results: 0 if r else None
                )
        self.store, self.instance = store, linker.instantiate(store, module)
        self.memory = self.instance.exports(store)["memory"]
        self.instance.exports(store)["_initialize"](store)

    def _keep(self, caller: wasmtime.Caller, ptr: int, length: int, sink: list[bytes]) -> None:
        sink.append(bytes(self.memory.read(caller, ptr, ptr + length)))

    def execute(self, request: bytes, length: int | None = None) -> int:
        exports = self.instance.exports(self.store)
        ptr = exports["alloc"](self.store, max(len(request), 1))
        self.memory.write(self.store, request, ptr)
        return exports["execute"](self.store, ptr, len(request) if length is None else length)


@pytest.mark.parametrize(
    ("request_", "length", "message"),
    [
        (b"not json", None, b"wasmdeck: bad request: invalid JSON at byte 0: unknown literal"),
        (b'{"params": {}}', None, b"wasmdeck: bad request: no action"),
        (b'{"action": 7}', None, b"wasmdeck: bad request: no action"),
        (b"[1, 2]", None, b"wasmdeck: bad request: no action"),
        (
            b'{"action": "context", "params": 3}',
            None,
            b"wasmdeck: params must be an object, not number",
        ),
        (b'{"action": "context"}', -5, b"wasmdeck: bad request buffer (length -5)"),
        (
            b'{"action": "context", "params": {"a": 1}',
            None,
            b"wasmdeck: bad request: invalid JSON at byte 40: expected ',' or '}' in an object",
        ),
        (b'{"action": "\xff"}', None, b"wasmdeck: bad request: invalid JSON at byte 12: not UTF-8"),
        (
            b"[" * 200 + b"]" * 200,
            None,
            b"wasmdeck: bad request: invalid JSON at byte 128: nested too deeply",
        ),
    ],
)
def test_bad_requests_are_refused(
    hostcalls_wasm: Path, request_: bytes, length: int | None, message: bytes
) -> None:
    guest = _Guest(hostcalls_wasm)
    assert guest.execute(request_, length) == 1
    assert guest.errors == [message]
    assert guest.execute(b'{"action": "context", "context": null, "params": null}') == 0
    assert json.loads(guest.outputs[-1])["params"] == {}


# -- the toolchain -------------------------------------------------------------


def test_toolchain_is_debians_rust() -> None:
    assert _rust.LANGUAGE.toolchain().startswith("rustc 1.")


def test_toolchain_missing_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMDECK_RUST_BIN", str(tmp_path))  # no cargo, no rustc there
    with pytest.raises(ToolchainMissing) as caught:
        _rust.LANGUAGE.toolchain()
    assert "apt-get install rustc cargo libstd-rust-dev-wasm32" in str(caught.value)
    assert "wasmdeck toolchain --install rust" in str(caught.value)


def test_toolchain_without_the_wasm_std_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for tool in ("cargo", "rustc"):  # a toolchain whose sysroot has no wasm32-wasi
        fake = tmp_path / tool
        fake.write_text(f'#!/bin/sh\n[ "$1" = --print ] && echo {tmp_path} || echo {tool} 9.9\n')
        fake.chmod(0o755)
    monkeypatch.setenv("WASMDECK_RUST_BIN", str(tmp_path))
    with pytest.raises(ToolchainMissing) as caught:
        _rust.LANGUAGE.toolchain()
    assert "rustc 9.9 is installed but not its wasm32-wasi standard library" in str(caught.value)
    assert "libstd-rust-dev-wasm32" in str(caught.value)


def test_toolchain_without_the_linker_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lib" / "rustlib" / "wasm32-wasi").mkdir(parents=True)
    (tmp_path / "rust-lld").symlink_to(tmp_path / "lld-14")  # dangling, as without lld
    for tool in ("cargo", "rustc"):
        fake = tmp_path / tool
        fake.write_text(f'#!/bin/sh\n[ "$1" = --print ] && echo {tmp_path} || echo {tool} 9.9\n')
        fake.chmod(0o755)
    monkeypatch.setenv("WASMDECK_RUST_BIN", str(tmp_path))
    with pytest.raises(ToolchainMissing, match="not its wasm linker rust-lld") as caught:
        _rust.LANGUAGE.toolchain()
    assert "libstd-rust-dev-wasm32 lld`" in str(caught.value)


def test_cli_build_without_rust(tmp_path: Path) -> None:
    """`wasmdeck build` says how to get Rust: exit code 1, no traceback."""
    empty = tmp_path / "bin"
    empty.mkdir()
    project = tmp_path / "pad"
    new_project(project, "pad", "rust", "minimal")
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", "build", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(empty), "HOME": str(tmp_path), "WASMDECK_RUST_BIN": str(empty)},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "apt-get install rustc cargo libstd-rust-dev-wasm32" in result.stderr
    assert not (project / "build" / "pad.wasm").exists()


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
