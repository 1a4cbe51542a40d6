"""Shared fixtures: plugins built from source once per run, and WAT modules.

C plugins are compiled with zig (PyPI ``ziglang``) against ``sdk/c``. Builds
are cached under ``.cache/test-builds`` by a digest of the sources, the kit
and the compiler version, so a re-run only rebuilds what changed.

Tests that need a real toolchain carry the ``toolchain`` marker, put on them
here (``pytest_collection_modifyitems``): a test is marked when it, a fixture
it uses, or a helper of the test suite they call, calls a toolchain of
``wasmdeck.toolchains``. ``pytest -m "not toolchain"`` is the fast tier; it
runs without any toolchain installed (README, "Tests").
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import types
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from marketfix import postgres, registry, server, signer  # noqa: F401
from servers.fixtures import echo_server, hue_bridge, obs_server, webhook_server  # noqa: F401

import wasmdeck
from wasmdeck.toolchains import C_FLAGS, BuildError, compile_c, sdk_dir

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "test-builds"


def build_c(source: Path) -> Path:
    """Compile one C plugin (using the C kit) to a reactor module; cached."""
    kit = sdk_dir("c")
    digest = hashlib.sha256()
    for part in (source.read_bytes(), *(p.read_bytes() for p in sorted(kit.glob("*.h")))):
        digest.update(hashlib.sha256(part).digest())
    digest.update(" ".join(C_FLAGS).encode() + metadata.version("ziglang").encode())
    output = CACHE / f"{source.stem}-{digest.hexdigest()[:16]}.wasm"
    if not output.exists():
        try:
            compile_c([source], output, include_dirs=[kit])
        except BuildError as exc:
            pytest.fail(str(exc), pytrace=False)
    return output


@pytest.fixture(scope="session")
def behaviors_wasm() -> Path:
    return build_c(ROOT / "tests" / "plugins" / "c" / "behaviors.c")


@pytest.fixture(scope="session")
def velocity_wasm() -> Path:
    return build_c(ROOT / "examples" / "c" / "velocity" / "velocity.c")


@pytest.fixture
def behaviors(behaviors_wasm: Path) -> wasmdeck.Plugin:
    plugin = wasmdeck.Plugin(behaviors_wasm)
    yield plugin
    plugin.close()


@pytest.fixture
def plugin_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="wasmdeck.plugin")
    return caplog


@pytest.fixture(scope="session")
def loopback_name() -> str:
    """A host name other than ``localhost`` that resolves to 127.0.0.1.

    The machine's own host name does, on the machines this project runs on
    (/etc/hosts); without one the SSRF tests cannot be honest, so they fail.
    """
    import socket

    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    if name == "localhost" or addresses != {"127.0.0.1"}:
        pytest.fail(
            f"host name {name!r} resolves to {addresses}, not only 127.0.0.1", pytrace=False
        )
    return name


# -- the `toolchain` marker ---------------------------------------------------------

TESTS = Path(__file__).resolve().parent
# What runs a toolchain: the language modules (every function in them), and
# the entry points that reach them.
_TOOLCHAIN_MODULES = {
    f"wasmdeck.toolchains._{name}"
    for name in ("c", "zig", "rust", "go", "python", "assemblyscript")
}
_TOOLCHAIN_ENTRY_POINTS = {"build_project", "compile_c"}


def _runs_a_toolchain(value: object) -> bool:
    if isinstance(value, types.ModuleType):
        return value.__name__ in _TOOLCHAIN_MODULES
    module = getattr(value, "__module__", None) or ""
    name = getattr(value, "__name__", None)
    if module in _TOOLCHAIN_MODULES:
        return True
    return module.startswith("wasmdeck.toolchains") and name in _TOOLCHAIN_ENTRY_POINTS


def _calls_a_toolchain(function: Callable[..., Any], seen: set[types.CodeType]) -> bool:
    """Whether ``function`` (or a function of the test suite it names) runs a toolchain.

    Follows the names its code (and the code nested in it) looks up in its
    module's globals: a toolchain, or a function defined under tests/ to
    examine in turn.
    """
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    namespace = getattr(function, "__globals__", None)
    if code is None or namespace is None or code in seen:
        return False
    seen.add(code)
    codes = [code]
    while codes:
        current = codes.pop()
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        for name in current.co_names:
            value = namespace.get(name)
            if value is None:
                continue
            if callable(value):
                value = inspect.unwrap(value)  # functools.cache and other wrappers
            if _runs_a_toolchain(value):
                return True
            source = getattr(getattr(value, "__code__", None), "co_filename", "")
            if source.startswith(str(TESTS)) and _calls_a_toolchain(value, seen):
                return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache: dict[Callable[..., Any], bool] = {}

    def needs(function: Callable[..., Any]) -> bool:
        if function not in cache:
            cache[function] = _calls_a_toolchain(function, set())
        return cache[function]

    for item in items:
        if item.get_closest_marker("toolchain") or not isinstance(item, pytest.Function):
            continue
        functions = [item.function]
        for name in item.fixturenames:  # every fixture the test uses, transitively
            for fixturedef in item._fixtureinfo.name2fixturedefs.get(name, ()):
                functions.append(fixturedef.func)
        if any(needs(function) for function in functions):
            item.add_marker(pytest.mark.toolchain)


_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave the process with pytest's status once everything is reported.

    wasmtime's WASI keeps tokio worker threads that can panic while the
    interpreter tears itself down, after every test has passed; the CLI
    (``cli.run``) leaves the same way, for the same reason.
    """
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
