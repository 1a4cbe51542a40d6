"""A Python component that allocates what it is asked for.

For the memory-limit classification tests (tests/test_limits_classification.py):
``take`` lets a MemoryError through (the component then traps), ``try``
catches it and reports an error message instead.
"""

from wasmdeck_pdk import Context, Plugin, PluginError

plugin = Plugin("py-hog", version="0.1.0", description="Python component that allocates")


@plugin.action(description="Allocate params.bytes bytes")
def take(params: dict, context: Context) -> str:
    block = bytearray(params["bytes"])
    return str(len(block))


@plugin.action(description="Allocate params.bytes bytes; report running out as an error")
def attempt(params: dict, context: Context) -> str:
    try:
        block = bytearray(params["bytes"])
    except MemoryError:
        raise PluginError("out of memory") from None
    return str(len(block))


WitWorld = plugin.world()
