"""{{name}}: a wasmdeck plugin in Python (built with `wasmdeck build`)."""

from wasmdeck_pdk import Context, Plugin

plugin = Plugin("{{name}}", version="0.1.0", description="A minimal wasmdeck plugin")


@plugin.action(description="Say hello")
def hello(params: dict, context: Context) -> str:
    return "hello from {{name}}"


WitWorld = plugin.world()
