"""Rust to a wasm32-wasi reactor module, with Debian's cargo and wasm32 standard library.

A project is a cargo package (``crate-type = ["cdylib"]``) that depends on
``wasmdeck-pdk = "0.1"``, the kit in ``sdk/rust/wasmdeck-pdk``. The kit is
not on crates.io: the build patches the dependency to the kit's directory
(``--config patch.crates-io.wasmdeck-pdk.path=...``), offline, so a project
made by ``wasmdeck new`` builds unchanged wherever wasmdeck is installed.
Cargo's files go to one target directory shared by every Rust plugin
(``$CARGO_TARGET_DIR``, else ``~/.cache/wasmdeck/cargo-target``), so the kit
is compiled once, not once per project; builds through it take turns.

The toolchain is Debian's (``apt-get install rustc cargo
libstd-rust-dev-wasm32``, in /usr/bin): a rustup toolchain earlier on PATH
usually lacks the wasm32-wasi target, so it is bypassed on purpose.
``WASMDECK_RUST_BIN`` names another directory with cargo and rustc.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tomllib
from pathlib import Path

from ._languages import Language
from ._project import Project, sdk_dir
from ._tool import BuildError, BuildProgress, ToolchainMissing, atomic_output, run_tool

__all__ = [
    "APT_PACKAGES",
    "LANGUAGE",
    "TARGET",
    "TARGETS",
    "cargo_target_dir",
    "kit_dir",
    "toolchain_bin",
    "wasm_target",
]

# Where cargo and rustc are: Debian's, unless WASMDECK_RUST_BIN names another
# directory (a toolchain whose sysroot has the wasm32-wasi standard library).
DEFAULT_BIN = Path("/usr/bin")
TARGET = "wasm32-wasi"
# The same target by its two names: rustc 1.78+ calls it wasm32-wasip1, and
# 1.84 dropped wasm32-wasi; Debian's 1.63 knows only wasm32-wasi.
TARGETS = ("wasm32-wasip1", "wasm32-wasi")
# lld: rustc's rust-lld, the wasm linker, is Debian's lld (only recommended by the packages).
APT_PACKAGES = ("rustc", "cargo", "libstd-rust-dev-wasm32", "lld")
INSTALL_HINT = (
    f"install it with `sudo apt-get install {' '.join(APT_PACKAGES)}` "
    "(Debian/Ubuntu), or run `wasmdeck toolchain --install rust`"
)


def kit_dir() -> Path:
    """The ``wasmdeck-pdk`` crate."""
    return sdk_dir("rust") / "wasmdeck-pdk"


def toolchain_bin() -> Path:
    """The directory with cargo and rustc (``WASMDECK_RUST_BIN``, default /usr/bin)."""
    return Path(os.environ.get("WASMDECK_RUST_BIN") or DEFAULT_BIN)


def _probe(bin_dir: Path) -> tuple[str, Path, str | None, bool]:
    """rustc's version, its sysroot, the wasm target it has (or None), and
    whether it has a wasm linker (rust-lld)."""
    env = _env(bin_dir)
    version = run_tool([bin_dir / "rustc", "--version"], what="rustc --version", env=env)
    sysroot = run_tool(
        [bin_dir / "rustc", "--print", "sysroot"], what="rustc --print sysroot", env=env
    )
    root = Path(sysroot.strip())
    target = next((t for t in TARGETS if (root / "lib" / "rustlib" / t).is_dir()), None)
    linkers = [bin_dir / "rust-lld", *root.glob("lib/rustlib/*/bin/rust-lld")]
    linked = any(linker.exists() for linker in linkers)  # exists() follows the symlink
    return version.strip() or "rustc", root, target, linked


def _fix(root: Path) -> str:
    """How to get the wasm target for the toolchain with sysroot ``root``."""
    if ".rustup" in root.parts:  # a rustup toolchain: rustup adds targets
        return (
            f"run `rustup target add {TARGETS[0]}`, or build with Debian's toolchain "
            f"(leave WASMDECK_RUST_BIN unset; {INSTALL_HINT})"
        )
    return INSTALL_HINT


def _short(version: str) -> str:
    """``rustc 1.95.0`` of ``rustc 1.95.0 (59807616e 2026-04-14)``."""
    return " ".join(version.split()[:2])


def _toolchain() -> str:
    bin_dir = toolchain_bin()
    missing = [tool for tool in ("cargo", "rustc") if not os.access(bin_dir / tool, os.X_OK)]
    if missing:
        raise ToolchainMissing(
            f"no Rust toolchain in {bin_dir} ({' and '.join(missing)} missing): {INSTALL_HINT}"
        )
    version, root, target, linked = _probe(bin_dir)
    if target is None:
        std = root / "lib" / "rustlib" / TARGET
        raise ToolchainMissing(
            f"{_short(version)} is installed but not its {TARGET} standard library "
            f"(the {' or '.join(TARGETS)} target: {std} is missing): {_fix(root)}"
        )
    if not linked:
        raise ToolchainMissing(
            f"{version} is installed but not its wasm linker rust-lld "
            f"(Debian's lld): {INSTALL_HINT}"
        )
    return f"{version} ({bin_dir}, target {target})"


def wasm_target() -> str:
    """The name the toolchain in use gives the wasm32-wasip1 target."""
    return _probe(toolchain_bin())[2] or TARGET


def _notes() -> list[str]:
    """A note when the rustc first on PATH is another one, without the wasm target.

    Typically rustup's newer rustc in ~/.cargo/bin shadows Debian's in
    /usr/bin: wasmdeck builds with the latter, but ``cargo build`` typed by
    hand would use the former and fail.
    """
    found = shutil.which("rustc")
    if found is None:
        return []
    path_bin = Path(found).parent
    if path_bin.resolve() == toolchain_bin().resolve():
        return []
    try:
        version, root, target, linked = _probe(path_bin)
    except BuildError:
        return []
    if target is not None and linked:
        return []
    lacks = f"no {TARGETS[0]} target" if target is None else "no wasm linker (rust-lld)"
    use = toolchain_bin()
    fix = f"`rustup target add {TARGETS[0]}`" if ".rustup" in root.parts else INSTALL_HINT
    return [
        f"{_short(version)} first on PATH ({found}) has {lacks}, so wasmdeck builds with "
        f"{use / 'rustc'} instead; to build by hand, put that first "
        f"(`PATH={use}:$PATH cargo build --target {wasm_target()}`) or add the target: {fix}"
    ]


def _install(progress: BuildProgress) -> None:
    """apt-get update + install of Debian's Rust and its wasm32 std; a no-op when present."""
    try:
        _toolchain()
        return
    except ToolchainMissing:
        pass
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


