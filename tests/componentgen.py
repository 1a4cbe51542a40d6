"""Python test components, built with componentize-py once and cached.

A build is cached under ``.cache/test-builds`` by a digest of the plugin's
sources, the Python kit, the WIT package, the host interfaces it imports and the componentize-py
version; compiled artifacts go to the compile cache in ``.cache/compiled``,
so only the first run on a machine pays for either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from wasmdeck.runtime._cache import CompileCache
from wasmdeck.toolchains import BuildError, sdk_dir
from wasmdeck.toolchains._python import componentize_py_version, componentize_python, wit_dir

ROOT = Path(__file__).resolve().parent.parent
BUILDS = ROOT / ".cache" / "test-builds"
COMPILED = CompileCache(ROOT / ".cache" / "compiled")
PLUGINS = ROOT / "tests" / "plugins" / "python"


def _tree_digest(digest: hashlib._Hash, *directories: Path) -> None:
    for directory in directories:
        for path in sorted(directory.rglob("*")):
            if (
                path.is_file()
                and path.suffix in (".py", ".wit")
                and "__pycache__" not in path.parts
            ):
                digest.update(str(path.relative_to(directory)).encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())


def build_python(app_dir: Path, *, imports: Sequence[str] = (), module: str = "app") -> Path:
    """The component for the Python plugin in ``app_dir``; built on first use."""
    digest = hashlib.sha256()
    _tree_digest(digest, app_dir, sdk_dir("python"), wit_dir())
    digest.update("\0".join([module, *imports, componentize_py_version()]).encode())
    output = BUILDS / f"py-{app_dir.name}-{digest.hexdigest()[:16]}.wasm"
    if not output.exists():
        try:
            componentize_python(app_dir, output, module=module, imports=imports)
        except BuildError as exc:
            pytest.fail(str(exc), pytrace=False)
    return output
