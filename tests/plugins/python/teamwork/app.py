"""py-teamwork: events, plugin calls and shared state through the Python kit.

The teamwork contract of tests/test_teamwork.py. The kit raises HostError
for a refused request; this plugin outputs it as the host's error object,
so that every language's plugin answers alike.
"""

import contextlib
import json
from collections.abc import Callable

from wasmdeck_pdk import Context, Plugin, host

plugin = Plugin(
    "py-teamwork",
    version="0.1.0",
    description="Events, plugin calls and shared state through the Python kit",
    capabilities=["events", "plugins", "state"],
)
seen: list[dict] = []


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def answer(call: Callable[[], dict]) -> str:
    try:
        return compact(call())
    except host.HostError as exc:
        return compact({"error": {"kind": exc.kind, "message": exc.message}})


def versioned(value: bytes | None, version: int) -> dict:
    return {"value": None if value is None else value.decode(), "version": version}


@plugin.action(description="event_publish with the params as the request")
def publish(params: dict, context: Context) -> str:
    return answer(lambda: {"delivered": host.event_publish(params["topic"], params.get("payload"))})


@plugin.action(description="plugin_call with the params as the request")
def call(params: dict, context: Context) -> str:
    return answer(
        lambda: {
            "output": host.plugin_call(
                params["plugin"], params["action"], params.get("params")
            ).decode()
        }
    )


@plugin.action(name="state-get", description="state_get with the params")
def state_get(params: dict, context: Context) -> str:
    return answer(lambda: versioned(*host.state_get(params["namespace"], params["key"])))


@plugin.action(name="state-set", description="state_set with the params")
def state_set(params: dict, context: Context) -> str:
    def run() -> dict:
        ok, version = host.state_set(
            params["namespace"], params["key"], params["value"], version=params.get("version")
        )
        return {"ok": ok, "version": version}

    return answer(run)


@plugin.action(name="state-delete", description="state_delete with the params")
def state_delete(params: dict, context: Context) -> str:
    return answer(
        lambda: {
            "deleted": host.state_delete(
                params["namespace"], params["key"], version=params.get("version")
            )
        }
    )


@plugin.action(name="state-list", description="state_list with the params")
def state_list(params: dict, context: Context) -> str:
    return answer(lambda: {"keys": host.state_list(params["namespace"], params.get("prefix", ""))})


@plugin.action(description="add 1 to a shared counter, times times, by compare-and-swap")
def add(params: dict, context: Context) -> str:
    namespace, key = params["namespace"], params["key"]
    done = retries = value = 0
    while done < params.get("times", 1):
        current, version = host.state_get(namespace, key)
        value = int(current or b"0") + 1
        stored, _ = host.state_set(namespace, key, str(value), version=version)
        if stored:
            done += 1
        else:
            retries += 1
    return compact({"value": value, "retries": retries})


@plugin.action(description="an event: kept, and bounced to config bounce_to", subscribe="*")
def react(params: dict, context: Context) -> str:
    seen.append(params)
    to = host.config("bounce_to")
    if isinstance(to, str):
        # The loop tests expect the refusal to end the bouncing, not the call.
        with contextlib.suppress(host.HostError):
            host.event_publish(to, params.get("payload"))
    return "ok"


@plugin.action(name="seen", description="the events kept so far")
def seen_events(params: dict, context: Context) -> str:
    return compact(seen)


@plugin.action(description="the params")
def echo(params: dict, context: Context) -> str:
    return compact(params)


@plugin.action(description="loops until stopped")
def spin(params: dict, context: Context) -> str:
    while True:
        pass


WitWorld = plugin.world()
