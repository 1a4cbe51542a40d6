"""Plugin projects: ``wasmdeck new``, ``wasmdeck build``, with toolchains from the registries."""

from ._c import C_FLAGS, compile_c
from ._cases import load_cases, run_cases
from ._catalog import LANGUAGES, build_project, language, new_project
from ._project import (
    MANIFEST,
    TEMPLATES,
    Project,
    ProjectError,
    load_project,
    project_digest,
    sdk_dir,
)
from ._tool import BuildError, BuildProgress, ToolchainMissing

__all__ = [
    "C_FLAGS",
    "LANGUAGES",
    "MANIFEST",
    "TEMPLATES",
    "BuildError",
    "BuildProgress",
    "Project",
    "ProjectError",
    "ToolchainMissing",
    "build_project",
    "compile_c",
    "language",
    "load_cases",
    "load_project",
    "new_project",
    "project_digest",
    "run_cases",
    "sdk_dir",
]
