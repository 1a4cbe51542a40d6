"""The AssemblyScript kit (sdk/assemblyscript/wasmdeck) against the real host.

The ``hostcalls`` plugin (tests/plugins/assemblyscript/hostcalls) is built
once per run with ``wasmdeck build``'s library half and the real ``asc``;
each test calls one of its actions. The plugin imports every host API, so
each instance needs the network, process and kv grants to link; a test
grants what it exercises.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from servers.webhook import WebhookServer
from test_network_ws import echo_server  # noqa: F401

import wasmdeck
from wasmdeck import ImportNotAllowed, Limits, PluginReportedError, PluginTrap, TriggerContext
from wasmdeck.build import BuildError, ToolchainMissing, build_project, new_project, sdk_dir
from wasmdeck.build import _assemblyscript as asc
from wasmdeck.build._tool import no_progress

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "plugins" / "assemblyscript" / "hostcalls"
# Everything the plugin imports, scoped so that nothing here is reachable.
LINK = ["kv", "network:example.com", "process:printf"]


def build_cached(source: Path, label: str) -> Path:
    """Build the AssemblyScript project at ``source`` in a copy under .cache/test-builds.

    The copy is named by a digest of the project's files, the kit, the
    compiler version and its flags, so a re-run only rebuilds what changed.
    """
    digest = hashlib.sha256()
    kit = sdk_dir("assemblyscript") / "wasmdeck"
    for root in (source, kit):
        for path in sorted(root.rglob("*")):
            if path.is_file() and "build" not in path.relative_to(root).parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    digest.update(" ".join((asc.ASSEMBLYSCRIPT_VERSION, *asc.ASC_FLAGS)).encode())
    project = ROOT / ".cache" / "test-builds" / f"assemblyscript-{label}-{digest.hexdigest()[:16]}"
    built = project / "build" / f"{label}.wasm"
    if built.is_file():
        return built
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(source, project, ignore=shutil.ignore_patterns("build"))
    try:
        return build_project(project)
    except BuildError as exc:
        pytest.fail(f"building {source.relative_to(ROOT)} failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def hostcalls_wasm() -> Path:
    """The hostcalls plugin, built once (and again only when it or the kit changes)."""
    return build_cached(SOURCE, "as-hostcalls")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def plugin(wasm: Path, *grants: str, **kwargs: Any) -> wasmdeck.Plugin:
    kinds = {g.split(":")[0] for g in grants}
    return wasmdeck.Plugin(
        wasm, grants=[*grants, *(g for g in LINK if g.split(":")[0] not in kinds)], **kwargs
    )


def test_module_shape(hostcalls_wasm: Path) -> None:
    """The ABI's exports with their exact types; imports only from wasmdeck, none from env."""
    module = wasmtime.Module(wasmtime.Engine(), hostcalls_wasm.read_bytes())
    exports = {e.name: str(e.type) for e in module.exports}
    assert set(exports) == {"memory", "alloc", "dealloc", "init", "execute", "_initialize"}
    assert {i.module for i in module.imports} == {"wasmdeck"}
    assert "response_read" in {i.name for i in module.imports}


def test_kv_round_trip(hostcalls_wasm: Path, home: Path) -> None:
    p = plugin(hostcalls_wasm, "kv")
    assert p.call("kv", {"key": "token", "value": "s3cret ✓"}) == "s3cret ✓".encode()
    again = plugin(hostcalls_wasm, "kv")  # persisted, for the plugin of that name
    assert again.call("kv", {"key": "token", "value": "next"}) == b"next"
    assert (home / "kv.sqlite3").exists()


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


def test_http_get(hostcalls_wasm: Path, webhook_server: WebhookServer) -> None:
    p = plugin(hostcalls_wasm, f"network:127.0.0.1:{webhook_server.port}")
    out = json.loads(p.call("http-get", {"url": webhook_server.url("/x")}))
    assert out["status"] == 200 and json.loads(out["body"]) == {"ok": True}
    [request] = webhook_server.requests
    assert request.method == "GET" and request.path == "/x"


def test_http_post_json(hostcalls_wasm: Path, webhook_server: WebhookServer) -> None:
    p = plugin(hostcalls_wasm, f"network:127.0.0.1:{webhook_server.port}")
    out = json.loads(p.call("http-post", {"url": webhook_server.url("/lights")}))
    assert out == {"status": 200, "reply": {"ok": True}, "type": "application/json"}
    [request] = webhook_server.requests
    assert request.method == "POST" and request.json() == {"on": True}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-test"] == "assemblyscript"


def test_log(hostcalls_wasm: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="wasmdeck.plugin")
    assert plugin(hostcalls_wasm).call("log", {"message": "pad 3 is loose ✓"}) == b"logged"
    [record] = [r for r in caplog.records if r.getMessage() == "pad 3 is loose ✓"]
    assert record.levelname == "WARNING" and record.name.startswith("wasmdeck.plugin")


def test_denied_is_an_error_the_plugin_handles(hostcalls_wasm: Path) -> None:
    # Linked with a network grant for another host: 127.0.0.1:1 is not granted.
    assert plugin(hostcalls_wasm).call("denied") == b"denied"


