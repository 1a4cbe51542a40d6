"""py-counter: a count that survives live reloads (tests/test_live_reload.py).

The same contract as tests/plugins/c/counter: count {"seq"}, report, poison
{"how"} (trap, refuse, spin, big), cure; its state goes through the kit's
save_state/restore_state.
"""

import json

from wasmdeck_pdk import Context, Plugin, PluginError

plugin = Plugin("py-counter", version="1.0.0", description="Counts events across reloads")
state: dict = {
    "seen": bytearray(65536 // 8),
    "count": 0,
    "duplicates": 0,
    "highest": -1,
    "generation": 0,
    "poison": "",
}


@plugin.action(description="Count one event")
def count(params: dict, context: Context) -> dict:
    seq = params.get("seq")
    if not isinstance(seq, int) or not 0 <= seq < 65536:
        raise PluginError("seq must be 0-65535")
    byte, bit = divmod(seq, 8)
    if state["seen"][byte] & (1 << bit):
        state["duplicates"] += 1
    else:
        state["seen"][byte] |= 1 << bit
        state["count"] += 1
    state["highest"] = max(state["highest"], seq)
    return {"count": state["count"]}


@plugin.action(description="What was counted")
def report(params: dict, context: Context) -> dict:
    seen = state["seen"]
    missing = sum(1 for s in range(state["highest"] + 1) if not seen[s // 8] & (1 << (s % 8)))
    return {
        "count": state["count"],
        "duplicates": state["duplicates"],
        "missing": missing,
        "generation": state["generation"],
        "version": plugin.version,
    }


@plugin.action(description="Make the next restore fail")
def poison(params: dict, context: Context) -> dict:
    state["poison"] = str(params.get("how", ""))
    return {}


@plugin.action(description="Undo poison")
def cure(params: dict, context: Context) -> dict:
    state["poison"] = ""
    return {}


@plugin.save_state
def save() -> bytes:
    if state["poison"] == "big":
        return b"x" * (5 << 20)  # more than the host's max_state (4 MiB by default)
    fields = {k: v for k, v in state.items() if k != "seen"}
    return json.dumps(fields).encode() + b"\n" + bytes(state["seen"])


@plugin.restore_state
def restore(saved: bytes) -> None:
    head, _, seen = saved.partition(b"\n")
    incoming = json.loads(head)
    if incoming["poison"] == "trap":
        import sys

        sys.exit(70)  # a trap: the component's instance ends
    if incoming["poison"] == "refuse":
        raise PluginError("poisoned state refused")
    if incoming["poison"] == "spin":
        while True:
            pass
    state.update(incoming, seen=bytearray(seen), generation=incoming["generation"] + 1)


WitWorld = plugin.world()
