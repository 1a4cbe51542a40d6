"""Building a package from a module file or a plugin project directory."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .._errors import InvalidModule
from ..runtime import Plugin
from ._package import Package, build_manifest
from ._signing import SigningKey, sign_package

__all__ = ["PACKAGE_FIELDS", "build_package", "find_module", "project_fields"]

PACKAGE_FIELDS = ("publisher", "homepage", "license", "min_wasmdeck")


def project_fields(directory: Path) -> tuple[str | None, dict[str, str]]:
    """The plugin name (``[plugin] name``) and ``[package]`` fields of ``wasmdeck.toml``."""
    path = directory / "wasmdeck.toml"
    if not path.exists():
        return None, {}
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None
    plugin: dict[str, Any] = data["plugin"] if isinstance(data.get("plugin"), dict) else {}
    package = data.get("package", {})
    if not isinstance(package, dict):
        raise ValueError(f"{path}: [package] must be a table")
    fields: dict[str, str] = {}
    for key in PACKAGE_FIELDS:
        if key in package:
            if not isinstance(package[key], str):
                raise ValueError(f"{path}: [package] {key} must be a string")
            fields[key] = package[key]
    name = plugin.get("name") if isinstance(plugin.get("name"), str) else None
    return name, fields


def find_module(directory: Path, name: str | None) -> Path:
    """The built module of a project: ``build/<name>.wasm``, or the only ``build/*.wasm``."""
    build = directory / "build"
    if name and (build / f"{name}.wasm").is_file():
        return build / f"{name}.wasm"
    candidates = sorted(build.glob("*.wasm")) if build.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ValueError(f"{directory} has no built module in build/*.wasm; build it first")
    listed = ", ".join(p.name for p in candidates)
    raise ValueError(
        f"{directory}/build has several modules ({listed}); name the plugin in "
        "wasmdeck.toml [plugin] name or pack the .wasm file directly"
    )


def build_package(
    source: str | os.PathLike[str],
    *,
    key: SigningKey | None = None,
    **fields: str | None,
) -> Package:
    """Package a ``.wasm`` file or a project directory, signed when ``key`` is given.

    ``fields`` (publisher, homepage, license, min_wasmdeck) override the
    project's ``wasmdeck.toml [package]`` table. The module is loaded once to
    read its metadata, so only a working plugin can be packaged.
    """
    path = Path(source)
    defaults: dict[str, str] = {}
    if path.is_dir():
        name, defaults = project_fields(path)
        path = find_module(path, name)
    module = path.read_bytes()
    if not module.startswith(b"\0asm"):
        raise InvalidModule(f"{path} is not a WebAssembly module")
    # Metadata only: the host functions it imports are linked but refuse; nothing is granted.
    with Plugin(module, metadata_only=True) as plugin:
        metadata = plugin.metadata
    given = {k: v for k, v in fields.items() if v is not None}
    unknown = set(given) - set(PACKAGE_FIELDS)
    if unknown:
        raise TypeError(f"unknown package fields: {', '.join(sorted(unknown))}")
    manifest = build_manifest(metadata, **{**defaults, **given})
    package = Package.create(module, manifest)
    return sign_package(package, key) if key else package
