"""Installed modules, stored by content: ``$WASMDECK_HOME/modules/<sha256>.wasm``."""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path

from .._errors import ModuleFileCorrupt
from .._home import home
from ._files import TEMP_SUFFIX, atomic_write

__all__ = ["ModuleStore"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ModuleStore:
    """Content-addressed module files, written atomically and checked on every read."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else home("modules")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / f"{digest}.wasm"

    def put(self, module: bytes) -> str:
        """Store ``module`` (durably) and return its digest; a no-op when already stored."""
        digest = hashlib.sha256(module).hexdigest()
        path = self.path(digest)
        with contextlib.suppress(OSError):
            if hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                return digest
        atomic_write(path, module, mode=0o600)
        return digest

    def read(self, digest: str, *, plugin: str | None = None) -> bytes:
        """The module with this digest; ``ModuleFileCorrupt`` when missing or altered."""
        path = self.path(digest)
        try:
            module = path.read_bytes()
        except FileNotFoundError:
            raise ModuleFileCorrupt(
                f"its module file {path} is missing; run 'wasmdeck doctor --repair' and "
                "install the plugin again",
                plugin=plugin,
            ) from None
        if hashlib.sha256(module).hexdigest() != digest:
            raise ModuleFileCorrupt(
                f"its module file {path} does not match the recorded digest (it was altered "
                "or damaged); run 'wasmdeck doctor --repair' and install the plugin again",
                plugin=plugin,
            )
        return module

    def check(self, digest: str) -> str | None:
        """None when the module file is intact, else what is wrong."""
        try:
            self.read(digest)
        except ModuleFileCorrupt as exc:
            return exc.message
        return None

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def stored(self) -> set[str]:
        return {p.stem for p in self.root.glob("*.wasm") if _DIGEST.match(p.stem)}

    def leftovers(self) -> list[Path]:
        """Files that are not stored modules: temporaries of interrupted writes, strays."""
        return [
            p
            for p in self.root.iterdir()
            if p.name.endswith(TEMP_SUFFIX) or not (p.suffix == ".wasm" and _DIGEST.match(p.stem))
        ]
