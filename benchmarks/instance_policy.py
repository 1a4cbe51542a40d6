"""What ``Limits(instance="per-call")`` costs: a fresh instance for every call.

Run: ``python benchmarks/instance_policy.py [--rounds N]`` (needs ``pip install -e '.[test,bench]'``).

In one run, on the echo plugins of benchmarks/plugins (compiled from C with
zig), it measures medians of batches taking turns round by round:

- wasmdeck ``Plugin.call`` with the default ``instance="persistent"``;
- the same call with ``instance="per-call"`` (what MIDIMon did: every call
  gets a new store and instance, and ``init`` runs again before it);
- Extism's Python SDK ``Plugin.call`` on the equivalent plugin, as the
  reference for a call, and a fresh Extism plugin per call (its closest
  equivalent of a fresh instance).

The last line is ``per_call_over_persistent=<ratio>``. Ratios, not absolute
times, are the result: machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from call_overhead import CONTEXT, PARAMS, build, interleaved

import wasmdeck


def main() -> int:
    try:
        import extism
    except ImportError:
        print("this benchmark needs Extism's SDK: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        echo_path, extism_path = build(Path(tmp))
        echo_wasm, extism_wasm = echo_path.read_bytes(), extism_path.read_bytes()

    persistent = wasmdeck.Plugin(echo_wasm)
    per_call = wasmdeck.Plugin(echo_wasm, limits=wasmdeck.Limits(instance="per-call"))
    assert per_call.call("echo", PARAMS, CONTEXT) == persistent.call("echo", PARAMS, CONTEXT)
    ext = extism.Plugin(extism_wasm, wasi=True)
    request = json.dumps(
        {"action": "echo", "params": PARAMS, "context": CONTEXT.to_dict()}, separators=(",", ":")
    ).encode()
    assert ext.call("echo", request) == request

    def fresh_extism() -> None:
        extism.Plugin(extism_wasm, wasi=True).call("echo", request)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    # The cases take turns in every round, so noise falls on all alike.
    best = interleaved(
        {
            "wasmdeck persistent": (lambda: persistent.call("echo", PARAMS, CONTEXT), 2000),
            "wasmdeck per-call": (lambda: per_call.call("echo", PARAMS, CONTEXT), 200),
            "extism call": (lambda: ext.call("echo", request), 2000),
            "extism fresh plugin per call": (fresh_extism, 20),
        },
        args.rounds,
    )
    for name, value in best.items():
        print(f"{name:32s} {value:10.1f} µs")
    print(f"per_call_over_persistent={best['wasmdeck per-call'] / best['wasmdeck persistent']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
