"""C (and anything zig cc compiles) to a wasm32-wasi reactor module."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["C_FLAGS", "BuildError", "compile_c", "sdk_dir"]

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


class BuildError(Exception):
    """A build failed; the message carries the compiler's output."""


def sdk_dir(lang: str) -> Path:
    """Where the plugin development kit for ``lang`` lives.

    Installed wheels carry the kits inside the package (``wasmdeck/_sdk``);
    a source checkout has them at the repository's top (``sdk/``).
    """
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_sdk" / lang, here.parent.parent / "sdk" / lang):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {lang} plugin kit is not installed (looked in {here / '_sdk'})")


def zig_command() -> list[str]:
    """The zig compiler from PyPI ``ziglang``, or a clear error saying how to get it."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        if shutil.which("zig"):
            return ["zig"]
        raise BuildError(
            "no C/Zig toolchain: install it with `pip install ziglang` "
            "(or `pip install 'wasmdeck[toolchains]'`)"
        ) from None
    return [sys.executable, "-m", "ziglang"]


def compile_c(
    sources: Sequence[Path],
    output: Path,
    *,
    include_dirs: Sequence[Path] = (),
    flags: Sequence[str] = C_FLAGS,
) -> Path:
    """Compile C sources to ``output`` (a reactor module); raise BuildError on failure."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    command = [
        *zig_command(),
        "cc",
        *flags,
        *(f"-I{d}" for d in include_dirs),
        *map(str, sources),
        "-o",
        str(partial),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(
            f"compiling {', '.join(s.name for s in sources)} failed:\n{result.stderr.strip()}"
        )
    partial.replace(output)  # atomic: a half-written module is never left behind
    return output
