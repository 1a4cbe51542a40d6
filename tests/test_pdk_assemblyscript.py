"""What only the AssemblyScript kit (sdk/assemblyscript/wasmdeck) has, against the real host.

Every host API is tested through the hostcalls contract, for every language,
in tests/test_pdk_hostcalls.py; here: the module's exact shape, the kit's
JSON and base64, aborts, garbage collection, and the asc toolchain.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import wasmtime
from pdkbuild import Guest, hostcalls_wasm, plugin

from wasmdeck import Limits, PluginReportedError, PluginTrap
from wasmdeck.toolchains import BuildError, ToolchainMissing, build_project, new_project
from wasmdeck.toolchains import _assemblyscript as asc
from wasmdeck.toolchains._tool import no_progress


@pytest.fixture(scope="session")
def as_hostcalls() -> Path:
    return hostcalls_wasm("assemblyscript")


def test_module_shape(as_hostcalls: Path) -> None:
    """The ABI's exports with their exact types; imports only from wasmdeck, none from env."""
    module = wasmtime.Module(wasmtime.Engine(), as_hostcalls.read_bytes())
    exports = {e.name: str(e.type) for e in module.exports}
    assert set(exports) == {
        "memory",
        "alloc",
        "dealloc",
        "init",
        "execute",
        "_initialize",
        "save_state",  # the live reload's pair (docs/reload.md): empty state by default
        "restore_state",
    }
    assert {i.module for i in module.imports} == {"wasmdeck"}
    assert "response_read" in {i.name for i in module.imports}


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
def test_json_round_trip(as_hostcalls: Path, text: str, value: object, kind: str) -> None:
    out = plugin(as_hostcalls).call("json", {"text": text})
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
def test_json_refuses_what_is_not_json(as_hostcalls: Path, text: str, reason: str) -> None:
    with pytest.raises(PluginReportedError) as caught:
        plugin(as_hostcalls).call("json", {"text": text})
    assert caught.value.message == "invalid: " + reason


def test_base64(as_hostcalls: Path) -> None:
    p = plugin(as_hostcalls)
    for text in ("", "a", "ab", "abc", "abcd", "héllo ✓"):
        out = json.loads(p.call("base64", {"text": text}))
        assert out == {
            "encoded": base64.b64encode(text.encode()).decode(),
            "decoded": text,
        }
    for bad in ("a", "abc", "ab=c", "a===", "ab\u00e9=", "====", "ab*d"):
        assert p.call("base64", {"b64": bad}) == b"(invalid)", bad
    assert p.call("base64", {"b64": "aGk="}) == b"hi"


def test_abort_is_logged_then_traps(as_hostcalls: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="wasmdeck.plugin")
    p = plugin(as_hostcalls)
    assert json.loads(p.call("count")) == {"calls": 1}
    with pytest.raises(PluginTrap, match="unreachable"):
        p.call("abort")
    [record] = [r for r in caplog.records if r.getMessage().startswith("abort: ")]
    assert record.levelname == "ERROR"
    assert record.getMessage().startswith("abort: the params have no 'never' in assembly/index.ts:")
    assert json.loads(p.call("count")) == {"calls": 1}  # a fresh instance


def test_unknown_action_without_a_declaration(as_hostcalls: Path) -> None:
    guest = Guest(as_hostcalls)
    assert guest.execute(b'{"action": "nope"}') == 1
    assert guest.errors == [b"unknown action 'nope'"]


def test_garbage_is_collected_between_calls(as_hostcalls: Path) -> None:
    """Each call leaves ~2 MiB of garbage; 100 calls fit in 16 MiB only if it is freed."""
    p = plugin(as_hostcalls, limits=Limits(max_memory=16 * 1024 * 1024))
    for _ in range(100):
        assert p.call("garbage", {"n": 1_000_000}) == b"500000"


def test_large_requests(as_hostcalls: Path) -> None:
    """A request far larger than the host's first buffer: alloc grows the memory."""
    big = json.dumps(["x" * 1000] * 250)
    p = plugin(as_hostcalls)
    for _ in range(3):
        assert json.loads(p.call("json", {"text": big}))["value"] == json.loads(big)


def test_metadata_declares_params(as_hostcalls: Path) -> None:
    meta = plugin(as_hostcalls).metadata
    assert len(meta.actions or ()) == 16
    assert meta.action("kv").params["properties"]["key"] == {"type": "string"}


# -- the toolchain -------------------------------------------------------------


def test_toolchain_reports_the_pinned_asc() -> None:
    assert asc.LANGUAGE.toolchain().startswith(f"asc {asc.ASSEMBLYSCRIPT_VERSION} ")


def test_install_is_a_quick_no_op_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asc.shutil, "which", lambda name: None)  # npm could not run
    started = time.perf_counter()
    assert asc.LANGUAGE.install is not None
    asc.LANGUAGE.install(no_progress)
    assert time.perf_counter() - started < 0.5


def test_toolchain_missing_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match=r"runs on Node\.js"):
        asc.LANGUAGE.toolchain()


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
