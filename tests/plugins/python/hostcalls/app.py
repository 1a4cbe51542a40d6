"""py-hostcalls: every host helper of the Python kit, one action each (tests)."""

import json

from wasmdeck_pdk import Context, Plugin, PluginError, host

plugin = Plugin(
    "py-hostcalls",
    version="0.1.0",
    description="Calls the host APIs through the Python kit",
    capabilities=["kv", {"kind": "network", "hosts": ["127.0.0.1"]}],
)


@plugin.action(description="kv_set then kv_get")
def kv(params: dict, context: Context) -> bytes:
    host.kv_set(params["key"], params["value"])
    value = host.kv_get(params["key"])
    if value is None:
        raise PluginError("the value did not come back")
    return value


@plugin.action(description="a configuration value, as text")
def config(params: dict, context: Context) -> str:
    return str(host.config(params["key"]))


@plugin.action(name="http-get", description="GET a URL")
def http_get(params: dict, context: Context) -> str:
    answer = host.http_get(params["url"])
    return json.dumps({"status": answer["status"], "body": answer["body"]}, separators=(",", ":"))


@plugin.action(description="log a message at warning level")
def log(params: dict, context: Context) -> str:
    host.log("warning", params["message"])
    return "logged"


@plugin.action(description="what the host says to an ungranted request")
def denied(params: dict, context: Context) -> str:
    try:
        host.http_get("http://127.0.0.1:1/")
    except host.HostError as exc:
        return exc.kind
    raise PluginError("the request was not refused")


WitWorld = plugin.world()
