"""py-ticker: a trigger plugin through the Python kit (tests/test_trigger_plugins.py).

The host polls ``tick`` every 20 ms (``poll_ms``, which makes it a trigger
plugin); each poll publishes ``ticker.tick`` with the poll's number.
``behave`` sets what the next polls do (ok, fail, spin).
"""

import json

from wasmdeck_pdk import Context, Plugin, PluginError, host

plugin = Plugin(
    "py-ticker",
    version="0.1.0",
    description="A trigger plugin: each poll publishes ticker.tick",
    capabilities=["events"],
)
state = {"ticks": 0, "as": "ok"}


@plugin.action(description="the poll: publish ticker.tick {n}", poll_ms=20)
def tick(params: dict, context: Context) -> str:
    if state["as"] == "fail":
        raise PluginError("failing on purpose")
    while state["as"] == "spin":
        pass
    host.event_publish("ticker.tick", {"n": state["ticks"] + 1})
    state["ticks"] += 1
    return json.dumps({"n": state["ticks"]})


@plugin.action(description="what the next polls do: {as: ok|fail|spin}")
def behave(params: dict, context: Context) -> str:
    state["as"] = params["as"]
    return "ok"


@plugin.action(description="how many polls published")
def ticks(params: dict, context: Context) -> str:
    return json.dumps({"n": state["ticks"]})


WitWorld = plugin.world()
