"""Every language, by name: ``LANGUAGES``; and the operations on projects."""

from __future__ import annotations

from pathlib import Path

from . import _assemblyscript, _c, _go, _python, _rust, _zig
from ._languages import Language
from ._project import TEMPLATES, Project, ProjectError, load_project, render_template, sdk_dir
from ._tool import BuildProgress, ToolchainMissing, no_progress

__all__ = ["LANGUAGES", "build_project", "language", "new_project"]

LANGUAGES: dict[str, Language] = {
    module.LANGUAGE.name: module.LANGUAGE
    for module in (_c, _python, _zig, _rust, _assemblyscript, _go)
}


def language(name: str) -> Language:
    found = LANGUAGES.get(name)
    if found is None:
        raise ProjectError(
            f"unknown language {name!r}; wasmdeck builds plugins in {', '.join(LANGUAGES)}"
        )
    return found


def new_project(directory: Path, name: str, lang: str, template: str = "minimal") -> list[Path]:
    """Create a plugin project from a template; return the files written."""
    language(lang)
    if template not in TEMPLATES:
        raise ProjectError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    # Every language's template shares the test cases in sdk/common.
    sources = [sdk_dir(name) / "templates" / template for name in ("common", lang)]
    return render_template(sources, directory, name=name, language=lang)


def build_project(
    directory: Path, *, progress: BuildProgress = no_progress, install_toolchain: bool = False
) -> Path:
    """Build the project in ``directory``; return the path of its ``.wasm``.

    A missing toolchain raises ``ToolchainMissing`` saying how to get it, or
    is installed from the package registries when ``install_toolchain``.
    """
    project: Project = load_project(directory)
    lang = language(project.language)
    try:
        lang.toolchain()
    except ToolchainMissing:
        if not install_toolchain or lang.install is None:
            raise
        lang.install(progress)
        lang.toolchain()
    project.output.parent.mkdir(parents=True, exist_ok=True)
    return lang.build(project, progress)
