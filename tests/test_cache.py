"""The persistent compile cache: hits, misses, corruption, staleness, concurrency, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime
from watgen import abi_module

import wasmdeck
from wasmdeck import Runtime
from wasmdeck.runtime import _engine
from wasmdeck.runtime._cache import CompileCache


@pytest.fixture
def cache(tmp_path: Path) -> CompileCache:
    return CompileCache(tmp_path / "cache")


@pytest.fixture
def runtime(cache: CompileCache) -> Runtime:
    return Runtime(cache=cache)


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    path = tmp_path / "plugin.wasm"
    path.write_bytes(abi_module())
    return path


def only_entry(cache: CompileCache) -> tuple[Path, Path]:
    entries = list(cache.directory.glob("*.cwasm"))
    assert len(entries) == 1, entries
    return entries[0], entries[0].with_suffix(".json")


def test_a_miss_compiles_and_stores_then_a_hit_loads(
    runtime: Runtime, cache: CompileCache, module_file: Path
) -> None:
    _, hit = runtime.load(module_file, name="plugin.wasm")
    assert not hit
    artifact, header_path = only_entry(cache)
    header = json.loads(header_path.read_text())
    assert header["kind"] == "module"
    assert header["wasmtime"] == wasmtime_version()
    assert header["artifact_size"] == artifact.stat().st_size
    assert header["source_size"] == module_file.stat().st_size
    module, hit = runtime.load(module_file, name="plugin.wasm")
    assert hit and isinstance(module, wasmtime.Module)
    # A plugin loaded from the cache behaves as one compiled now.
    plugin = wasmdeck.Plugin(module_file, runtime=runtime)
    assert plugin.call("ok") == b"ok"
    assert cache.info().entries == 1


def test_bytes_hit_the_same_entry_as_the_file(
    runtime: Runtime, cache: CompileCache, module_file: Path
) -> None:
    runtime.load(module_file, name="plugin.wasm")
    assert runtime.load(module_file.read_bytes(), name="<bytes>")[1]
    assert cache.info().entries == 1


def test_a_changed_file_is_compiled_again(
    runtime: Runtime, cache: CompileCache, module_file: Path
) -> None:
    runtime.load(module_file, name="plugin.wasm")
    module_file.write_bytes(abi_module("(i32.const 7)"))
    assert not runtime.load(module_file, name="plugin.wasm")[1]
    assert runtime.load(module_file, name="plugin.wasm")[1]
    assert cache.info().entries == 2


def test_a_different_engine_configuration_does_not_share_entries(
    cache: CompileCache, module_file: Path
) -> None:
    small, large = Runtime(cache=cache), Runtime(cache=cache, max_stack=1024 * 1024)
    assert small.fingerprint != large.fingerprint
    assert not small.load(module_file, name="p")[1]
    assert not large.load(module_file, name="p")[1]
    assert small.load(module_file, name="p")[1] and large.load(module_file, name="p")[1]
    assert cache.info().entries == 2


def test_a_new_wasmtime_version_misses(
    cache: CompileCache, module_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not Runtime(cache=cache).load(module_file, name="p")[1]
    monkeypatch.setattr(_engine, "WASMTIME_VERSION", "51.0.0")
    upgraded = Runtime(cache=cache)
    assert not upgraded.load(module_file, name="p")[1]
    assert upgraded.load(module_file, name="p")[1]
    versions = sorted(entry["wasmtime"] for entry in cache.entries())
    assert versions == [wasmtime_version(), "51.0.0"]


def test_an_entry_claiming_another_version_is_replaced(
    runtime: Runtime, cache: CompileCache, module_file: Path
) -> None:
    runtime.load(module_file, name="p")
    _, header_path = only_entry(cache)
    header = json.loads(header_path.read_text())
    header["wasmtime"] = "49.0.0"
    header_path.write_text(json.dumps(header))
    assert not runtime.load(module_file, name="p")[1]
    assert json.loads(header_path.read_text())["wasmtime"] == wasmtime_version()
    assert runtime.load(module_file, name="p")[1]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda a, h: flip_byte(a, a.stat().st_size // 2), id="flipped-byte"),
        pytest.param(lambda a, h: a.write_bytes(a.read_bytes()[:-100]), id="truncated"),
        pytest.param(lambda a, h: a.write_bytes(b"\0" * a.stat().st_size), id="zeroed"),
        pytest.param(lambda a, h: h.write_text("{not json"), id="bad-header"),
        pytest.param(lambda a, h: h.unlink(), id="no-header"),
        pytest.param(lambda a, h: a.unlink(), id="no-artifact"),
    ],
)
def test_a_corrupted_entry_is_detected_and_recompiled(
    damage: object, runtime: Runtime, cache: CompileCache, module_file: Path
) -> None:
    runtime.load(module_file, name="p")
    artifact, header_path = only_entry(cache)
    damage(artifact, header_path)  # type: ignore[operator]
    plugin = wasmdeck.Plugin(module_file, runtime=runtime)  # recompiled, works
    assert plugin.call("ok") == b"ok"
    assert runtime.load(module_file, name="p")[1]  # and the entry is whole again


def test_an_untouched_entry_is_not_rehashed_but_a_touched_one_is(
    runtime: Runtime, cache: CompileCache, module_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasmdeck.runtime import _cache

    runtime.load(module_file, name="p")
    hashed: list[Path] = []
    real = _cache._sha256_file
    monkeypatch.setattr(_cache, "_sha256_file", lambda p: hashed.append(p) or real(p))
    assert runtime.load(module_file, name="p")[1]
    assert hashed == []
    artifact, _ = only_entry(cache)
    os.utime(artifact, ns=(time.time_ns(), time.time_ns()))  # same bytes, new identity
    assert runtime.load(module_file, name="p")[1]
    assert hashed == [artifact]  # verified in full, then stamped again
    assert runtime.load(module_file, name="p")[1]
    assert hashed == [artifact]


def test_an_artifact_wasmtime_refuses_is_recompiled(
    runtime: Runtime, cache: CompileCache, module_file: Path, tmp_path: Path
) -> None:
    """An entry whose checks pass but that this engine cannot load (here: another
    engine's artifact with a matching header) is dropped, not trusted."""
    runtime.load(module_file, name="p")
    artifact, header_path = only_entry(cache)
    foreign = wasmtime.Module(wasmtime.Engine(), abi_module()).serialize()
    artifact.write_bytes(foreign)
    header = json.loads(header_path.read_text())
    import hashlib

    header.update(
        artifact_size=len(foreign),
        artifact_sha256=hashlib.sha256(foreign).hexdigest(),
        identity=None,
    )
    header_path.write_text(json.dumps(header))
    assert not runtime.load(module_file, name="p")[1]
    assert wasmdeck.Plugin(module_file, runtime=runtime).call("ok") == b"ok"


def test_without_a_cache_nothing_is_written(module_file: Path, tmp_path: Path) -> None:
    runtime = Runtime(cache=None)
    assert runtime.cache is None
    assert runtime.load(module_file, name="p")[1] is False
    assert runtime.load(module_file, name="p")[1] is False


def test_the_default_cache_follows_wasmdeck_home(
    module_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMDECK_HOME", str(tmp_path / "home"))
    runtime = Runtime()
    runtime.load(module_file, name="p")
    assert len(list((tmp_path / "home" / "cache").glob("*.cwasm"))) == 1


CONCURRENT = """
import sys
from wasmdeck import Runtime
from wasmdeck.runtime._cache import CompileCache
runtime = Runtime(cache=CompileCache(sys.argv[1]))
for path in sys.argv[2:]:
    runtime.load(path, name="p")
print("ok")
"""


def test_concurrent_processes_share_the_cache_safely(tmp_path: Path) -> None:
    plugins = []
    for n in range(6):
        path = tmp_path / f"p{n}.wasm"
        path.write_bytes(abi_module(f"(i32.const {n})"))
        plugins.append(str(path))
    directory = tmp_path / "shared"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(directory), *plugins[n % 2 :], *plugins],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        assert out == b"ok\n"
    cache = CompileCache(directory)
    assert cache.info().entries == 6
    assert not list(directory.rglob("*.tmp"))  # no temporary file left behind
    runtime = Runtime(cache=cache)
    assert all(runtime.load(Path(p), name="p")[1] for p in plugins)


# -- the command line ---------------------------------------------------------------


def wasmdeck_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WASMDECK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "wasmdeck", *args], capture_output=True, text=True, env=env
    )


