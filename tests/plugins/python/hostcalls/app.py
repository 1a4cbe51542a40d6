"""py-hostcalls: every host helper of the Python kit, one action each.

The hostcalls contract of tests/test_pdk_hostcalls.py, which calls them
against the real host.
"""

import json

from wasmdeck_pdk import Context, Plugin, PluginError, host

plugin = Plugin(
    "py-hostcalls",
    version="0.1.0",
    description="Calls the host APIs through the Python kit",
    capabilities=["kv", "network", "process"],
)
calls = 0


def need(params: dict, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str):
        raise PluginError(f"'{name}' must be a string")
    return value


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@plugin.action(description="kv_set (when a value is given) then kv_get")
def kv(params: dict, context: Context) -> bytes:
    key = need(params, "key")
    if params.get("value") is not None:
        host.kv_set(key, need(params, "value"))
    value = host.kv_get(key)
    return b"(none)" if value is None else value


@plugin.action(name="kv-more", description="binary values, kv_list, kv_delete")
def kv_more(params: dict, context: Context) -> dict:
    binary = bytes([0, 0xFF, 0xFE, ord("x")])
    host.kv_set("bin", binary)
    host.kv_set("other", "text")
    return {
        "same": host.kv_get("bin") == binary,
        "keys": host.kv_list(""),
        "prefixed": host.kv_list("b"),
        "deleted": host.kv_delete("other"),
        "again": host.kv_delete("other"),
        "gone": host.kv_get("other") is None,
    }


@plugin.action(description="a configuration value, as text")
def config(params: dict, context: Context) -> str:
    value = host.config(need(params, "key"))
    if value is None:
        return "(unset)"
    return value if isinstance(value, str) else compact(value)


@plugin.action(name="http-get", description="GET a URL")
def http_get(params: dict, context: Context) -> str:
    answer = host.http_get(need(params, "url"))
    return compact({"status": answer["status"], "body": answer.get("body", "(binary)")})


@plugin.action(name="http-post", description="POST JSON to a URL")
def http_post(params: dict, context: Context) -> str:
    answer = host.http_request(
        "POST",
        need(params, "url"),
        headers={"Content-Type": "application/json", "X-Test": "python"},
        body=compact({"on": True}),
    )
    kind = next((v for k, v in answer["headers"] if k.lower() == "content-type"), "?")
    return compact({"status": answer["status"], "reply": json.loads(answer["body"]), "type": kind})


@plugin.action(description="log a message at warning level")
def log(params: dict, context: Context) -> str:
    host.log("warning", need(params, "message"))
    return "logged"


@plugin.action(description="what the host says to an ungranted request")
def denied(params: dict, context: Context) -> str:
    try:
        host.http_get("http://127.0.0.1:1/")
    except host.HostError as exc:
        return exc.kind
    raise PluginError("the request was not refused")


@plugin.action(name="fail-host", description="an ungranted request, not handled")
def fail_host(params: dict, context: Context) -> str:
    host.http_get("http://127.0.0.1:1/")
    return ""


@plugin.action(description="run a process")
def process(params: dict, context: Context) -> str:
    result = host.process_run(params["argv"], timeout_ms=5000)
    return compact(
        {
            "exit_code": result["exit_code"],
            "stdout": result["stdout"],
            "stderr": result["stderr"],
            "truncated": result.get("truncated", False),
        }
    )


@plugin.action(name="ws-echo", description="a WebSocket session with an echo server")
def ws_echo(params: dict, context: Context) -> str:
    url, text = need(params, "url"), need(params, "text")
    # The kit's ws_connect gives the connection's id only, not the subprotocol.
    connection = host.ws_connect(url, subprotocols=["echo.v1"])
    try:
        host.ws_send(connection, text)
        echoed = host.ws_recv(connection, 2000)
        host.ws_send(connection, bytes([1, 2, 0xFF]))
        binary = host.ws_recv(connection, 2000)
        host.ws_send(connection, "bye")
        closed = host.ws_recv(connection, 2000)
        try:
            host.ws_send(connection, "anyone?")
            after = "sent"
        except host.HostError as exc:
            after = exc.kind
    finally:
        host.ws_close(connection)
    return compact(
        {
            "subprotocol": None,
            "text": echoed.get("text", "?"),
            "binary": 3 if binary.get("data_base64") == "AQL/" else 0,  # 01 02 ff
            "closed": closed.get("code") if closed.get("closed") else None,
            "after": after,
        }
    )


@plugin.action(description="the request as the kit parsed it")
def context(params: dict, context: Context) -> str:
    return compact(
        {
            "action": "context",
            "velocity": context.velocity,
            "mode": context.mode,
            "timestamp": context.timestamp,
            "params": params,
        }
    )


@plugin.action(description="state kept between calls")
def count(params: dict, context: Context) -> str:
    global calls
    calls += 1
    return compact({"calls": calls})


WitWorld = plugin.world()
