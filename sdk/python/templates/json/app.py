"""{{name}}: a wasmdeck plugin that takes JSON params and returns JSON."""

from wasmdeck_pdk import Context, Plugin, PluginError

plugin = Plugin("{{name}}", version="0.1.0", description="Scales the trigger's velocity")


@plugin.action(
    description="Scale the velocity (0-127) to 0..max",
    params={
        "type": "object",
        "properties": {"max": {"type": "integer", "minimum": 1}},
        "additionalProperties": False,
    },
)
def scale(params: dict, context: Context) -> dict:
    maximum = params.get("max", 127)
    if not isinstance(maximum, int) or isinstance(maximum, bool) or maximum < 1:
        raise PluginError(f"max must be a positive integer, not {maximum!r}")
    velocity = context.velocity if context.velocity is not None else 127
    return {"value": round(velocity * maximum / 127), "velocity": velocity}


WitWorld = plugin.world()