def test_host_error_reported_to_the_user(hostcalls_wasm: Path) -> None:
    with pytest.raises(PluginReportedError) as caught:
        plugin(hostcalls_wasm).call("fail-host")
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
    assert out == {
        "velocity": 100,
        "mode": 2,
        "timestamp": 1732500000123,
        "params": 1,
        "action": "context",
    }
    out = json.loads(p.call("context", None, TriggerContext(timestamp=5)))
    assert out == {"velocity": None, "mode": None, "timestamp": 5, "params": 0, "action": "context"}


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ('{"b": [1, 2.5, -0, 1e3], "a": null}', {"b": [1, 2.5, 0, 1000.0], "a": None}, "object"),
        ('"caf\\u00e9 \\ud83c\\udfb9 \\"q\\" \\\\ \\n\\t"', 'café 🎹 "q" \\ \n\t', "string"),
        ("9007199254740993", 9007199254740993, "integer"),
        ("  true ", True, "bool"),
        ("[]", [], "array"),
        ('"\\u0001 ✓"', "\x01 ✓", "string"),
    ],
)
def test_json_round_trip(hostcalls_wasm: Path, text: str, value: object, kind: str) -> None:
    out = plugin(hostcalls_wasm).call("json", {"text": text})
    assert json.loads(out) == {"value": value, "kind": kind}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "expected a string key at offset 1"),
        ("[1", "expected ',' or ']' at offset 2"),
        ('{"a" 1}', "expected ':' at offset 5"),
        ("[1,]", "unexpected character at offset 3"),
        ("01", "unexpected text after the JSON value at offset 1"),
        ('"tab\there"', "control character in a string at offset 4"),
        ('"\\x"', "bad escape at offset 2"),
        ("[" * 200 + "]" * 200, "JSON nested too deeply at offset 129"),
        ("nul", "unexpected character at offset 0"),
        ("-", "bad number at offset 1"),
    ],
)
def test_json_refuses_what_is_not_json(hostcalls_wasm: Path, text: str, reason: str) -> None:
    with pytest.raises(PluginReportedError) as caught:
        plugin(hostcalls_wasm).call("json", {"text": text})
    assert caught.value.message == "invalid: " + reason


def test_base64(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm)
    for text in ("", "a", "ab", "abc", "abcd", "héllo ✓"):
        out = json.loads(p.call("base64", {"text": text}))
        assert out == {
            "encoded": base64.b64encode(text.encode()).decode(),
            "decoded": text,
        }
    for bad in ("a", "abc", "ab=c", "a===", "ab\u00e9=", "====", "ab*d"):
        assert p.call("base64", {"b64": bad}) == b"(invalid)", bad
    assert p.call("base64", {"b64": "aGk="}) == b"hi"


def test_state_lives_in_globals(hostcalls_wasm: Path) -> None:
    p = plugin(hostcalls_wasm)
    assert [json.loads(p.call("calls"))["calls"] for _ in range(3)] == [1, 2, 3]


def test_abort_is_logged_then_traps(hostcalls_wasm: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="wasmdeck.plugin")
    p = plugin(hostcalls_wasm)
    assert json.loads(p.call("calls")) == {"calls": 1}
    with pytest.raises(PluginTrap, match="unreachable"):
        p.call("abort")
    [record] = [r for r in caplog.records if r.getMessage().startswith("abort: ")]
    assert record.levelname == "ERROR"
    assert record.getMessage().startswith("abort: the params have no 'never' in assembly/index.ts:")
    assert json.loads(p.call("calls")) == {"calls": 1}  # a fresh instance


def test_unknown_action_without_a_declaration(hostcalls_wasm: Path) -> None:
    guest = _Guest(hostcalls_wasm)
    assert guest.execute(b'{"action": "nope"}') == 1
    assert guest.errors == [b"unknown action 'nope'"]


def test_garbage_is_collected_between_calls(hostcalls_wasm: Path) -> None:
    """Each call leaves ~2 MiB of garbage; 100 calls fit in 16 MiB only if it is freed."""
    p = plugin(hostcalls_wasm, limits=Limits(max_memory=16 * 1024 * 1024))
    for _ in range(100):
        assert p.call("garbage", {"n": 1_000_000}) == b"500000"


def test_large_requests(hostcalls_wasm: Path) -> None:
    """A request far larger than the host's first buffer: alloc grows the memory."""
    big = json.dumps(["x" * 1000] * 250)
    p = plugin(hostcalls_wasm)
    for _ in range(3):
        assert json.loads(p.call("json", {"text": big}))["value"] == json.loads(big)


def test_ungranted_imports_refuse_to_load(hostcalls_wasm: Path) -> None:
    with pytest.raises(ImportNotAllowed, match="'network' capability"):
        wasmdeck.Plugin(hostcalls_wasm, grants=["kv", "process:printf"])


