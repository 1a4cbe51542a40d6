"""A Python component that imports the kv host interface (built with the kv-store world)."""

from wasmdeck_pdk import Context, Plugin, PluginError, host

plugin = Plugin(
    "py-kv",
    version="0.1.0",
    description="Keeps a counter in the key-value store",
    capabilities=["kv"],
)


@plugin.action(description="Add one to the stored counter and return it")
def bump(params: dict, context: Context) -> str:
    try:
        value = int(host.kv_get("counter") or b"0") + 1
        host.kv_set("counter", str(value))
    except host.HostError as exc:
        raise PluginError(str(exc)) from None
    return str(value)


WitWorld = plugin.world()
