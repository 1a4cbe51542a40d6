"""docs/abi.md cannot drift: its WAT plugin is built and run, its examples checked.

The page marks the blocks it promises with ``<!-- abi-doc: NAME -->`` on the
line before a fenced block.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import wasmtime

import wasmdeck
from wasmdeck import ActionNotFound, PluginMetadata, PluginReportedError, TriggerContext

DOC = Path(__file__).resolve().parent.parent / "docs" / "abi.md"


def block(name: str) -> str:
    """The fenced block after ``<!-- abi-doc: name -->``."""
    found = re.search(
        rf"<!-- abi-doc: {re.escape(name)} -->\n```\w*\n(.*?)\n```", DOC.read_text(), re.S
    )
    assert found, f"docs/abi.md has no block marked {name!r}"
    return found.group(1)


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return wasmtime.wat2wasm(block("plugin"))


def test_the_wat_plugin_loads_with_its_metadata(wasm: bytes) -> None:
    plugin = wasmdeck.Plugin(wasm)
    assert plugin.abi == "core-v1"
    assert (plugin.name, plugin.metadata.version) == ("wat-hello", "0.1.0")
    names = [a.name for a in plugin.metadata.actions or ()]
    assert names == ["hello", "greeting", "echo", "fail"]
    assert plugin.metadata.capabilities == ()
    with pytest.raises(ActionNotFound):
        plugin.call("bye")


def test_the_wat_plugin_answers_as_the_doc_says(
    wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="wasmdeck.plugin")
    plugin = wasmdeck.Plugin(wasm, config={"greeting": "Hi!"})
    assert plugin.call("hello") == b"hello from wat"
    assert ("INFO", "saying hello") in [(r.levelname, r.getMessage()) for r in caplog.records]
    assert plugin.call("greeting") == b'{"value":"Hi!"}'
    assert wasmdeck.Plugin(wasm).call("greeting") == b'{"value":null}'
    with pytest.raises(PluginReportedError) as caught:
        plugin.call("fail")
    assert caught.value.message == "failed on purpose" and caught.value.code == 1
    # The bump allocator gives back per call what it took: many calls fit in its memory.
    for _ in range(3000):
        assert plugin.call("greeting") == b'{"value":"Hi!"}'


def test_the_request_is_what_the_doc_shows(wasm: bytes) -> None:
    plugin = wasmdeck.Plugin(wasm)
    documented = json.loads(block("request-example"))
    context = TriggerContext.from_dict(documented["context"])
    got = plugin.call("echo", documented["params"], context)
    # Compact, in the documented key order, and otherwise identical.
    assert json.loads(got) == {**documented, "action": "echo"}
    assert list(json.loads(got)) == ["action", "params", "context"]
    assert b" " not in got
    nulls = json.loads(plugin.call("echo", None, TriggerContext(timestamp=1)))
    assert nulls == {
        "action": "echo",
        "params": {},
        "context": {"velocity": None, "mode": None, "current_mode": None, "timestamp": 1},
    }


def test_the_metadata_example_is_valid() -> None:
    meta = PluginMetadata.from_json(block("metadata-example").encode())
    assert meta.name == "obs-scenes" and [a.name for a in meta.actions or ()] == [
        "set-scene",
        "next-scene",
    ]
    assert [c.kind for c in meta.capabilities] == ["network", "kv"]
    assert meta.capabilities[0].scope == {"hosts": ["127.0.0.1:4455"]}


def test_the_documented_limits_are_the_defaults() -> None:
    text = DOC.read_text()
    limits = wasmdeck.Limits()
    assert f"| `fuel` | {limits.fuel:,} |" in text
    assert f"| `timeout` | {limits.timeout:g} s |" in text
    for name in ("max_memory", "max_output", "max_response", "max_kv_bytes", "max_module_bytes"):
        assert f"| `{name}` | {getattr(limits, name) // (1024 * 1024)} MiB |" in text
    assert f"| `max_functions` | {limits.max_functions:,} |" in text
    assert f"| `max_function_bytes` | {limits.max_function_bytes // (1024 * 1024)} MiB |" in text
    assert f"| `max_compile_cpu` | {limits.max_compile_cpu:g} s |" in text
    assert (
        f"| `max_log_lines`, `max_log_bytes` | {limits.max_log_lines:,}, "
        f"{limits.max_log_bytes // (1024 * 1024)} MiB |" in text
    )
