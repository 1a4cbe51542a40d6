"""AssemblyScript to a core module (JSON ABI v1), with npm ``assemblyscript``.

The compiler (``asc``) runs on Node.js. It is installed once, pinned, into a
shared toolchain directory (``toolchain_dir()``: the user cache directory's
``wasmdeck/toolchains/assemblyscript-<version>``, or under
``$WASMDECK_TOOLCHAINS`` when that is set), so projects need no
``node_modules`` or ``npm install`` of their own.

A project's entry file (``assembly/index.ts``, or ``[build] entry`` in
wasmdeck.toml) imports the kit as ``"wasmdeck"`` (``sdk/assemblyscript/wasmdeck``,
found through ``--path``); the kit's ``abi.ts`` is compiled as a second entry
and supplies the exports the host calls. The options:

- ``--runtime minimal`` (``[build] runtime`` may say ``incremental`` or
  ``stub``): the TLSF allocator and a garbage collector that runs only when
  called. The kit calls it after every request, when nothing but globals hold
  objects: no shadow stack, no collection in the middle of a call.
  ``incremental`` collects on its own while the plugin runs (for plugins that
  allocate a lot within one call) at the price of a shadow stack and slower
  code; ``stub`` never frees, so a long-lived instance only grows.
- ``--exportStart _initialize``: top-level statements (``Plugin.define``) run
  when the host calls ``_initialize``, after instantiation, rather than in a
  wasm start function where host functions cannot reach the instance yet.
- ``--use abort=...`` / ``--use trace=...``: AssemblyScript's ``abort`` and
  ``trace`` would import ``env.abort`` / ``env.trace``, which the host does
  not provide; they go to the plugin's log instead (abort then traps).
- ``-O3``: optimized for speed (the hot path is the product).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ._languages import Language
from ._pins import ASSEMBLYSCRIPT_VERSION
from ._project import Project, sdk_dir
from ._tool import (
    BuildError,
    BuildProgress,
    ToolchainMissing,
    atomic_output,
    no_progress,
    run_tool,
)

__all__ = [
    "ASC_FLAGS",
    "ASSEMBLYSCRIPT_VERSION",
    "LANGUAGE",
    "RUNTIMES",
    "asc_command",
    "compile_assemblyscript",
    "toolchain_dir",
]

# The npm `assemblyscript` release wasmdeck is tested with.
RUNTIMES = ("minimal", "incremental", "stub")
ASC_FLAGS = (
    "--exportStart",
    "_initialize",
    "-O3",
    "--noColors",
    "--use",
    "abort=~lib/wasmdeck/index/__wasmdeck_abort",
    "--use",
    "trace=~lib/wasmdeck/index/__wasmdeck_trace",
)
DEFAULT_ENTRY = "assembly/index.ts"
# Imports AssemblyScript's standard library makes from `env` that the host
# does not provide, and what to use instead.
_ENV_ADVICE = {
    "console": 'console.* needs a JavaScript host; use log.info(...) from "wasmdeck"',
    "Date": "Date.now() needs a JavaScript host; the request's timestamp is req.timestamp",
    "seed": "Math.random() needs a seed from a JavaScript host",
}


def toolchain_dir() -> Path:
    """Where the pinned AssemblyScript compiler is (or will be) installed."""
    root = os.environ.get("WASMDECK_TOOLCHAINS")
    if root:
        base = Path(root).expanduser()
    else:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("wasmdeck", appauthor=False)) / "toolchains"
    return base / f"assemblyscript-{ASSEMBLYSCRIPT_VERSION}"


def _install_hint() -> str:
    return (
        "install it with `wasmdeck toolchain --install assemblyscript` (runs `npm install "
        f"--no-audit --no-fund assemblyscript@{ASSEMBLYSCRIPT_VERSION}` in {toolchain_dir()}), "
        "or run `wasmdeck build --install-toolchain`"
    )


def _asc_script() -> Path:
    return toolchain_dir() / "node_modules" / "assemblyscript" / "bin" / "asc.js"


def asc_command() -> list[str]:
    """``node .../asc.js``, or ToolchainMissing saying how to get it."""
    node = shutil.which("node")
    if node is None:
        raise ToolchainMissing(
            "no AssemblyScript toolchain: it runs on Node.js (20 or later), and `node` is "
            "not on PATH; install Node.js and npm (e.g. `apt-get install nodejs npm`), then "
            + _install_hint()
        )
    script = _asc_script()
    if not script.is_file():
        raise ToolchainMissing(
            f"no AssemblyScript toolchain (asc {ASSEMBLYSCRIPT_VERSION}): " + _install_hint()
        )
    return [node, str(script)]


def _installed_version() -> str | None:
    manifest = toolchain_dir() / "node_modules" / "assemblyscript" / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _toolchain() -> str:
    asc_command()
    return f"asc {_installed_version() or '?'} (npm assemblyscript, in {toolchain_dir()})"


def _install(progress: BuildProgress) -> None:
    """``npm install`` the pinned compiler into ``toolchain_dir()``; a no-op when there."""
    target = toolchain_dir()
    if _installed_version() == ASSEMBLYSCRIPT_VERSION and _asc_script().is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise ToolchainMissing(
            "cannot install the AssemblyScript toolchain: `npm` is not on PATH; install "
            "Node.js (20 or later) and npm first (e.g. `apt-get install nodejs npm`)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Installed beside its place and moved there whole, so a broken install
    # never passes for a toolchain.
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as scratch:
        staging = Path(scratch) / "toolchain"
        staging.mkdir()
        (staging / "package.json").write_text(
            json.dumps(
                {
                    "name": "wasmdeck-assemblyscript-toolchain",
                    "private": True,
                    "description": "The AssemblyScript compiler wasmdeck builds plugins with",
                }
            ),
            encoding="utf-8",
        )
        spec = f"assemblyscript@{ASSEMBLYSCRIPT_VERSION}"
        run_tool(
            [npm, "install", "--no-audit", "--no-fund", "--no-progress", spec],
            what=f"npm install {spec}",
            cwd=staging,
            progress=progress,
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)


def compile_assemblyscript(
    entry: Path,
    output: Path,
    *,
    runtime: str = "minimal",
    base: Path | None = None,
    progress: BuildProgress = no_progress,
) -> Path:
    """Compile the plugin whose entry file is ``entry`` (with the kit) to ``output``.

    ``base`` (default: the entry's directory) is where asc runs: it names
    files in its messages relative to it.
    """
    if runtime not in RUNTIMES:
        raise BuildError(f"unknown AssemblyScript runtime {runtime!r}; use one of {RUNTIMES}")
    if not entry.is_file():
        raise BuildError(f"no AssemblyScript entry file {entry}")
    kit = sdk_dir("assemblyscript")
    base = (base or entry.parent).resolve()
    with atomic_output(output) as partial:
        command = [
            *asc_command(),
            os.path.relpath(entry.resolve(), base),
            str(kit / "wasmdeck" / "abi.ts"),
            "--path",
            str(kit),
            "--runtime",
            runtime,
            *ASC_FLAGS,
            "--outFile",
            str(partial.resolve()),
        ]
        run_tool(command, what=f"asc {command[2]}", cwd=base, progress=progress)
        _check_imports(partial)
    return output


def _check_imports(wasm: Path) -> None:
    """Refuse a module importing from ``env``: it would not load, and here we can say why."""
    import wasmtime

    module = wasmtime.Module(wasmtime.Engine(), wasm.read_bytes())
    problems = []
    for imp in module.imports:
        if imp.module == "wasmdeck" or imp.module == "wasi_snapshot_preview1":
            continue
        name = imp.name or ""
        advice = _ENV_ADVICE.get(name.split(".")[0], "wasmdeck provides no such import")
        problems.append(f"  {imp.module}.{name}: {advice}")
    if problems:
        raise BuildError(
            "the plugin uses functions the wasmdeck host does not provide:\n" + "\n".join(problems)
        )


def _build(project: Project, progress: BuildProgress) -> Path:
    """``[build] entry`` and ``[build] runtime`` in wasmdeck.toml may change the defaults."""
    settings = project.settings.get("build", {})
    manifest = project.root / "wasmdeck.toml"
    entry = settings.get("entry", DEFAULT_ENTRY)
    runtime = settings.get("runtime", "minimal")
    if not isinstance(entry, str) or not entry:
        raise BuildError(f'{manifest}: [build] entry must be a file name, e.g. "{DEFAULT_ENTRY}"')
    if runtime not in RUNTIMES:
        raise BuildError(f"{manifest}: [build] runtime must be one of {', '.join(RUNTIMES)}")
    path = project.root / entry
    if not path.is_file():
        raise BuildError(
            f"{project.root} has no {entry}: an AssemblyScript project's entry file is "
            f'{DEFAULT_ENTRY} (or name another with [build] entry = "..." in wasmdeck.toml)'
        )
    return compile_assemblyscript(
        path, project.output, runtime=runtime, base=project.root, progress=progress
    )


LANGUAGE = Language(
    name="assemblyscript",
    title="AssemblyScript",
    build=_build,
    toolchain=_toolchain,
    install=_install,
)
