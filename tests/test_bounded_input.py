"""Hostile input ends in a typed error naming what is wrong, in linear time (issue 9, item 8).

Metadata comes from WAT plugins (tests/watgen.py), host-call requests from a
WAT plugin that sends fixed bytes (tests/hostcall.py), and the command-line
JSON options go through the CLI's own ``main``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hostcall import host_call_module
from watgen import DEFAULT_METADATA, abi_module

import wasmdeck
from wasmdeck import InvalidMetadata, MalformedPackage
from wasmdeck._json import JSONInputError, loads
from wasmdeck.cli._main import EXIT_INVALID, EXIT_USAGE, main
from wasmdeck.packages._package import Manifest

HUGE_INTEGER = "1" + "0" * 5000


def plugin_with(metadata: bytes) -> bytes:
    """A WAT plugin whose init returns ``metadata``, with memory enough to hold it."""
    pages = len(metadata) // 65536 + 2
    return abi_module(metadata=metadata, memory=f'(memory (export "memory") {pages})')


def metadata_with(tail: str) -> bytes:
    """DEFAULT_METADATA's text with ``tail`` spliced in as one more field."""
    return json.dumps(DEFAULT_METADATA).encode()[:-1] + b", " + tail.encode() + b"}"


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        ('"deep": ' + "[" * 100_000 + "]" * 100_000, "nested more than 32 levels deep"),
        (f'"n": {HUGE_INTEGER}', "a number too large"),
        ('"n": NaN', "not valid JSON.*NaN, Infinity"),
        ('"n": -Infinity', "not valid JSON.*NaN, Infinity"),
        ('"name": "second"', "names the key 'name' more than once"),
        ('"x": [' + ",".join(["0"] * 150_000) + "]", "more than 100,000 values"),
    ],
    ids=["nested-100k", "5000-digit-integer", "nan", "infinity", "duplicate-key", "values"],
)
def test_hostile_metadata_is_invalid_metadata(tail: str, message: str) -> None:
    with pytest.raises(InvalidMetadata, match=message):
        wasmdeck.Plugin(plugin_with(metadata_with(tail)))


def _actions(count: int) -> bytes:
    actions = [{"name": f"action-{i}"} for i in range(count)]
    return json.dumps({**DEFAULT_METADATA, "actions": actions}).encode()


def test_forty_thousand_actions_are_refused_quickly() -> None:
    # On main this took over 25 s (a duplicate check that scanned the list per action).
    wasm = plugin_with(_actions(40_000))
    started = time.monotonic()
    with pytest.raises(InvalidMetadata, match="declares 40,000 actions, more than the 4,096"):
        wasmdeck.Plugin(wasm)
    assert time.monotonic() - started < 10  # generous: the point is "not 25 s"


def test_many_actions_with_a_duplicate_are_checked_in_linear_time() -> None:
    meta = json.loads(_actions(4096))
    meta["actions"][-1]["name"] = "action-0"
    started = time.monotonic()
    with pytest.raises(InvalidMetadata, match="declared more than once: action-0"):
        wasmdeck.PluginMetadata.from_json(json.dumps(meta).encode())
    assert time.monotonic() - started < 2


# -- host-call requests (the JSON a plugin hands a host function) --------------


@pytest.mark.parametrize(
    ("request_bytes", "message"),
    [
        (b'{"key": "a", "key": "b"}', "the config_get request names the key 'key' more than once"),
        (b'{"key": NaN}', "the config_get request is not valid JSON"),
        (b'{"key": ' + HUGE_INTEGER.encode() + b"}", "the config_get request holds a number too"),
        (b'{"key": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested more than 64 levels deep"),
    ],
    ids=["duplicate-key", "nan", "5000-digit-integer", "nested"],
)
def test_hostile_host_requests_get_an_invalid_request_answer(
    request_bytes: bytes, message: str
) -> None:
    plugin = wasmdeck.Plugin(
        host_call_module("config_get", request_bytes), config={"a": "first", "b": "second"}
    )
    answer = json.loads(plugin.call("go"))
    assert answer["error"]["kind"] == "invalid_request"
    assert message in answer["error"]["message"]


# -- package manifests ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a":' * 30_000 + b"1" + b"}" * 30_000, "nested more than 64 levels deep"),
        (b'{"n":' + HUGE_INTEGER.encode() + b"}", "a number too large"),
        (b'{"n":NaN}', "not valid JSON"),
    ],
    ids=["nested-30k", "5000-digit-integer", "nan"],
)
def test_hostile_manifest_is_malformed(data: bytes, message: str) -> None:
    with pytest.raises(MalformedPackage, match=message):
        Manifest.decode(data)


