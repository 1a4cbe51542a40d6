"""Rust to a wasm32-wasi reactor module, with Debian's cargo and wasm32 standard library.

A project is a cargo package (``crate-type = ["cdylib"]``) that depends on
``wasmdeck-pdk = "0.1"``, the kit in ``sdk/rust/wasmdeck-pdk``. The kit is
not on crates.io: the build patches the dependency to the kit's directory
(``--config patch.crates-io.wasmdeck-pdk.path=...``), offline, so a project
made by ``wasmdeck new`` builds unchanged wherever wasmdeck is installed.
Cargo's files go to ``build/target`` in the project.

The toolchain is Debian's (``apt-get install rustc cargo
libstd-rust-dev-wasm32``, in /usr/bin): a rustup toolchain earlier on PATH
usually lacks the wasm32-wasi target, so it is bypassed on purpose.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from pathlib import Path

from ._languages import Language
from ._project import Project, sdk_dir
from ._tool import BuildError, Progress, ToolchainMissing, run_tool

__all__ = ["APT_PACKAGES", "CARGO", "LANGUAGE", "RUSTC", "TARGET", "WASM_STD", "kit_dir"]

TOOLCHAIN_DIR = Path("/usr/bin")
CARGO = TOOLCHAIN_DIR / "cargo"
RUSTC = TOOLCHAIN_DIR / "rustc"
# Debian's standard library for the target (package libstd-rust-dev-wasm32).
WASM_STD = Path("/usr/lib/rustlib/wasm32-wasi")
TARGET = "wasm32-wasi"
APT_PACKAGES = ("rustc", "cargo", "libstd-rust-dev-wasm32")
INSTALL_HINT = (
    f"install it with `sudo apt-get install {' '.join(APT_PACKAGES)}` "
    "(Debian/Ubuntu), or run `wasmdeck toolchain --install rust`"
)


def kit_dir() -> Path:
    """The ``wasmdeck-pdk`` crate."""
    return sdk_dir("rust") / "wasmdeck-pdk"


def _toolchain() -> str:
    if not (os.access(CARGO, os.X_OK) and os.access(RUSTC, os.X_OK)):
        raise ToolchainMissing(
            f"no Rust toolchain in {TOOLCHAIN_DIR} (cargo, rustc): {INSTALL_HINT}"
        )
    if not WASM_STD.is_dir():
        raise ToolchainMissing(
            f"Rust is installed but not its {TARGET} standard library ({WASM_STD}): {INSTALL_HINT}"
        )
    version = run_tool([RUSTC, "--version"], what="rustc --version", env=_env())
    return version.splitlines()[0] if version else "rustc"


def _install(progress: Progress) -> None:
    if shutil.which("apt-get") is None:
        raise ToolchainMissing(
            "cannot install Rust here: apt-get is missing (wasmdeck installs Debian's "
            f"{', '.join(APT_PACKAGES)}); install rustc, cargo and the {TARGET} "
            "standard library by hand"
        )
    command: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise ToolchainMissing(f"installing Rust needs root: {INSTALL_HINT}")
        command = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_tool(
        [*command, "apt-get", "update", "-q"], what="apt-get update", env=env, progress=progress
    )
    run_tool(
        [*command, "apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
        what=f"apt-get install {' '.join(APT_PACKAGES)}",
        env=env,
        progress=progress,
    )


def _env() -> dict[str, str]:
    """This process's environment with Debian's toolchain first, not rustup's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUSTUP_")}
    env["PATH"] = os.pathsep.join([str(TOOLCHAIN_DIR), env.get("PATH", "")])
    env["RUSTC"] = str(RUSTC)
    env["CARGO"] = str(CARGO)
    env.pop("RUSTFLAGS", None)  # flags meant for another toolchain would break this one
    return env


def _drop_newer_lock(root: Path) -> None:
    """Remove a Cargo.lock that this cargo cannot read (version 4, from a newer cargo).

    A project's dependencies are the kit and other local crates (the build is
    offline), so the lock file pins nothing cargo cannot work out again.
    """
    lock = root / "Cargo.lock"
    try:
        head = lock.read_text(encoding="utf-8", errors="replace")[:500]
    except FileNotFoundError:
        return
    match = re.search(r"^version\s*=\s*(\d+)", head, re.MULTILINE)
    if match and int(match.group(1)) > 3:
        lock.unlink()


def _library_name(manifest: Path) -> str:
    """The cdylib's name, as cargo names the .wasm; BuildError if the package has none."""
    try:
        cargo = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"{manifest} is not valid TOML: {exc}") from None
    lib = cargo.get("lib", {})
    package = cargo.get("package", {})
    if "cdylib" not in lib.get("crate-type", []):
        raise BuildError(
            f'{manifest}: a plugin needs [lib] crate-type = ["cdylib"] (a WebAssembly module)'
        )
    name = lib.get("name") or package.get("name")
    if not isinstance(name, str) or not name:
        raise BuildError(f"{manifest} has no [package] name")
    return name.replace("-", "_")


def _build(project: Project, progress: Progress) -> Path:
    manifest = project.root / "Cargo.toml"
    if not manifest.is_file():
        raise BuildError(f"{project.root} has no Cargo.toml (a Rust plugin is a cargo package)")
    library = _library_name(manifest)
    _drop_newer_lock(project.root)
    target_dir = project.root / "build" / "target"
    env = _env()
    env["CARGO_TARGET_DIR"] = str(target_dir)
    patch = f"patch.crates-io.wasmdeck-pdk.path={json.dumps(str(kit_dir()))}"
    run_tool(
        [
            CARGO,
            "build",
            "--release",
            "--offline",
            "--quiet",
            "--target",
            TARGET,
            "--config",
            patch,
            "--manifest-path",
            manifest,
        ],
        what=f"cargo build ({project.name})",
        cwd=project.root,
        env=env,
        progress=progress,
    )
    built = target_dir / TARGET / "release" / f"{library}.wasm"
    if not built.is_file():
        raise BuildError(f"cargo reported success but wrote no {built}")
    project.output.parent.mkdir(parents=True, exist_ok=True)
    partial = project.output.with_name(project.output.name + ".partial")
    shutil.copyfile(built, partial)
    partial.replace(project.output)  # atomic: a half-written module is never left behind
    return project.output


LANGUAGE = Language(
    name="rust",
    title="Rust",
    build=_build,
    toolchain=_toolchain,
    install=_install,
)
