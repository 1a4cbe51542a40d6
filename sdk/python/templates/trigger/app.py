"""{{name}}: a wasmdeck trigger plugin in Python (built with `wasmdeck build`).

The host calls ``tick`` every second (docs/teamwork.md, "Trigger plugins");
each poll publishes ``{{name}}.tick`` ``{"n": N}``, which a deck binds with
``trigger = { kind = "event", topic = "{{name}}.tick" }``. Grant it
``events:publish:{{name}}.*``.
"""

from wasmdeck_pdk import Context, Plugin, host

plugin = Plugin(
    "{{name}}",
    version="0.1.0",
    description="A trigger plugin: publishes {{name}}.tick every second",
    capabilities=["events"],
)
ticks = 0


# poll_ms makes it the poll: the metadata says "type": "trigger".
@plugin.action(description="The poll: publish {{name}}.tick", poll_ms=1000)
def tick(params: dict, context: Context) -> dict:
    global ticks
    host.event_publish("{{name}}.tick", {"n": ticks + 1})
    ticks += 1
    return {"n": ticks}


WitWorld = plugin.world()