def test_compile_then_cache_info_then_clear(module_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = wasmdeck_cli(home, "compile", str(module_file))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"{module_file}: module, compiled (")
    second = wasmdeck_cli(home, "compile", str(module_file))
    assert "already in the cache" in second.stdout

    info = wasmdeck_cli(home, "cache", "info")
    assert info.returncode == 0, info.stderr
    assert f"directory: {home / 'cache'}" in info.stdout
    assert "entries:   1 (1 for this wasmtime and engine)" in info.stdout
    assert "plugin.wasm" in info.stdout

    cleared = wasmdeck_cli(home, "cache", "clear")
    assert cleared.stdout.strip() == f"removed 1 compiled plugin from {home / 'cache'}"
    assert "entries:   0" in wasmdeck_cli(home, "cache", "info").stdout


def test_compile_reports_an_invalid_plugin(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"not wasm")
    result = wasmdeck_cli(tmp_path / "home", "compile", str(bad))
    assert result.returncode == 4
    assert "not a WebAssembly module" in result.stderr


def test_a_slow_compile_shows_progress(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from wasmdeck.cli import _compile, _progress

    out = io.StringIO()
    with _compile.progress("big.wasm", 18 * 1024 * 1024, stream=out):
        time.sleep(_progress.SHOW_AFTER + 0.2)
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "wasmdeck: compiling big.wasm (18.0 MiB), once: it is cached for next time..."
    )
    assert lines[1].startswith("wasmdeck: compiled big.wasm in ")
    quick = io.StringIO()
    with _compile.progress("small.wasm", 1000, stream=quick):
        pass
    assert quick.getvalue() == ""


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def wasmtime_version() -> str:
    from importlib import metadata

    return metadata.version("wasmtime")


