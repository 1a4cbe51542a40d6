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
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._c import BuildError, sdk_dir

__all__ = [
    "CAPABILITY_INTERFACES",
    "TEMPLATES",
    "componentize_py_version",
    "componentize_python",
    "new_python_plugin",
    "wit_dir",
]

# ``wasmdeck new --lang python --template NAME``: the plugin kit's templates.
TEMPLATES = ("minimal", "json", "template")

WIT_VERSION = "1.0.0"
# The host interfaces behind a capability, and the capability of each.
CAPABILITY_INTERFACES = {
    "http": "network",
    "websocket": "network",
    "process": "process",
    "kv": "kv",
}


def wit_dir() -> Path:
    """Where the ``wasmdeck:plugin`` WIT package is (``wit/`` in a checkout)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_wit", here.parent.parent / "wit"):
        if (candidate / "plugin.wit").is_file():
            return candidate
    raise FileNotFoundError(f"the wasmdeck WIT package is not installed (looked in {here})")


def new_python_plugin(directory: Path, name: str, template: str = "minimal") -> list[Path]:
    """Write a new Python plugin project from one of ``TEMPLATES``; return its files.

    ``{{name}}`` in a template becomes ``name``. Refuses to overwrite a file.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    source = sdk_dir("python") / "templates" / template
    files = sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    targets = [directory / p.relative_to(source) for p in files]
    existing = [t for t in targets if t.exists()]
    if existing:
        raise FileExistsError(f"{existing[0]} already exists; not overwriting it")
    for path, target in zip(files, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text().replace("{{name}}", name))
    return targets


def _componentize_py() -> str:
    found = shutil.which("componentize-py", path=str(Path(sys.executable).parent))
    found = found or shutil.which("componentize-py")
    if found is None:
        raise BuildError(
            "no Python component toolchain: install it with `pip install componentize-py` "
            "(or `pip install 'wasmdeck[toolchains]'`)"
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
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="wasmdeck-wit-") as scratch:
        world_dir = _world(Path(scratch), imports)
        command = [_componentize_py(), "-q", "-d", str(world_dir), "-w", "plugin"]
        command += ["componentize", "-p", str(sdk_dir("python")), "-p", str(app_dir)]
        for path in python_path:
            command += ["-p", str(path)]
        command += [module, "-o", str(partial.resolve())]
        # componentize-py adds the active virtualenv's site-packages to the
        # plugin; the host's packages have no business there.
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=scratch)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        detail = (result.stderr or result.stdout).strip()
        raise BuildError(f"componentize-py could not build {app_dir / module}.py:\n{detail}")
    partial.replace(output)  # atomic: a half-written component is never left behind
    return output


def _world(scratch: Path, imports: Sequence[str]) -> Path:
    """A WIT directory whose world ``plugin`` is wasmdeck's plus ``imports``."""
    deps = scratch / "wit" / "deps" / "wasmdeck-plugin"
    deps.mkdir(parents=True)
    shutil.copy(wit_dir() / "plugin.wit", deps / "plugin.wit")
    lines = [
        "package wasmdeck:build;",
        "",
        "world plugin {",
        f"    include wasmdeck:plugin/plugin@{WIT_VERSION};",
        *(f"    import wasmdeck:plugin/{name}@{WIT_VERSION};" for name in dict.fromkeys(imports)),
        "}",
    ]
    (scratch / "wit" / "world.wit").write_text("\n".join(lines) + "\n")
    return scratch / "wit"
