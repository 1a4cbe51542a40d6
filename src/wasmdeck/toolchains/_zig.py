"""Zig to a wasm32-wasi reactor module, with the zig from PyPI ``ziglang``.

The plugin is a Zig file (``plugin.zig``, or ``src/plugin.zig``) that
declares ``pub const metadata: wd.Metadata`` and ``pub fn execute``. The
Zig kit (``sdk/zig/wasmdeck.zig``) is the root module of the build: it
holds the ABI exports and imports the plugin as the module ``plugin``,
which imports the kit back as ``wasmdeck``. So a plugin needs no boilerplate
to get its exports compiled in.

The same zig serves the C kit (``_c``); this module reuses its lookup and
installer. Zig's standard library changes between minor releases, and the
kit is written for the one in ``ZIG_VERSION``: another zig is reported as
missing, with the command that installs the right one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from ._c import ZIG_VERSION, install_zig, zig_command
from ._languages import Language
from ._project import Project, build_once, project_digest, sdk_dir
from ._tool import (
    BuildError,
    BuildProgress,
    ToolchainMissing,
    atomic_output,
    no_progress,
    run_tool,
)

__all__ = ["LANGUAGE", "ZIG_FLAGS", "compile_zig", "zig_toolchain"]

# A reactor (no entry point) exporting the ABI; a 1 MiB stack (zig's default
# is 16 MiB, and it counts against the plugin's memory limit from the start).
ZIG_FLAGS = (
    "-target",
    "wasm32-wasi",
    "-O",
    "ReleaseSmall",
    "-fno-entry",
    "--stack",
    "1048576",
    "--export=alloc",
    "--export=dealloc",
    "--export=init",
    "--export=execute",
    # The state pair of a live reload (docs/reload.md): empty state unless the
    # plugin declares saveState/restoreState.
    "--export=save_state",
    "--export=restore_state",
)
# Where the plugin's root file may be, first match wins.
MAIN_FILES = ("plugin.zig", "src/plugin.zig", "main.zig", "src/main.zig")


def _install_hint() -> str:
    return (
        f"install it with `pip install ziglang=={ZIG_VERSION}` (or `pip install "
        "'wasmdeck[toolchains]'`), or run `wasmdeck build --install-toolchain`"
    )


def zig_toolchain() -> str:
    """The zig version, if it is one the Zig kit compiles with; else ToolchainMissing."""
    command = zig_command()
    try:
        found = subprocess.run(
            [*command, "version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        raise ToolchainMissing(f"no working Zig toolchain: {_install_hint()}") from None
    if found.split(".")[:2] != ZIG_VERSION.split(".")[:2]:
        raise ToolchainMissing(
            f"zig {found} is installed, but the Zig plugin kit needs zig {ZIG_VERSION}: "
            + _install_hint()
        )
    origin = "from PATH" if command == ["zig"] else "PyPI ziglang"
    return f"zig {found} ({origin})"


def compile_zig(
    main: Path,
    output: Path,
    *,
    kit: Path | None = None,
    flags: Sequence[str] = ZIG_FLAGS,
    cache_dir: Path | None = None,
    progress: BuildProgress = no_progress,
) -> Path:
    """Compile the plugin ``main`` with the Zig kit to ``output``; BuildError on failure."""
    kit = kit or sdk_dir("zig") / "wasmdeck.zig"
    cache = cache_dir or output.parent / ".zig-cache"
    with atomic_output(output, partial_name=f".{output.stem}.partial.wasm") as partial:
        command = [
            *zig_command(),
            "build-exe",
            *flags,
            "--cache-dir",
            str(cache),
            "--name",
            output.stem,
            # The kit is the root module; the plugin and the kit import each other.
            "--dep",
            "plugin",
            f"-Mroot={kit}",
            "--dep",
            "wasmdeck=root",
            f"-Mplugin={main}",
            f"-femit-bin={partial}",
        ]
        run_tool(command, what=f"zig build-exe {main.name}", cwd=main.parent, progress=progress)
    return output


def build_zig_project(project: Project, progress: BuildProgress) -> Path:
    """Build the project, or keep its module when nothing it depends on changed.

    (``zig build-exe`` compiles everything again on every run, about a second;
    ``zig cc`` and ``zig build`` have caches, this is the one for plugins.)
    """
    main = next((project.root / m for m in MAIN_FILES if (project.root / m).is_file()), None)
    if main is None:
        raise BuildError(
            f"{project.root} has no Zig plugin to build: expected {' or '.join(MAIN_FILES[:2])}"
        )
    kit = sdk_dir("zig") / "wasmdeck.zig"
    digest = project_digest(project, settings=(*ZIG_FLAGS, zig_toolchain()), kit=[kit])
    return build_once(
        project, digest, lambda: compile_zig(main, project.output, kit=kit, progress=progress)
    )


LANGUAGE = Language(
    name="zig",
    title="Zig",
    build=build_zig_project,
    toolchain=zig_toolchain,
    install=install_zig,
)
