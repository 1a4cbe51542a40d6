"""The WebSocket host API against a real WebSocket server (the `websockets` library) on loopback."""

from __future__ import annotations

import json

from watgen import abi_module, data_string

import wasmdeck
from wasmdeck import Limits


def session_plugin(
    port: int, grants: list[str], steps: list[tuple[str, dict[str, object]]]
) -> wasmdeck.Plugin:
    """A plugin that runs a fixed sequence of WebSocket host calls, one per call of 'go'.

    Each call performs the next step (connect, send, recv, close) and outputs
    the host's response, so the test drives the session step by step across
    calls: the connection lives as long as the plugin instance.
    """
    requests = [json.dumps(request).encode() for _, request in steps]
    imports = "".join(
        f'(import "wasmdeck" "{fn}" (func ${fn} (param i32 i32) (result i32)))'
        for fn in dict.fromkeys(fn for fn, _ in steps)
    )
    imports += (
        '(import "wasmdeck" "set_output" (func $set_output (param i32 i32)))'
        '(import "wasmdeck" "response_read" (func $read (param i32 i32) (result i32)))'
    )
    data, branches, at = [], [], 9000
    for index, ((fn, _), payload) in enumerate(zip(steps, requests, strict=True)):
        data.append(f"(data (i32.const {at}) {data_string(payload)})")
        branches.append(
            f"(if (i32.eq (global.get $step) (i32.const {index})) (then "
            f"(global.set $step (i32.const {index + 1}))"
            f"(call $set_output (i32.const 65536) (call $read (i32.const 65536) "
            f"(call ${fn} (i32.const {at}) (i32.const {len(payload)})))) (return (i32.const 0))))"
        )
        at += len(payload) + 8
    body = "\n".join(branches) + "\n(i32.const 9)"
    wasm = abi_module(
        body,
        imports=imports,
        memory='(memory (export "memory") 8)',
        metadata={"name": "ws-session", "version": "1", "description": "ws steps"},
        extra="(global $step (mut i32) (i32.const 0))\n" + "\n".join(data),
    )
    return wasmdeck.Plugin(wasm, grants=grants, limits=Limits(timeout=5))


def test_websocket_session_across_calls(echo_server: tuple[int, list[str]]) -> None:
    port, seen = echo_server
    url = f"ws://127.0.0.1:{port}/"
    plugin = session_plugin(
        port,
        [f"network:127.0.0.1:{port}"],
        [
            ("ws_connect", {"url": url, "subprotocols": ["echo.v1"]}),
            ("ws_send", {"id": 1, "text": "hello"}),
            ("ws_recv", {"id": 1, "timeout_ms": 2000}),
            ("ws_send", {"id": 1, "data_base64": "AAEC"}),
            ("ws_recv", {"id": 1, "timeout_ms": 2000}),
            ("ws_recv", {"id": 1, "timeout_ms": 100}),
            ("ws_send", {"id": 1, "text": "bye"}),
            ("ws_recv", {"id": 1, "timeout_ms": 2000}),
            ("ws_close", {"id": 1}),
        ],
    )
    responses = [json.loads(plugin.call("go")) for _ in range(9)]
    assert responses == [
        {"id": 1, "subprotocol": "echo.v1"},
        {},
        {"text": "hello"},
        {},
        {"data_base64": "AAEC"},
        {"timeout": True},
        {},
        {"closed": True, "code": 4000, "reason": "bye"},
        {},
    ]
    assert seen == ["hello", "bytes:000102", "bye"]


def test_websocket_to_an_ungranted_host_is_refused(echo_server: tuple[int, list[str]]) -> None:
    port, seen = echo_server
    plugin = session_plugin(
        port, ["network:obs.example.com:4455"], [("ws_connect", {"url": f"ws://127.0.0.1:{port}/"})]
    )
    response = json.loads(plugin.call("go"))
    assert response["error"]["kind"] == "denied"
    assert (
        f"ws://127.0.0.1:{port} is not in the plugin's network grant"
        in response["error"]["message"]
    )
    assert seen == []  # nothing reached the server


def test_websocket_to_a_name_resolving_to_loopback_is_refused(
    echo_server: tuple[int, list[str]], loopback_name: str
) -> None:
    port, _ = echo_server
    plugin = session_plugin(
        port,
        [f"network:{loopback_name}:{port}"],
        [("ws_connect", {"url": f"ws://{loopback_name}:{port}/"})],
    )
    response = json.loads(plugin.call("go"))
    assert (
        response["error"]["kind"] == "denied" and "loopback address" in response["error"]["message"]
    )


def test_connections_close_when_the_instance_is_discarded(
    echo_server: tuple[int, list[str]],
) -> None:
    port, _ = echo_server
    url = f"ws://127.0.0.1:{port}/"
    steps = [("ws_connect", {"url": url, "subprotocols": ["echo.v1"]})]
    plugin = session_plugin(port, [f"network:127.0.0.1:{port}"], steps)
    assert json.loads(plugin.call("go")) == {"id": 1, "subprotocol": "echo.v1"}
    sessions = plugin._impl._live.session.websockets  # type: ignore[union-attr]
    (connection,) = sessions._connections.values()
    plugin.reset()  # what a trap or a limit does to the instance
    connection.recv_events_thread.join(timeout=5)
    assert connection.state.name == "CLOSED"


def test_unknown_connection_id(echo_server: tuple[int, list[str]]) -> None:
    port, _ = echo_server
    plugin = session_plugin(
        port, [f"network:127.0.0.1:{port}"], [("ws_send", {"id": 7, "text": "x"})]
    )
    assert json.loads(plugin.call("go"))["error"] == {
        "kind": "invalid_request",
        "message": "no open WebSocket with id 7",
    }


def test_abi_module_helper_still_answers_ok() -> None:
    assert wasmdeck.Plugin(abi_module()).call("ok") == b"ok"
