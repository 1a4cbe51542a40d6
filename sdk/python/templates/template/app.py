"""{{name}}: a wasmdeck plugin in Python, with the parts most plugins grow.

- several actions, each with a JSON Schema for its params;
- configuration given by the user (`config`), read through the host;
- logging (to the host's log) and errors shown to the user (`PluginError`);
- state kept on the instance between calls (across a live reload too with
  `@plugin.save_state` / `@plugin.restore_state`: docs/reload.md).

Build it with `wasmdeck build`, try it with `wasmdeck run {{name}}.wasm greet
--params '{"who": "world"}'`. To use a host interface behind a capability
(HTTP, WebSocket, processes, key-value state), declare the capability
(`capabilities=["kv"]`, ...) and build again; the user grants it with
`--grant`.
"""

from string import Template

from wasmdeck_pdk import Context, Plugin, PluginError, host

plugin = Plugin(
    "{{name}}",
    version="0.1.0",
    description="Greets people and counts how often it did",
    author="you",
    license="MIT",
)
_greeted = 0


@plugin.action(
    description="Greet someone, with the greeting from the configuration",
    params={
        "type": "object",
        "properties": {"who": {"type": "string"}},
        "required": ["who"],
    },
)
def greet(params: dict, context: Context) -> dict:
    global _greeted
    who = params.get("who")
    if not isinstance(who, str) or not who:
        raise PluginError("greet needs a non-empty 'who'")
    greeting = Template(host.config("greeting") or "Hello, $who!").safe_substitute(who=who)
    _greeted += 1
    host.log("info", f"greeted {who} (velocity {context.velocity})")
    return {"text": greeting, "greeted": _greeted}


@plugin.action(description="How many greetings this instance has made")
def stats(params: dict, context: Context) -> dict:
    return {"greeted": _greeted}


WitWorld = plugin.world()
