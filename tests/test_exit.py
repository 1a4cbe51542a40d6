"""Exiting is quiet, and the exit status is the script's, whatever the script leaves behind.

Each scenario is a short script run many times as its own interpreter (the
failure it guards against, a Rust panic from wasmtime's I/O threads while
the interpreter finalizes, showed up in 2-7 runs of 10): plugins whose WASI
stdout was written and that are left open, a host never closed, an exception
or ``sys.exit`` at the end, a daemon thread still calling a plugin. stderr
must hold nothing but what the script itself wrote (a traceback of its own).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from componentgen import PLUGINS, build_python
from conftest import ROOT
from watgen import abi_module

RUNS = 20

# execute writes "hello\n" to WASI stdout (fd 1) with fd_write, then answers "ok".
WRITER = abi_module(
    """
    (i32.store (i32.const 8000) (i32.const 8100))
    (i32.store (i32.const 8004) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 8000) (i32.const 1) (i32.const 8008)))
    (call $set_output (i32.const 4096) (i32.const 2))
    (i32.const 0)""",
    imports="""
    (import "wasi_snapshot_preview1" "fd_write"
      (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasmdeck" "set_output" (func $set_output (param i32 i32)))""",
    extra='(data (i32.const 8100) "hello\\n")',
)

# The plugin's stdout goes to logging, logged to the script's stdout (as a
# user's basicConfig would, only not to stderr, which must stay empty).
PRELUDE = """
import logging, sys, threading
import wasmdeck
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
"""
PLUGIN_SAID = "wasmdeck.plugin.wat-plugin: hello"

# A daemon thread calls the plugin (made with ``limits``) until the script ends.
KEEP_CALLING = """
plugin = wasmdeck.Plugin(sys.argv[1]{limits})
started = threading.Event()
def keep_calling():
    while True:
        plugin.call("write")
        started.set()
threading.Thread(target=keep_calling, daemon=True).start()
started.wait()
"""

SCENARIOS = {
    "core plugin left open": (
        """
        plugin = wasmdeck.Plugin(sys.argv[1])
        assert plugin.call("write") == b"ok"
        """,
        0,
    ),
    "host never closed": (
        """
        host = wasmdeck.PluginHost()
        host.load(sys.argv[1])
        assert host.call("write", plugin="wat-plugin") == b"ok"
        """,
        0,
    ),
    "sys.exit with a status": (
        """
        plugin = wasmdeck.Plugin(sys.argv[1])
        plugin.call("write")
        sys.exit(3)
        """,
        3,
    ),
    "an exception at exit": (
        """
        plugin = wasmdeck.Plugin(sys.argv[1])
        plugin.call("write")
        raise RuntimeError("the script's own error")
        """,
        1,
    ),
    "a daemon thread still calling": (KEEP_CALLING.format(limits=""), 0),
    "a daemon thread still calling a per-call plugin": (
        KEEP_CALLING.format(limits=', limits=wasmdeck.Limits(instance="per-call")'),
        0,
    ),
}


def run_script(body: str, *args: str, first: str = "") -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(first) + PRELUDE + textwrap.dedent(body)
    path = [str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def run_many(body: str, *args: str) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: run_script(body, *args), range(RUNS)))


def check(
    results: list[subprocess.CompletedProcess[str]],
    status: int,
    own_error: str,
    said: str = PLUGIN_SAID,
) -> None:
    for result in results:
        assert result.returncode == status, result.stderr
        assert said in result.stdout, "the plugin's stdout was not logged"
        stderr = result.stderr
        if own_error:  # the script's traceback, and nothing after it
            assert stderr.startswith("Traceback"), stderr
            assert stderr.rstrip().endswith(own_error), stderr
        else:
            assert stderr == "", stderr


@pytest.fixture(scope="module")
def writer_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exit") / "writer.wasm"
    path.write_bytes(WRITER)
    return path


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_core_module_exit_is_quiet(scenario: str, writer_wasm: Path) -> None:
    body, status = SCENARIOS[scenario]
    own = "RuntimeError: the script's own error" if status == 1 else ""
    check(run_many(body, str(writer_wasm)), status, own)


def test_component_left_open_exits_quietly() -> None:
    from componentgen import COMPILED

    from wasmdeck.runtime import Runtime

    component = build_python(PLUGINS / "behaviors")
    runtime = Runtime(cache=COMPILED)  # compiled once here, so each run loads it from the cache
    runtime.compile(component, name="behaviors")
    runtime.close()
    body = """
        from componentgen import COMPILED
        runtime = wasmdeck.Runtime(cache=COMPILED)
        plugin = wasmdeck.Plugin(sys.argv[1], runtime=runtime)
        assert plugin.call("talk") == b"said"
        """
    check(run_many(body, str(component)), 0, "", "wasmdeck.plugin.py-behaviors: hello from stdout")


def test_a_call_after_the_exit_hook_is_refused_not_hung(writer_wasm: Path) -> None:
    """An exit handler that runs after wasmdeck's (registered before it) gets an error."""
    first = """
        import atexit, os
        def late():
            try:
                plugin.call("write")
            except Exception as exc:
                os.write(1, ("refused: " + str(exc) + "\\n").encode())
        atexit.register(late)
        """
    body = """
        plugin = wasmdeck.Plugin(sys.argv[1])
        plugin.call("write")
        """
    result = run_script(body, str(writer_wasm), first=first)
    assert (result.returncode, result.stderr) == (0, "")
    assert "refused: plugin 'wat-plugin', action 'write': the plugin is closed" in result.stdout


def test_runtimes_dropped_while_their_epoch_thread_ticks() -> None:
    """A runtime freed mid-tick never crashes the process (its engine outlives the tick)."""
    script = """
        import gc, time
        import wasmdeck
        for _ in range(300):
            runtime = wasmdeck.Runtime(tick=0.0005, cache=None)
            time.sleep(0.0007)  # a tick or so
            del runtime
            gc.collect()
        print("done")
        """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")
