"""The compile cache's size cap: least recently used entries go first, never
one a process has loaded; ``wasmdeck cache info`` shows the cap and usage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from watgen import abi_module

from wasmdeck import Runtime
from wasmdeck.runtime._cache import DEFAULT_MAX_SIZE, CompileCache, parse_size


def _plugins(tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = tmp_path / f"p{n}.wasm"
        path.write_bytes(abi_module(f"(i32.const {n})"))
        paths.append(path)
    return paths


def _entry_size(tmp_path: Path, plugin: Path) -> int:
    """Bytes one entry of ``plugin`` takes (artifact and header), measured."""
    scratch = CompileCache(tmp_path / "measure")
    Runtime(cache=scratch).load(plugin, name=plugin.name)
    return sum(p.stat().st_size for p in scratch.directory.glob("*.*"))


def _names(cache: CompileCache) -> set[str]:
    return {str(entry["name"]) for entry in cache.entries()}


def _entries_size(cache: CompileCache) -> int:
    return sum(
        p.stat().st_size for p in cache.directory.iterdir() if p.suffix in (".json", ".cwasm")
    )


def _age(cache: CompileCache, name: str, seconds: float) -> None:
    """Make the entry of ``name`` last used ``seconds`` ago."""
    (entry,) = [e for e in cache.entries() if e["name"] == name]
    header = Path(str(entry["path"])).with_suffix(".json")
    when = header.stat().st_mtime_ns - int(seconds * 1e9)
    os.utime(header, ns=(when, when))


@pytest.fixture
def plugins(tmp_path: Path) -> list[Path]:
    return _plugins(tmp_path, 4)


@pytest.fixture
def cap(tmp_path: Path, plugins: list[Path]) -> int:
    """Room for two entries, not three."""
    return int(2.5 * max(_entry_size(tmp_path / f"m{n}", p) for n, p in enumerate(plugins)))


def test_the_default_cap_is_1_gib_and_the_variable_sets_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WASMDECK_CACHE_SIZE", raising=False)
    assert CompileCache(tmp_path).max_size == DEFAULT_MAX_SIZE == 1 << 30
    monkeypatch.setenv("WASMDECK_CACHE_SIZE", "300M")
    assert CompileCache(tmp_path).max_size == 300 << 20
    assert CompileCache(tmp_path, max_size=4096).max_size == 4096
    assert [parse_size(t) for t in ("2G", "1GiB", "512 MiB", "100k", "1048576")] == [
        2 << 30,
        1 << 30,
        512 << 20,
        100 << 10,
        1 << 20,
    ]
    for bad in ("lots", "-1G", "0", "1.5X"):
        with pytest.raises(ValueError, match="WASMDECK_CACHE_SIZE"):
            parse_size(bad)
    with pytest.raises(ValueError, match="max_size"):
        CompileCache(tmp_path, max_size=0)


def test_past_the_cap_the_least_recently_used_entry_goes(
    tmp_path: Path, plugins: list[Path], cap: int
) -> None:
    a, b, c = plugins[:3]
    cache = CompileCache(tmp_path / "cache", max_size=cap)
    runtime = Runtime(cache=cache)
    for plugin in (a, b):
        assert not runtime.load(plugin, name=plugin.name)[1]
    _age(cache, "p0.wasm", 20)
    _age(cache, "p1.wasm", 10)
    # A hit makes a the most recently used (another cache object, released at once).
    reader = CompileCache(cache.directory, max_size=cap)
    assert Runtime(cache=reader).load(a, name=a.name)[1]
    reader.close()
    runtime.load(c, name=c.name)
    assert _names(cache) == {"p0.wasm", "p2.wasm"}  # b, least recently used, went
    assert _entries_size(cache) <= cap
    assert not runtime.load(b, name=b.name)[1]  # a miss: compiled again


def test_an_entry_in_use_in_this_process_is_never_evicted(
    tmp_path: Path, plugins: list[Path], cap: int
) -> None:
    a, b, c = plugins[:3]
    cache = CompileCache(tmp_path / "cache", max_size=cap)
    runtime = Runtime(cache=cache)
    for plugin in (a, b):
        runtime.load(plugin, name=plugin.name)
    user = CompileCache(cache.directory, max_size=cap)
    assert Runtime(cache=user).load(a, name=a.name)[1]  # a is loaded and stays in use
    _age(cache, "p0.wasm", 60)  # ... and is the least recently used
    runtime.load(c, name=c.name)
    assert _names(cache) == {"p0.wasm", "p2.wasm"}  # b went instead
    user.close()


HOLDER = """
import sys
from wasmdeck import Runtime
from wasmdeck.runtime._cache import CompileCache
cache = CompileCache(sys.argv[1], max_size=int(sys.argv[3]))
artifact, hit = Runtime(cache=cache).load(sys.argv[2], name="p0.wasm")
print("hit" if hit else "miss", flush=True)
sys.stdin.readline()  # hold the entry until told to exit
"""


def test_an_entry_another_process_has_loaded_is_never_evicted(
    tmp_path: Path, plugins: list[Path], cap: int
) -> None:
    a, b, c, d = plugins
    cache = CompileCache(tmp_path / "cache", max_size=cap)
    runtime = Runtime(cache=cache)
    for plugin in (a, b):
        runtime.load(plugin, name=plugin.name)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cache.directory), str(a), str(cap)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "hit\n"
        _age(cache, "p0.wasm", 60)
        runtime.load(c, name=c.name)
        assert _names(cache) == {"p0.wasm", "p2.wasm"}  # a is in use over there: b went
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    # Released: now a, the least recently used, is what goes.
    _age(cache, "p0.wasm", 60)
    runtime.load(d, name=d.name)
    assert _names(cache) == {"p2.wasm", "p3.wasm"}


def test_an_artifact_larger_than_the_cap_is_not_stored(tmp_path: Path, plugins: list[Path]) -> None:
    cache = CompileCache(tmp_path / "cache", max_size=1024)
    runtime = Runtime(cache=cache)
    assert not runtime.load(plugins[0], name="p0.wasm")[1]
    assert cache.entries() == [] and not runtime.load(plugins[0], name="p0.wasm")[1]


def _cli(home: Path, *args: str, size: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, WASMDECK_HOME=str(home), WASMDECK_CACHE_SIZE=size)
    return subprocess.run(
        [sys.executable, "-m", "wasmdeck", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cache_info_shows_the_cap_and_usage(tmp_path: Path, plugins: list[Path]) -> None:
    home = tmp_path / "home"
    assert _cli(home, "compile", str(plugins[0]), size="64K").returncode == 0
    result = _cli(home, "cache", "info", size="64K")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (size_line,) = [line for line in lines if line.startswith("size:")]
    assert size_line.endswith("of 64.0 KiB (" + size_line.split("(")[-1])
    assert "% of the cap)" in size_line
    assert "cap:       64.0 KiB (WASMDECK_CACHE_SIZE" in result.stdout
    refused = _cli(home, "cache", "info", size="lots")
    assert refused.returncode == 2
    assert "WASMDECK_CACHE_SIZE='lots' is not a size" in refused.stderr
    assert "Traceback" not in refused.stderr
