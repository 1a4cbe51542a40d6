"""Plugin projects: ``wasmdeck.toml``, ``wasmdeck new`` and where builds go.

A project is a directory with a ``wasmdeck.toml``::

    [plugin]
    name = "obs-control"      # the plugin's name, as its metadata declares it
    language = "rust"         # which toolchain builds it

The language's kit provides the templates (``sdk/<lang>/templates/<name>/``);
``{{name}}`` in a template file (or file name) becomes the plugin's name and
``{{ident}}`` the name as an identifier (``obs_control``). A template's own
``wasmdeck.toml`` holds the tables that follow ``[plugin]`` (a Python
template's ``[build] interfaces``). A build writes ``build/<name>.wasm``
inside the project.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ProjectError

__all__ = [
    "MANIFEST",
    "TEMPLATES",
    "Project",
    "ProjectError",
    "build_once",
    "check_name",
    "load_project",
    "project_digest",
    "render_template",
    "sdk_dir",
]

MANIFEST = "wasmdeck.toml"
# Every language offers the same templates; "trigger" is a trigger plugin
# (docs/teamwork.md, "Trigger plugins").
TEMPLATES = ("minimal", "json", "template", "trigger")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    language: str
    # The manifest's other tables ([build], [package], ...), for whoever reads them.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        return self.name.replace("-", "_")

    @property
    def output(self) -> Path:
        return self.root / "build" / f"{self.name}.wasm"


def sdk_dir(lang: str) -> Path:
    """Where the plugin development kit for ``lang`` lives (with its templates).

    Installed wheels carry the kits inside the package (``wasmdeck/_sdk``);
    a source checkout has them at the repository's top (``sdk/``).
    """
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_sdk" / lang, here.parent.parent / "sdk" / lang):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {lang} plugin kit is not installed (looked in {here / '_sdk'})")


def check_name(name: object) -> str:
    """A plugin name: lowercase letters, digits and single dashes, at most 64 characters."""
    if not isinstance(name, str) or len(name) > 64 or not _NAME.match(name):
        raise ProjectError(
            f"{name!r} is not a valid plugin name: use lowercase letters, digits and single "
            "dashes, starting with a letter, at most 64 characters (e.g. 'obs-control')"
        )
    return name


def load_project(directory: Path) -> Project:
    """Read ``directory/wasmdeck.toml``; ProjectError says what is wrong."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise ProjectError(
            f"{directory} is not a plugin project: it has no {MANIFEST} "
            "(create a project with `wasmdeck new NAME --lang LANG`)"
        )
    try:
        document = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{manifest} is not valid TOML: {exc}") from None
    plugin = document.get("plugin")
    if not isinstance(plugin, dict):
        raise ProjectError(f"{manifest} has no [plugin] table with name and language")
    name, language = plugin.get("name"), plugin.get("language")
    if not isinstance(language, str):
        raise ProjectError(f'{manifest}: [plugin] language must be a string, e.g. "rust"')
    try:
        name = check_name(name)
    except ProjectError as exc:
        raise ProjectError(f"{manifest}: {exc}") from None
    settings = {k: v for k, v in document.items() if k != "plugin"}
    return Project(directory.resolve(), name, language, settings)


def render_template(
    sources: Sequence[Path], directory: Path, *, name: str, language: str
) -> list[Path]:
    """Create a project in ``directory`` from template directories ``sources``.

    Later sources win where two have the same file.
    ``directory`` must not exist or be empty. The project appears whole or
    not at all: it is written beside its destination and then moved there.
    Returns the files written, relative to ``directory``.
    """
    check_name(name)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ProjectError(f"{directory} already exists and is not an empty directory")
    ident = name.replace("-", "_")
    directory.parent.mkdir(parents=True, exist_ok=True)
    written = []
    tables = ""  # from the templates' own wasmdeck.toml
    with tempfile.TemporaryDirectory(prefix=".wasmdeck-new-", dir=directory.parent) as scratch:
        staging = Path(scratch) / "project"
        staging.mkdir()
        for source in sources:
            for path in sorted(source.rglob("*")):
                if not path.is_file() or "__pycache__" in path.parts:
                    continue
                relative = str(path.relative_to(source)).replace("{{name}}", name)
                target = staging / relative.replace("{{ident}}", ident)
                target.parent.mkdir(parents=True, exist_ok=True)
                text = path.read_text(encoding="utf-8")
                text = text.replace("{{name}}", name).replace("{{ident}}", ident)
                if relative == MANIFEST:
                    tables += "\n" + text
                    continue
                target.write_text(text)
                shutil.copymode(path, target)
                written.append(target.relative_to(staging))
        (staging / MANIFEST).write_text(
            f"# A wasmdeck plugin project: `wasmdeck build` builds it, `wasmdeck test` tests it.\n"
            f'[plugin]\nname = "{name}"\nlanguage = "{language}"\n{tables}',
            encoding="utf-8",
        )
        written.append(Path(MANIFEST))
        written = sorted(set(written))
        if directory.exists():
            directory.rmdir()  # empty, checked above
        staging.rename(directory)
    return written


# Not sources: the build's output, tool caches, bytecode.
_NOT_SOURCES = frozenset({"build", "__pycache__", "node_modules", "target", "zig-cache"})


def _tree_files(root: Path) -> Iterable[tuple[str, Path]]:
    if root.is_file():
        yield root.name, root
        return
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if _NOT_SOURCES & set(relative.parts) or any(p.startswith(".") for p in relative.parts):
            continue
        if path.is_file():
            yield str(relative), path


def project_digest(project: Project, *, settings: Sequence[str], kit: Sequence[Path]) -> str:
    """What a build depends on: the project's files, the kit's files (or
    directories) and ``settings`` (flags, the toolchain's version, ...)."""
    digest = hashlib.sha256()
    digest.update("\0".join((*settings, project.name)).encode() + b"\1")
    for root in (project.root, *kit):
        digest.update(str(root.name).encode() + b"\2")
        for relative, path in _tree_files(root):
            digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_once(project: Project, digest: str, build: Callable[[], object]) -> Path:
    """Run ``build`` unless ``project.output`` was built from exactly ``digest``.

    The digest of the last build is kept beside the module
    (``build/.<name>.digest``); it is removed before a build and written
    after it succeeds, so a failed or interrupted build is never taken as
    up to date.
    """
    stamp = project.output.with_name(f".{project.output.stem}.digest")
    if project.output.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return project.output
    stamp.unlink(missing_ok=True)
    build()
    stamp.write_text(digest)
    return project.output