def test_a_note_is_kept_with_the_entry_and_read_back_by_the_next_loader(
    runtime: Runtime, cache: CompileCache, module_file: Path
) -> None:
    # runtime/_cache.py: notes are facts derived from the artifact (a
    # component's shape), kept in the entry's header.
    module, _ = runtime.load(module_file, name="plugin.wasm")
    assert runtime.noted(module, "shape") is None
    runtime.note(module, "shape", {"imports": ["a"], "n": 1})
    assert runtime.noted(module, "shape") == {"imports": ["a"], "n": 1}
    _, header_path = only_entry(cache)
    header = json.loads(header_path.read_text())
    assert header["notes"] == {"shape": {"imports": ["a"], "n": 1}}
    # Another process (a new runtime and cache object) reads it back.
    other = Runtime(cache=CompileCache(cache.directory))
    again, hit = other.load(module_file, name="plugin.wasm")
    assert hit and again is not module
    assert other.noted(again, "shape") == {"imports": ["a"], "n": 1}
    # Damaged notes are none, not an error; the entry itself still loads.
    header["notes"] = ["not", "a", "mapping"]
    header_path.write_text(json.dumps(header))
    third = Runtime(cache=CompileCache(cache.directory))
    loaded, hit = third.load(module_file, name="plugin.wasm")
    assert hit and third.noted(loaded, "shape") is None
    third.note(loaded, "shape", 2)
    assert json.loads(header_path.read_text())["notes"] == {"shape": 2}
    for each in (other, third):
        each.close()


def test_without_a_cache_a_note_is_nothing(module_file: Path) -> None:
    uncached = Runtime(cache=False)
    module, _ = uncached.load(module_file, name="plugin.wasm")
    uncached.note(module, "shape", 1)
    assert uncached.noted(module, "shape") is None
    uncached.close()


def test_a_cache_directory_deleted_while_in_use_is_made_again_on_the_next_store(
    runtime: Runtime, cache: CompileCache, module_file: Path, tmp_path: Path
) -> None:
    import shutil

    runtime.load(module_file, name="plugin.wasm")
    shutil.rmtree(cache.directory)
    other = tmp_path / "other.wasm"
    other.write_bytes(abi_module(metadata={"name": "other", "version": "1.0.0"}))
    _, hit = runtime.load(other, name="other.wasm")
    assert not hit
    assert cache.info().entries == 1
    assert runtime.load(other, name="other.wasm")[1]


def test_a_path_known_by_one_stat_is_never_mistaken_for_another_file(
    runtime: Runtime, cache: CompileCache, tmp_path: Path
) -> None:
    # runtime/_cache.py, known_path: a path this cache saw is known again by
    # the identity of the file it leads to, so a symlink re-pointed (as an
    # update or benchmarks/reload.py does) or a file rewritten is told apart.
    first, second = tmp_path / "first.wasm", tmp_path / "second.wasm"
    first.write_bytes(
        abi_module(metadata={"name": "first", "version": "1.0.0", "description": "d"})
    )
    second.write_bytes(
        abi_module(metadata={"name": "second", "version": "2.0.0", "description": "d"})
    )
    live = tmp_path / "live.wasm"

    def point_at(target: Path) -> None:
        link = tmp_path / ".live.new"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        os.replace(link, live)

    names = []
    for target in (first, second, first, second):
        point_at(target)
        names.append(wasmdeck.Plugin(live, runtime=runtime).name)
        assert cache.known_path(live, runtime.fingerprint) is not None
    assert names == ["first", "second", "first", "second"]
    # Rewritten in place (new contents, new size and times): not the old digest.
    point_at(first)
    first.write_bytes(
        abi_module(metadata={"name": "rewritten", "version": "3.0.0", "description": "d"})
    )
    assert wasmdeck.Plugin(live, runtime=runtime).name == "rewritten"