def test_metadata_declares_capabilities(hostcalls_wasm: Path) -> None:
    meta = plugin(hostcalls_wasm).metadata
    assert meta.name == "as-hostcalls" and len(meta.actions or ()) == 16
    assert [c.kind for c in meta.capabilities] == ["kv", "network", "process"]
    assert meta.action("kv").params["properties"]["key"] == {"type": "string"}


class _Guest:
    """The module run bare in wasmtime, to feed execute what the host never would."""

    def __init__(self, wasm: Path) -> None:
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        self.errors: list[bytes] = []
        module = wasmtime.Module.from_file(engine, str(wasm))
        for imp in module.imports:
            if imp.name == "set_error":
                linker.define_func("wasmdeck", "set_error", imp.type, self._set_error, True)
            else:
                results = list(imp.type.results)  # type: ignore[union-attr]
                linker.define_func(
                    "wasmdeck", imp.name, imp.type, lambda *a, r=results: 0 if r else None
                )
        self.store, self.instance = store, linker.instantiate(store, module)
        exports = self.instance.exports(store)
        self.memory = exports["memory"]
        exports["_initialize"](store)

    def _set_error(self, caller: wasmtime.Caller, ptr: int, length: int) -> None:
        self.errors.append(bytes(self.memory.read(caller, ptr, ptr + length)))

    def execute(self, request: bytes) -> int:
        exports = self.instance.exports(self.store)
        ptr = exports["alloc"](self.store, max(len(request), 1))
        self.memory.write(self.store, request, ptr)
        code = exports["execute"](self.store, ptr, len(request))
        exports["dealloc"](self.store, ptr, max(len(request), 1))
        return code


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (b"not json", b"the request is not valid JSON: unexpected character at offset 0"),
        (b"[1, 2]", b"the request is not valid JSON: the request is not a JSON object"),
        (
            b'{"action": "context"',
            b"the request is not valid JSON: expected ',' or '}' at offset 20",
        ),
        (b'{"action": 7}', b"unknown action ''"),
    ],
)
def test_bad_requests_are_refused(hostcalls_wasm: Path, request_: bytes, message: bytes) -> None:
    guest = _Guest(hostcalls_wasm)
    assert guest.execute(request_) == 1
    assert guest.errors == [message]
    assert guest.execute(b'{"action": "context", "context": null, "params": 3}') == 0


# -- the toolchain -------------------------------------------------------------


def test_toolchain_reports_the_pinned_asc() -> None:
    assert asc.LANGUAGE.toolchain().startswith(f"asc {asc.ASSEMBLYSCRIPT_VERSION} ")


def test_install_is_a_quick_no_op_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asc.shutil, "which", lambda name: None)  # npm could not run
    started = time.perf_counter()
    assert asc.LANGUAGE.install is not None
    asc.LANGUAGE.install(no_progress)
    assert time.perf_counter() - started < 0.5


def test_toolchain_missing_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMDECK_TOOLCHAINS", str(tmp_path))
    with pytest.raises(ToolchainMissing) as caught:
        asc.LANGUAGE.toolchain()
    message = str(caught.value)
    assert f"npm install --no-audit --no-fund assemblyscript@{asc.ASSEMBLYSCRIPT_VERSION}" in (
        message
    )
    assert "wasmdeck toolchain --install assemblyscript" in message
    assert str(tmp_path / f"assemblyscript-{asc.ASSEMBLYSCRIPT_VERSION}") in message


def test_toolchain_missing_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match=r"runs on Node\.js"):
        asc.LANGUAGE.toolchain()


def test_cli_build_without_the_toolchain(tmp_path: Path) -> None:
    """`wasmdeck build` says how to get asc: exit code 1, no traceback."""
    project = tmp_path / "pad"
    new_project(project, "pad", "assemblyscript", "minimal")
    env = {"PATH": "/usr/bin:/bin", "WASMDECK_TOOLCHAINS": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", "build", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "HOME": str(tmp_path)},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "npm install --no-audit --no-fund assemblyscript@" in result.stderr
    assert "wasmdeck build --install-toolchain" in result.stderr
    assert not (project / "build" / "pad.wasm").exists()


def test_build_error_names_the_line(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    new_project(project, "broken", "assemblyscript", "minimal")
    (project / "assembly" / "index.ts").write_text(
        'import { Plugin } from "wasmdeck";\nPlugin.define("broken", 1);\n'
    )
    with pytest.raises(BuildError) as caught:
        build_project(project)
    assert "assembly/index.ts(2," in str(caught.value) and "ERROR" in str(caught.value)
    assert not (project / "build" / "broken.wasm").exists()


def test_build_refuses_imports_the_host_lacks(tmp_path: Path) -> None:
    project = tmp_path / "chatty"
    new_project(project, "chatty", "assemblyscript", "minimal")
    entry = project / "assembly" / "index.ts"
    entry.write_text(entry.read_text().replace('output("', 'console.log("hi");\n  output("'))
    with pytest.raises(BuildError) as caught:
        build_project(project)
    assert "env.console.log" in str(caught.value) and "log.info" in str(caught.value)
    assert not (project / "build" / "chatty.wasm").exists()
