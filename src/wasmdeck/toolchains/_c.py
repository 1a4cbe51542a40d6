"""C (and anything zig cc compiles) to a wasm32-wasi reactor module."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ._languages import Language
from ._pins import ZIG_VERSION
from ._project import Project, sdk_dir
from ._tool import (
    BuildError,
    BuildProgress,
    ToolchainMissing,
    atomic_output,
    no_progress,
    pip_install,
    run_tool,
)

__all__ = ["C_FLAGS", "LANGUAGE", "ZIG_VERSION", "compile_c", "zig_command"]

# The ziglang release wasmdeck is tested with (PyPI `ziglang`).
# zig links a 16 MiB stack by default; plugins need far less, and it counts
# against their memory limit from the first page.
C_FLAGS = (
    "-target",
    "wasm32-wasi",
    "-O2",
    "-s",
    "-mexec-model=reactor",
    "-Wl,-z,stack-size=1048576",
)


def zig_command() -> list[str]:
    """The zig compiler from PyPI ``ziglang``, or ToolchainMissing saying how to get it."""
    try:
        import ziglang  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        if shutil.which("zig"):
            return ["zig"]
        raise ToolchainMissing(
            "no C/Zig toolchain: install it with "
            f"`pip install ziglang=={ZIG_VERSION}` (or `pip install 'wasmdeck[toolchains]'`), "
            "or run `wasmdeck build --install-toolchain`"
        ) from None
    return [sys.executable, "-m", "ziglang"]


def zig_version() -> str:
    command = zig_command()
    if command == ["zig"]:
        return "zig (from PATH)"
    return f"zig {metadata.version('ziglang')} (PyPI ziglang)"


def install_zig(progress: BuildProgress) -> None:
    pip_install(f"ziglang=={ZIG_VERSION}", progress)


def compile_c(
    sources: Sequence[Path],
    output: Path,
    *,
    include_dirs: Sequence[Path] = (),
    flags: Sequence[str] = C_FLAGS,
    progress: BuildProgress = no_progress,
) -> Path:
    """Compile C sources to ``output`` (a reactor module); raise BuildError on failure."""
    if not sources:
        raise BuildError("no C sources to compile (*.c in the project or its src/)")
    with atomic_output(output) as partial:
        command = [
            *zig_command(),
            "cc",
            *flags,
            *(f"-I{d}" for d in include_dirs),
            *map(str, sources),
            "-o",
            str(partial),
        ]
        what = f"compiling {', '.join(s.name for s in sources)}"
        run_tool(command, what=what, progress=progress)
    return output


def build_c_project(project: Project, progress: BuildProgress) -> Path:
    sources = sorted(project.root.glob("*.c")) + sorted(project.root.glob("src/**/*.c"))
    return compile_c(
        sources,
        project.output,
        include_dirs=[sdk_dir("c"), project.root],
        progress=progress,
    )


LANGUAGE = Language(
    name="c",
    title="C",
    build=build_c_project,
    toolchain=zig_version,
    install=install_zig,
)
