"""A Python component that misbehaves on request, for the component tests.

The same actions as the C test plugin where the languages allow: limits,
errors, state across calls, WASI (stdio, env, files, clocks, random) and
the host API.
"""

import os
import sys
import time

from wasmdeck_pdk import Context, Plugin, PluginError, host

plugin = Plugin(
    "py-behaviors",
    version="1.2.3",
    description="Python component test plugin",
    author="wasmdeck tests",
)
_count = 0


@plugin.action(description="Answer ok")
def ok(params: dict, context: Context) -> str:
    return "ok"


@plugin.action(description="Echo the params and the context as JSON")
def echo(params: dict, context: Context) -> dict:
    return {
        "params": params,
        "context": {
            "velocity": context.velocity,
            "mode": context.mode,
            "timestamp": context.timestamp,
        },
    }


@plugin.action(description="The whole context, with the fields of wasmdeck:plugin@1.1.0")
def trigger(params: dict, context: Context) -> dict:
    return context.to_dict()


@plugin.action(description="Count calls on this instance")
def count(params: dict, context: Context) -> str:
    global _count
    _count += 1
    return str(_count)


@plugin.action(description="Return raw bytes")
def binary(params: dict, context: Context) -> bytes:
    return bytes(range(256))


@plugin.action(description="Return nothing")
def nothing(params: dict, context: Context) -> None:
    return None


@plugin.action(description="Fail with a message")
def fail(params: dict, context: Context) -> None:
    raise PluginError(params.get("message", "it failed on purpose"))


@plugin.action(description="Raise an unexpected exception")
def crash(params: dict, context: Context) -> None:
    raise ValueError("something broke")


@plugin.action(description="Loop forever")
def spin(params: dict, context: Context) -> None:
    while True:
        pass


@plugin.action(description="Allocate until memory runs out")
def grow(params: dict, context: Context) -> None:
    hoard = []
    while True:
        hoard.append(bytearray(1024 * 1024))


@plugin.action(description="Recurse without end")
def recurse(params: dict, context: Context) -> None:
    sys.setrecursionlimit(params.get("limit", 1_000_000))

    def down(n: int) -> int:
        return down(n + 1) + 1

    down(0)


@plugin.action(description="Print to stdout and stderr, and log through the host")
def talk(params: dict, context: Context) -> str:
    print("hello from stdout")
    print("hello from stderr", file=sys.stderr)
    host.log("warning", "hello from the host log")
    return "said"


@plugin.action(description="Read environment variables")
def env(params: dict, context: Context) -> dict:
    return {name: os.environ.get(name) for name in params.get("names", [])}


@plugin.action(description="Read a file")
def read(params: dict, context: Context) -> bytes:
    try:
        with open(params["path"], "rb") as file:
            return file.read()
    except OSError as exc:
        raise PluginError(f"cannot read {params['path']}: {exc.strerror or exc}") from None


@plugin.action(description="Write a file")
def write(params: dict, context: Context) -> str:
    try:
        with open(params["path"], "w") as file:
            file.write(params["text"])
    except OSError as exc:
        raise PluginError(f"cannot write {params['path']}: {exc.strerror or exc}") from None
    return "written"


@plugin.action(description="Clock and randomness")
def clock(params: dict, context: Context) -> dict:
    return {"now_ms": time.time_ns() // 1_000_000, "random": os.urandom(8).hex()}


@plugin.action(description="Read the plugin's configuration")
def config(params: dict, context: Context) -> dict:
    return {"value": host.config(params.get("key"))}


@plugin.action(description="Use the key-value store (not imported: fails)")
def kv(params: dict, context: Context) -> str:
    try:
        host.kv_get("x")
    except host.HostError as exc:
        raise PluginError(str(exc)) from None
    return "?"


@plugin.action(
    description="Hand the host `size` bytes at once: as a log line, a host request, output or error"
)
def flood(params: dict, context: Context) -> str | None:
    what, blob = params["what"], "x" * params["size"]
    if what == "log":
        host.log("info", blob)
    elif what == "request":
        host.config(blob)
    elif what == "output":
        return blob
    elif what == "error":
        raise PluginError(blob)
    return None


WitWorld = plugin.world()