def _env(bin_dir: Path | None = None) -> dict[str, str]:
    """This process's environment with Debian's toolchain (or ``bin_dir``) first, not rustup's."""
    bin_dir = bin_dir or toolchain_bin()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUSTUP_")}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env["RUSTC"] = str(bin_dir / "rustc")
    env["CARGO"] = str(bin_dir / "cargo")
    env.pop("RUSTFLAGS", None)  # flags meant for another toolchain would break this one
    return env


def cargo_target_dir() -> Path:
    """Cargo's target directory: ``$CARGO_TARGET_DIR``, else wasmdeck's user cache."""
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("wasmdeck", appauthor=False)) / "cargo-target"


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


def _claim(target_dir: Path, library: str, root: Path) -> None:
    """Make the shared target directory build ``library`` for the project at ``root``.

    Cargo names a cdylib's output after the crate alone (``deps/<lib>.wasm``),
    and judges it fresh by its time: after another project of the same crate
    name was built, this one's module would look up to date. So when the last
    build of ``library`` was another project's, its outputs go first.
    """
    owners = target_dir / ".wasmdeck-owners"
    owners.mkdir(exist_ok=True)
    owner = owners / library
    try:
        last = owner.read_text(encoding="utf-8")
    except FileNotFoundError:
        last = None
    if last != str(root):
        release = target_dir / wasm_target() / "release"
        for output in (release / f"{library}.wasm", release / "deps" / f"{library}.wasm"):
            output.unlink(missing_ok=True)
        owner.write_text(str(root), encoding="utf-8")


def _build(project: Project, progress: BuildProgress) -> Path:
    manifest = project.root / "Cargo.toml"
    if not manifest.is_file():
        raise BuildError(f"{project.root} has no Cargo.toml (a Rust plugin is a cargo package)")
    library = _library_name(manifest)
    _drop_newer_lock(project.root)
    target_dir = cargo_target_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    env = _env()
    env["CARGO_TARGET_DIR"] = str(target_dir)
    patch = f"patch.crates-io.wasmdeck-pdk.path={json.dumps(str(kit_dir()))}"
    target = wasm_target()
    command: list[str | os.PathLike[str]] = [
        toolchain_bin() / "cargo",
        "build",
        "--release",
        "--offline",
        "--quiet",
        "--target",
        target,
        "--config",
        patch,
        "--manifest-path",
        manifest,
    ]
    built = target_dir / target / "release" / f"{library}.wasm"
    # The target directory is shared by every project, one build at a time.
    with (
        atomic_output(project.output) as partial,
        open(target_dir / ".wasmdeck-build.lock", "w") as lock,
    ):
        fcntl.flock(lock, fcntl.LOCK_EX)
        _claim(target_dir, library, project.root)
        run_tool(
            command,
            what=f"cargo build ({project.name})",
            cwd=project.root,
            env=env,
            progress=progress,
        )
        if not built.is_file():
            raise BuildError(f"cargo reported success but wrote no {built}")
        shutil.copyfile(built, partial)
    return project.output


LANGUAGE = Language(
    name="rust",
    title="Rust",
    build=_build,
    toolchain=_toolchain,
    install=_install,
    notes=_notes,
)
