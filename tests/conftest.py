"""Shared fixtures: plugins built from source once per run, and WAT modules.

C plugins are compiled with zig (PyPI ``ziglang``) against ``sdk/c``. Builds
are cached under ``.cache/test-builds`` by a digest of the sources, the kit
and the compiler version, so a re-run only rebuilds what changed.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import metadata
from pathlib import Path

import pytest
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
