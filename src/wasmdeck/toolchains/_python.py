"""Python to a WebAssembly component, with PyPI ``componentize-py``.

The plugin is a Python module (``app.py`` by default) that uses the Python
kit (``sdk/python``, the ``wasmdeck_pdk`` package) and exposes
``WitWorld``; componentize-py bundles it with CPython into a component of
the ``wasmdeck:plugin`` world (``wit/``), plus the host interfaces behind a
capability that it uses (``http``, ``websocket``, ``process``, ``kv``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._languages import Language
from ._pins import COMPONENTIZE_PY_VERSION
from ._project import Project, build_once, project_digest, sdk_dir
from ._tool import (
    BuildError,
    BuildProgress,
    ToolchainMissing,
    atomic_output,
    no_progress,
    pip_install,
    run_tool,
)

__all__ = [
    "CAPABILITY_INTERFACES",
    "LANGUAGE",
    "componentize_py_version",
    "componentize_python",
    "wit_dir",
]

WIT_VERSION = "1.3.0"
# The componentize-py release wasmdeck is tested with.
# The host interfaces behind a capability, and the capability of each.
CAPABILITY_INTERFACES = {
    "http": "network",
    "websocket": "network",
    "process": "process",
    "kv": "kv",
    "events": "events",  # since 1.2.0
    "plugins": "plugins",
    "state": "state",
}


def wit_dir() -> Path:
    """Where the ``wasmdeck:plugin`` WIT package is (``wit/`` in a checkout)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_wit", here.parent.parent / "wit"):
        if (candidate / "plugin.wit").is_file():
            return candidate
    raise FileNotFoundError(f"the wasmdeck WIT package is not installed (looked in {here})")


def _componentize_py() -> str:
    found = shutil.which("componentize-py", path=str(Path(sys.executable).parent))
    found = found or shutil.which("componentize-py")
    if found is None:
        raise ToolchainMissing(
            "no Python component toolchain: install it with "
            f"`pip install componentize-py=={COMPONENTIZE_PY_VERSION}` (or `pip install "
            "'wasmdeck[toolchains]'`), or run `wasmdeck build --install-toolchain`"
        )
    return found


def componentize_py_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("componentize-py")
    except metadata.PackageNotFoundError:
        return "unknown"


def componentize_python(
    app_dir: Path,
    output: Path,
    *,
    module: str = "app",
    imports: Sequence[str] = (),
    python_path: Sequence[Path] = (),
    progress: BuildProgress = no_progress,
) -> Path:
    """Build the Python plugin in ``app_dir`` to a component at ``output``.

    ``imports`` names the host interfaces behind a capability that the
    plugin uses (``http``, ``websocket``, ``process``, ``kv``); the others
    are always there. ``python_path`` lists more directories with
    pure-Python packages the plugin imports.
    """
    unknown = sorted(set(imports) - set(CAPABILITY_INTERFACES))
    if unknown:
        raise BuildError(
            f"unknown host interface(s) {', '.join(unknown)}; "
            f"known: {', '.join(CAPABILITY_INTERFACES)}"
        )
    with (
        atomic_output(output) as partial,
        tempfile.TemporaryDirectory(prefix="wasmdeck-wit-") as scratch,
    ):
        world_dir = _world(Path(scratch), imports)
        command = [_componentize_py(), "-q", "-d", str(world_dir), "-w", "plugin"]
        command += ["componentize", "-p", str(sdk_dir("python")), "-p", str(app_dir)]
        for path in python_path:
            command += ["-p", str(path)]
        command += [module, "-o", str(partial.resolve())]
        # componentize-py adds the active virtualenv's site-packages to the
        # plugin; the host's packages have no business there.
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        try:
            run_tool(
                command,
                what=f"componentize-py {app_dir.name}/{module}.py",
                cwd=Path(scratch),
                env=env,
                progress=progress,
            )
        except BuildError as exc:
            raise BuildError(
                f"componentize-py could not build {app_dir / module}.py: {exc}"
            ) from None
    return output


def _world(scratch: Path, imports: Sequence[str]) -> Path:
    """A WIT directory whose world ``plugin`` is wasmdeck's ``stateful`` plus ``imports``."""
    deps = scratch / "wit" / "deps" / "wasmdeck-plugin"
    deps.mkdir(parents=True)
    shutil.copy(wit_dir() / "plugin.wit", deps / "plugin.wit")
    lines = [
        "package wasmdeck:build;",
        "",
        "world plugin {",
        # The kit always exports the state pair (empty state unless the plugin
        # saves some), so every Python plugin can keep its state on a reload.
        f"    include wasmdeck:plugin/stateful@{WIT_VERSION};",
        *(f"    import wasmdeck:plugin/{name}@{WIT_VERSION};" for name in dict.fromkeys(imports)),
        "}",
    ]
    (scratch / "wit" / "world.wit").write_text("\n".join(lines) + "\n")
    return scratch / "wit"


def _toolchain() -> str:
    _componentize_py()
    return f"componentize-py {componentize_py_version()}"


def _install(progress: BuildProgress) -> None:
    pip_install(f"componentize-py=={COMPONENTIZE_PY_VERSION}", progress)


def _build(project: Project, progress: BuildProgress) -> Path:
    """``[build] interfaces`` in wasmdeck.toml names the host interfaces it uses."""
    interfaces = project.settings.get("build", {}).get("interfaces", [])
    if not isinstance(interfaces, list) or not all(isinstance(i, str) for i in interfaces):
        raise BuildError(
            f"{project.root / 'wasmdeck.toml'}: [build] interfaces must be a list of names, "
            f'e.g. ["kv"]; known: {", ".join(CAPABILITY_INTERFACES)}'
        )
    # componentize-py takes seconds even for a one-line plugin: an unchanged
    # project keeps its component (the same mechanism as Zig's, _project.build_once).
    digest = project_digest(
        project,
        settings=("componentize-py", componentize_py_version(), *interfaces),
        kit=[sdk_dir("python"), wit_dir()],
    )
    return build_once(
        project,
        digest,
        lambda: componentize_python(
            project.root, project.output, imports=interfaces, progress=progress
        ),
    )


LANGUAGE = Language(
    name="python",
    title="Python",
    build=_build,
    toolchain=_toolchain,
    install=_install,
)
