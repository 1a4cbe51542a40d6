"""A Python component that sleeps (WASI preview 2 clocks), for the deadline tests."""

import time

from wasmdeck_pdk import Context, Plugin

plugin = Plugin("py-sleeper", version="1.0.0", description="sleeps on request")


@plugin.action(description="time.sleep(params['seconds']), then say how long it took")
def sleep(params: dict, context: Context) -> dict:
    started = time.monotonic()
    time.sleep(params["seconds"])
    return {"slept": time.monotonic() - started}


@plugin.action(description="Sleep again and again, swallowing nothing: only the deadline ends it")
def forever(params: dict, context: Context) -> None:
    while True:
        time.sleep(params.get("seconds", 10))


WitWorld = plugin.world()
