"""WAT plugins that make one host call with a fixed JSON request.

``host_call_module(function, request)`` builds a plugin whose ``execute``
sends ``request`` (embedded in the module) to ``wasmdeck.<function>``, reads
the response with ``response_read`` and hands it back as its output. The
tests then see exactly what the host answered. ``calls_module(calls)`` makes
several host calls in a row and hands back the last response.
"""

from __future__ import annotations

import json

from watgen import abi_module, data_string

REQUEST_AT = 8192
RESPONSE_AT = 65536


def host_call_module(
    function: str,
    request: dict[str, object] | bytes,
    *,
    name: str = "host-caller",
    version: str = "1.0.0",
    **metadata: object,
) -> bytes:
    """``request`` is a JSON object, or the exact bytes to send (for malformed ones)."""
    payload = request if isinstance(request, bytes) else json.dumps(request).encode()
    imports = (
        '(import "wasmdeck" "set_output" (func $set_output (param i32 i32)))'
        f'(import "wasmdeck" "{function}" (func $call (param i32 i32) (result i32)))'
        '(import "wasmdeck" "response_read" (func $read (param i32 i32) (result i32)))'
    )
    body = f"""
        (call $set_output (i32.const {RESPONSE_AT})
            (call $read (i32.const {RESPONSE_AT})
                (call $call (i32.const {REQUEST_AT}) (i32.const {len(payload)}))))
        (i32.const 0)"""
    return abi_module(
        body,
        imports=imports,
        memory='(memory (export "memory") 8)',
        metadata={
            "name": name,
            "version": version,
            "description": f"calls {function}",
            **metadata,
        },
        extra=f"(data (i32.const {REQUEST_AT}) {data_string(payload)})",
    )


def calls_module(calls: list[tuple[str, dict[str, object]]], *, then: str = "") -> bytes:
    """A plugin whose execute makes host ``calls`` in order and outputs the last response.

    ``then`` runs after the calls (e.g. ``(unreachable)`` to trap with
    connections open). WebSocket ids start at 1 in each instance, so a
    later call can name a connection an earlier one opened.
    """
    functions = list(dict.fromkeys(function for function, _ in calls))
    imports = "".join(
        [
            '(import "wasmdeck" "set_output" (func $set_output (param i32 i32)))',
            '(import "wasmdeck" "response_read" (func $read (param i32 i32) (result i32)))',
            *(
                f'(import "wasmdeck" "{f}" (func ${f} (param i32 i32) (result i32)))'
                for f in functions
            ),
        ]
    )
    data, body, at = [], [], 8192
    for index, (function, request) in enumerate(calls):
        payload = json.dumps(request).encode()
        data.append(f"(data (i32.const {at}) {data_string(payload)})")
        read = f"(call $read (i32.const {RESPONSE_AT}) (call ${function} (i32.const {at}) (i32.const {len(payload)})))"
        last = index == len(calls) - 1
        body.append(
            f"(call $set_output (i32.const {RESPONSE_AT}) {read})" if last else f"(drop {read})"
        )
        at += len(payload) + 8
    return abi_module(
        "".join(body) + then + "(i32.const 0)",
        imports=imports,
        memory='(memory (export "memory") 8)',
        metadata={"name": "caller", "version": "1.0.0", "description": "makes host calls"},
        extra="".join(data),
    )
