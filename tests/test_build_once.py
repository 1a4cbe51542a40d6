"""``wasmdeck build``/``wasmdeck test`` of an unchanged project build nothing:
Python (componentize-py, seconds per build) and Zig share one mechanism,
``toolchains._project.build_once``."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import wasmdeck
from wasmdeck.cli import main
from wasmdeck.toolchains import build_project, new_project


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_wasmdeck_test_of_an_unchanged_python_project_does_not_rebuild(tmp_path: Path) -> None:
    project = tmp_path / "pyhello"
    new_project(project, "pyhello", "python", "minimal")
    code, out = _cli("test", str(project))
    assert code == 0, out
    wasm = project / "build" / "pyhello.wasm"
    built = wasm.stat()
    code, out = _cli("test", str(project))
    assert code == 0 and out.splitlines()[-1].endswith("0 failed"), out
    again = wasm.stat()
    # Not written again: the same file (a build replaces it atomically: a new inode).
    assert (again.st_ino, again.st_mtime_ns) == (built.st_ino, built.st_mtime_ns)

    app = project / "app.py"
    app.write_text(app.read_text().replace('"hello from pyhello"', '"hi from pyhello"'))
    rebuilt = build_project(project)
    assert rebuilt.stat().st_ino != built.st_ino
    with wasmdeck.Plugin(rebuilt) as plugin:
        assert plugin.call("hello") == b"hi from pyhello"
