"""Sandbox limits and containment.

Each misbehaving plugin must be stopped with the right typed error, naming
the plugin, the action and the limit; afterwards the same plugin (on a fresh
instance) and every other plugin keep working.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest
from watgen import abi_module

import wasmdeck
from wasmdeck import (
    ABIViolation,
    FuelLimitExceeded,
    Limits,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    PluginReportedError,
    PluginTrap,
    StackLimitExceeded,
    TableLimitExceeded,
    TimeLimitExceeded,
)

MiB = 1024 * 1024

SPIN = "(loop $forever (br $forever)) (i32.const 0)"
MEMORY_BOMB = """
    (block $full (loop $grow
        (br_if $full (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
        (br $grow)))
    unreachable"""
TABLE_BOMB = """
    (block $full (loop $grow
        (br_if $full (i32.eq (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1)))
        (br $grow)))
    unreachable"""
RECURSE = "(call $down (i32.const 0)) (i32.const 0)"
RECURSE_FUNC = "(func $down (param i32) (call $down (i32.add (local.get 0) (i32.const 1))))"


@pytest.fixture
def neighbour(behaviors: wasmdeck.Plugin) -> wasmdeck.Plugin:
    """Another plugin loaded beside the misbehaving one: it must not notice."""
    assert behaviors.call("count") == b"1"
    return behaviors


def assert_contained(plugin: wasmdeck.Plugin, neighbour: wasmdeck.Plugin) -> None:
    assert plugin.call("ok") == b"ok"  # a fresh instance serves the next call
    assert neighbour.call("count") == b"2"  # and the neighbour kept its state


def test_infinite_loop_is_stopped_shortly_after_the_timeout(neighbour: wasmdeck.Plugin) -> None:
    plugin = wasmdeck.Plugin(abi_module(SPIN), limits=Limits(timeout=0.3, fuel=10**15))
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded) as caught:
        plugin.call("spin")
    elapsed = time.monotonic() - started
    # Enforced by epoch ticks of 5 ms: well within a second of the deadline.
    assert 0.3 <= elapsed < 1.3, elapsed
    error = caught.value
    assert (error.plugin, error.action, error.limit, error.value) == (
        "wat-plugin",
        "spin",
        "timeout",
        0.3,
    )
    assert "0.3 s time limit" in str(error)
    assert_contained(plugin, neighbour)


def test_fuel_exhaustion(neighbour: wasmdeck.Plugin) -> None:
    plugin = wasmdeck.Plugin(abi_module(SPIN), limits=Limits(fuel=1_000_000))
    with pytest.raises(FuelLimitExceeded) as caught:
        plugin.call("spin")
    assert caught.value.limit == "fuel" and caught.value.value == 1_000_000
    assert "1,000,000" in str(caught.value) and "'spin'" in str(caught.value)
    assert_contained(plugin, neighbour)


def test_fuel_budget_is_per_call() -> None:
    # Each call gets the whole budget again: many small calls never run dry.
    plugin = wasmdeck.Plugin(abi_module(), limits=Limits(fuel=10_000))
    for _ in range(1000):
        assert plugin.call("ok") == b"ok"


def test_memory_bomb_hits_the_memory_limit(neighbour: wasmdeck.Plugin) -> None:
    plugin = wasmdeck.Plugin(abi_module(MEMORY_BOMB), limits=Limits(max_memory=8 * MiB))
    with pytest.raises(MemoryLimitExceeded) as caught:
        plugin.call("bomb")
    assert caught.value.limit == "max_memory" and caught.value.value == 8 * MiB
    assert "8 MiB memory limit" in str(caught.value)
    assert_contained(plugin, neighbour)


def test_default_memory_limit_is_128_mib() -> None:
    plugin = wasmdeck.Plugin(abi_module(MEMORY_BOMB))
    with pytest.raises(MemoryLimitExceeded, match="128 MiB memory limit"):
        plugin.call("bomb")


def test_table_growth_hits_the_table_limit(neighbour: wasmdeck.Plugin) -> None:
    wasm = abi_module(TABLE_BOMB, extra='(table $t (export "table") 1 funcref)')
    plugin = wasmdeck.Plugin(wasm, limits=Limits(max_table_elements=5000))
    with pytest.raises(TableLimitExceeded) as caught:
        plugin.call("grow")
    assert caught.value.value == 5000 and "table limit of 5000 elements" in str(caught.value)
    assert_contained(plugin, neighbour)


def test_deep_recursion_is_a_stack_overflow(neighbour: wasmdeck.Plugin) -> None:
    plugin = wasmdeck.Plugin(abi_module(RECURSE, extra=RECURSE_FUNC), limits=Limits(fuel=10**12))
    with pytest.raises(StackLimitExceeded, match="512 KiB wasm stack"):
        plugin.call("recurse")
    assert_contained(plugin, neighbour)


def test_a_deadline_kept_from_the_last_call_is_still_whole_and_rearmed_once_it_moves() -> None:
    # The epoch deadline is re-armed only when the epoch has moved since the
    # last call (runtime/_engine.py, EpochCount). With long ticks, the spin
    # right after a quick call keeps the quick call's deadline: it must still
    # get its whole timeout, and no more than about two ticks beyond it.
    runtime = wasmdeck.Runtime(tick=0.25)
    plugin = wasmdeck.Plugin(
        abi_module(SPIN), runtime=runtime, limits=Limits(timeout=0.25, fuel=10**15)
    )
    try:
        assert plugin.call("ok") == b"ok"
        armed = runtime.epoch.value
        started = time.monotonic()
        with pytest.raises(TimeLimitExceeded):
            plugin.call("spin")
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 2.0, elapsed
        # Once the epoch has gone past the first deadline, a call is re-armed:
        # an old deadline kept would stop this quick call at once.
        assert plugin.call("ok") == b"ok"  # a fresh instance, armed now
        armed = runtime.epoch.value
        deadline = time.monotonic() + 10
        while runtime.epoch.value < armed + 8 and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for the epoch thread, not for a result
        assert runtime.epoch.value >= armed + 8
        assert plugin.call("ok") == b"ok"
    finally:
        runtime.close()


def test_stack_size_is_configurable_per_runtime() -> None:
    runtime = wasmdeck.Runtime(max_stack=128 * 1024)
    plugin = wasmdeck.Plugin(
        abi_module(RECURSE, extra=RECURSE_FUNC), runtime=runtime, limits=Limits(fuel=10**12)
    )
    with pytest.raises(StackLimitExceeded, match="128 KiB wasm stack") as caught:
        plugin.call("recurse")
    assert caught.value.value == 128 * 1024
    runtime.close()


def test_trap(neighbour: wasmdeck.Plugin) -> None:
    plugin = wasmdeck.Plugin(abi_module("unreachable"))
    with pytest.raises(PluginTrap) as caught:
        plugin.call("boom")
    assert caught.value.trap_code == "unreachable"
    assert (
        str(caught.value) == "plugin 'wat-plugin', action 'boom': trapped: unreachable code reached"
    )
    assert_contained(plugin, neighbour)


def test_out_of_bounds_memory_access_is_a_trap() -> None:
    plugin = wasmdeck.Plugin(abi_module("(i32.load (i32.const -4))"))
    with pytest.raises(PluginTrap, match="out-of-bounds memory access"):
        plugin.call("peek")
    assert plugin.call("ok") == b"ok"


@pytest.mark.parametrize(
    ("ptr", "length", "message"),
    [
        (131072, 1, r"set_output\(0x20000, 1\) points outside the plugin's 131072-byte memory"),
        (131000, 100, r"set_output\(0x1ffb8, 100\) points outside"),
        (-16, 32, r"set_output\(0xfffffff0, 32\) points outside"),  # would wrap in 32 bits
    ],
)
def test_output_pointer_out_of_bounds(
    ptr: int, length: int, message: str, neighbour: wasmdeck.Plugin
) -> None:
    body = f"(call $set_output (i32.const {ptr}) (i32.const {length})) (i32.const 0)"
    plugin = wasmdeck.Plugin(abi_module(body))
    with pytest.raises(ABIViolation, match=message) as caught:
        plugin.call("bad-pointer")
    assert caught.value.action == "bad-pointer"
    assert_contained(plugin, neighbour)


def test_output_over_the_cap_is_a_limit() -> None:
    body = "(call $set_output (i32.const 0) (i32.const 100000)) (i32.const 0)"
    plugin = wasmdeck.Plugin(abi_module(body), limits=Limits(max_output=65536))
    with pytest.raises(
        OutputLimitExceeded,
        match="returned 100,000 bytes through set_output, more than its max_output limit of 65,536",
    ):
        plugin.call("big")
    assert plugin.call("ok") == b"ok"


def test_error_message_over_the_cap_is_a_limit() -> None:
    imports = (
        '(import "wasmdeck" "set_output" (func $set_output (param i32 i32)))'
        '(import "wasmdeck" "set_error" (func $set_error (param i32 i32)))'
    )
    body = "(call $set_error (i32.const 0) (i32.const 70000)) (i32.const 1)"
    plugin = wasmdeck.Plugin(abi_module(body, imports=imports), limits=Limits(max_output=65536))
    with pytest.raises(OutputLimitExceeded, match="set_error"):
        plugin.call("big-error")


def test_alloc_returning_an_out_of_bounds_pointer() -> None:
    plugin = wasmdeck.Plugin(abi_module(alloc="(i32.const 131000)"))
    with pytest.raises(ABIViolation, match=r"alloc\(1024\) returned 0x1ffb8"):
        plugin.call("anything")


def test_alloc_returning_zero_is_valid_memory() -> None:
    # MIDIMon's minimal template returns 0 from alloc; address 0 is in bounds.
    plugin = wasmdeck.Plugin(abi_module(alloc="(i32.const 0)"))
    assert plugin.call("ok") == b"ok"


def test_alloc_that_traps_discards_the_instance() -> None:
    plugin = wasmdeck.Plugin(abi_module(alloc="unreachable"))
    with pytest.raises(PluginTrap, match="in alloc: unreachable"):
        plugin.call("ok")


def test_c_plugin_misbehaviour(behaviors_wasm: Path) -> None:
    """The same limits, hit by a plugin compiled from C with the kit."""
    limits = Limits(timeout=0.5, max_memory=16 * MiB, fuel=10**13)
    plugin = wasmdeck.Plugin(behaviors_wasm, limits=limits)
    cases = [
        ("spin", TimeLimitExceeded),
        ("bomb", MemoryLimitExceeded),
        ("recurse", StackLimitExceeded),
        ("trap", PluginTrap),
        ("divzero", PluginTrap),
    ]
    for action, error in cases:
        with pytest.raises(error) as caught:
            plugin.call(action)
        assert caught.value.action == action
        assert plugin.call("echo", {"after": action}).startswith(b'{"action":"echo"')
    with pytest.raises(FuelLimitExceeded):
        wasmdeck.Plugin(behaviors_wasm, limits=Limits(fuel=100_000)).call("burn", {"n": 10_000_000})
    with pytest.raises(OutputLimitExceeded):
        wasmdeck.Plugin(behaviors_wasm, limits=Limits(max_output=1000)).call("big", {"bytes": 1001})
    assert plugin.call("big", {"bytes": 1000}) == b"x" * 1000


def test_limits_reject_nonsense() -> None:
    for bad in ({"fuel": 0}, {"timeout": -1}, {"max_memory": 1.5}, {"max_output": -5}):
        with pytest.raises(ValueError, match="limit"):
            Limits(**bad)  # type: ignore[arg-type]


def test_params_as_bytes_are_sent_as_they_are() -> None:
    """Pre-encoded params skip the encoder; what the plugin receives is the caller's text."""
    plugin = wasmdeck.Plugin(abi_module())
    context = wasmdeck.TriggerContext(velocity=1, mode=2, timestamp=3)
    assert plugin._request("x", b'{"a": [1, 2]}', context) == (
        b'{"action":"x","params":{"a": [1, 2]},"context":'
        b'{"velocity":1,"mode":2,"current_mode":2,"timestamp":3}}'
    )
    # The encoder: exact big integers; NaN as null, as wasmdeck._json.dumps writes it.
    assert plugin._request("x", {"n": 2**70}, context).startswith(
        b'{"action":"x","params":{"n":1180591620717411303424}'
    )
    assert plugin._request("x", {"f": float("nan")}, context).startswith(
        b'{"action":"x","params":{"f":null}'
    )


# -- set_output / set_error run in wasm (runtime/_payload.py) ---------------------


def test_the_payload_is_copied_when_set_output_is_called() -> None:
    """A plugin may reuse or free its buffer before execute returns."""
    body = """
        (i32.store (i32.const 100) (i32.const 0x64636261))  ;; "abcd"
        (call $set_output (i32.const 100) (i32.const 4))
        (i32.store (i32.const 100) (i32.const 0x7a7a7a7a))  ;; overwritten: "zzzz"
        (i32.const 0)"""
    assert wasmdeck.Plugin(abi_module(body)).call("copy") == b"abcd"


def test_the_last_output_counts_and_an_error_wins() -> None:
    imports = (
        '(import "wasmdeck" "set_output" (func $set_output (param i32 i32)))'
        '(import "wasmdeck" "set_error" (func $set_error (param i32 i32)))'
    )
    body = """
        (if (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 11))) (i32.const 116))
          (then  ;; "twice": the second output replaces the first
            (call $set_output (i32.const 200) (i32.const 5))
            (call $set_output (i32.const 300) (i32.const 3))
            (return (i32.const 0))))
        (call $set_output (i32.const 200) (i32.const 5))
        (call $set_error (i32.const 300) (i32.const 3))
        (call $set_output (i32.const 200) (i32.const 5))  ;; after the error: not kept
        (i32.const 0)"""
    extra = '(data (i32.const 200) "first") (data (i32.const 300) "bad")'
    plugin = wasmdeck.Plugin(abi_module(body, imports=imports, extra=extra))
    assert plugin.call("twice") == b"bad"
    with pytest.raises(PluginReportedError, match=r"action 'error': bad$") as caught:
        plugin.call("error")
    assert caught.value.code == 0
    assert plugin.call("ok") == b"ok"


def test_output_that_does_not_fit_the_memory_limit() -> None:
    """The copy lives in the plugin's store, so the memory limit bounds it too."""
    body = "(call $set_output (i32.const 0) (i32.const 65536)) (i32.const 0)"
    plugin = wasmdeck.Plugin(
        abi_module(body, memory='(memory (export "memory") 1)'),
        limits=Limits(max_memory=65536),
    )
    with pytest.raises(MemoryLimitExceeded, match="no room for the 65,536-byte payload"):
        plugin.call("big")
    assert plugin.call("ok") == b"ok"


# A byte in the first memory and one in pages grown later, written by "write"
# and read back by "read" (both grow the memory to 5 pages first).
_LEFTOVERS = """
    (drop (memory.grow (i32.const 3)))
    (if (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 11))) (i32.const 119))
      (then
        (i32.store8 (i32.const 100000) (i32.const 171))
        (i32.store8 (i32.const 300000) (i32.const 171))
        (return (i32.const 0))))
    (i32.store8 (i32.const 5000) (i32.add (i32.const 48) (i32.load8_u (i32.const 100000))))
    (i32.store8 (i32.const 5001) (i32.add (i32.const 48) (i32.load8_u (i32.const 300000))))
    (call $set_output (i32.const 5000) (i32.const 2))
    (i32.const 0)"""


def test_a_fresh_instance_starts_with_zeroed_memory_though_its_reservation_is_reused() -> None:
    # runtime/_memory.py keeps freed memories' reservations for the next
    # instance; what a call wrote must never reach the next one.
    wasm = abi_module(_LEFTOVERS)
    persistent = wasmdeck.Plugin(wasm)
    persistent.call("write")
    assert persistent.call("read") == b"\xdb\xdb"  # the probe sees what was written
    fresh = wasmdeck.Plugin(wasm, limits=Limits(instance="per-call"))
    for _ in range(20):
        fresh.call("write")
        assert fresh.call("read") == b"00"
    # On four threads at once (reservations taken and given back concurrently).
    seen: list[bytes | BaseException] = []

    def run() -> None:
        plugin = wasmdeck.Plugin(wasm, limits=Limits(instance="per-call"))
        try:
            for _ in range(300):
                plugin.call("write")
                seen.append(plugin.call("read"))
        except BaseException as exc:
            seen.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [b"00"] * 1200


# "fill": 60,000 bytes of 0xab as output (the payload box's one page holds
# them, so the box is kept unzeroed for the next box, see runtime/_memory.py).
_FILLER = """
    (memory.fill (i32.const 20000) (i32.const 171) (i32.const 60000))
    (call $set_output (i32.const 20000) (i32.const 60000))
    (i32.const 0)"""
# "probe": "clean" when its one page is zero outside its own data and the
# request (the heap, from 16384); else "dirty".
_PROBE = """
    (global.set $seen (i32.const 0))
    (global.set $at (i32.const 5000))
    (loop $next
      (global.set $seen (i32.or (global.get $seen) (i32.load8_u (global.get $at))))
      (global.set $at (i32.add (global.get $at) (i32.const 1)))
      (br_if $next (i32.lt_u (global.get $at) (i32.const 16384))))
    (global.set $at (i32.const 20000))
    (loop $next
      (global.set $seen (i32.or (global.get $seen) (i32.load8_u (global.get $at))))
      (global.set $at (i32.add (global.get $at) (i32.const 1)))
      (br_if $next (i32.lt_u (global.get $at) (i32.const 65536))))
    (if (global.get $seen)
      (then (call $set_output (i32.const 1000) (i32.const 5)) (return (i32.const 0))))
    (call $set_output (i32.const 1006) (i32.const 5))
    (i32.const 0)"""


def test_the_payload_box_kept_unzeroed_never_becomes_a_plugin_memory() -> None:
    # A freed box is handed, as it is, only to the next box: never to a
    # plugin's memory of the same size, and its stale bytes are never output.
    per_call = Limits(instance="per-call")
    filler = wasmdeck.Plugin(abi_module(_FILLER), limits=per_call)
    probe = wasmdeck.Plugin(
        abi_module(
            _PROBE,
            memory='(memory (export "memory") 1)',
            extra='(data (i32.const 1000) "dirty clean")'
            "(global $at (mut i32) (i32.const 0)) (global $seen (mut i32) (i32.const 0))",
        ),
        limits=per_call,
    )
    silent = wasmdeck.Plugin(abi_module("(i32.const 0)"), limits=per_call)
    for _ in range(40):
        assert filler.call("fill") == b"\xab" * 60_000
        assert probe.call("probe") == b"clean"
        assert filler.call("fill") == b"\xab" * 60_000
        assert probe.call("ok") == b"ok"
        assert filler.call("fill") == b"\xab" * 60_000
        assert silent.call("nothing") == b""


def _mappings() -> int:
    with open("/proc/self/maps", encoding="ascii") as maps:
        return sum(1 for _ in maps)


def test_a_discarded_instance_frees_its_store_at_once_not_at_the_next_collection() -> None:
    # runtime/_capi.py's OwnedStore: no reference cycle keeps a store (and
    # its memories' multi-GiB reservations) alive until the garbage
    # collector runs, so many fresh instances in a row take no more room.
    plugin = wasmdeck.Plugin(abi_module(_LEFTOVERS), limits=Limits(instance="per-call"))
    plugin.call("read")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        before = _mappings()
        for _ in range(300):
            assert plugin.call("read") == b"00"
        grown = _mappings() - before
    finally:
        if was_enabled:
            gc.enable()
    assert grown < 30, f"{grown} new mappings after 300 fresh instances"


def test_measure_fuel_switched_on_and_off_between_calls_and_a_closed_plugin(
    behaviors: wasmdeck.Plugin,
) -> None:
    # Plugin.call runs its common case inline (Plugin._set_plain): switching
    # measure_fuel, or closing, must still take the calls off that path.
    assert behaviors.call("count") == b"1" and behaviors.fuel_used is None
    behaviors.measure_fuel = True
    assert behaviors.call("count") == b"2"
    used = behaviors.fuel_used
    assert used is not None and 0 < used < behaviors.limits.fuel
    behaviors.measure_fuel = False
    behaviors.fuel_used = None
    assert behaviors.call("count") == b"3" and behaviors.fuel_used is None
    behaviors.close()
    with pytest.raises(wasmdeck.WasmdeckError, match="closed"):
        behaviors.call("count")