# -- the command line's JSON options --------------------------------------------


@pytest.fixture(scope="module")
def ok_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bounded") / "ok.wasm"
    path.write_bytes(abi_module())
    return path


@pytest.mark.parametrize("option", ["--params", "--context", "--config"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"a": ' + "[" * 30_000 + "]" * 30_000 + "}", "nested more than 64 levels deep"),
        ('{"a": ' + HUGE_INTEGER + "}", "holds a number too large"),
        ('{"a": NaN}', "is not valid JSON"),
        ('{"a": 1, "a": 2}', "names the key 'a' more than once"),
        ('{"a": "\udcff"}', "is not valid Unicode text"),
    ],
    ids=["nested-30k", "5000-digit-integer", "nan", "duplicate-key", "lone-surrogate"],
)
def test_hostile_json_options_are_usage_errors(
    ok_plugin: Path, option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(ok_plugin), "ok", option, value])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert f"usage error: {option} " in err and message in err
    assert "Traceback" not in err


def test_current_mode_on_the_command_line(
    ok_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(ok_plugin), "ok", "--context", '{"current_mode": 2}']) == 0
    assert capsys.readouterr().out == "ok"
    code = main(["run", str(ok_plugin), "ok", "--context", '{"mode": 1, "current_mode": 2}'])
    assert code == EXIT_USAGE
    assert "gives mode 1 and current_mode 2; they are one field" in capsys.readouterr().err


def test_hostile_metadata_on_the_command_line_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.wasm"
    path.write_bytes(plugin_with(metadata_with('"d": ' + "[" * 100_000 + "]" * 100_000)))
    assert main(["info", str(path)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "metadata is nested more than 32 levels deep" in err and "Traceback" not in err


# -- what Python hands in -------------------------------------------------------


def test_python_params_and_config_that_are_not_json_raise_value_error() -> None:
    deep: list[object] = []
    for _ in range(30_000):
        deep = [deep]
    deep_70: list[object] = []
    for _ in range(70):
        deep_70 = [deep_70]
    plugin = wasmdeck.Plugin(abi_module())
    with pytest.raises(ValueError, match="params cannot be sent as JSON: nested too deeply"):
        plugin.call("ok", {"a": deep})
    with pytest.raises(ValueError, match="params cannot be sent as JSON"):
        plugin.call("ok", {"a": object()})
    # The configuration is checked when the plugin is made, not when it first reads it.
    with pytest.raises(ValueError, match="config cannot be sent as JSON: nested too deeply"):
        wasmdeck.Plugin(abi_module(), config={"a": deep})
    with pytest.raises(ValueError, match="config is nested more than 64 levels deep"):
        wasmdeck.Plugin(abi_module(), config={"a": deep_70})
    with pytest.raises(ValueError, match="config cannot be sent as JSON: Type is not JSON"):
        wasmdeck.Plugin(abi_module(), config={"a": object()})
    with pytest.raises(ValueError, match="config cannot be sent as JSON: Dict key must be str"):
        wasmdeck.Plugin(abi_module(), config={1: "x"})


# -- the parser itself ------------------------------------------------------------


def test_loads_limits_and_messages() -> None:
    assert loads(b'{"a": [1, 2.5, "x", null]}', what="t") == {"a": [1, 2.5, "x", None]}
    with pytest.raises(JSONInputError, match="t is 10 bytes, more than the 4 allowed"):
        loads(b"[1,2,3,45]", what="t", max_bytes=4)
    with pytest.raises(JSONInputError, match="t holds more than 3 values"):
        loads(b"[1,2,3]", what="t", max_items=3)
    with pytest.raises(JSONInputError, match="t is nested more than 2 levels deep"):
        loads(b"[[[]]]", what="t", max_depth=2)
    assert loads(b'{"a":1,"a":2}', what="t", unique_keys=False) == {"a": 2}
    assert isinstance(JSONInputError("x"), ValueError)  # the CLI's usage-error path
