"""The hostcalls test plugins of every kit, built once per run, and what drives them.

``build_cached(project)`` builds a wasmdeck project with
``wasmdeck.toolchains.build_project`` in a copy under ``.cache/test-builds``, named
by a digest of the project, the kit, the language's build module and the
toolchain's version: a re-run with nothing changed builds nothing, and the
source tree stays clean. ``hostcalls_wasm(lang)`` is the hostcalls plugin of
``tests/plugins/<lang>/hostcalls`` built so; tests/test_pdk_hostcalls.py
states the contract these plugins implement.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import shutil
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from componentgen import COMPILED

import wasmdeck
from wasmdeck import Runtime
from wasmdeck.toolchains import BuildError, build_project, language, load_project, sdk_dir
from wasmdeck.toolchains._python import wit_dir

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "plugins"
BUILDS = ROOT / ".cache" / "test-builds"

# Every language with a hostcalls plugin, and that plugin's name.
HOSTCALLS = {
    "c": "c-hostcalls",
    "rust": "rust-hostcalls",
    "zig": "zig-hostcalls",
    "go": "go-hostcalls",
    "assemblyscript": "as-hostcalls",
    "python": "py-hostcalls",
}
# The actions of the hostcalls contract (tests/test_pdk_hostcalls.py), in this order.
ACTIONS = [
    "kv",
    "kv-more",
    "config",
    "http-get",
    "http-post",
    "log",
    "denied",
    "fail-host",
    "process",
    "ws-echo",
    "context",
    "count",
]
# Everything a hostcalls plugin imports, scoped so that nothing here is reachable.
LINK = ["kv", "network:example.com", "process:printf"]
# Tool state and outputs that are not part of a project's sources.
_NOT_SOURCES = {"build", "target", ".zig-cache", "zig-cache", "__pycache__", "node_modules"}


def _digest_tree(digest: Any, root: Path, skip: set[str] = _NOT_SOURCES) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not skip & set(path.relative_to(root).parts):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())


def build_cached(source: Path) -> Path:
    """Build the wasmdeck project at ``source`` in a copy under .cache/test-builds; cached.

    The copy is named by a digest of the project, its language's kit and build
    module and the toolchain's version, so a re-run only builds what changed.
    """
    found = load_project(source)
    kit = language(found.language)
    digest = hashlib.sha256()
    _digest_tree(digest, source, _NOT_SOURCES | {"Cargo.lock"})
    _digest_tree(digest, sdk_dir(found.language), _NOT_SOURCES | {"templates"})
    if found.language == "python":
        _digest_tree(digest, wit_dir())
    builder = inspect.getsourcefile(inspect.getmodule(kit.build))  # type: ignore[arg-type]
    digest.update(Path(builder).read_bytes() + kit.toolchain().encode())  # type: ignore[arg-type]
    project = BUILDS / f"{found.language}-{found.name}-{digest.hexdigest()[:16]}"
    built = project / "build" / f"{found.name}.wasm"
    if built.is_file():
        return built
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(source, project, ignore=shutil.ignore_patterns(*_NOT_SOURCES, "Cargo.lock"))
    try:
        return build_project(project)
    except BuildError as exc:
        pytest.fail(f"building {source.relative_to(ROOT)} failed: {exc}", pytrace=False)


@functools.cache
def hostcalls_wasm(lang: str) -> Path:
    """The hostcalls plugin of ``lang``, built on first use (and again only when it changed)."""
    return build_cached(PLUGINS / lang / "hostcalls")


@functools.cache
def runtime() -> Runtime:
    """One runtime for these tests, compiling through the test compile cache."""
    return Runtime(cache=COMPILED)


def plugin(wasm: Path, *grants: str, **kwargs: Any) -> wasmdeck.Plugin:
    """The plugin with ``grants``, plus the LINK grants of the kinds they leave out."""
    kinds = {g.split(":")[0] for g in grants}
    linked = [*grants, *(g for g in LINK if g.split(":")[0] not in kinds)]
    return wasmdeck.Plugin(wasm, grants=linked, runtime=runtime(), **kwargs)


class Guest:
    """A core module run bare in wasmtime, to feed ``execute`` what the host never would.

    Every wasmdeck import is a stub; ``set_error`` and ``set_output`` keep
    what they are given in ``errors`` and ``outputs``.
    """

    def __init__(self, wasm: Path) -> None:
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        store.set_wasi(wasmtime.WasiConfig())
        self.errors: list[bytes] = []
        self.outputs: list[bytes] = []
        module = wasmtime.Module.from_file(engine, str(wasm))
        for imp in module.imports:
            if imp.module != "wasmdeck":
                continue
            if imp.name in ("set_error", "set_output"):
                sink = self.errors if imp.name == "set_error" else self.outputs
                linker.define_func(
                    "wasmdeck",
                    imp.name,
                    imp.type,
                    lambda c, p, n, s=sink: self._keep(c, p, n, s),
                    True,
                )
            else:
                results = list(imp.type.results)  # type: ignore[union-attr]
                linker.define_func(
                    "wasmdeck", imp.name, imp.type, lambda *a, r=results: 0 if r else None
                )
        self.store, self.instance = store, linker.instantiate(store, module)
        exports = self.instance.exports(store)
        self.memory = exports["memory"]
        if "_initialize" in exports:
            exports["_initialize"](store)

    def _keep(self, caller: wasmtime.Caller, ptr: int, length: int, sink: list[bytes]) -> None:
        sink.append(bytes(self.memory.read(caller, ptr, ptr + length)))

    def execute(self, request: bytes, length: int | None = None) -> int:
        """Call execute with ``request`` (and a forged ``length``, if given)."""
        exports = self.instance.exports(self.store)
        size = max(len(request), 1)
        ptr = exports["alloc"](self.store, size)
        self.memory.write(self.store, request, ptr)
        code = exports["execute"](self.store, ptr, len(request) if length is None else length)
        exports["dealloc"](self.store, ptr, size)
        return code
